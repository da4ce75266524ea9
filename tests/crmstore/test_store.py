"""Every repository operation, on SQLite and on PostgreSQL (the ``store`` fixture is parametrized)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crmstore import (
    COMPLAINT,
    CallFacts,
    ChurnKind,
    CrmConflict,
    CrmNotFound,
    CrmPermissionError,
    CrmStore,
    Direction,
    Flag,
    FollowUpKind,
    FollowUpRequest,
    FollowUpStatus,
    Grade,
    NewCustomer,
    Outcome,
    Role,
    SchemaTooNew,
    TicketStatus,
    Viewer,
    WrapUp,
    open_store,
)

AGENT = Viewer("1001", Role.AGENT)
SUPERVISOR = Viewer("sup", Role.SUPERVISOR)
ANALYST = Viewer("ana", Role.ANALYST)
NOW = datetime.now(UTC)


async def _customer(store: CrmStore, name: str = "张伟", phone: str = "13812345678", **kw: object) -> int:
    return await store.create_customer(NewCustomer(name=name, phones=(phone,), **kw))  # type: ignore[arg-type]


def _call(call_id: str, caller: str = "13812345678", **kw: object) -> CallFacts:
    start = kw.pop("started_at", NOW - timedelta(minutes=10))
    assert isinstance(start, datetime)
    base: dict[str, object] = {
        "queue": "support",
        "agent": "1001",
        "answered_at": start + timedelta(seconds=20),
        "ended_at": start + timedelta(minutes=5),
        "wait_s": 20.0,
        "talk_s": 280.0,
        "hold_s": 15.0,
        "ivr_path": ("welcome", "menu", "support"),
        "recording_ref": "rec/1.wav",
    }
    base.update(kw)
    return CallFacts(call_id, caller, start, **base)  # type: ignore[arg-type]


async def test_identify_by_any_phone_and_account(store: CrmStore) -> None:
    cid = await store.create_customer(
        NewCustomer(
            name="张伟",
            company="华为技术",
            phones=("138 1234 5678", "010-12345678"),
            accounts=("AC-1", "AC-2"),
        )
    )
    for raw in ("+8613812345678", "0086 138-1234-5678", "(010) 1234 5678"):
        ident = await store.identify_by_phone(raw)
        assert ident is not None and ident.customer_id == cid and ident.name == "张伟"
    assert (await store.identify_by_account("AC-2")).customer_id == cid  # type: ignore[union-attr]
    assert await store.identify_by_account("nope") is None
    assert await store.identify_by_phone("13900000000") is None


@pytest.mark.parametrize("raw", ["12ab", "", "anonymous", None, "+86 1"])
async def test_malformed_caller_identifies_nobody(store: CrmStore, raw: str | None) -> None:
    await _customer(store)
    assert await store.identify_by_phone(raw) is None
    assert await store.last_agent_for(raw) is None
    if raw is not None:
        pop = await store.screen_pop(phone=raw, viewer=AGENT)
        assert pop.customer is None and "not readable" in pop.actions[0].text


async def test_malformed_phone_on_create_is_a_clear_error(store: CrmStore) -> None:
    with pytest.raises(ValueError, match="'12ab' is not valid"):
        await store.create_customer(NewCustomer(name="x", phones=("12ab",)))
    assert (await store.counts())["customers"] == 0


async def test_phone_owned_by_another_customer_is_a_conflict(store: CrmStore) -> None:
    await _customer(store)
    with pytest.raises(CrmConflict, match=r"\+8613812345678 already belongs to customer"):
        await _customer(store, "李娜", "+86 138 1234 5678")
    assert (await store.counts())["customers"] == 1


async def test_search_partial_chinese_english_company_and_phone(store: CrmStore) -> None:
    a = await _customer(store, "张伟", "13800000001", company="腾讯科技")
    b = await _customer(store, "张芳", "13800000002")
    c = await _customer(store, "John Smith", "13800000003", company="Acme Corp")
    ids = lambda cards: {x.id for x in cards}
    assert ids(await store.search("张", AGENT)) == {a, b}
    assert ids(await store.search("伟", AGENT)) == {a}  # substring, not only prefix
    assert ids(await store.search("  jOHN ", AGENT)) == {c}
    assert ids(await store.search("smi", AGENT)) == {c}
    assert ids(await store.search("腾讯", AGENT)) == {a}
    assert ids(await store.search("acme", AGENT)) == {c}
    assert ids(await store.search("138 0000 0002", AGENT)) == {b}
    assert await store.search("%", AGENT) == []  # LIKE wildcards are literal
    assert await store.search("王", AGENT) == []


async def test_create_lead_for_unknown_caller_and_not_twice(store: CrmStore) -> None:
    lead = await store.create_lead("13955556666", viewer=AGENT)
    again = await store.create_lead("+86 139 5555 6666", name="whoever", viewer=AGENT)
    assert lead == again
    ident = await store.identify_by_phone("13955556666")
    assert ident is not None and ident.is_lead
    with pytest.raises(ValueError, match="not valid"):
        await store.create_lead("xx")


async def test_update_customer_add_phone_account(store: CrmStore) -> None:
    cid = await _customer(store)
    await store.update_customer(
        cid,
        {
            "name": "Wei Zhang",
            "company": "Globex",
            "tags": ["gold", "wechat"],
            "preferred_language": "en",
            "contact_time": "weekdays 9-12",
            "contact_channel": "wechat",
            "notes": "prefers mornings",
        },
        viewer=AGENT,
    )
    await store.add_phone(cid, "+1 415 555 2671")
    await store.add_account(cid, "AC-9")
    card = await store.get_customer(cid, AGENT)
    assert card.name == "Wei Zhang" and card.tags == ("gold", "wechat") and card.contact_channel == "wechat"
    assert card.phones == ("+8613812345678", "+14155552671") and card.accounts == ("AC-9",)
    assert (await store.search("wei", AGENT))[0].id == cid
    with pytest.raises(ValueError, match="cannot be updated"):
        await store.update_customer(cid, {"grade": "A"})
    with pytest.raises(CrmNotFound):
        await store.update_customer(999, {"name": "x"})


async def test_privacy_masks_phones_and_notes_for_analyst(store: CrmStore) -> None:
    cid = await _customer(store, notes="allergic to sales pitches")
    await store.save_wrapup(WrapUp(_call("c1"), "resolved", notes="asked about invoice 42"))
    agent_card = await store.get_customer(cid, AGENT)
    analyst_card = await store.get_customer(cid, ANALYST)
    assert agent_card.phones == ("+8613812345678",) and agent_card.notes == "allergic to sales pitches"
    assert analyst_card.phones == ("+86*******5678",) and analyst_card.notes is None
    pop = await store.screen_pop(customer_id=cid, viewer=ANALYST)
    assert pop.caller is None and pop.interactions[0].notes is None
    assert pop.interactions[0].caller == "+86*******5678"
    pop = await store.screen_pop(phone="13812345678", viewer=ANALYST)
    assert pop.caller == "+86*******5678"
    with pytest.raises(CrmPermissionError, match="may not write contact"):
        await store.save_wrapup(WrapUp(_call("c2"), "x"), viewer=ANALYST)
    with pytest.raises(CrmPermissionError):
        await store.set_flag(cid, Flag.VIP, viewer=AGENT)
    with pytest.raises(CrmPermissionError):
        await store.audit_log(AGENT)


async def test_screen_pop_has_everything_in_one_call(store: CrmStore) -> None:
    cid = await _customer(store, accounts=("AC-7",))
    await store.set_flag(cid, Flag.VIP, "board member", viewer=SUPERVISOR)
    await store.set_flag(cid, Flag.DIFFICULT, "disputes bills", viewer=SUPERVISOR)
    for k in range(7):
        await store.save_wrapup(
            WrapUp(_call(f"c{k}", started_at=NOW - timedelta(days=k + 1), agent=f"10{k:02d}"), "resolved")
        )
    await store.open_ticket(cid, COMPLAINT, "late delivery", opened_at=NOW - timedelta(days=5, hours=1))
    closed = await store.open_ticket(cid, "billing", "old", opened_at=NOW - timedelta(days=50))
    await store.set_ticket_status(closed, TicketStatus.CLOSED)
    await store.add_follow_up(cid, FollowUpRequest(FollowUpKind.CALLBACK, NOW - timedelta(hours=3), "1001"))
    await store.add_follow_up(cid, FollowUpRequest(FollowUpKind.VISIT, NOW + timedelta(days=10), "1002"))
    pop = await store.screen_pop(phone="138-1234-5678", viewer=AGENT, now=NOW)
    assert pop.customer is not None and pop.customer.id == cid and pop.caller == "+8613812345678"
    assert [f.flag for f in pop.flags] == [Flag.DIFFICULT, Flag.VIP]
    assert [i.call_id for i in pop.interactions] == ["c0", "c1", "c2", "c3", "c4"]
    assert (
        pop.interactions[0].ivr_path == ("welcome", "menu", "support") and pop.interactions[0].hold_s == 15.0
    )
    assert [t.subject for t in pop.open_tickets] == ["late delivery"]
    assert [f.kind for f in pop.due_follow_ups] == [FollowUpKind.CALLBACK]
    assert pop.last_agent == "1000"
    texts = [a.text for a in pop.actions]
    assert texts[0] == "difficult customer: disputes bills"
    assert "complaint open 5 days: late delivery" in texts
    assert "call-back overdue 3 h (owner 1001)" in texts
    by_account = await store.screen_pop(account="AC-7", viewer=AGENT, now=NOW)
    assert by_account.customer == pop.customer
    unknown = await store.screen_pop(phone="13999999999", viewer=AGENT)
    assert unknown.customer is None and unknown.actions[0].text == "unknown caller: create a lead"
    with pytest.raises(ValueError):
        await store.screen_pop(viewer=AGENT)


async def test_save_wrapup_is_atomic_idempotent_and_durable(db_url: str) -> None:
    store = await open_store(db_url)
    cid = await _customer(store)
    due = NOW + timedelta(hours=2)
    iid = await store.save_wrapup(
        WrapUp(
            _call("call-1"),
            "callback",
            notes="wants a quote",
            wrapup_s=31.5,
            follow_up=FollowUpRequest(FollowUpKind.CALLBACK, due, "1001", "send quote"),
        )
    )
    again = await store.save_wrapup(WrapUp(_call("call-1"), "sale", notes="quote accepted", wrapup_s=40))
    assert again == iid
    await store.close()
    # A restart loses nothing: reopen and read back.
    store = await open_store(db_url)
    try:
        i = await store.interaction("call-1", AGENT)
        assert (
            i is not None and i.customer_id == cid and i.disposition == "sale" and i.notes == "quote accepted"
        )
        assert i.wrapup_s == 40 and i.talk_s == 280 and i.queue == "support" and i.outcome is Outcome.ANSWERED
        due_list = await store.due_follow_ups(owner="1001", until=due)
        assert [(f.customer_id, f.source_call_id, f.note) for f in due_list] == [
            (cid, "call-1", "send quote")
        ]
        assert await store.due_follow_ups(owner="1001", until=NOW) == []
        assert (await store.counts())["interactions"] == 1
    finally:
        await store.close()


async def test_wrapup_for_unknown_caller_with_follow_up_creates_lead(store: CrmStore) -> None:
    await store.save_wrapup(
        WrapUp(
            _call("u1", caller="13977778888"),
            "info",
            follow_up=FollowUpRequest(FollowUpKind.SATISFACTION_CALL, NOW, "1001"),
        )
    )
    ident = await store.identify_by_phone("13977778888")
    assert ident is not None and ident.is_lead
    # without follow-up, an unknown caller's call is logged against no customer
    await store.save_wrapup(WrapUp(_call("u2", caller="13966667777"), "wrong_number"))
    i = await store.interaction("u2", AGENT)
    assert i is not None and i.customer_id is None and i.caller == "+8613966667777"


async def test_log_interaction_keeps_wrapup_and_survey(store: CrmStore) -> None:
    cid = await _customer(store)
    await store.log_interaction(
        _call("ab-1", outcome=Outcome.ABANDONED, agent="", answered_at=None, talk_s=0.0)
    )
    await store.log_interaction(
        CallFacts(
            "ivr-1",
            "13812345678",
            NOW,
            outcome=Outcome.IVR_ONLY,
            ivr_path=("welcome", "balance"),
            direction=Direction.INBOUND,
        )
    )
    await store.save_wrapup(WrapUp(_call("w-1"), "resolved", notes="n"))
    await store.log_interaction(_call("w-1", talk_s=300.0))  # late timing facts must not erase the wrap-up
    w = await store.interaction("w-1", AGENT)
    assert w is not None and w.disposition == "resolved" and w.notes == "n" and w.talk_s == 300.0
    await store.save_survey("w-1", 2)
    assert (await store.interaction("w-1", AGENT)).survey_score == 2  # type: ignore[union-attr]
    with pytest.raises(CrmNotFound):
        await store.save_survey("nope", 3)
    with pytest.raises(ValueError, match="1..5"):
        await store.save_survey("w-1", 6)
    hist = await store.interactions(cid, AGENT)
    assert {i.call_id for i in hist} == {"ab-1", "ivr-1", "w-1"}
    pop = await store.screen_pop(customer_id=cid, viewer=AGENT)
    assert "last survey score 2/5: acknowledge the last call" in [a.text for a in pop.actions]


async def test_last_agent_for_sticky_routing(store: CrmStore) -> None:
    await _customer(store)
    assert await store.last_agent_for("13812345678") is None
    await store.save_wrapup(WrapUp(_call("a", agent="2001", started_at=NOW - timedelta(days=2)), "ok"))
    await store.save_wrapup(WrapUp(_call("b", agent="2002", started_at=NOW - timedelta(days=1)), "ok"))
    await store.log_interaction(_call("c", agent="", outcome=Outcome.ABANDONED, started_at=NOW))
    assert await store.last_agent_for("+86 138 1234 5678") == "2002"
    # an unknown caller who called before is still stuck to the agent
    await store.log_interaction(_call("d", caller="13711112222", agent="2003"))
    assert await store.last_agent_for("13711112222") == "2003"


async def test_purchases_tickets_follow_up_status(store: CrmStore) -> None:
    cid = await _customer(store)
    await store.add_purchase(cid, Decimal("19.99"), date(2025, 1, 2), ref="o-1")
    await store.add_purchase(cid, "-5.00", date(2025, 1, 3), ref="refund")
    assert [(p.amount, p.ref) for p in await store.purchases(cid)] == [
        (Decimal("19.99"), "o-1"),
        (Decimal(-5), "refund"),
    ]
    with pytest.raises(CrmNotFound):
        await store.add_purchase(999, 1, date(2025, 1, 1))
    tid = await store.open_ticket(cid, "repair", "fridge", due_at=NOW + timedelta(days=1))
    await store.set_ticket_status(tid, TicketStatus.PENDING)
    assert (await store.tickets(cid))[0].status is TicketStatus.PENDING
    await store.set_ticket_status(tid, TicketStatus.CLOSED)
    t = (await store.tickets(cid))[0]
    assert t.status is TicketStatus.CLOSED and t.closed_at is not None
    fid = await store.add_follow_up(
        cid, FollowUpRequest(FollowUpKind.VISIT, NOW - timedelta(hours=1), "1002")
    )
    assert [f.id for f in await store.due_follow_ups()] == [fid]
    await store.set_follow_up_status(fid, FollowUpStatus.DONE)
    assert await store.due_follow_ups() == []
    with pytest.raises(CrmNotFound):
        await store.set_follow_up_status(12345, FollowUpStatus.DONE)


async def test_grading_hand_example_history_and_fast_moves(store: CrmStore) -> None:
    revenue = {"c1": 500, "c2": 200, "c3": 100, "c4": 100, "c5": 50, "c6": 30, "c7": 20, "c8": 0, "c9": -10}
    ids = {}
    for k, (name, amount) in enumerate(revenue.items()):
        ids[name] = await _customer(store, name, f"1380000{k:04d}")
        if amount:
            await store.add_purchase(ids[name], amount, date(2025, 3, 1))
    await store.add_purchase(ids["c8"], 10_000, date(2024, 1, 1))  # outside the period: ignored
    p0, p1 = date(2025, 1, 1), date(2026, 1, 1)
    report = await store.run_grading(p0, p1, viewer=SUPERVISOR)
    want = {"c1": "A", "c2": "A", "c3": "A", "c4": "A", "c5": "B", "c6": "C", "c7": "C", "c8": "C", "c9": "C"}
    got = {n: (await store.get_customer(cid, AGENT)).grade for n, cid in ids.items()}
    assert got == {n: Grade(g) for n, g in want.items()}
    assert report.counts == {Grade.A: 4, Grade.B: 1, Grade.C: 4} and report.graded == 9
    assert len(report.changes) == 9 and not report.fast_moves
    # c1 stops buying, c7 buys big: A -> C and C -> A are fast moves; c5 drops B -> C
    await store.add_purchase(ids["c1"], -500, date(2025, 4, 1))
    await store.add_purchase(ids["c7"], 5000, date(2025, 4, 1))
    report2 = await store.run_grading(p0, p1, viewer=SUPERVISOR)
    moves = {c.customer_id: (c.old, c.new, c.fast) for c in report2.changes}
    assert moves[ids["c1"]] == (Grade.A, Grade.C, True)
    assert moves[ids["c7"]] == (Grade.C, Grade.A, True)
    hist = await store.grade_history(ids["c1"])
    assert [(h.old, h.new) for h in hist] == [(None, Grade.A), (Grade.A, Grade.C)]
    pop = await store.screen_pop(customer_id=ids["c1"], viewer=AGENT)
    assert pop.grade is Grade.C and pop.grade_change is not None and pop.grade_change.fast
    assert "grade dropped from A to C" in [a.text for a in pop.actions]
    with pytest.raises(CrmPermissionError):
        await store.run_grading(p0, p1, viewer=AGENT)
    with pytest.raises(ValueError, match="empty"):
        await store.run_grading(p1, p0)


async def test_churn_list_and_pop_on_constructed_histories(store: CrmStore) -> None:
    today = NOW.date()
    falling = await _customer(store, "Falling", "13800000001")
    steady = await _customer(store, "Steady", "13800000002")
    moaner = await _customer(store, "Moaner", "13800000003")
    for k in range(6):  # 6 orders 91..180 days ago, 1 in the last 90 days
        await store.add_purchase(falling, 1000, today - timedelta(days=100 + k * 10))
        await store.add_purchase(steady, 1000, today - timedelta(days=100 + k * 10))
        await store.add_purchase(steady, 1000, today - timedelta(days=5 + k * 10))
    await store.add_purchase(falling, 100, today - timedelta(days=10))
    for k in range(2):
        await store.open_ticket(moaner, COMPLAINT, f"c{k}", opened_at=NOW - timedelta(days=20 + k))
    entries = {e.customer_id: {s.kind for s in e.signals} for e in await store.churn_list(now=NOW)}
    assert steady not in entries
    assert entries[falling] == {ChurnKind.ORDER_FREQUENCY_FALLING, ChurnKind.ORDER_AMOUNT_FALLING}
    assert entries[moaner] == {ChurnKind.REPEATED_COMPLAINTS, ChurnKind.LONG_OPEN_TICKET}
    pop = await store.screen_pop(customer_id=falling, viewer=AGENT, now=NOW)
    assert {s.kind for s in pop.churn} == entries[falling]
    assert any(a.text.startswith("churn risk: orders fell from 6 to 1") for a in pop.actions)


async def test_flags_set_clear_and_identity(store: CrmStore) -> None:
    cid = await _customer(store)
    await store.set_flag(cid, Flag.BLACKLIST, "abusive", viewer=SUPERVISOR)
    await store.set_flag(
        cid, Flag.BLACKLIST, "abusive, 3 warnings", viewer=SUPERVISOR
    )  # update, not a duplicate
    await store.set_flag(cid, Flag.VIP, viewer=SUPERVISOR)
    ident = await store.identify_by_phone("13812345678")
    assert ident is not None and ident.vip and Flag.BLACKLIST in ident.flags
    marks = await store.flags(cid)
    assert [(m.flag, m.reason, m.set_by) for m in marks] == [
        (Flag.BLACKLIST, "abusive, 3 warnings", "sup"),
        (Flag.VIP, "", "sup"),
    ]
    assert await store.clear_flag(cid, Flag.VIP, viewer=SUPERVISOR)
    assert not await store.clear_flag(cid, Flag.VIP, viewer=SUPERVISOR)
    with pytest.raises(CrmNotFound):
        await store.set_flag(999, Flag.VIP)


async def test_audit_log_records_views_and_changes(store: CrmStore) -> None:
    cid = await _customer(store)
    await store.update_customer(cid, {"notes": "x"}, viewer=AGENT)
    await store.screen_pop(customer_id=cid, viewer=AGENT)
    await store.get_customer(cid, ANALYST)
    entries = await store.audit_log(SUPERVISOR, customer_id=cid)
    assert [(e.actor, e.action) for e in entries] == [
        ("ana", "view"),
        ("1001", "view"),
        ("1001", "update"),
        ("system", "create"),
    ]
    assert entries[2].detail == "fields: notes"
    assert [e.action for e in await store.audit_log(SUPERVISOR, actor="ana")] == ["view"]


async def test_users_and_viewers(store: CrmStore) -> None:
    v = await store.add_user("1009", Role.AGENT, "Li Na")
    assert await store.viewer("1009") == v
    with pytest.raises(CrmNotFound):
        await store.viewer("ghost")
    with pytest.raises(Exception, match="may not manage users"):
        await store.add_user("x", Role.ADMIN, viewer=SUPERVISOR)


async def test_migrations_are_idempotent_and_refuse_newer_schema(db_url: str) -> None:
    s = await open_store(db_url)
    cid = await _customer(s)
    await s.close()
    s = await open_store(db_url)  # second start: no migration re-applied, data intact
    assert (await s.get_customer(cid, AGENT)).name == "张伟"

    def bump():  # type: ignore[no-untyped-def]
        from crmstore.plan import Execute

        yield Execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 0)"
        )

    await s.backend.write(bump())
    await s.close()
    with pytest.raises(SchemaTooNew, match="version 99"):
        await open_store(db_url)


async def test_bad_urls() -> None:
    for url in ("mysql://x/y", "sqlite:///:memory:", "sqlite:///no/such/dir/x.db"):
        with pytest.raises(ValueError):
            await open_store(url)
    with pytest.raises(ValueError, match="region"):
        await open_store("sqlite:///tmp/x.db", default_country="XX")
