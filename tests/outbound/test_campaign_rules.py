"""Campaign rules without a database: calling windows in each customer's zone, retries per outcome, the
order of the next contacts, and the settings a campaign may not be saved with."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from crmstore import campaigns as K
from crmstore.campaigns import AttemptOutcome as O
from crmstore.campaigns import ContactStatus as S

SHANGHAI = "+8613800138000"
NEW_YORK = "+12125550123"
CHICAGO = "+13125550123"
LOS_ANGELES = "+14155550123"
HONOLULU = "+18085550123"
LONDON = "+447911123456"
TOLL_FREE = "+18005550123"  # +1 without a region: any zone of the NANP
IDAHO = "+12085550123"  # area code 208: Mountain and Pacific

WEEKDAYS_9_TO_8 = K.Campaign("t")  # Mon-Fri 09:00-20:00, Sat 10:00-18:00


def callable_now(number: str, at: datetime, c: K.Campaign = WEEKDAYS_9_TO_8) -> bool:
    return K.inside_window(K.zones_of_number(number), c.windows, None, at)


def test_zones_come_from_the_number():
    assert K.zones_of_number(SHANGHAI) == ("Asia/Shanghai",)
    assert K.zones_of_number(CHICAGO) == ("America/Chicago",)
    assert K.zones_of_number(IDAHO) == ("America/Boise", "America/Los_Angeles")
    assert "Pacific/Guam" in K.zones_of_number(TOLL_FREE) and "America/St_Johns" in K.zones_of_number(TOLL_FREE)


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        # Wednesday 14:00 UTC: Shanghai 22:00, New York 09:00, Chicago 08:00, LA 06:00, Honolulu 04:00, London 14:00
        (datetime(2026, 11, 25, 14, 0, tzinfo=UTC), {NEW_YORK, LONDON}),
        # Wednesday 01:30 UTC: Shanghai Wed 09:30; Tuesday evening in America: NY 20:30 (closed), Chicago 19:30,
        # LA 17:30, Honolulu 15:30; London 01:30
        (datetime(2026, 11, 25, 1, 30, tzinfo=UTC), {SHANGHAI, CHICAGO, LOS_ANGELES, HONOLULU}),
        # Saturday 15:00 UTC: the Saturday window is 10:00-18:00: NY 10:00 and London 15:00 only
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), {NEW_YORK, LONDON}),
        # Sunday: nobody
        (datetime(2026, 11, 29, 15, 0, tzinfo=UTC), set()),
        # July (summer time): 13:30 UTC is 09:30 EDT, 08:30 CDT, 14:30 BST, 21:30 in Shanghai
        (datetime(2026, 7, 15, 13, 30, tzinfo=UTC), {NEW_YORK, LONDON}),
    ],
)
def test_calling_windows_across_time_zones_at_a_fixed_utc_instant(at: datetime, inside: set[str]):
    numbers = [SHANGHAI, NEW_YORK, CHICAGO, LOS_ANGELES, HONOLULU, LONDON]
    assert {n for n in numbers if callable_now(n, at)} == inside


def test_a_number_in_two_zones_is_called_only_when_both_are_inside():
    # 16:30 UTC in November: Boise (Mountain) 09:30, Los Angeles 08:30
    at = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    assert K.inside_window(("America/Boise",), WEEKDAYS_9_TO_8.windows, None, at)
    assert not callable_now(IDAHO, at)
    assert callable_now(IDAHO, datetime(2026, 11, 25, 17, 30, tzinfo=UTC))


def test_an_unknown_zone_is_called_only_inside_the_window_of_every_zone_of_its_country():
    nine_to_five = K.Campaign("t", windows=(K.CallingWindow(frozenset(range(5)), time(9), time(17)),))
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    zones = K.zones_of_number(TOLL_FREE)
    # Guam (UTC+10) and St. John's (UTC-3:30) are never both between 09:00 and 17:00
    why = K.never_callable_reason(TOLL_FREE, zones, False, nine_to_five.windows, None, now)
    assert why is not None and "may be in any of" in why and "give its timezone" in why
    # ...while with the usual 09:00-20:00 there is half an hour a day when every zone of +1 is inside
    slots = K.callable_intervals(zones, WEEKDAYS_9_TO_8.windows, None, now)
    assert slots and all(b - a <= 1800 for a, b in slots)
    first = K.next_callable(zones, WEEKDAYS_9_TO_8.windows, None, now)
    assert first is not None and K.inside_window(zones, WEEKDAYS_9_TO_8.windows, None, first)
    # the contact's own time zone makes it an ordinary Chicago number
    assert K.never_callable_reason(TOLL_FREE, ("America/Chicago",), True, nine_to_five.windows, None, now) is None


def test_a_preferred_time_outside_every_window_is_never_callable():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    late = K.parse_span("21:00-22:00")
    why = K.never_callable_reason(CHICAGO, ("America/Chicago",), False, WEEKDAYS_9_TO_8.windows, late, now)
    assert why is not None and "contact_time 21:00-22:00 is outside the calling windows" in why
    afternoon = K.parse_span("14:00-17:00")
    assert K.never_callable_reason(CHICAGO, ("America/Chicago",), False, WEEKDAYS_9_TO_8.windows, afternoon,
                                   now) is None
    # Wednesday 15:30 UTC is 09:30 in Chicago: inside the window but not the customer's afternoon
    at = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    assert K.inside_window(("America/Chicago",), WEEKDAYS_9_TO_8.windows, None, at)
    assert not K.inside_window(("America/Chicago",), WEEKDAYS_9_TO_8.windows, afternoon, at)


def test_a_retry_rule_above_the_maximum_is_refused_at_save():
    data = {"name": "spring", "max_attempts": "3", "retry": {"busy": {"retries": "3", "after": "10m"}}}
    with pytest.raises(K.CampaignError) as e:
        K.campaign_from_data(data, "spring.yaml")
    assert str(e.value) == ("spring.yaml: retry.busy: 3 retries would call a number 4 times, more than"
                            " max_attempts 3")
    data["retry"] = {"busy": {"retries": "2", "after": "10m"}}
    assert K.campaign_from_data(data).rule(O.BUSY) == K.RetryRule(2, 600)
    with pytest.raises(K.CampaignError, match="more than max_attempts 1"):
        K.check_campaign(K.Campaign("x", max_attempts=1))  # the default busy rule retries twice


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "windows": [{"days": "mon-fri", "from": "20:00", "to": "09:00"}]}, "ends before it starts"),
        ({"name": "x", "windows": [{"days": "weekdays", "from": "09:00", "to": "17:00"}]}, "windows[1].days"),
        ({"name": "x", "windows": [{"from": "9h", "to": "17:00"}]}, "not a time of day"),
        ({"name": "x", "mode": "turbo"}, "mode: 'turbo' is not one of preview, progressive, predictive"),
        ({"name": "x", "retry": {"fax": {"retries": "1"}}}, "retry: 'fax' is not one of"),
        ({"name": "x", "retry": {"busy": {"retries": "1", "after": "soon"}}}, "retry.busy.after"),
        ({"name": "x", "retry": {"busy": {"retries": "1", "after": "5s"}}}, "give 1 minute to 30 days"),
        ({"name": "x", "abandon_cap": "0.5"}, "abandon_cap 0.5"),
        ({"name": "x", "colour": "red"}, "unknown field(s) colour"),
        ({"kind": "sales"}, "name is missing"),
    ],
)
def test_campaign_definition_errors_name_the_field(data: dict[str, object], message: str):
    with pytest.raises(K.CampaignError) as e:
        K.campaign_from_data(data, "c.yaml")
    assert message in str(e.value) and str(e.value).startswith("c.yaml: ")


def test_stored_form_reads_back_the_same():
    c = K.campaign_from_data({
        "name": "回访", "kind": "follow_up", "mode": "preview", "script": "您好", "dispositions": ["ok", "later"],
        "windows": [{"days": "mon-fri", "from": "09:00", "to": "12:00"}, {"days": "sat,sun", "from": "10:00",
                                                                          "to": "24:00"}],
        "max_attempts": "4", "retry": {"no_answer": {"retries": "3", "after": "2h"}}, "abandon_cap": "2%",
    })
    assert K.campaign_from_data(K.campaign_to_data(c)) == c
    assert c.abandon_cap == pytest.approx(0.02) and c.windows[1].end == time.max


def test_retries_follow_each_outcome_and_never_pass_max_attempts():
    c = K.Campaign("t", max_attempts=3)
    at = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    busy = K.after_outcome(c, 0, O.BUSY, 0, at)
    assert (busy.status, busy.attempts, busy.next_at) == (S.RETRY, 1, at.timestamp() + 600)
    no_answer = K.after_outcome(c, 1, O.NO_ANSWER, 0, at)
    assert (no_answer.status, no_answer.next_at) == (S.RETRY, at.timestamp() + 7200)
    third = K.after_outcome(c, 2, O.BUSY, 1, at)  # busy allows two retries, but this was attempt 3 of 3
    assert (third.status, third.attempts, third.next_at) == (S.DONE, 3, None)
    assert "max_attempts" in third.why
    machine = K.after_outcome(c, 1, O.ANSWERING_MACHINE, 1, at)  # one retry for machines, already used
    assert machine.status is S.DONE
    assert K.after_outcome(c, 0, O.WRONG_NUMBER, 0, at).status is S.DONE
    assert K.after_outcome(c, 0, O.CONNECTED, 0, at).status is S.DONE
    abandoned = K.after_outcome(c, 0, O.ABANDONED, 0, at)
    # the abandoned rule says 1 h, but Ofcom's 72 hours come first
    assert (abandoned.status, abandoned.next_at) == (S.RETRY, at.timestamp() + 72 * 3600)


def test_the_documented_diagram_is_the_table():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "campaigns.md").read_text(encoding="utf-8")
    assert K.contact_diagram() in docs


def test_contact_moves_follow_the_table():
    assert K.move(S.PENDING, "dial") is S.DIALING
    with pytest.raises(K.IllegalContactMove):
        K.move(S.DONE, "dial")
    with pytest.raises(K.IllegalContactMove):
        K.move(S.DIALING, "exclude")


def _contact(i: int, number: str, status: S = S.PENDING, attempts: int = 0, next_at: float | None = None,
             **kw: bool) -> K.ContactState:
    return K.ContactState(i, number, K.zones_of_number(number), None, status, attempts, next_at, i, **kw)


def test_next_contacts_gives_due_retries_first_then_fresh_and_nobody_who_must_not_be_dialled():
    at = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # New York and London are inside
    t = at.timestamp()
    people = [
        _contact(1, NEW_YORK),
        _contact(2, LONDON, S.RETRY, 1, t - 60),
        _contact(3, "+12125550124", S.RETRY, 1, t - 600),  # due longest: first
        _contact(4, "+12125550125", S.RETRY, 1, t + 60),  # not due yet
        _contact(5, "+12125550126", on_dnc=True),
        _contact(6, "+12125550127", blacklisted=True),
        _contact(7, "+12125550128", S.RETRY, 3, t - 60),  # every attempt spent
        _contact(8, CHICAGO),  # 08:00 there
        _contact(9, SHANGHAI),  # 22:00 there
        _contact(10, "+12125550129", S.DONE, 1),
        _contact(11, "+12125550130", S.DIALING, 0),
        _contact(0, "+447911123457"),
    ]
    c = K.Campaign("t")
    assert [x.contact_id for x in K.next_contacts(c, False, at, people, 10)] == [3, 2, 0, 1]
    assert [x.contact_id for x in K.next_contacts(c, False, at, people, 2)] == [3, 2]
    assert K.next_contacts(c, True, at, people, 10) == []
    assert K.dial_refusal(c, False, people[4], at) == "+12125550126 is on the do-not-call list"
    assert "outside the calling window now (Wed 08:00 America/Chicago)" in (K.dial_refusal(c, False, people[7], at) or "")
    assert K.dial_refusal(c, True, people[0], at) == "campaign 't' is paused"


def test_progress_figures():
    p = K.CampaignProgress("t", K.CampaignStatus.ACTIVE, contacts=10, pending=4, retry=2, dialing=1, done=2,
                           excluded=1, tried=6, attempts=9, connects=3, right_party=2,
                           outcomes={"connected": 3, "abandoned": 1, "busy": 5})
    assert p.remaining == 7 and p.penetration == pytest.approx(0.6) and p.abandon_rate == pytest.approx(0.25)
    assert "list penetration 60.0%" in p.lines()[1]


def test_dispositions_with_meanings_wrap_up_and_the_no_redial_period_round_trip():
    c = K.campaign_from_data({
        "name": "spring", "dispositions": ["sale", {"name": "not_home", "right_party": "no", "then": "call_back"},
                                           {"name": "moved", "right_party": "no", "then": "wrong_number"}],
        "wrap_up": "45s", "no_redial_after_abandon": "96h", "agent_guaranteed": "yes"})
    assert c.dispositions == ("sale", "not_home", "moved") and c.wrap_up_s == 45
    assert (c.no_redial_after_abandon_s, c.agent_guaranteed) == (96 * 3600, True)
    assert c.disposition("sale") == K.Disposition("sale")
    assert c.disposition("not_home") == K.Disposition("not_home", False, K.AfterDisposition.CALL_BACK)
    assert c.disposition("do_not_call") == K.Disposition("do_not_call", True, K.AfterDisposition.DO_NOT_CALL)
    assert c.disposition("resolved") is None
    assert c.disposition_names() == ("sale", "not_home", "moved", "call_back", "wrong_number", "do_not_call")
    assert K.campaign_from_data(K.campaign_to_data(c)) == c
    plain = K.campaign_from_data({"name": "plain"})
    assert (plain.wrap_up_s, plain.no_redial_after_abandon_s, plain.agent_guaranteed) == (None, 72 * 3600, False)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("wrap_up", "2h", "wrap_up 7200 s: give 0 to 3600 seconds"),
    ("wrap_up", "soon", "wrap_up: 'soon' is not a duration"),
    ("no_redial_after_abandon", "60d", "no_redial_after_abandon 5184000 s: give 0 to 30 days"),
    ("agent_guaranteed", "perhaps", "agent_guaranteed: 'perhaps' is not yes or no"),
    ("dispositions", [{"name": "x", "then": "later"}], "dispositions[1].then: 'later' is not one of done, call_back"),
    ("dispositions", [{"right_party": "no"}], "dispositions[1]: give a name"),
])
def test_bad_campaign_outbound_settings_are_one_clear_line(field, value, message):
    with pytest.raises(K.CampaignError, match=re.escape(message)):
        K.campaign_from_data({"name": "spring", field: value})


def test_after_a_disposition():
    c = K.Campaign("t", max_attempts=2)
    at = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    back = K.Disposition("call_back", True, K.AfterDisposition.CALL_BACK)
    later = K.after_disposition(c, back, S.DONE, 1, at + timedelta(hours=2), at)
    assert (later.status, later.next_at) == (S.RETRY, (at + timedelta(hours=2)).timestamp())
    with pytest.raises(K.CampaignError, match="max_attempts"):
        K.after_disposition(c, back, S.DONE, 2, at + timedelta(hours=2), at)
    dnc = K.Disposition("do_not_call", True, K.AfterDisposition.DO_NOT_CALL)
    assert K.after_disposition(c, dnc, S.DONE, 1, None, at).status is S.EXCLUDED
    assert K.after_disposition(c, K.Disposition("sale"), S.RETRY, 1, None, at).status is S.DONE  # reached after all
