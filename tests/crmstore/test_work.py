"""CRM work from the consoles (crmstore.work) on SQLite and PostgreSQL: edits checked as imports are, tickets
with their history and closed once, the follow-up worklist and the follow-up call's row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmstore import CrmStore, backends, open_store
from crmstore import queries as Q
from crmstore.errors import CrmConflict, CrmNotFound, CrmPermissionError
from crmstore.model import COMPLAINT, Flag, FollowUpKind, FollowUpRequest, FollowUpStatus, Grade, TicketStatus
from crmstore.privacy import Role, Viewer
from crmstore.schema import LATEST_VERSION, MIGRATIONS
from crmstore.validation import InvalidField
from crmstore.work import CrmWork, FollowUpCall, save_follow_up_call

AGENT = Viewer("agent1", Role.AGENT)
ANALYST = Viewer("numbers", Role.ANALYST)
VALID = "13800138000"  # a mobile number in an assigned Chinese range


async def _counts(store: CrmStore) -> dict[str, int]:
    return await store.counts()


async def test_create_and_edit_customer_and_lead(store: CrmStore) -> None:
    work = CrmWork(store)
    cid = await work.save_customer(None, {"name": "王芳", "email": "wang.fang@例子.中国", "phones": [VALID]}, AGENT)
    card = (await work.customer_file(cid, AGENT)).card
    assert card.name == "王芳" and card.phones == ("+8613800138000",) and card.email == "wang.fang@例子.中国"
    lead = await work.save_customer(None, {"phones": ["+86 139 1234 5678"], "is_lead": True}, AGENT)
    assert (await work.customer_file(lead, AGENT)).card.is_lead
    await work.save_customer(cid, {"company": "星辰贸易", "notes": "prefers\nmornings", "phones": ["13912345679"]},
                             AGENT)
    card = (await work.customer_file(cid, AGENT)).card
    assert card.company == "星辰贸易" and card.notes == "prefers\nmornings" and len(card.phones) == 2


@pytest.mark.parametrize("raw, field", [
    ({"name": "x", "phones": ["12345"]}, "phones"),  # possible nowhere
    ({"name": "x", "phones": ["+86 100 0000 0000"]}, "phones"),  # right length, no such range: is_valid_number
    ({"name": "x", "email": "wang@@x.cn"}, "email"),
    ({"name": "x", "email": "wang fang@x.cn"}, "email"),
    ({"name": "x\x07y"}, "name"),
    ({"name": "x", "company": "a\nb"}, "company"),  # only notes may hold line breaks
    ({"name": "x", "notes": "bad\x00nul"}, "notes"),
    ({}, "name"),
])
async def test_bad_input_is_refused_and_nothing_is_written(store: CrmStore, raw: dict[str, object],
                                                           field: str) -> None:
    work = CrmWork(store)
    before = await _counts(store)
    with pytest.raises(InvalidField) as got:
        await work.save_customer(None, raw, AGENT)
    assert got.value.field == field and "\n" not in str(got.value)
    assert await _counts(store) == before


async def test_an_edit_with_a_phone_of_another_customer_changes_nothing(store: CrmStore) -> None:
    work = CrmWork(store)
    a = await work.save_customer(None, {"name": "甲", "phones": [VALID]}, AGENT)
    b = await work.save_customer(None, {"name": "乙"}, AGENT)
    with pytest.raises(CrmConflict, match="already belongs"):
        await work.save_customer(b, {"name": "乙 renamed", "phones": [VALID]}, AGENT)
    assert (await work.customer_file(b, AGENT)).card.name == "乙"  # the name change was rolled back too
    assert (await work.customer_file(a, AGENT)).card.phones == ("+8613800138000",)
    with pytest.raises(CrmNotFound):
        await work.save_customer(999_999, {"name": "nobody"}, AGENT)
    with pytest.raises(CrmPermissionError):
        await work.save_customer(None, {"name": "x"}, ANALYST)


async def test_ticket_history_and_a_ticket_closed_twice(store: CrmStore) -> None:
    work = CrmWork(store)
    cid = await work.save_customer(None, {"name": "投诉人", "phones": [VALID]}, AGENT)
    tid = await work.open_ticket(cid, "parcel arrived broken", AGENT, note="photo sent")
    await work.set_ticket_status(tid, TicketStatus.PENDING, AGENT, note="waiting for the courier")
    fid = await work.set_ticket_status(tid, TicketStatus.CLOSED, AGENT, note="refunded",
                                       follow_up_owner="1001", follow_up_days=3)
    assert fid is not None
    file = await work.customer_file(cid, AGENT)
    (t,) = file.tickets
    assert t.ticket.status is TicketStatus.CLOSED and t.ticket.category == COMPLAINT
    assert [(e.status, e.note, e.actor) for e in t.events] == [
        (TicketStatus.OPEN, "photo sent", "agent1"), (TicketStatus.PENDING, "waiting for the courier", "agent1"),
        (TicketStatus.CLOSED, "refunded", "agent1")]
    (visit,) = [i for i in file.follow_ups if i.follow_up.id == fid]
    assert visit.follow_up.kind is FollowUpKind.VISIT and visit.follow_up.owner == "1001"
    assert timedelta(days=2, hours=23) < visit.follow_up.due_at - t.ticket.closed_at < timedelta(days=3, hours=1)
    before = await _counts(store)
    with pytest.raises(CrmConflict, match=f"ticket {tid} is already closed"):
        await work.set_ticket_status(tid, TicketStatus.CLOSED, AGENT, follow_up_owner="1001", follow_up_days=3)
    with pytest.raises(CrmConflict):
        await work.set_ticket_status(tid, TicketStatus.OPEN, AGENT)
    assert await _counts(store) == before
    assert len((await work.customer_file(cid, AGENT)).tickets[0].events) == 3
    with pytest.raises(CrmNotFound):
        await work.set_ticket_status(424242, TicketStatus.CLOSED, AGENT)
    with pytest.raises(InvalidField):
        await work.open_ticket(cid, "", AGENT)


async def test_worklist_overdue_today_done_and_the_follow_up_call(store: CrmStore) -> None:
    work = CrmWork(store)
    cid = await work.save_customer(None, {"name": "回访客户", "phones": [VALID]}, AGENT)
    now = datetime.now(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = day_start + timedelta(days=1)
    late = await work.schedule_follow_up(cid, FollowUpKind.CALLBACK, day_start - timedelta(hours=5), "1001", AGENT)
    today = await work.schedule_follow_up(cid, FollowUpKind.SATISFACTION_CALL, day_start + timedelta(hours=12),
                                          "1001", AGENT, note="ask about the repair")
    await work.schedule_follow_up(cid, FollowUpKind.VISIT, day_end + timedelta(days=2), "1001", AGENT)
    await work.schedule_follow_up(cid, FollowUpKind.CALLBACK, day_start + timedelta(hours=1), "1002", AGENT)
    wl = await work.worklist("1001", day_start.timestamp(), day_end.timestamp())
    assert [i.follow_up.id for i in wl.overdue] == [late]
    assert [i.follow_up.id for i in wl.due_today] == [today] and wl.due_today[0].phone == "+8613800138000"
    assert wl.done == ()

    t0 = now.timestamp()
    call = FollowUpCall(today, "cti-fu-1-1001", "1001", "+8613800138000", t0, t0 + 4, t0 + 64, True,
                        "happy with the repair", True)
    await store.write_plan(save_follow_up_call(call, Q.audit_row(AGENT, "follow_up_call", None, "x")))
    await store.write_plan(save_follow_up_call(call, Q.audit_row(AGENT, "follow_up_call", None, "x")))  # again
    wl = await work.worklist("1001", day_start.timestamp(), day_end.timestamp())
    assert wl.due_today == () and [i.follow_up.id for i in wl.done] == [today]
    done = wl.done[0]
    assert done.follow_up.status is FollowUpStatus.DONE and done.call_id == "cti-fu-1-1001"
    assert done.result == "reached: happy with the repair" and done.done_by == "1001"
    row = await store.interaction("cti-fu-1-1001", AGENT)
    assert row is not None and row.customer_id == cid and row.direction.value == "outbound"
    assert row.outcome.value == "answered" and row.talk_s == 60.0 and row.notes == "happy with the repair"
    assert row.disposition == "follow_up:satisfaction_call"
    assert (await store.counts())["interactions"] == 1  # saved twice, one row


async def test_customer_file_shows_grade_flags_and_surveys(store: CrmStore) -> None:
    from crmstore.model import CallFacts, WrapUp

    work = CrmWork(store)
    cid = await work.save_customer(None, {"name": "满意", "phones": [VALID]}, AGENT)
    await store.set_flag(cid, Flag.BLACKLIST, "abusive")
    await store.add_purchase(cid, "1000", datetime.now(UTC).date())
    from crmstore.schedule import grade_now

    await grade_now(store)
    at = datetime.now(UTC) - timedelta(hours=1)
    await store.save_wrapup(WrapUp(CallFacts("c-survey", VALID, at, queue="sales", agent="1001",
                                             answered_at=at, ended_at=at + timedelta(minutes=1)), "resolved"))
    await store.save_survey("c-survey", 4)
    file = await work.customer_file(cid, AGENT)
    assert file.card.grade is Grade.A and file.grade_change is not None and file.grade_change.new is Grade.A
    assert [f.flag for f in file.flags] == [Flag.BLACKLIST]
    assert [(s.call_id, s.score, s.agent) for s in file.surveys] == [("c-survey", 4, "1001")]
    ((card, flags),) = await work.search("满意", AGENT, 10)
    assert card.grade is Grade.A and flags[0].flag is Flag.BLACKLIST


async def test_migration_from_a_version_3_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made by the code before tickets had a history: its tickets and follow-ups carry on."""
    with monkeypatch.context() as m:
        m.setattr(backends, "LATEST_VERSION", 3)
        m.setattr(backends, "pending", lambda current: [x for x in MIGRATIONS[:3] if x.version > current])
        old = await open_store(db_url)
        cid = await old.create_customer(__import__("crmstore").NewCustomer(name="老客户", phones=(VALID,)))
        tid = await old.open_ticket(cid, COMPLAINT, "from before")
        fid = await old.add_follow_up(cid, FollowUpRequest(FollowUpKind.CALLBACK, datetime.now(UTC), "1001"))

        def version():  # type: ignore[no-untyped-def]
            got = yield Q.Fetch("SELECT MAX(version) FROM schema_version")
            return got[0][0]

        assert await old.read_plan(version()) == 3
        await old.close()
    store = await open_store(db_url)
    try:
        assert await store.read_plan(version()) == LATEST_VERSION
        work = CrmWork(store)
        file = await work.customer_file(cid, AGENT)
        assert file.tickets[0].events == () and file.follow_ups[0].follow_up.id == fid
        assert file.follow_ups[0].done_at is None and file.follow_ups[0].result == ""
        await work.set_ticket_status(tid, TicketStatus.CLOSED, AGENT, note="closed after the upgrade")
        with pytest.raises(CrmConflict):
            await work.set_ticket_status(tid, TicketStatus.CLOSED, AGENT)
        assert [e.note for e in (await work.customer_file(cid, AGENT)).tickets[0].events] == [
            "closed after the upgrade"]
    finally:
        await store.close()


async def test_a_follow_up_settled_without_a_call_once_by_its_owner(store: CrmStore) -> None:
    work = CrmWork(store)
    cid = await work.save_customer(None, {"name": "上门", "phones": [VALID]}, AGENT)
    now = datetime.now(UTC)
    fid = await work.schedule_follow_up(cid, FollowUpKind.VISIT, now, "1001", AGENT)
    with pytest.raises(CrmPermissionError, match="another agent"):
        await work.close_follow_up(fid, "1002", FollowUpStatus.DONE, AGENT)
    await work.close_follow_up(fid, "1001", FollowUpStatus.DONE, AGENT, notes="visited, all fine")
    before = await _counts(store)
    with pytest.raises(CrmConflict, match="already done"):
        await work.close_follow_up(fid, "1001", FollowUpStatus.CANCELLED, AGENT)
    assert await _counts(store) == before
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    wl = await work.worklist("1001", start.timestamp(), (start + timedelta(days=1)).timestamp())
    assert [(i.follow_up.id, i.result, i.call_id) for i in wl.done] == [(fid, "visited, all fine", "")]
    with pytest.raises(CrmNotFound):
        await work.close_follow_up(999_999, "1001", FollowUpStatus.DONE, AGENT)
