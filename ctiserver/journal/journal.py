"""The journal: the one durable record of the centre's facts.

`append` is synchronous and cheap (the hot path: AMI events, routing, commands): the fact gets its
sequence number and time, goes to the listeners at once (the projector), and waits in memory for the next
batch. The writer task commits a batch every `batch_interval_s` (or sooner when `max_batch` facts wait)
in one transaction with the side writes the projections asked for (call history rows), so a row never
runs ahead of, nor falls behind, the facts it comes from. What a kill -9 can lose is the last batch
interval (20 ms by default); `durable(seq)` waits until a fact is committed, for the few callers that
promise durability to a person (a saved wrap-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from crmstore import journal as store_ops
from crmstore.errors import CrmError
from crmstore.plan import Plan
from crmstore.store import CrmStore

from .facts import FORMAT_VERSION, Fact, Heartbeat, JournalTooNew, encode, subject

log = logging.getLogger(__name__)

SideWrite = Callable[[], Plan[Any]]
Committed = Callable[[int], None]


class JournalClosed(RuntimeError):
    pass


class Journal:
    def __init__(
        self,
        store: CrmStore,
        clock: Callable[[], float] = time.time,
        *,
        last_seq: int = 0,
        batch_interval_s: float = 0.02,
        max_batch: int = 5000,
        heartbeat_s: float = 2.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.last_seq = last_seq
        self.last_at = 0.0
        self.durable_seq = last_seq
        self.batch_interval_s = batch_interval_s
        self.max_batch = max_batch
        self.heartbeat_s = heartbeat_s
        self.on_committed: list[Committed] = []  # called with the last durable seq after each commit
        # Called before each batch is written: a file projection (the queue_log) is never behind the
        # database, and a restart cuts it back to its checkpoint before replaying.
        self.before_commit: list[Callable[[], None]] = []
        self._rows: list[store_ops.JournalRow] = []
        self._side: dict[Hashable, SideWrite] = {}
        self._checkpoint: tuple[int, float, str] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._inflight: tuple[asyncio.Future[Any], list[store_ops.JournalRow], dict[Hashable, SideWrite],
                              tuple[int, float, str] | None] | None = None
        self._wakeup = asyncio.Event()
        self._closed = False
        self.failures = 0
        self.last_error = ""  # why the last batch was not written ("" once one is)
        self.batches = 0

    def resume(self, last_seq: int, clock: Callable[[], float]) -> None:
        """Go on after the facts a restart replayed: their numbering, and the server's clock."""
        self.last_seq = self.durable_seq = last_seq
        self.clock = clock

    # ------------------------------------------------------------------ appending (the hot path)

    def append(self, body: object) -> Fact:
        if self._closed:
            raise JournalClosed("the journal is closed")
        at = self.clock()
        self.last_seq += 1
        fact = Fact(self.last_seq, at, body)
        kind, text = encode(body)
        call_id, agent_id = subject(body)
        self._rows.append((fact.seq, at, kind, call_id, agent_id, text))
        self.last_at = at
        if len(self._rows) >= self.max_batch:
            self._wakeup.set()
        return fact

    def write_also(self, key: Hashable, plan: SideWrite) -> None:
        """A projection's durable write for the next batch; a later one with the same key replaces it."""
        self._side[key] = plan

    def checkpoint(self, state: str) -> None:
        """Store `state` (the projections as of the last appended fact) after that fact is durable."""
        self._checkpoint = (self.last_seq, self.last_at, state)

    async def durable(self, seq: int, timeout: float | None = None) -> None:
        """Return once fact `seq` is committed; TimeoutError if the database does not take it in time."""
        if seq <= self.durable_seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        self._wakeup.set()
        async with asyncio.timeout(timeout):
            await asyncio.shield(fut)

    # ------------------------------------------------------------------ writing

    async def run(self) -> None:
        """The writer: one batch per interval; a failed batch is kept and tried again."""
        backoff = self.batch_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.batch_interval_s):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if not self._rows and self.clock() - self.last_at >= self.heartbeat_s and self.last_at:
                self.append(Heartbeat())
            try:
                await self.flush()
                backoff = self.batch_interval_s
            except CrmError as e:
                self.failures += 1
                self.last_error = str(e)
                log.error("journal batch not written (%d facts waiting), trying again: %s", len(self._rows), e)
                backoff = min(2.0, backoff * 2)
                await asyncio.sleep(backoff)

    async def flush(self) -> None:
        if self._inflight is not None:
            await self._settle()  # a batch whose writer was cancelled: its outcome first
        for hook in self.before_commit:
            hook()
        rows, side, checkpoint = self._rows, self._side, self._checkpoint
        if not rows and not side and checkpoint is None:
            return
        self._rows, self._side, self._checkpoint = [], {}, None
        plans = list(side.values())

        def batch() -> Plan[None]:
            if rows:
                yield from store_ops.append_batch(rows, time.time())
            for make in plans:
                yield from make()
            if checkpoint is not None:
                yield from store_ops.save_checkpoint(checkpoint[0], checkpoint[1], FORMAT_VERSION, checkpoint[2])

        # The write runs in the database's own thread and commits whatever happens to this coroutine: it is
        # a task of its own, shielded, so a cancelled flush never takes a committed batch for a lost one.
        task = asyncio.ensure_future(self.store.write_plan(batch()))
        self._inflight = (task, rows, side, checkpoint)
        await self._settle()

    async def _settle(self) -> None:
        assert self._inflight is not None
        task, rows, side, checkpoint = self._inflight
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                raise  # this coroutine was cancelled; the write goes on and is settled by the next flush
            self._inflight = None
            self._put_back(rows, side, checkpoint)
            raise
        except BaseException:
            self._inflight = None
            self._put_back(rows, side, checkpoint)
            raise
        self._inflight = None
        self.batches += 1
        self.last_error = ""
        if rows:
            self.durable_seq = max(self.durable_seq, rows[-1][0])
        for callback in self.on_committed:
            callback(self.durable_seq)
        still = []
        for seq, fut in self._waiters:
            if seq <= self.durable_seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((seq, fut))
        self._waiters = still

    def _put_back(self, rows: list[store_ops.JournalRow], side: dict[Hashable, SideWrite],
                  checkpoint: tuple[int, float, str] | None) -> None:
        """Nothing of the batch was written: it goes back in front of what came meanwhile."""
        self._rows = rows + self._rows
        for key, plan in side.items():
            self._side.setdefault(key, plan)
        if self._checkpoint is None:
            self._checkpoint = checkpoint

    async def close(self, timeout: float = 5.0) -> None:
        """Write what waits (within `timeout`), then refuse further appends."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                while self._rows or self._side or self._checkpoint or self._inflight:
                    try:
                        await self.flush()
                    except CrmError as e:
                        log.error("journal: could not write the last facts: %s", e)
                        await asyncio.sleep(0.1)
        self._closed = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(JournalClosed("the journal closed before this fact was written"))


async def open_journal_store(store: CrmStore) -> None:
    """Check the journal's format: refuse one written by a newer ctiserver; mark a new one."""
    fmt = await store.read_plan(store_ops.get_format())
    if fmt is not None and fmt > FORMAT_VERSION:
        raise JournalTooNew(
            f"the journal in this database has format {fmt}, newer than this ctiserver understands "
            f"({FORMAT_VERSION}): upgrade ctiserver, or point it at another database")
    if fmt is None:
        await store.write_plan(store_ops.set_format(FORMAT_VERSION))
