"""The set of loaded flows. A flow with errors is never loaded; a failed reload keeps the previous version.

Flow objects are immutable, so "calls in progress keep their version" needs no work: a FlowRun holds the Flow
it started with, and reload() only swaps the registry's mapping for new calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from .errors import FlowError, FlowLoadError
from .model import Flow
from .validator import FlowCatalog, load_checked

log = logging.getLogger(__name__)


class FlowRegistry:
    def __init__(self, directory: str | Path, catalog: FlowCatalog | None = None, pattern: str = "*.yaml") -> None:
        self.directory = Path(directory)
        self.catalog = catalog or FlowCatalog()
        self.pattern = pattern
        self._flows: dict[str, Flow] = {}
        self._sources: dict[str, Path] = {}  # flow name -> file

    def get(self, name: str) -> Flow:
        """The current version of a flow, for a new call. KeyError if unknown."""
        return self._flows[name]

    def names(self) -> list[str]:
        return sorted(self._flows)

    def __contains__(self, name: object) -> bool:
        return name in self._flows

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.glob(self.pattern) if p.is_file())

    def load_file(self, path: str | Path) -> Flow:
        """Load or replace one flow. Raises FlowLoadError (and keeps the old version) on any error."""
        flow, errors = load_checked(path, self.catalog)
        if flow is None or errors:
            raise FlowLoadError(errors)
        owner = self._sources.get(flow.name)
        if owner is not None and owner != Path(path):
            raise FlowLoadError([FlowError(str(path), 1, 1, f"flow {flow.name!r} is already loaded from {owner}")])
        self._flows[flow.name] = flow
        self._sources[flow.name] = Path(path)
        return flow

    def reload(self) -> list[FlowError]:
        """Re-read the directory. Each good file replaces its flow for new calls; each bad file keeps the
        flow's previous version (if any) and reports its errors. Flows whose file disappeared are dropped."""
        errors: list[FlowError] = []
        seen: set[str] = set()
        for path in self.files():
            try:
                flow = self.load_file(path)
            except FlowLoadError as e:
                errors.extend(e.errors)
                seen.update(n for n, p in self._sources.items() if p == path)
                log.warning("flow file %s not loaded (%d errors); previous version kept", path, len(e.errors))
                continue
            seen.add(flow.name)
        for name in [n for n in self._flows if n not in seen]:
            log.info("flow %s removed (its file is gone)", name)
            del self._flows[name]
            del self._sources[name]
        return errors


class FlowWatcher:
    """Polls the flow directory's modification times and calls ``registry.reload()`` on change.

    Polling (not inotify) on purpose: it works on every file system, including the network shares flows are
    often edited on, and a two-second delay is fine for an administrator's change.
    """

    def __init__(self, registry: FlowRegistry, interval: float = 2.0,
                 on_errors: Callable[[list[FlowError]], None] | None = None) -> None:
        self.registry = registry
        self.interval = interval
        self.on_errors = on_errors
        self._stamp = self._snapshot()

    def _snapshot(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in self.registry.files():
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def check(self) -> list[FlowError] | None:
        """One poll: None if nothing changed, else the reload's errors (possibly empty)."""
        stamp = self._snapshot()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        errors = self.registry.reload()
        if errors and self.on_errors is not None:
            self.on_errors(errors)
        return errors

    async def run(self) -> None:
        """Poll until cancelled (run it inside the server's TaskGroup)."""
        while True:
            await asyncio.sleep(self.interval)
            self.check()
