"""Campaigns in the CRM database (SQLite and PostgreSQL): list import with a report per row, named CRM
selections, the next contacts at a fixed instant, dial-time checks, outcomes and progress."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from crmstore import CrmStore, Flag, ImportFormatError, NewCustomer, TicketStatus
from crmstore import campaigns as K
from crmstore.campaign_store import AttemptResult, CampaignStore
from crmstore.campaigns import AttemptOutcome as O
from crmstore.campaigns import ContactStatus as S
from crmstore.errors import CrmConflict, CrmNotFound
from crmstore.model import CallFacts, Direction, Outcome

WED_14 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # New York 09:00, Chicago 08:00, London 14:00, Shanghai 22:00
WED_16 = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # New York 11:00, Chicago 10:00, London 16:00, Shanghai 00:00
NINE_TO_FIVE = (K.CallingWindow(frozenset(range(5)), time(9), time(17)),)

LIST = """phone,name,timezone,contact_time
+8613800138000,张伟,,
+12125550123,Alice,,
+13125550123,Bob,,
+447911123456,Carol,,
12345,Typo,,
+1 212 555 0123,Alice again,,
+12125550140,On the DNC list,,
+12125550141,Blacklisted,,
+18005550123,Toll free,,
+13125550124,Late caller,,21:00-22:00
+13125550125,Martian,Mars/Base,
+18005550124,Toll free in Chicago,America/Chicago,
+13125550126;+13125550127,Two numbers,,
"""

EXPECTED_REPORT = [
    "row 1: added",
    "row 2: added",
    "row 3: added",
    "row 4: added",
    "row 5: rejected: phone number '12345' is not valid (default country CN): no such number range in country code +86",
    "row 6: rejected: +12125550123 is a duplicate of row 2",
    "row 7: rejected: +12125550140 is on the do-not-call list (asked on 2026-11-20)",
    "row 8: rejected: +12125550141 belongs to blacklisted customer {black} (fraud)",
    ("row 9: rejected: never callable: +18005550123 may be in any of 42 time zones (America/Adak … Pacific/Saipan)"
    " and no moment is inside the calling windows (mon-fri 09:00-17:00) in all of them;"
    " give its timezone"),
    ("row 10: rejected: never callable: contact_time 21:00-22:00 is outside the calling windows"
    " (mon-fri 09:00-17:00) in America/Chicago"),
    "row 11: rejected: timezone 'Mars/Base' is not a time zone name such as America/Chicago or Asia/Shanghai",
    "row 12: added",
    "row 13: rejected: 2 phone numbers in one row (+13125550126, +13125550127): give one number per row",
]


async def _setup(store: CrmStore, **kw: object) -> tuple[CampaignStore, int]:
    campaigns = CampaignStore(store)
    await campaigns.save(K.Campaign("spring", windows=NINE_TO_FIVE, **kw))  # type: ignore[arg-type]
    await campaigns.resume("spring")
    await campaigns.add_do_not_call("+12125550140", "asked on 2026-11-20", "web")
    black = await store.create_customer(NewCustomer(name="Mallory", phones=("+12125550141",)))
    await store.set_flag(black, Flag.BLACKLIST, "fraud")
    return campaigns, black


async def test_list_import_reports_every_row_and_lists_only_dialable_contacts(store: CrmStore, tmp_path: Path):
    campaigns, black = await _setup(store)
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")
    seen: list[str] = []
    report = await campaigns.import_list("spring", path, now=WED_14, on_row=lambda o: seen.append(str(o)))
    assert seen == [line.format(black=black) for line in EXPECTED_REPORT]
    assert report.summary() == f"{path} (utf-8): 13 rows: 5 added, 8 rejected"
    listed = await campaigns.contacts("spring")
    assert [c.e164 for c in listed] == ["+8613800138000", "+12125550123", "+13125550123", "+447911123456",
                                        "+18005550124"]
    assert [c.zones for c in listed][-1] == ("America/Chicago",)
    assert {c.status for c in listed} == {S.PENDING}

    # Importing the same file again adds nothing and says why
    again = await campaigns.import_list("spring", path, now=WED_14)
    assert again.added == 0 and str(again.rejected[0]) == "row 1: rejected: +8613800138000 is already in the campaign's list"


async def test_next_contacts_at_a_fixed_utc_instant_mixing_zones(store: CrmStore, tmp_path: Path):
    campaigns, _ = await _setup(store)
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")
    await campaigns.import_list("spring", path, now=WED_14)
    names = [c.name for c in await campaigns.next_contacts("spring", WED_14, 10)]
    assert names == ["Alice", "Carol"]
    names = [c.name for c in await campaigns.next_contacts("spring", WED_16, 10)]
    assert names == ["Alice", "Bob", "Carol", "Toll free in Chicago"]
    assert [c.name for c in await campaigns.next_contacts("spring", WED_16, 2)] == ["Alice", "Bob"]
    # Shanghai's morning: Wednesday 01:30 UTC is 09:30 there and Tuesday evening in America
    early = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    assert [c.name for c in await campaigns.next_contacts("spring", early, 10)] == ["张伟"]
    await campaigns.pause("spring")
    assert await campaigns.next_contacts("spring", WED_16, 10) == []
    with pytest.raises(K.DialRefused, match="paused"):
        await campaigns.begin_attempt((await campaigns.contacts("spring"))[1].contact_id, WED_16)


async def test_do_not_call_and_blacklist_are_checked_again_at_dial_time(store: CrmStore, tmp_path: Path):
    campaigns, _ = await _setup(store)
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")
    await campaigns.import_list("spring", path, now=WED_14)
    alice, carol = await campaigns.next_contacts("spring", WED_14, 10)
    # Alice asks not to be called any more between the choice and the dial
    await campaigns.add_do_not_call("+1 212 555 0123", "asked in a call", "agent 1001")
    with pytest.raises(K.DialRefused, match=r"\+12125550123 is on the do-not-call list"):
        await campaigns.begin_attempt(alice.contact_id, WED_14)
    # Carol's number becomes a blacklisted customer's
    cid = await store.create_customer(NewCustomer(name="Carol", phones=("+447911123456",)))
    await store.set_flag(cid, Flag.BLACKLIST, "abuse")
    with pytest.raises(K.DialRefused, match="blacklisted"):
        await campaigns.begin_attempt(carol.contact_id, WED_14)
    states = {c.name: c.status for c in await campaigns.contacts("spring")}
    assert states["Alice"] is S.EXCLUDED and states["Carol"] is S.EXCLUDED
    assert await campaigns.next_contacts("spring", WED_14, 10) == []
    # taking Alice off the list does not bring an excluded contact back
    assert await campaigns.remove_do_not_call("+12125550123")
    assert await campaigns.next_contacts("spring", WED_14, 10) == []
    assert (await campaigns.progress("spring")).excluded == 2


async def test_retries_per_outcome_and_maximum_attempts(store: CrmStore, tmp_path: Path):
    campaigns, _ = await _setup(store, max_attempts=3)
    path = tmp_path / "list.csv"
    path.write_text("phone,name\n+12125550123,Alice\n+12125550124,Ann\n+12125550125,Amy\n+12125550126,Ava\n")
    await campaigns.import_list("spring", path, now=WED_14)
    alice, ann, amy, ava = await campaigns.next_contacts("spring", WED_14, 10)

    first = await campaigns.begin_attempt(alice.contact_id, WED_14, call_id="c1")
    with pytest.raises(K.DialRefused, match="dialing"):
        await campaigns.begin_attempt(alice.contact_id, WED_14)  # already being dialled
    after = await campaigns.record_outcome(first, AttemptResult(O.BUSY, False, amd=""), WED_14)
    assert (after.status, after.attempts, after.next_at) == (S.RETRY, 1, WED_14.timestamp() + 600)
    with pytest.raises(CrmConflict, match="already ended with busy"):
        await campaigns.record_outcome(first, AttemptResult(O.NO_ANSWER, False), WED_14)

    wrong = await campaigns.begin_attempt(ann.contact_id, WED_14)
    assert (await campaigns.record_outcome(wrong, AttemptResult(O.WRONG_NUMBER, False), WED_14)).status is S.DONE

    # Before Alice's retry is due she is not offered; once due she comes before the fresh contacts
    assert [c.name for c in await campaigns.next_contacts("spring", WED_14 + timedelta(minutes=5), 10)] == ["Amy", "Ava"]
    with pytest.raises(K.DialRefused, match="not due before"):
        await campaigns.begin_attempt(alice.contact_id, WED_14 + timedelta(minutes=5))
    later = WED_14 + timedelta(minutes=11)
    assert [c.name for c in await campaigns.next_contacts("spring", later, 10)] == ["Alice", "Amy", "Ava"]

    second = await campaigns.begin_attempt(alice.contact_id, later)
    after = await campaigns.record_outcome(second, AttemptResult(O.BUSY, False), later)
    assert (after.status, after.attempts) == (S.RETRY, 2)
    third_at = later + timedelta(minutes=11)
    third = await campaigns.begin_attempt(alice.contact_id, third_at)
    after = await campaigns.record_outcome(third, AttemptResult(O.BUSY, False), third_at)
    assert (after.status, after.attempts, after.next_at) == (S.DONE, 3, None)  # max_attempts, not a 4th call
    assert "Alice" not in [c.name for c in await campaigns.next_contacts("spring", third_at + timedelta(hours=1), 10)]

    machine = await campaigns.begin_attempt(amy.contact_id, WED_14)
    after = await campaigns.record_outcome(machine, AttemptResult(O.ANSWERING_MACHINE, False, amd="MACHINE/LONGGREETING"),
                                           WED_14)
    assert after.status is S.RETRY and after.next_at == WED_14.timestamp() + 4 * 3600
    talk = await campaigns.begin_attempt(ava.contact_id, WED_14)
    await campaigns.record_outcome(talk, AttemptResult(O.CONNECTED, True, call_id="c9", agent="1001",
                                                       disposition="sale"), WED_14)

    p = await campaigns.progress("spring")
    assert (p.contacts, p.pending, p.retry, p.done, p.tried) == (4, 0, 1, 3, 4)
    assert (p.attempts, p.connects, p.right_party) == (6, 1, 1)
    assert p.outcomes == {"busy": 3, "wrong_number": 1, "answering_machine": 1, "connected": 1}
    assert p.penetration == 1.0 and p.remaining == 1


async def test_odd_encodings_and_oversized_files(store: CrmStore, tmp_path: Path):
    campaigns, _ = await _setup(store)
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("手机,姓名,时区\n13800138000,张伟,\n13800138001,李娜,Asia/Shanghai\n".encode("gbk"))
    report = await campaigns.import_list("spring", gbk, now=WED_14)
    assert report.summary() == f"{gbk} (gbk): 2 rows: 2 added, 0 rejected"
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("phone,name\n+447911123456,Carol\n", encoding="utf-16")
    assert (await campaigns.import_list("spring", utf16, now=WED_14)).added == 1
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffphone,name\n+12125550123,Alice\n".encode())
    assert (await campaigns.import_list("spring", bom, now=WED_14)).added == 1

    big = tmp_path / "big.csv"
    big.write_text("phone,name\n" + "".join(f"+1212555{i:04d},x\n" for i in range(100)))
    with pytest.raises(ImportFormatError, match="larger than the import limit"):
        await campaigns.import_list("spring", big, now=WED_14, max_bytes=1000)
    no_phone = tmp_path / "nophone.csv"
    no_phone.write_text("name\nAlice\n")
    with pytest.raises(ImportFormatError, match="missing column"):
        await campaigns.import_list("spring", no_phone, now=WED_14)
    assert len(await campaigns.contacts("spring")) == 4  # nothing of the refused files


async def test_a_campaign_with_a_retry_rule_above_the_maximum_is_not_saved(store: CrmStore):
    campaigns = CampaignStore(store)
    bad = K.Campaign("greedy", max_attempts=2, retry={O.NO_ANSWER: K.RetryRule(5, 600)})
    with pytest.raises(K.CampaignError, match="no_answer: 5 retries would call a number 6 times"):
        await campaigns.save(bad)
    with pytest.raises(CrmNotFound):
        await campaigns.get("greedy")
    # saving again keeps status and list; a new campaign starts paused
    await campaigns.save(K.Campaign("ok"))
    assert (await campaigns.get("ok")).paused
    await campaigns.resume("ok")
    await campaigns.save(K.Campaign("ok", mode=K.DialingMode.PREDICTIVE))
    got = await campaigns.get("ok")
    assert not got.paused and got.campaign.mode is K.DialingMode.PREDICTIVE
    assert [s.campaign.name for s in await campaigns.all()] == ["ok"]


async def test_named_crm_selections_on_seeded_data(store: CrmStore):
    campaigns = CampaignStore(store)
    await campaigns.save(K.Campaign("回访", kind=K.CampaignKind.FOLLOW_UP, windows=(
        K.CallingWindow(frozenset(range(7)), time(0), time.max),)))
    now = datetime.now(UTC)
    today = now.date()

    async def customer(name: str, phone: str) -> int:
        return await store.create_customer(NewCustomer(name=name, phones=(phone,)))

    bought3 = await customer("三天前", "+8613800000001")
    bought2 = await customer("两天前", "+8613800000002")
    refund3 = await customer("退款", "+8613800000003")
    black3 = await customer("黑名单", "+8613800000004")
    dnc3 = await customer("免打扰", "+8613800000005")
    await store.add_purchase(bought3, 100, today - timedelta(days=3))
    await store.add_purchase(bought2, 100, today - timedelta(days=2))
    await store.add_purchase(refund3, -100, today - timedelta(days=3))
    await store.add_purchase(black3, 100, today - timedelta(days=3))
    await store.add_purchase(dnc3, 100, today - timedelta(days=3))
    await store.set_flag(black3, Flag.BLACKLIST, "fraud")
    await campaigns.add_do_not_call("+8613800000005", "asked")
    seen: list[str] = []
    report = await campaigns.select("回访", "bought_3_days_ago", now=now, on_row=lambda o: seen.append(str(o)))
    assert seen == [
        f"customer {bought3} ('三天前'): added",
        f"customer {black3} ('黑名单'): rejected: +8613800000004 belongs to blacklisted customer {black3} (fraud)",
        f"customer {dnc3} ('免打扰'): rejected: +8613800000005 is on the do-not-call list (asked)",
    ]
    assert report.summary() == "selection bought_3_days_ago: 3 rows: 1 added, 2 rejected"

    # grade A (top revenue of the last year) and no call in 90 days
    await campaigns.save(K.Campaign("win-back"))
    idle = await customer("Idle A", "+12125550150")
    busy = await customer("Called A", "+12125550151")
    small = await customer("Small C", "+12125550152")
    for cid, amount in ((idle, 1000), (busy, 1000), (small, 1)):
        await store.add_purchase(cid, amount, today - timedelta(days=30))
    await store.run_grading(today - timedelta(days=365), today + timedelta(days=1))
    await store.log_interaction(CallFacts(call_id="recent", caller="+12125550151", started_at=now - timedelta(days=10),
                                          direction=Direction.INBOUND, outcome=Outcome.ANSWERED))
    await store.log_interaction(CallFacts(call_id="old", caller="+12125550150", started_at=now - timedelta(days=120)))
    report = await campaigns.select("win-back", "grade_a_idle_90_days", now=now)
    names = [c.name for c in await campaigns.contacts("win-back")]
    assert "Idle A" in names and "Called A" not in names and "Small C" not in names

    # satisfaction survey after a ticket closed within the day
    await campaigns.save(K.Campaign("survey", kind=K.CampaignKind.SURVEY))
    closed = await customer("Closed today", "+447911123450")
    still_open = await customer("Still open", "+447911123451")
    t1 = await store.open_ticket(closed, "complaint", "late delivery")
    await store.open_ticket(still_open, "complaint", "broken")
    await store.set_ticket_status(t1, TicketStatus.CLOSED)
    report = await campaigns.select("survey", "survey_after_closed_ticket", now=datetime.now(UTC) + timedelta(seconds=1))
    assert [c.name for c in await campaigns.contacts("survey")] == ["Closed today"] and report.added == 1
    with pytest.raises(ValueError, match="no selection 'everyone'"):
        await campaigns.select("survey", "everyone")


async def test_a_list_for_an_unknown_campaign_is_refused(store: CrmStore, tmp_path: Path):
    campaigns = CampaignStore(store)
    path = tmp_path / "x.csv"
    path.write_text("phone\n+12125550123\n")
    with pytest.raises(CrmNotFound, match="no campaign 'nope'"):
        await campaigns.import_list("nope", path)


ALL_DAY = (K.CallingWindow(frozenset(range(7)), time(0), time.max),)


async def _abandoned_once(store: CrmStore, tmp_path: Path, **kw: object) -> tuple[CampaignStore, int]:
    """Alice's first call, at WED_14, answered and abandoned (no agent within 2 s); the abandoned rule would
    call her again after an hour."""
    campaigns = CampaignStore(store)
    retry = {**K.DEFAULT_RETRY, O.ABANDONED: K.RetryRule(2, 3600)}
    await campaigns.save(K.Campaign("spring", windows=ALL_DAY, retry=retry, **kw))  # type: ignore[arg-type]
    await campaigns.resume("spring")
    path = tmp_path / "list.csv"
    path.write_text("phone,name,timezone\n+12125550123,Alice,Etc/UTC\n")
    await campaigns.import_list("spring", path, now=WED_14)
    [alice] = await campaigns.next_contacts("spring", WED_14, 10)
    attempt = await campaigns.begin_attempt(alice.contact_id, WED_14, call_id="c1")
    await campaigns.record_outcome(attempt, AttemptResult(O.ABANDONED, False), WED_14 + timedelta(seconds=4))
    return campaigns, alice.contact_id


async def test_a_number_with_an_abandoned_call_is_not_dialled_again_for_72_hours(store: CrmStore, tmp_path: Path):
    campaigns, alice = await _abandoned_once(store, tmp_path)
    abandoned_at = WED_14 + timedelta(seconds=4)
    for later in (timedelta(hours=1, minutes=1), timedelta(hours=24), timedelta(hours=71, minutes=59)):
        assert await campaigns.next_contacts("spring", abandoned_at + later, 10) == []
        with pytest.raises(K.DialRefused, match="abandoned call: not dialled again before 2026-11-28T14:00:04"):
            await campaigns.begin_attempt(alice, abandoned_at + later)
    due = abandoned_at + timedelta(hours=72)
    [contact] = await campaigns.next_contacts("spring", due, 10)
    assert contact.abandoned_at == abandoned_at.timestamp()
    assert await campaigns.begin_attempt(alice, due) > 0


async def test_the_no_redial_period_is_per_campaign(store: CrmStore, tmp_path: Path):
    campaigns, _ = await _abandoned_once(store, tmp_path, no_redial_after_abandon_s=24 * 3600)
    abandoned_at = WED_14 + timedelta(seconds=4)
    assert await campaigns.next_contacts("spring", abandoned_at + timedelta(hours=23), 10) == []
    assert len(await campaigns.next_contacts("spring", abandoned_at + timedelta(hours=24), 10)) == 1


async def test_a_campaign_with_a_guaranteed_agent_may_call_again_after_its_own_retry_wait(
        store: CrmStore, tmp_path: Path):
    campaigns, alice = await _abandoned_once(store, tmp_path, agent_guaranteed=True)
    abandoned_at = WED_14 + timedelta(seconds=4)
    assert await campaigns.next_contacts("spring", abandoned_at + timedelta(minutes=59), 10) == []  # the rule's hour
    assert len(await campaigns.next_contacts("spring", abandoned_at + timedelta(hours=1), 10)) == 1
    assert await campaigns.begin_attempt(alice, abandoned_at + timedelta(hours=1)) > 0


async def test_a_disposition_settles_the_attempt_once(store: CrmStore, tmp_path: Path):
    campaigns = CampaignStore(store)
    await campaigns.save(K.Campaign("spring", windows=ALL_DAY, dispositions=("sale", "no_thanks"), disposition_rules=(
        K.Disposition("no_thanks", right_party=True, then=K.AfterDisposition.DONE),)))
    await campaigns.resume("spring")
    path = tmp_path / "list.csv"
    path.write_text("phone,name,timezone\n+12125550123,Alice,Etc/UTC\n+12125550124,Ann,Etc/UTC\n")
    await campaigns.import_list("spring", path, now=WED_14)
    alice, ann = await campaigns.next_contacts("spring", WED_14, 10)
    first = await campaigns.begin_attempt(alice.contact_id, WED_14, call_id="c1")
    with pytest.raises(CrmConflict, match="still under way"):
        await campaigns.settle_disposition(first, "sale", at=WED_14)
    await campaigns.record_outcome(first, AttemptResult(O.CONNECTED, True, call_id="c1", agent="1001"), WED_14)
    with pytest.raises(K.CampaignError, match="has no disposition 'resolved'; choose one of sale, no_thanks, call_back"):
        await campaigns.settle_disposition(first, "resolved", at=WED_14)
    with pytest.raises(K.CampaignError, match="has passed"):
        await campaigns.settle_disposition(first, "call_back", WED_14 - timedelta(hours=1), at=WED_14)
    done = await campaigns.settle_disposition(first, "call_back", WED_14 + timedelta(days=1), at=WED_14)
    assert (done.after.status, done.after.next_at, done.right_party) == (S.RETRY, (WED_14 + timedelta(days=1)).timestamp(),
                                                                         True)
    with pytest.raises(CrmConflict, match="already has the disposition call_back"):
        await campaigns.settle_disposition(first, "sale", at=WED_14)
    # the call back comes when asked, not before
    assert [c.name for c in await campaigns.next_contacts("spring", WED_14 + timedelta(hours=23), 10)] == ["Ann"]
    assert [c.name for c in await campaigns.next_contacts("spring", WED_14 + timedelta(days=1), 10)] == ["Alice", "Ann"]
    second = await campaigns.begin_attempt(ann.contact_id, WED_14, call_id="c2")
    await campaigns.record_outcome(second, AttemptResult(O.CONNECTED, True, call_id="c2"), WED_14)
    gone = await campaigns.settle_disposition(second, "do_not_call", at=WED_14, agent="1002")
    assert gone.after.status is S.EXCLUDED and await campaigns.on_do_not_call("+12125550124")
