"""CRM work done in the consoles: customers and leads edited by agents, complaint tickets with their status
history, the follow-up worklist and what came of each follow-up call, the customer's file.

Every write is one plan, so one transaction: a refused edit (a phone of another customer, a ticket closed
twice) leaves nothing behind. Values are checked before the plan starts (validation.py, the rules imports
use); the plans only check what needs the database (does it exist, whose is it, is it closed already).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import queries as Q
from . import rows as R
from .errors import CrmConflict, CrmNotFound, CrmPermissionError
from .model import (
    COMPLAINT,
    CustomerCard,
    FlagMark,
    FollowUp,
    FollowUpKind,
    FollowUpRequest,
    FollowUpStatus,
    Grade,
    GradeChange,
    NewCustomer,
    Ticket,
    TicketStatus,
)
from .plan import Execute, Fetch, Plan
from .privacy import Right, Viewer
from .store import CrmStore
from .validation import InvalidField, customer_edit, text_field

FOLLOW_UP_DAYS = 3  # the post-service visit (3DC 回访) a closed complaint gets by default
DONE_SHOWN = 50  # follow-ups done today shown in a worklist, newest first


@dataclass(frozen=True, slots=True)
class TicketEvent:
    at: datetime
    actor: str
    status: TicketStatus
    note: str


@dataclass(frozen=True, slots=True)
class TicketFile:
    ticket: Ticket
    events: tuple[TicketEvent, ...]  # oldest first; tickets from before the history have none


@dataclass(frozen=True, slots=True)
class SurveyResult:
    call_id: str
    at: datetime
    score: int
    agent: str
    queue: str


@dataclass(frozen=True, slots=True)
class FollowUpItem:
    """A follow-up as the worklist shows it: with whom to call and what came of it."""

    follow_up: FollowUp
    customer_name: str
    phone: str  # the customer's first phone, "" when none
    grade: Grade | None
    done_at: datetime | None
    done_by: str
    result: str
    call_id: str  # the follow-up call that settled it


@dataclass(frozen=True, slots=True)
class Worklist:
    overdue: tuple[FollowUpItem, ...]  # open, due before today
    due_today: tuple[FollowUpItem, ...]  # open, due today
    done: tuple[FollowUpItem, ...]  # done today, newest first


@dataclass(frozen=True, slots=True)
class CustomerFile:
    """The customer's card as the console opens it from a search: everything on one screen."""

    card: CustomerCard
    flags: tuple[FlagMark, ...]
    grade_change: GradeChange | None  # the latest grading move
    tickets: tuple[TicketFile, ...]  # newest first
    follow_ups: tuple[FollowUpItem, ...]  # open ones, then the last done
    surveys: tuple[SurveyResult, ...]  # newest first


@dataclass(frozen=True, slots=True)
class FollowUpCall:
    """What an agent saves after calling a follow-up: the call's facts and whether it settled it."""

    follow_up_id: int
    call_id: str
    agent_id: str
    number: str  # E.164 dialled
    started_at: float
    answered_at: float | None
    ended_at: float | None
    reached: bool
    notes: str
    done: bool


# ------------------------------------------------------------------------------------------- reads

_FU_ITEM_COLS = (
    "f.id, f.customer_id, f.kind, f.owner, f.due_at, f.status, f.note, f.source_call_id,"
    " f.done_at, f.done_by, f.result, f.call_id, c.name, c.grade,"
    " (SELECT e164 FROM phones p WHERE p.customer_id = f.customer_id ORDER BY position, e164 LIMIT 1)"
)


def _item(r: R.Row) -> FollowUpItem:
    return FollowUpItem(R.follow_up(r[:8]), r[12], r[14] or "", Grade(r[13]) if r[13] else None,
                        R.dt_or_none(r[8]), r[9], r[10], r[11])


def _tickets(cid: int) -> Plan[tuple[TicketFile, ...]]:
    got = yield Fetch(f"SELECT {R.TICKET_COLS} FROM tickets WHERE customer_id = ? ORDER BY opened_at DESC, id DESC",
                      (cid,))
    out = []
    for r in got:
        ev = yield Fetch("SELECT at, actor, status, note FROM ticket_events WHERE ticket_id = ? ORDER BY at, id",
                         (r[0],))
        out.append(TicketFile(R.ticket(r), tuple(TicketEvent(R.dt(e[0]), e[1], TicketStatus(e[2]), e[3])
                                                   for e in ev)))
    return tuple(out)


