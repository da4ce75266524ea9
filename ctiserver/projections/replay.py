"""Rebuild the projections from the journal's first fact: the CRM interaction rows, the queue_log and the
day's statistics, exactly as the live server built them (the same projector, fed the same facts).

Used by `ctiserver journal replay` (after a bug fix in a projection, to rebuild a lost queue_log, to check a
copy) and by the tests that hold live and replayed projections equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from acd.config import AcdConfig, parse_config
from crmstore import journal as store_ops
from crmstore.store import CrmStore

from ..crm_history.writer import CrmHistoryWriter
from ..journal.facts import AcdConfigLoaded, Fact, decode
from ..journal.journal import Journal
from ..queue_log.writer import QueueLogWriter
from ..reports.writer import ReportsWriter
from .projector import Projector

READ_BATCH = 10_000


@dataclass(slots=True)
class Replayed:
    projector: Projector
    facts: int
    last_seq: int
    rows_written: int
    queue_log_lines: int


async def replay(
    source: CrmStore,
    *,
    into: CrmStore | None = None,
    queue_log: Path | None = None,
    config: AcdConfig | None = None,
    tz: tzinfo | None = None,
    country: str = "CN",
) -> Replayed:
    """Feed every fact of `source`'s journal to a fresh projector; write the CRM rows into `into` (default:
    the same database: the rows are rewritten as they are) and the queue_log into `queue_log` (a new
    file). The queues configuration is the one the journal recorded at its start; `config` only serves a
    journal that recorded none."""
    target = into or source
    first = await source.read_plan(store_ops.read_rows(0, READ_BATCH))
    for _seq, _at, kind, _c, _a, body in first:
        if kind == "system.acd_config":
            loaded = decode(kind, body)
            assert isinstance(loaded, AcdConfigLoaded)
            config = parse_config(loaded.text, loaded.source)
            break
    if config is None:
        raise ValueError("the journal holds no queues configuration (system.acd_config) and none was given")
    projector = Projector(config, tz=tz)
    writes = Journal(target)  # carries the rows' side writes only: no fact is appended to `target`
    history = CrmHistoryWriter(projector.records, writes, country)
    history.audit = False
    history.rows_seen = set()
    projector.listeners.append(history)
    projector.listeners.append(ReportsWriter(projector.intervals, writes, tz))
    lines = 0
    writer = None
    if queue_log is not None:
        queue_log.unlink(missing_ok=True)
        writer = QueueLogWriter(queue_log, projector.queue_log)
        writer.open()
    facts, seq, rows = 0, 0, first
    try:
        while rows:
            for row_seq, at, kind, _call, _agent, body in rows:
                projector.apply(Fact(row_seq, at, decode(kind, body)))
                seq = row_seq
                facts += 1
            lines += len(projector.queue_log.pending)
            if writer is not None:
                writer.flush()
            else:
                projector.queue_log.pending.clear()
            await writes.flush()
            rows = await source.read_plan(store_ops.read_rows(seq, READ_BATCH))
    finally:
        if writer is not None:
            writer.close()
    return Replayed(projector, facts, seq, len(history.rows_seen), lines)
