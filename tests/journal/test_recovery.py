"""The journal on disk: what is committed survives and rebuilds the projections; a damaged tail is cut off
and reported, nothing committed before it is lost; a journal of a newer version is refused. Every test runs
on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from acd import events as ev
from acd.config import parse_config
from crmstore import journal as store_ops
from crmstore.store import CrmStore, open_store
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder
from ctiserver.projections.recovery import recover

QUEUES = """\
skills: [support]
pause_reasons: [break]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 30}
agents:
  - {id: "a1", name: A One, skills: {support: 1}, queues: [support], endpoint: PJSIP/a1}
  - {id: "a2", name: A Two, skills: {support: 1}, queues: [support], endpoint: PJSIP/a2}
"""
CONFIG = parse_config(QUEUES, "<test>")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def recorder(store: CrmStore, *, last_seq: int = 0, projector: Projector | None = None,
             clock: Clock | None = None) -> Recorder:
    journal = Journal(store, clock or Clock(), last_seq=last_seq)
    return Recorder(journal, projector or Projector(CONFIG), lambda: ("<test>", QUEUES), checkpoint_facts=10**9)


def a_call(r: Recorder, call_id: str) -> None:
    r.record(f.CallArrived(call_id, "pbx1", "PJSIP/pstn-1", "13800138000", "", "5551000"))
    r.record(ev.CallEnqueued(call_id, "support"))


async def test_committed_facts_rebuild_the_projections(store: CrmStore) -> None:
    r = recorder(store)
    r.record(f.AcdConfigLoaded("<test>", QUEUES))
    r.record(ev.AgentLoggedIn("a1"))
    a_call(r, "c1")
    r.record(ev.OfferAnswered("c1", "a1"))
    a_call(r, "c2")
    r.checkpoint()
    r.record(ev.AgentLoggedIn("a2"))
    a_call(r, "c3")
    await r.journal.flush()
    got = await recover(store, CONFIG)
    assert (got.last_seq, got.checkpoint_seq, got.replayed, got.dropped) == (r.journal.last_seq, 7, 3, [])
    assert got.projector.router.dump() == r.projector.router.dump()
    assert got.projector.records.dump() == r.projector.records.dump()
    assert got.projector.stats.live.dump() == r.projector.stats.live.dump()


async def test_a_damaged_last_batch_is_dropped_and_what_came_before_is_kept(store: CrmStore) -> None:
    r = recorder(store)
    r.record(ev.AgentLoggedIn("a1"))
    a_call(r, "c1")
    await r.journal.flush()
    kept = r.journal.last_seq
    a_call(r, "c2")
    await r.journal.flush()
    # A bit flipped on disk in the last batch (the checksum no longer matches).
    await store.write_plan(_plan("UPDATE journal SET body = REPLACE(body, 'c2', 'c9') WHERE seq = ?", kept + 1))
    got = await recover(store, CONFIG)
    assert got.last_seq == kept
    assert len(got.dropped) == 1 and f"facts {kept + 1}-{kept + 2}: checksum mismatch" in got.dropped[0]
    assert got.projector.records.get("c1") is not None and got.projector.records.get("c2") is None
    assert await store.read_plan(store_ops.tail()) == (kept, pytest.approx(r.projector.records.calls["c1"].started_at + 0.5))
    # The journal goes on after the last good fact.
    r2 = recorder(store, last_seq=got.last_seq, projector=got.projector, clock=r.journal.clock)  # type: ignore[arg-type]
    a_call(r2, "c3")
    await r2.journal.flush()
    assert (await recover(store, CONFIG)).dropped == []


async def test_a_burst_is_checked_in_parts_and_only_the_damaged_part_is_dropped(store: CrmStore) -> None:
    """A flush of thousands of facts gets a checksum per CHECKSUM_FACTS: a restart after a checkpoint
    checks one small part before it, not the whole burst, and damage costs only its part onward."""
    r = recorder(store)
    calls = store_ops.CHECKSUM_FACTS  # two facts each: a burst of two checksum parts
    for n in range(calls):
        a_call(r, f"c{n}")
    await r.journal.flush()
    parts = await store.read_plan(_rows_of("SELECT first_seq, last_seq FROM journal_batches ORDER BY first_seq"))
    assert [tuple(p) for p in parts] == [(1, calls), (calls + 1, 2 * calls)]
    second = calls + 1
    await store.write_plan(_plan("UPDATE journal SET body = REPLACE(body, 'c', 'x') WHERE seq = ?", 2 * calls))
    got = await recover(store, CONFIG)
    assert got.last_seq == calls and f"facts {second}-{2 * calls}: checksum mismatch" in got.dropped[0]


async def test_facts_no_batch_vouches_for_are_dropped(store: CrmStore) -> None:
    r = recorder(store)
    a_call(r, "c1")
    await r.journal.flush()
    await store.write_plan(_plan("INSERT INTO journal (seq, at, kind, call_id, agent_id, body) VALUES "
                                 "(?, 1, 'call.survey', 'c1', '', '{\"call_id\":\"c1\",\"score\":5}')", 99))
    got = await recover(store, CONFIG)
    assert got.last_seq == 2 and "facts 99-99: facts without a batch checksum" in got.dropped[0]


async def test_a_journal_written_by_a_newer_version_is_refused(store: CrmStore) -> None:
    r = recorder(store)
    a_call(r, "c1")
    await r.journal.flush()
    await store.write_plan(store_ops.set_format(f.FORMAT_VERSION + 1))
    with pytest.raises(f.JournalTooNew, match=rf"format {f.FORMAT_VERSION + 1}, newer than this ctiserver"):
        await recover(store, CONFIG)


async def test_a_fact_kind_from_a_newer_version_is_refused_not_dropped(store: CrmStore) -> None:
    r = recorder(store)
    a_call(r, "c1")
    await r.journal.flush()
    await store.write_plan(_plan("UPDATE journal SET kind = 'call.teleported' WHERE seq = ?", 2))
    await store.write_plan(_plan("UPDATE journal_batches SET crc = ? WHERE first_seq = 1", _crc_of(await _rows(store))))
    with pytest.raises(f.JournalTooNew, match="call.teleported"):
        await recover(store, CONFIG)
    assert len(await _rows(store)) == 2  # nothing was cut away


async def test_a_sqlite_journal_truncated_in_its_last_batch_keeps_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    store = await open_store(f"sqlite:///{db}")
    r = recorder(store)
    r.record(ev.AgentLoggedIn("a1"))
    a_call(r, "c1")
    await r.journal.flush()
    kept = r.journal.last_seq
    for n in range(2, 40):
        a_call(r, f"c{n}")
    await r.journal.flush()
    # A power cut in the middle of the last write: the copy's WAL ends inside the last transaction.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(db, copy / "crm.db")
    wal = Path(f"{db}-wal").read_bytes()
    (copy / "crm.db-wal").write_bytes(wal[: len(wal) - 3000])
    await store.close()
    damaged = await open_store(f"sqlite:///{copy / 'crm.db'}")
    try:
        got = await recover(damaged, CONFIG)
        assert got.last_seq == kept and got.dropped == []  # SQLite itself kept the last whole transaction
        assert got.projector.records.get("c1") is not None and got.projector.records.get("c2") is None
    finally:
        await damaged.close()


def _plan(sql: str, *args: object):  # type: ignore[no-untyped-def]
    from crmstore.plan import Execute

    yield Execute(sql, args)


async def _rows(store: CrmStore) -> list[store_ops.JournalRow]:
    return await store.read_plan(store_ops.read_rows(0, 1000))


def _crc_of(rows: list[store_ops.JournalRow]) -> int:
    return store_ops.batch_crc(rows)


def _rows_of(sql: str):  # type: ignore[no-untyped-def]
    from crmstore.plan import Fetch

    got = yield Fetch(sql, ())
    return got