def customer_file(cid: int, viewer: Viewer) -> Plan[CustomerFile | None]:
    card = yield from Q.load_card(cid, viewer)
    if card is None:
        return None
    flags = yield from Q.flags_of(cid)
    history = yield from Q.grade_history(cid)
    tickets = yield from _tickets(cid)
    fu = yield Fetch(
        f"SELECT {_FU_ITEM_COLS} FROM follow_ups f JOIN customers c ON c.id = f.customer_id"
        " WHERE f.customer_id = ? ORDER BY CASE WHEN f.status = 'open' THEN 0 ELSE 1 END, f.due_at DESC LIMIT 20",
        (cid,),
    )
    sv = yield Fetch(
        "SELECT call_id, started_at, survey_score, agent, queue FROM interactions"
        " WHERE customer_id = ? AND survey_score IS NOT NULL ORDER BY started_at DESC LIMIT 20",
        (cid,),
    )
    return CustomerFile(card, tuple(flags), history[-1] if history else None, tickets,
                        tuple(_item(r) for r in fu),
                        tuple(SurveyResult(r[0], R.dt(r[1]), int(r[2]), r[3], r[4]) for r in sv))


def worklist(owner: str, day_start: float, day_end: float) -> Plan[Worklist]:
    base = f"SELECT {_FU_ITEM_COLS} FROM follow_ups f JOIN customers c ON c.id = f.customer_id WHERE f.owner = ?"
    late = yield Fetch(base + " AND f.status = 'open' AND f.due_at < ? ORDER BY f.due_at LIMIT 500",
                       (owner, day_start))
    today = yield Fetch(base + " AND f.status = 'open' AND f.due_at >= ? AND f.due_at < ? ORDER BY f.due_at LIMIT 500",
                        (owner, day_start, day_end))
    done = yield Fetch(base + " AND f.status = 'done' AND f.done_at >= ? ORDER BY f.done_at DESC LIMIT ?",
                       (owner, day_start, DONE_SHOWN))
    return Worklist(tuple(map(_item, late)), tuple(map(_item, today)), tuple(map(_item, done)))


def follow_up_item(fid: int) -> Plan[FollowUpItem | None]:
    got = yield Fetch(f"SELECT {_FU_ITEM_COLS} FROM follow_ups f JOIN customers c ON c.id = f.customer_id"
                      " WHERE f.id = ?", (fid,))
    return _item(got[0]) if got else None


def ticket_owner(tid: int) -> Plan[int | None]:
    got = yield Fetch("SELECT customer_id FROM tickets WHERE id = ?", (tid,))
    return int(got[0][0]) if got else None


# ------------------------------------------------------------------------------------------ writes


def save_customer(cid: int | None, fields: Mapping[str, object], phones: tuple[str, ...], audit: Q.AuditRow,
                  phone_audit: Q.AuditRow, now: float) -> Plan[int]:
    """Create (cid None) or update a customer with new phones, in one transaction: a phone that belongs
    to someone else refuses the whole edit (CrmConflict)."""
    if cid is None:
        tags = fields.get("tags", [])
        new = NewCustomer(
            name=str(fields.get("name", "")), company=str(fields.get("company", "")),
            email=str(fields.get("email", "")), notes=str(fields.get("notes", "")),
            preferred_language=str(fields.get("preferred_language", "")),
            contact_time=str(fields.get("contact_time", "")), contact_channel=str(fields.get("contact_channel", "")),
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (), is_lead=bool(fields.get("is_lead")),
        )
        return (yield from Q.insert_customer(Q.CleanCustomer(new, phones), audit, now))
    if fields:
        yield from Q.update_customer(cid, fields, audit, now)
    else:
        yield from Q.require_customer(cid)
    if phones:
        yield from Q.add_phones(cid, phones, phone_audit)
    return cid


def _event(tid: int, actor: str, status: str, note: str, at: float) -> Execute:
    return Execute("INSERT INTO ticket_events (ticket_id, at, actor, status, note) VALUES (?, ?, ?, ?, ?)",
                   (tid, at, actor, status, note))


def open_ticket(cid: int, category: str, subject: str, due_at: float | None, actor: str, note: str,
                audit: Q.AuditRow, now: float) -> Plan[int]:
    tid = yield from Q.open_ticket(cid, category, subject, now, due_at, audit)
    yield _event(tid, actor, TicketStatus.OPEN.value, note, now)
    return tid


