"""Typed records crossing the store's API. Frozen and slotted: a pop handed to the gateway cannot change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class Grade(StrEnum):
    A = "A"  # gold
    B = "B"  # important
    C = "C"  # general


class Flag(StrEnum):
    VIP = "vip"
    KEY_ACCOUNT = "key_account"
    BLACKLIST = "blacklist"
    DIFFICULT = "difficult"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"  # caller hung up while waiting in queue
    IVR_ONLY = "ivr_only"  # self-service, never reached the ACD
    NO_ANSWER = "no_answer"  # outbound call nobody picked up
    VOICEMAIL = "voicemail"  # left a message (in the IVR, or at a queue's deadline)
    CALLBACK = "callback"  # asked to be called back instead of waiting
    LOST = "lost"  # ended by the system while waiting (a PBX restart, an end nobody saw): nobody's abandon
    REFUSED = "refused"  # turned away by a queue's blacklist policy: never queued, not self-service


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class FollowUpKind(StrEnum):
    CALLBACK = "callback"
    VISIT = "visit"  # post-service visit
    SATISFACTION_CALL = "satisfaction_call"


class FollowUpStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


COMPLAINT = "complaint"  # the ticket category counted by churn signals and pop actions


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """What is needed to create a customer. Phones are raw: the store normalizes them."""

    name: str = ""
    company: str = ""
    email: str = ""
    phones: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    notes: str = ""
    preferred_language: str = ""
    contact_time: str = ""  # free text as agreed with the customer, e.g. "weekdays 9-12"
    contact_channel: str = ""  # phone, sms, email, wechat...
    is_lead: bool = False


@dataclass(frozen=True, slots=True)
class CustomerCard:
    """The customer as a viewer may see it: phones masked and notes hidden per the privacy matrix."""

    id: int
    name: str
    company: str
    email: str
    phones: tuple[str, ...]
    accounts: tuple[str, ...]
    tags: tuple[str, ...]
    notes: str | None  # None: hidden for this viewer
    preferred_language: str
    contact_time: str
    contact_channel: str
    is_lead: bool
    grade: Grade | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FlagMark:
    flag: Flag
    reason: str
    set_at: datetime
    set_by: str


@dataclass(frozen=True, slots=True)
class GradeChange:
    customer_id: int
    old: Grade | None
    new: Grade
    at: datetime
    fast: bool  # jumped two levels in one run (A<->C)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The timing facts of one call, as the call model knows them when the call ends."""

    call_id: str
    caller: str  # raw caller number (inbound) or dialled number (outbound)
    started_at: datetime
    direction: Direction = Direction.INBOUND
    outcome: Outcome = Outcome.ANSWERED
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    queue: str = ""
    agent: str = ""
    wait_s: float = 0.0
    talk_s: float = 0.0
    hold_s: float = 0.0
    ivr_path: tuple[str, ...] = ()  # node names the caller went through
    recording_ref: str = ""
    customer_id: int | None = None  # None: identify by caller number


@dataclass(frozen=True, slots=True)
class InteractionRow:
    """One row of a call's history: the call itself when no agent took it, else one agent's part of it
    (`segment` 1, 2 ... after transfers; `call_id` is the root call id for segment 1 and
    `<root>/<segment>` after). Times are epoch seconds. Written by the journal's projection."""

    call_id: str
    root_call_id: str
    segment: int
    caller: str
    started_at: float
    outcome: str
    direction: str = "inbound"
    customer_id: int | None = None
    dialed: str = ""
    answered_at: float | None = None
    ended_at: float | None = None
    queue: str = ""
    agent: str = ""
    wait_s: float = 0.0
    talk_s: float = 0.0
    hold_s: float = 0.0
    wrapup_s: float = 0.0
    disposition: str = ""
    notes: str = ""
    ivr_path: str = "[]"  # JSON list
    recording_ref: str = ""
    survey_score: int | None = None
    hung_up_by: str = ""  # caller, agent, unknown; "" while the part is not over
    end_cause: int | None = None
    # 1: the end was not seen (link or server down, PBX restart). ended_at and call_ended_at are then the
    # earliest it can have been (last seen alive) and end_not_after the latest (first seen gone): times
    # computed from them never overstate a call.
    end_inferred: int = 0
    end_not_after: float | None = None
    call_ended_at: float | None = None  # the end of the whole call (the caller may stay on for a survey)
    transferred_to: str = ""
    queued_at: float | None = None  # when the caller entered the queue (this part's queue, for a transfer)


