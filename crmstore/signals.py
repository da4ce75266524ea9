"""Churn signals and the pop's suggested next actions: pure functions of facts read from the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .grading import is_drop
from .model import (
    COMPLAINT,
    ChurnKind,
    ChurnSignal,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpKind,
    GradeChange,
    NextAction,
    Ticket,
)


@dataclass(frozen=True, slots=True)
class ChurnRules:
    window_days: int = 90  # recent window; compared with the window of the same length before it
    drop_ratio: float = 0.5  # "falling" = recent <= prior * drop_ratio
    min_prior_orders: int = 2  # one order then none is not a trend
    complaints: int = 2  # complaints within the window that count as "repeated"
    ticket_age_days: int = 7  # an open ticket older than this is "long open"


@dataclass(frozen=True, slots=True)
class ChurnFacts:
    orders_recent: int
    orders_prior: int
    amount_recent_cents: int
    amount_prior_cents: int
    complaints_recent: int
    open_ticket_ages_days: tuple[float, ...]


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _days(n: float) -> str:
    d = int(n)
    return f"{d} day" if d == 1 else f"{d} days"


def churn_signals(facts: ChurnFacts, rules: ChurnRules = ChurnRules()) -> tuple[ChurnSignal, ...]:
    out: list[ChurnSignal] = []
    w = rules.window_days
    if (
        facts.orders_prior >= rules.min_prior_orders
        and facts.orders_recent <= facts.orders_prior * rules.drop_ratio
    ):
        out.append(
            ChurnSignal(
                ChurnKind.ORDER_FREQUENCY_FALLING,
                f"orders fell from {facts.orders_prior} to {facts.orders_recent} (last {w} days vs the {w} before)",
            )
        )
    if (
        facts.orders_prior >= 1
        and facts.amount_prior_cents > 0
        and facts.amount_recent_cents <= facts.amount_prior_cents * rules.drop_ratio
    ):
        out.append(
            ChurnSignal(
                ChurnKind.ORDER_AMOUNT_FALLING,
                f"spend fell from {_money(facts.amount_prior_cents)} to {_money(facts.amount_recent_cents)}"
                f" (last {w} days vs the {w} before)",
            )
        )
    if facts.complaints_recent >= rules.complaints:
        out.append(
            ChurnSignal(
                ChurnKind.REPEATED_COMPLAINTS, f"{facts.complaints_recent} complaints in the last {w} days"
            )
        )
    long_open = [a for a in facts.open_ticket_ages_days if a >= rules.ticket_age_days]
    if long_open:
        out.append(ChurnSignal(ChurnKind.LONG_OPEN_TICKET, f"ticket open {_days(max(long_open))}"))
    return tuple(out)


_FOLLOW_UP_WORDS = {
    FollowUpKind.CALLBACK: "call-back",
    FollowUpKind.VISIT: "post-service visit",
    FollowUpKind.SATISFACTION_CALL: "satisfaction call",
}


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return _days(minutes / 1440)


def next_actions(
    *,
    now: datetime,
    known: bool,
    caller_readable: bool,
    flags: Sequence[FlagMark] = (),
    grade_change: GradeChange | None = None,
    open_tickets: Sequence[Ticket] = (),
    due_follow_ups: Sequence[FollowUp] = (),
    churn: Sequence[ChurnSignal] = (),
    last_survey_score: int | None = None,
) -> tuple[NextAction, ...]:
    """What the agent should know or do first, most urgent first (stable within a priority)."""
    acts: list[NextAction] = []
    if not caller_readable:
        acts.append(NextAction("lead", "caller number not readable: ask for a contact number", 3))
    elif not known:
        acts.append(NextAction("lead", "unknown caller: create a lead", 3))
    for mark in flags:
        reason = f": {mark.reason}" if mark.reason else ""
        if mark.flag is Flag.BLACKLIST:
            acts.append(NextAction("flag", f"blacklisted{reason}", 1))
        elif mark.flag is Flag.DIFFICULT:
            acts.append(NextAction("flag", f"difficult customer{reason}", 1))
        elif mark.flag is Flag.VIP:
            acts.append(NextAction("flag", f"VIP{reason}: greet by name, priority handling", 2))
        else:
            acts.append(NextAction("flag", f"key account{reason}", 2))
    for t in open_tickets:
        age = now - t.opened_at
        if t.category == COMPLAINT:
            acts.append(
                NextAction("ticket", f"complaint open {_days(age.days)}: {t.subject}".rstrip(": "), 2)
            )
        elif t.due_at is not None and t.due_at < now:
            acts.append(
                NextAction("ticket", f"{t.category} ticket overdue by {_ago(now - t.due_at)}: {t.subject}", 3)
            )
        else:
            acts.append(NextAction("ticket", f"{t.category} ticket open {_days(age.days)}: {t.subject}", 4))
    for f in due_follow_ups:
        word = _FOLLOW_UP_WORDS[f.kind]
        when = f"overdue {_ago(now - f.due_at)}" if f.due_at < now - timedelta(minutes=1) else "due"
        acts.append(NextAction("follow_up", f"{word} {when} (owner {f.owner})", 2))
    if grade_change is not None and grade_change.old is not None:
        if is_drop(grade_change.old, grade_change.new):
            acts.append(
                NextAction("grade", f"grade dropped from {grade_change.old} to {grade_change.new}", 2)
            )
        else:
            acts.append(NextAction("grade", f"grade rose from {grade_change.old} to {grade_change.new}", 4))
    for s in churn:
        acts.append(NextAction("churn", f"churn risk: {s.detail}", 3))
    if last_survey_score is not None and last_survey_score <= 2:
        acts.append(
            NextAction("survey", f"last survey score {last_survey_score}/5: acknowledge the last call", 3)
        )
    acts.sort(key=lambda a: a.priority)
    return tuple(acts)