def set_ticket_status(tid: int, status: TicketStatus, actor: str, note: str, audit: Q.AuditRow, now: float,
                      follow_up: FollowUpRequest | None) -> Plan[int | None]:
    """Move a ticket on; a closed ticket is closed for good (CrmConflict, nothing written). Closing may
    schedule the post-service follow-up in the same transaction; returns its id."""
    got = yield Fetch("SELECT customer_id, status, closed_at FROM tickets WHERE id = ?", (tid,))
    if not got:
        raise CrmNotFound(f"ticket {tid} does not exist")
    cid, current, closed_at = got[0]
    if current == TicketStatus.CLOSED.value:
        when = R.dt(closed_at).strftime("%Y-%m-%d %H:%M UTC") if closed_at else "before"
        raise CrmConflict(f"ticket {tid} is already closed ({when}); open a new ticket instead")
    closing = status is TicketStatus.CLOSED
    yield Execute("UPDATE tickets SET status = ?, closed_at = ? WHERE id = ? AND status = ?",
                  (status.value, now if closing else None, tid, current))
    yield _event(tid, actor, status.value, note, now)
    yield Execute(Q.AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])
    if closing and follow_up is not None:
        return (yield from Q.insert_follow_up(cid, follow_up, f"ticket:{tid}", now))
    return None


def close_follow_up(fid: int, owner: str, status: FollowUpStatus, actor: str, result: str, audit: Q.AuditRow,
                    now: float) -> Plan[None]:
    """A follow-up settled without a call of ours (a visit made, a customer who called in): the owner's
    own, once (CrmConflict when it is not open any more, nothing written)."""
    got = yield Fetch("SELECT customer_id, owner, status FROM follow_ups WHERE id = ?", (fid,))
    if not got:
        raise CrmNotFound(f"follow-up {fid} does not exist")
    cid, has_owner, current = got[0]
    if has_owner != owner:
        raise CrmPermissionError(f"follow-up {fid} is on another agent's worklist")
    if current != FollowUpStatus.OPEN.value:
        raise CrmConflict(f"follow-up {fid} is already {current}")
    yield Execute("UPDATE follow_ups SET status = ?, done_at = ?, done_by = ?, result = ? WHERE id = ? AND status = 'open'",
                  (status.value, now, actor, result, fid))
    yield Execute(Q.AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])


def save_follow_up_call(c: FollowUpCall, audit: Q.AuditRow) -> Plan[None]:
    """The follow-up call's row in the history (an outbound call of the agent, its notes) and, when it
    settled the follow-up, the follow-up done. Written in the journal's batch with the fact it comes from:
    it never raises for a follow-up changed since (the fact is journaled whatever the CRM holds)."""
    got = yield Fetch("SELECT customer_id, kind, status FROM follow_ups WHERE id = ?", (c.follow_up_id,))
    cid = int(got[0][0]) if got else None
    kind = got[0][1] if got else "callback"
    yield Execute(
        "INSERT INTO interactions (call_id, root_call_id, customer_id, direction, outcome, caller, started_at,"
        " answered_at, ended_at, call_ended_at, agent, talk_s, disposition, notes, hung_up_by)"
        " VALUES (?, ?, ?, 'outbound', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')"
        " ON CONFLICT (call_id) DO UPDATE SET outcome = excluded.outcome, answered_at = excluded.answered_at,"
        " ended_at = excluded.ended_at, call_ended_at = excluded.call_ended_at, talk_s = excluded.talk_s,"
        " disposition = excluded.disposition, notes = excluded.notes",
        (c.call_id, c.call_id, cid, "answered" if c.reached else "no_answer", c.number, c.started_at,
         c.answered_at, c.ended_at, c.ended_at, c.agent_id,
         max(0.0, (c.ended_at or c.started_at) - c.answered_at) if c.answered_at is not None else 0.0,
         f"follow_up:{kind}", c.notes),
    )
    result = ("reached" if c.reached else "not reached") + (f": {c.notes}" if c.notes else "")
    if c.done and got and got[0][2] == FollowUpStatus.OPEN.value:
        yield Execute("UPDATE follow_ups SET status = 'done', done_at = ?, done_by = ?, result = ?, call_id = ?"
                      " WHERE id = ? AND status = 'open'",
                      (c.ended_at or c.started_at, c.agent_id, result, c.call_id, c.follow_up_id))
    elif got:
        yield Execute("UPDATE follow_ups SET result = ?, call_id = ? WHERE id = ?", (result, c.call_id, c.follow_up_id))
    yield Execute(Q.AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])


# ---------------------------------------------------------------------------------------- the service


