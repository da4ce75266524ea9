"""The pure parts: phone normalization, ABC grading arithmetic, churn rules, next actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmstore import (
    COMPLAINT,
    ChurnKind,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    Grade,
    GradeChange,
    InvalidPhone,
    Ticket,
    TicketStatus,
    normalize_phone,
    try_normalize_phone,
)
from crmstore.grading import abc_grades, is_fast_move
from crmstore.phones import mask_phone
from crmstore.signals import ChurnFacts, churn_signals, next_actions

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("010-12345678", "+861012345678"),
        ("(0755) 8888 9999", "+8675588889999"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_normalize(raw: str, e164: str) -> None:
    assert normalize_phone(raw, "CN") == e164


@pytest.mark.parametrize("raw", ["12ab", "", "anonymous", "1", "+86 1", "abc-def"])
def test_malformed_numbers_raise_clear_error_or_none(raw: str) -> None:
    with pytest.raises(InvalidPhone, match="not valid"):
        normalize_phone(raw, "CN")
    assert try_normalize_phone(raw, "CN") is None


def test_mask_keeps_country_and_last_four() -> None:
    assert mask_phone("+8613812345678") == "+86*******5678"
    assert mask_phone("+14155552671") == "+1******2671"


def test_abc_hand_computed_example_with_ties_and_zero_revenue() -> None:
    # total positive revenue 1000. Shares of everyone ranked BEFORE each customer:
    # c1 0% A | c2 50% A | c3,c4 tie at 100: 70% -> both A (c4 alone would start at 80% -> B)
    # c5 90% B | c6 95% -> C (not below 95) | c7 98% C | zero and negative revenue: C
    revenue = {1: 500, 2: 200, 3: 100, 4: 100, 5: 50, 6: 30, 7: 20, 8: 0, 9: 0, 10: -10}
    assert abc_grades(revenue) == {
        1: Grade.A,
        2: Grade.A,
        3: Grade.A,
        4: Grade.A,
        5: Grade.B,
        6: Grade.C,
        7: Grade.C,
        8: Grade.C,
        9: Grade.C,
        10: Grade.C,
    }


def test_abc_edges() -> None:
    assert abc_grades({}) == {}
    assert abc_grades({1: 0, 2: 0}) == {1: Grade.C, 2: Grade.C}
    assert abc_grades({1: 990, 2: 10}) == {1: Grade.A, 2: Grade.C}  # 99% before 2
    assert abc_grades({1: 10, 2: 10, 3: 10}) == {1: Grade.A, 2: Grade.A, 3: Grade.A}  # one tie group


@given(st.dictionaries(st.integers(1, 500), st.integers(-1000, 10**7), max_size=60))
def test_abc_invariants(revenue: dict[int, int]) -> None:
    grades = abc_grades(revenue)
    assert set(grades) == set(revenue)
    rank = {Grade.A: 0, Grade.B: 1, Grade.C: 2}
    for a, ra in revenue.items():
        for b, rb in revenue.items():
            if ra > rb:
                assert rank[grades[a]] <= rank[grades[b]]  # more revenue never grades lower
            if ra == rb:
                assert grades[a] == grades[b]  # ties share a grade
    positive = [c for c, r in revenue.items() if r > 0]
    if positive:
        assert grades[max(positive, key=lambda c: revenue[c])] is Grade.A
    assert all(grades[c] is Grade.C for c, r in revenue.items() if r <= 0)


def test_fast_move() -> None:
    assert is_fast_move(Grade.A, Grade.C) and is_fast_move(Grade.C, Grade.A)
    assert not is_fast_move(Grade.A, Grade.B) and not is_fast_move(None, Grade.C)


def test_churn_signals_on_constructed_histories() -> None:
    steady = ChurnFacts(6, 6, 60000, 60000, 0, ())
    assert churn_signals(steady) == ()
    falling = ChurnFacts(
        orders_recent=2,
        orders_prior=6,
        amount_recent_cents=10000,
        amount_prior_cents=60000,
        complaints_recent=3,
        open_ticket_ages_days=(2.0, 12.5),
    )
    kinds = {s.kind: s.detail for s in churn_signals(falling)}
    assert kinds[ChurnKind.ORDER_FREQUENCY_FALLING].startswith("orders fell from 6 to 2")
    assert "600.00 to 100.00" in kinds[ChurnKind.ORDER_AMOUNT_FALLING]
    assert kinds[ChurnKind.REPEATED_COMPLAINTS] == "3 complaints in the last 90 days"
    assert kinds[ChurnKind.LONG_OPEN_TICKET] == "ticket open 12 days"
    # one order then none is not a frequency trend, but is a spend drop
    once = churn_signals(ChurnFacts(0, 1, 0, 5000, 1, (6.9,)))
    assert [s.kind for s in once] == [ChurnKind.ORDER_AMOUNT_FALLING]


def test_next_actions_texts_and_order() -> None:
    ticket = Ticket(
        1, 9, COMPLAINT, "broken fridge", TicketStatus.OPEN, NOW - timedelta(days=5, hours=3), None, None
    )
    overdue = Ticket(
        2, 9, "repair", "visit", TicketStatus.OPEN, NOW - timedelta(days=9), NOW - timedelta(hours=5), None
    )
    fu = FollowUp(3, 9, FollowUpKind.CALLBACK, "1001", NOW - timedelta(hours=2), FollowUpStatus.OPEN, "", "")
    acts = next_actions(
        now=NOW,
        known=True,
        caller_readable=True,
        flags=[FlagMark(Flag.BLACKLIST, "fraud", NOW, "sup"), FlagMark(Flag.VIP, "", NOW, "sup")],
        grade_change=GradeChange(9, Grade.A, Grade.B, NOW, False),
        open_tickets=[ticket, overdue],
        due_follow_ups=[fu],
        last_survey_score=1,
    )
    texts = [a.text for a in acts]
    assert texts[0] == "blacklisted: fraud"
    assert "complaint open 5 days: broken fridge" in texts
    assert "grade dropped from A to B" in texts
    assert "call-back overdue 2 h (owner 1001)" in texts
    assert "repair ticket overdue by 5 h: visit" in texts
    assert "last survey score 1/5: acknowledge the last call" in texts
    assert [a.priority for a in acts] == sorted(a.priority for a in acts)
    assert next_actions(now=NOW, known=False, caller_readable=True)[0].text == "unknown caller: create a lead"
    assert "not readable" in next_actions(now=NOW, known=False, caller_readable=False)[0].text