@dataclass(frozen=True, slots=True)
class FollowUpRequest:
    kind: FollowUpKind
    due_at: datetime
    owner: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class WrapUp:
    """What the agent saves at the end of a call. Stored in one transaction, durable when save returns."""

    call: CallFacts
    disposition: str
    notes: str = ""
    wrapup_s: float = 0.0
    follow_up: FollowUpRequest | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    id: int
    call_id: str
    customer_id: int | None
    direction: Direction
    outcome: Outcome
    caller: str  # masked for viewers without phone rights
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    queue: str
    agent: str
    wait_s: float
    talk_s: float
    hold_s: float
    wrapup_s: float
    disposition: str
    notes: str | None
    ivr_path: tuple[str, ...]
    recording_ref: str
    survey_score: int | None


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    customer_id: int
    category: str
    subject: str
    status: TicketStatus
    opened_at: datetime
    due_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class FollowUp:
    id: int
    customer_id: int
    kind: FollowUpKind
    owner: str
    due_at: datetime
    status: FollowUpStatus
    note: str
    source_call_id: str


@dataclass(frozen=True, slots=True)
class Purchase:
    id: int
    customer_id: int
    amount: Decimal
    purchased_on: date
    ref: str


class ChurnKind(StrEnum):
    ORDER_FREQUENCY_FALLING = "order_frequency_falling"
    ORDER_AMOUNT_FALLING = "order_amount_falling"
    REPEATED_COMPLAINTS = "repeated_complaints"
    LONG_OPEN_TICKET = "long_open_ticket"


@dataclass(frozen=True, slots=True)
class ChurnSignal:
    kind: ChurnKind
    detail: str


@dataclass(frozen=True, slots=True)
class ChurnEntry:
    customer_id: int
    name: str
    grade: Grade | None
    signals: tuple[ChurnSignal, ...]


@dataclass(frozen=True, slots=True)
class NextAction:
    kind: str  # stable key for the console (icons, sorting): flag, ticket, follow_up, grade, churn, lead, survey
    text: str  # what the agent reads, e.g. "complaint open 5 days"
    priority: int  # 1 = read first


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """Everything the agent sees before saying hello, built by one repository call."""

    caller: str | None  # E.164 of the caller if the number was readable (masked per viewer)
    customer: CustomerCard | None  # None: unknown caller
    flags: tuple[FlagMark, ...]  # shown plainly in every pop, whatever the viewer's role
    grade: Grade | None
    grade_change: GradeChange | None  # latest change within the pop's recent window
    interactions: tuple[Interaction, ...]  # newest first
    open_tickets: tuple[Ticket, ...]
    due_follow_ups: tuple[FollowUp, ...]
    churn: tuple[ChurnSignal, ...]
    actions: tuple[NextAction, ...]  # sorted by priority
    last_agent: str | None  # agent of the last answered call, for sticky routing


@dataclass(frozen=True, slots=True)
class GradingReport:
    period_start: date
    period_end: date
    graded: int
    counts: dict[Grade, int]
    changes: tuple[GradeChange, ...]

    @property
    def fast_moves(self) -> tuple[GradeChange, ...]:
        return tuple(c for c in self.changes if c.fast)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: str
    action: str  # view, create, update, wrapup, flag, grade, import, export, ...
    customer_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row: int  # 1-based data row (CSV: header is row 0; JSON: index in the list + 1)
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: rejected: {self.reason}"


@dataclass(frozen=True, slots=True)
class MergedRow:
    """A row that matched a stored customer (same phone or account) and was merged into it."""

    row: int
    customer_id: int
    name: str  # the customer's name after the merge
    kept: str  # what was kept, filled in, added or not taken from the file

    def __str__(self) -> str:
        return f"row {self.row}: merged into customer {self.customer_id} ({self.name!r}): {self.kept}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Totals are exact; the per-row details keep only the first rows of each kind (an import of a
    million rows must not hold a million details: ``import_file(on_row=...)`` sees every one)."""

    path: str
    encoding: str
    rows: int
    created: int
    merged: int  # rows that matched an existing customer (by phone or account) and were merged into it
    rejected_count: int
    rejected: tuple[RejectedRow, ...] = field(default=())
    merges: tuple[MergedRow, ...] = field(default=())

    @property
    def accepted(self) -> int:
        return self.created + self.merged

    @property
    def details_left_out(self) -> int:
        return self.merged + self.rejected_count - len(self.merges) - len(self.rejected)

    def summary(self) -> str:
        return (
            f"{self.path} ({self.encoding}): {self.rows} rows: {self.created} created, {self.merged} merged,"
            f" {self.rejected_count} rejected"
        )

    def __str__(self) -> str:
        details: list[RejectedRow | MergedRow] = [*self.rejected, *self.merges]
        lines = [str(d) for d in sorted(details, key=lambda d: d.row)]
        if self.details_left_out:
            lines.append(f"... and {self.details_left_out} more merged or rejected rows not listed")
        lines.append(self.summary())
        return "\n".join(lines)