class CrmWork:
    """The console's CRM operations over a store: rights checked, values checked, one transaction each."""

    def __init__(self, store: CrmStore) -> None:
        self.store = store

    async def customer_file(self, customer_id: int, viewer: Viewer) -> CustomerFile:
        got = await self.store.read_plan(customer_file(customer_id, viewer))
        if got is None:
            raise CrmNotFound(f"customer {customer_id} does not exist")
        self.store._note_view(viewer, "view", customer_id, "customer file")
        return got

    async def search(self, query: str, viewer: Viewer, limit: int) -> list[tuple[CustomerCard, tuple[FlagMark, ...]]]:
        """Search results with each customer's flags: a blacklisted customer shows as such in the list."""
        cards = await self.store.search(query, viewer, limit=limit)
        flags = await self.store.read_plan(_flags_of_many([c.id for c in cards]))
        return [(c, flags.get(c.id, ())) for c in cards]

    async def save_customer(self, customer_id: int | None, raw: Mapping[str, object], viewer: Viewer) -> int:
        """Create or edit a customer or lead from what a person typed: InvalidField (bad phone, e-mail,
        control character), CrmConflict (a phone of another customer), CrmNotFound; nothing is written then."""
        viewer.require(Right.WRITE_CONTACT)
        edit = customer_edit(raw, self.store.default_country, creating=customer_id is None)
        what = "lead" if edit.fields.get("is_lead") else "customer"
        detail = f"{what}: " + ", ".join(sorted([*edit.fields, *(["phones"] if edit.phones else [])]))
        audit = Q.audit_row(viewer, "create" if customer_id is None else "update", customer_id, detail)
        phone_audit = Q.audit_row(viewer, "update", customer_id, f"phone added: {len(edit.phones)}")
        return await self.store.write_plan(
            save_customer(customer_id, edit.fields, edit.phones, audit, phone_audit, time.time()))

    async def open_ticket(self, customer_id: int, subject: str, viewer: Viewer, *, category: str = COMPLAINT,
                          due_at: datetime | None = None, note: str = "") -> int:
        viewer.require(Right.WRITE_CONTACT)
        subject = text_field("subject", subject, multiline=True)
        category = text_field("category", category)
        note = text_field("note", note, multiline=True, limit="notes")
        if not subject:
            raise InvalidField("subject", "say what the ticket is about")
        audit = Q.audit_row(viewer, "ticket", customer_id, f"opened {category}: {subject[:80]}")
        return await self.store.write_plan(
            open_ticket(customer_id, category or COMPLAINT, subject, R.ts_or_none(due_at), viewer.user, note, audit,
                        time.time()))

    async def set_ticket_status(self, ticket_id: int, status: TicketStatus, viewer: Viewer, *, note: str = "",
                                follow_up_owner: str = "", follow_up_days: int | None = None) -> int | None:
        """Returns the id of the follow-up scheduled with the closing, if one was asked for."""
        viewer.require(Right.WRITE_CONTACT)
        note = text_field("note", note, multiline=True, limit="notes")
        follow = None
        now = time.time()
        if status is TicketStatus.CLOSED and follow_up_days is not None and follow_up_owner:
            follow = FollowUpRequest(FollowUpKind.VISIT, R.dt(now) + timedelta(days=follow_up_days),
                                     follow_up_owner, f"post-service visit after ticket {ticket_id}")
        audit = Q.audit_row(viewer, "ticket", None, f"ticket {ticket_id} -> {status.value}")
        return await self.store.write_plan(
            set_ticket_status(ticket_id, status, viewer.user, note, audit, now, follow))

    async def schedule_follow_up(self, customer_id: int, kind: FollowUpKind, due_at: datetime, owner: str,
                                 viewer: Viewer, note: str = "") -> int:
        note = text_field("note", note, multiline=True, limit="notes")
        return await self.store.add_follow_up(customer_id, FollowUpRequest(kind, due_at, owner, note), viewer)

    async def close_follow_up(self, follow_up_id: int, owner: str, status: FollowUpStatus, viewer: Viewer,
                              notes: str = "") -> None:
        """Done (or cancelled) without a call: the owner's own follow-up, open, once."""
        viewer.require(Right.WRITE_CONTACT)
        if status is FollowUpStatus.OPEN:
            raise InvalidField("status", "done or cancelled")
        notes = text_field("notes", notes, multiline=True)
        audit = Q.audit_row(viewer, "follow_up", None, f"follow-up {follow_up_id} -> {status.value}")
        await self.store.write_plan(close_follow_up(follow_up_id, owner, status, owner, notes, audit, time.time()))

    async def worklist(self, owner: str, day_start: float, day_end: float) -> Worklist:
        return await self.store.read_plan(worklist(owner, day_start, day_end))

    async def follow_up(self, follow_up_id: int) -> FollowUpItem:
        got = await self.store.read_plan(follow_up_item(follow_up_id))
        if got is None:
            raise CrmNotFound(f"follow-up {follow_up_id} does not exist")
        return got

    async def ticket_customer(self, ticket_id: int) -> int:
        got = await self.store.read_plan(ticket_owner(ticket_id))
        if got is None:
            raise CrmNotFound(f"ticket {ticket_id} does not exist")
        return got


def _flags_of_many(ids: list[int]) -> Plan[dict[int, tuple[FlagMark, ...]]]:
    out: dict[int, tuple[FlagMark, ...]] = {}
    for cid in ids:
        out[cid] = tuple((yield from Q.flags_of(cid)))
    return out
