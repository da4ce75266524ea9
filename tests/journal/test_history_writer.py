"""The CRM history written from the journal, on SQLite and the real PostgreSQL server: a wrap-up saved after
its call settled (the agent's wrap-up time over) still lands on the agent's row, keeps the row's wrap-up
time, and its follow-up is made once however often it is saved."""

from __future__ import annotations

from acd import events as ev
from crmstore.plan import Fetch
from crmstore.store import CrmStore
from ctiserver.crm_history.writer import CrmHistoryWriter
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector

from .test_recovery import CONFIG, a_call, recorder


def _read(sql: str, *args: object):  # type: ignore[no-untyped-def]
    rows = yield Fetch(sql, args)
    return [tuple(r) for r in rows]


async def test_a_late_wrap_up_updates_the_row_and_makes_its_follow_up_once(store: CrmStore) -> None:
    projector = Projector(CONFIG)
    r = recorder(store, projector=projector)
    writer = CrmHistoryWriter(projector.records, r.journal, "CN")
    projector.listeners.append(writer)
    r.record(ev.AgentLoggedIn("a1"))
    a_call(r, "c1")
    r.record(ev.OfferAnswered("c1", "a1"))
    r.record(ev.AgentCallEnded("a1", "c1", "agent"))
    r.record(f.CallEnded("c1", 16, "Normal Clearing", "agent"))
    r.record(ev.WrapUpDone("a1"))  # the agent went on without saving
    r.record(f.Heartbeat())
    assert projector.records.get("c1") is None  # settled: out of memory
    await r.journal.flush()
    ((wrapup_s,),) = await store.read_plan(_read("SELECT wrapup_s FROM interactions WHERE call_id = ?", "c1"))
    assert wrapup_s > 0

    due = 1_800_100_000.0
    for notes in ("call back", "call back tomorrow morning"):  # saved twice
        r.record(f.WrapUpSaved("c1", "a1", "callback", notes, "callback", due, "morning", "agenta1"))
        await r.journal.flush()
    row = await store.read_plan(_read(
        "SELECT disposition, notes, wrapup_s, customer_id FROM interactions WHERE call_id = ?", "c1"))
    assert row == [("callback", "call back tomorrow morning", wrapup_s, row[0][3])]
    follow_ups = await store.read_plan(_read(
        "SELECT kind, owner, note, source_call_id FROM follow_ups WHERE source_call_id = ?", "c1"))
    assert follow_ups == [("callback", "a1", "morning", "c1")]


async def test_the_rows_of_settled_calls_leave_memory(store: CrmStore) -> None:
    # A settled call's row is never written again by this writer (a late wrap-up goes its own way), so
    # remembering it only grows the server: at 20 calls/s the old 50,000-row memory took 40 minutes to fill.
    projector = Projector(CONFIG)
    r = recorder(store, projector=projector)
    writer = CrmHistoryWriter(projector.records, r.journal, "CN")
    projector.listeners.append(writer)
    r.record(ev.AgentLoggedIn("a1"))
    for n in range(50):
        call_id = f"c{n}"
        a_call(r, call_id)
        r.record(ev.OfferAnswered(call_id, "a1"))
        r.record(ev.AgentCallEnded("a1", call_id, "caller"))
        r.record(f.CallEnded(call_id, 16, "Normal Clearing", "caller"))
        r.record(ev.WrapUpDone("a1"))
    a_call(r, "waiting")  # a live call: its row is not written yet
    r.record(f.Heartbeat())
    await r.journal.flush()
    assert writer.rows_remembered == 0
    ((rows, ended),) = await store.read_plan(_read(
        "SELECT COUNT(*), COUNT(ended_at) FROM interactions WHERE call_id LIKE ?", "c%"))
    assert (rows, ended) == (50, 50)
