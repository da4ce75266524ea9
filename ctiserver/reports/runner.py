"""Reports inside the server, off its event loop.

A report of a year folds thousands of rows and writes a workbook: tens to hundreds of milliseconds of
Python that would stall every pop and push if run on the server's loop. So reports run on a loop of
their own in one worker thread, with their own connections to the CRM database (readers only). The
interval still open is copied on the server's loop, at the moment asked, and the copy goes along.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import tzinfo
from typing import Any, TypeVar

from acd.config import AcdConfig
from crmstore.store import CrmStore, open_store

from .engine import Query, Report, run_report
from .intervals import Cell, Intervals

T = TypeVar("T")


def snapshot(live: Intervals) -> Intervals:
    """The open interval's figures as they are now, for another thread to read."""
    copy = Intervals(live.config)
    copy.start = live.start
    copy.cells = {key: Cell.from_columns(cell.columns()) for key, cell in live.cells.items()}
    copy.pauses = dict(live.pauses)
    return copy


class ReportRunner:
    """`await runner.run(query, render)`: the report, then `render(report)` (a table, a workbook), both
    in the worker thread. `config()` and `live()` are read on the caller's loop when a report is asked:
    the queues as configured now, the open interval as it stands."""

    def __init__(self, database_url: str, tz: tzinfo | None, config: Callable[[], AcdConfig],
                 live: Callable[[], Intervals | None], clock: Callable[[], float],
                 default_country: str = "CN") -> None:
        self.database_url = database_url
        self.tz = tz
        self.config = config
        self.live = live
        self.clock = clock
        self.default_country = default_country
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._store: CrmStore | None = None
        self._opening: asyncio.Lock | None = None

    async def run(self, query: Query, render: Callable[[Report], T]) -> T:
        config, now = self.config(), self.clock()
        current = self.live()
        live = snapshot(current) if current is not None else None
        return await asyncio.wrap_future(self._submit(self._report(query, config, live, now, render)))

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        try:
            await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), loop)), 10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, 10)

    # ------------------------------------------------------------------ the worker thread

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._serve, args=(loop,), name="reports", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _report(self, query: Query, config: AcdConfig, live: Intervals | None, now: float,
                      render: Callable[[Report], T]) -> T:
        store = await self._reader()
        report = await run_report(store, query, config, live=live, now=now)
        return render(report)

    async def _reader(self) -> CrmStore:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._store is None:
                self._store = await open_store(self.database_url, default_country=self.default_country)
            return self._store

    async def _close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()
