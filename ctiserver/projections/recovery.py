"""Rebuild the projections from the journal at start: the last checkpoint, then every fact after it.

A damaged tail (a batch whose rows no longer match their checksum, facts no batch vouches for, a fact that
does not decode) is cut off and reported: what was committed before it is kept whole. A journal written
by a newer ctiserver is refused (`JournalTooNew`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from acd.config import AcdConfig
from crmstore import journal as store_ops
from crmstore.store import CrmStore

from ..journal.facts import Fact, JournalCorrupt, decode
from ..journal.journal import open_journal_store
from .projector import Projector

log = logging.getLogger(__name__)

READ_BATCH = 10_000


@dataclass(slots=True)
class Recovery:
    projector: Projector
    last_seq: int
    last_at: float | None  # the previous process's last fact: last seen alive
    checkpoint_seq: int
    replayed: int
    dropped: list[str] = field(default_factory=list)  # what a damaged tail cost, in words
    problems: list[str] = field(default_factory=list)  # state the configuration no longer has room for


async def recover(
    store: CrmStore,
    config: AcdConfig,
    *,
    tz: tzinfo | None = None,
    before_replay: Callable[[Projector], None] | None = None,
) -> Recovery:
    await open_journal_store(store)
    checkpoint = await store.read_plan(store_ops.latest_checkpoint())
    problems: list[str] = []
    if checkpoint is not None:
        projector, problems = Projector.load(checkpoint[3], tz=tz)
        start = checkpoint[0]
    else:
        projector, start = Projector(config, tz=tz), 0
    dropped: list[str] = []
    damage = await store.read_plan(store_ops.check_tail(start))
    if damage is not None:
        dropped.append(await _drop(store, damage.first_seq,
                                   f"facts {damage.first_seq}-{damage.last_seq}: {damage.why}"))
    if before_replay is not None:
        before_replay(projector)
    seq, replayed, last_at = start, 0, projector.last_at or None
    while True:
        rows = await store.read_plan(store_ops.read_rows(seq, READ_BATCH))
        if not rows:
            break
        for row_seq, at, kind, _call, _agent, body in rows:
            try:
                fact = Fact(row_seq, at, decode(kind, body))
            except JournalCorrupt as e:
                dropped.append(await _drop(store, row_seq, f"fact {row_seq} ({kind}): {e}"))
                return Recovery(projector, seq, last_at, start, replayed, dropped, problems)
            projector.apply(fact)
            seq, last_at = row_seq, at
            replayed += 1
    return Recovery(projector, seq, last_at, start, replayed, dropped, problems)


async def _drop(store: CrmStore, from_seq: int, what: str) -> str:
    n = await store.write_plan(store_ops.drop_from(from_seq))
    line = f"journal damaged at its end; dropped {n} fact(s) from {what}; everything before is kept"
    log.error("%s", line)
    return line
