"""Invariants of the campaign rules over generated inputs: nobody dialled who must not be, never more than
max_attempts, and the two window computations (instant check, intervals) agree."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crmstore import campaigns as K
from crmstore.campaigns import AttemptOutcome as O
from crmstore.campaigns import ContactStatus as S

ZONES = ("Asia/Shanghai", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "Pacific/Honolulu", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
         "America/St_Johns", "Pacific/Guam")
BASE = datetime(2026, 1, 1, tzinfo=UTC)

instants = st.integers(0, 365 * 86_400 - 1).map(lambda s: BASE + timedelta(seconds=s))
zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True).map(lambda z: tuple(sorted(z)))
clock = st.integers(0, 47).map(lambda h: time(h // 2, 30 * (h % 2)))
windows = st.lists(
    st.tuples(st.frozensets(st.integers(0, 6), min_size=1), clock, clock).filter(lambda w: w[1] < w[2]).map(
        lambda w: K.CallingWindow(*w)), min_size=1, max_size=3).map(tuple)


@settings(max_examples=300, deadline=None)
@given(zones=zone_sets, wins=windows, at=instants)
def test_the_instant_check_and_the_intervals_agree(zones, wins, at):
    inside = K.inside_window(zones, wins, None, at)
    t = at.timestamp()
    in_interval = any(a <= t < b for a, b in K.callable_intervals(zones, wins, None, at))
    assert inside == in_interval
    nxt = K.next_callable(zones, wins, None, at)
    if nxt is not None:
        assert nxt >= at and K.inside_window(zones, wins, None, nxt)


@settings(max_examples=300, deadline=None)
@given(max_attempts=st.integers(1, 6), rules=st.dictionaries(st.sampled_from(K.RETRY_OUTCOMES), st.integers(0, 5)),
       outcomes=st.lists(st.sampled_from(list(O)), min_size=1, max_size=12))
def test_a_contact_is_never_called_more_than_max_attempts_nor_an_outcome_retried_more_than_its_rule(
        max_attempts, rules, outcomes):
    c = K.Campaign("p", max_attempts=max_attempts,
                   retry={o: K.RetryRule(min(n, max_attempts - 1), 600) for o, n in rules.items()})
    K.check_campaign(c)
    attempts, status, seen = 0, S.PENDING, dict.fromkeys(O, 0)
    at = BASE
    for outcome in outcomes:
        if status is S.DONE:
            break
        status = K.move(status, "dial")
        after = K.after_outcome(c, attempts, outcome, seen[outcome], at)
        seen[outcome] += 1
        attempts, status = after.attempts, after.status
        assert attempts <= max_attempts
        if outcome is not O.CONNECTED:
            assert seen[outcome] <= c.rule(outcome).retries + 1
        if status is S.RETRY:
            assert after.next_at is not None and after.next_at > at.timestamp()
        at += timedelta(hours=1)
    assert attempts <= max_attempts


contacts = st.builds(
    K.ContactState,
    contact_id=st.integers(1, 10_000),
    e164=st.just("+12125550123"),
    zones=zone_sets,
    preferred=st.none(),
    status=st.sampled_from(list(S)),
    attempts=st.integers(0, 5),
    next_at=st.one_of(st.none(), st.floats(BASE.timestamp() - 86_400, BASE.timestamp() + 86_400)),
    position=st.integers(0, 1000),
    on_dnc=st.booleans(),
    blacklisted=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(people=st.lists(contacts, max_size=30, unique_by=lambda c: c.contact_id), at=st.integers(0, 86_400),
       limit=st.integers(0, 40), max_attempts=st.integers(1, 5))
def test_next_contacts_never_holds_someone_who_must_not_be_dialled(people, at, limit, max_attempts):
    now = BASE + timedelta(seconds=at)
    c = K.Campaign("p", max_attempts=max_attempts, retry={})
    chosen = K.next_contacts(c, False, now, people, limit)
    assert len(chosen) <= limit
    for x in chosen:
        assert not x.on_dnc and not x.blacklisted and x.attempts < max_attempts
        assert x.status in (S.PENDING, S.RETRY)
        assert K.inside_window(x.zones, c.windows, None, now)
        assert x.status is S.PENDING or (x.next_at is not None and x.next_at <= now.timestamp())
    kinds = [x.status for x in chosen]
    assert kinds == sorted(kinds, key=lambda s: s is S.PENDING)  # due retries before fresh contacts
