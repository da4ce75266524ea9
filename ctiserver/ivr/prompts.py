"""Prompts the PBX cannot play: told once when a caller meets one, and looked for at start.

A missing prompt is not a hang-up (capture 14): the flow goes on without it, but somebody must install
the file. So the first time a caller meets one it is logged and journaled (`PromptMissing`), which the
consoles' notifier turns into a supervisor alert. At start, when the PBX's sounds directory is
reachable from here (cti.yaml `ivr.prompts_dir`), every prompt the flows and the queues play is looked
for, one error line per missing prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ivr_flows.model import Flow
from ivr_flows.validator import FlowCatalog, check_flow

from ..journal import facts as f

log = logging.getLogger(__name__)


class MissingPrompts:
    """The prompts callers could not hear since the server started, each told once (log line and fact)."""

    def __init__(self, record: Callable[[object], object]) -> None:
        self._record = record
        self.seen: set[str] = set()

    def report(self, prompt: str, where: str, call_id: str = "") -> bool:
        """True when this prompt is new (logged and journaled now)."""
        if prompt in self.seen:
            return False
        self.seen.add(prompt)
        log.error("prompt %r cannot be played (%s): missing on the PBX? Callers go on without it", prompt, where)
        self._record(f.PromptMissing(prompt, where, call_id))
        return True


def sound_dirs(prompts_dir: Path) -> tuple[Path, ...]:
    """Where Asterisk looks for a prompt of a channel whose language directory is `prompts_dir`
    (e.g. /var/lib/asterisk/sounds/zh): that directory, then the sounds directory itself (the example
    flows' cs/zh/... prompts), then the default language, en."""
    return tuple(dict.fromkeys((prompts_dir, prompts_dir.parent, prompts_dir.parent / "en")))


def check_prompts(prompts_dir: Path, flows: Iterable[Flow], queue_prompts: Mapping[str, str]) -> list[str]:
    """One line per prompt that is not in the sounds directory: the flow's file, line and node, or what the
    queues play it for. Nothing to say (but one line) when the directory cannot be read from here."""
    if not prompts_dir.is_dir():
        return [f"prompts not checked: the sounds directory {prompts_dir} (ivr.prompts_dir) is not reachable"]
    catalog = FlowCatalog(prompt_dirs=sound_dirs(prompts_dir))
    problems = []
    for flow in flows:
        problems += [f"flow {flow.name}: {e}" for e in check_flow(flow, catalog) if e.kind == "prompt"]
    for prompt, use in queue_prompts.items():
        if not catalog.has_prompt(prompt):
            problems.append(f"queues: prompt file {prompt!r} ({use}) not found in {prompts_dir}")
    return problems
