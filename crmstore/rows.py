"""Row <-> record conversions shared by the plans. Times are stored as epoch seconds (REAL/DOUBLE), dates
as ISO text, money as integer cents: the same bytes on both engines and exact sums."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from .model import (
    CustomerCard,
    Direction,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    Grade,
    Interaction,
    Outcome,
    Purchase,
    Ticket,
    TicketStatus,
)
from .phones import mask_phone

Row = Sequence[Any]


def ts(dt: datetime) -> float:
    """Naive datetimes are taken as UTC (the call model's clock is UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def ts_or_none(dt: datetime | None) -> float | None:
    return None if dt is None else ts(dt)


def dt(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)


def dt_or_none(x: float | None) -> datetime | None:
    return None if x is None else dt(x)


def cents(amount: Decimal | int | str) -> int:
    value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    if not value.is_finite():
        raise ValueError(f"amount {amount!r} is not a finite number")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_cents(c: int) -> Decimal:
    return Decimal(c).scaleb(-2)  # exact, always two decimals: 9990 -> 99.90


def search_key(text: str) -> str:
    """Lower-cased, spaces squeezed: 'Zhang  Wei' and 'zhang wei' are the same key; CJK is unchanged."""
    return " ".join(text.casefold().split())


def tags_text(tags: Sequence[str]) -> str:
    return json.dumps(list(tags), ensure_ascii=False) if tags else ""


def tags_of(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


CUSTOMER_COLS = (
    "id, name, company, email, tags, notes, preferred_language, contact_time, contact_channel,"
    " is_lead, grade, created_at"
)


def card(
    row: Row, phones: Sequence[str], accounts: Sequence[str], *, see_phones: bool, see_notes: bool
) -> CustomerCard:
    return CustomerCard(
        id=row[0],
        name=row[1],
        company=row[2],
        email=row[3],
        phones=tuple(phones) if see_phones else tuple(mask_phone(p) for p in phones),
        accounts=tuple(accounts),
        tags=tags_of(row[4]),
        notes=row[5] if see_notes else None,
        preferred_language=row[6],
        contact_time=row[7],
        contact_channel=row[8],
        is_lead=bool(row[9]),
        grade=Grade(row[10]) if row[10] else None,
        created_at=dt(row[11]),
    )


INTERACTION_COLS = (
    "id, call_id, customer_id, direction, outcome, caller, started_at, answered_at, ended_at, queue, agent,"
    " wait_s, talk_s, hold_s, wrapup_s, disposition, notes, ivr_path, recording_ref, survey_score"
)


def interaction(row: Row, *, see_phones: bool, see_notes: bool) -> Interaction:
    caller = row[5]
    return Interaction(
        id=row[0],
        call_id=row[1],
        customer_id=row[2],
        direction=Direction(row[3]),
        outcome=Outcome(row[4]),
        caller=caller if see_phones or not caller.startswith("+") else mask_phone(caller),
        started_at=dt(row[6]),
        answered_at=dt_or_none(row[7]),
        ended_at=dt_or_none(row[8]),
        queue=row[9],
        agent=row[10],
        wait_s=row[11],
        talk_s=row[12],
        hold_s=row[13],
        wrapup_s=row[14],
        disposition=row[15],
        notes=row[16] if see_notes else None,
        ivr_path=tuple(json.loads(row[17])) if row[17] else (),
        recording_ref=row[18],
        survey_score=row[19],
    )


TICKET_COLS = "id, customer_id, category, subject, status, opened_at, due_at, closed_at"


def ticket(row: Row) -> Ticket:
    return Ticket(
        id=row[0],
        customer_id=row[1],
        category=row[2],
        subject=row[3],
        status=TicketStatus(row[4]),
        opened_at=dt(row[5]),
        due_at=dt_or_none(row[6]),
        closed_at=dt_or_none(row[7]),
    )


FOLLOW_UP_COLS = "id, customer_id, kind, owner, due_at, status, note, source_call_id"


def follow_up(row: Row) -> FollowUp:
    return FollowUp(
        id=row[0],
        customer_id=row[1],
        kind=FollowUpKind(row[2]),
        owner=row[3],
        due_at=dt(row[4]),
        status=FollowUpStatus(row[5]),
        note=row[6],
        source_call_id=row[7],
    )


FLAG_COLS = "flag, reason, set_at, set_by"


def flag_mark(row: Row) -> FlagMark:
    return FlagMark(Flag(row[0]), row[1], dt(row[2]), row[3])


PURCHASE_COLS = "id, customer_id, amount_cents, purchased_on, ref"


def purchase(row: Row) -> Purchase:
    return Purchase(row[0], row[1], from_cents(row[2]), date.fromisoformat(row[3]), row[4])
