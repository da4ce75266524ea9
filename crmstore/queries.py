"""The repository's plans (see plan.py): SQL and the order of reads/writes, no I/O."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import cast

from . import rows as R
from .errors import CrmConflict, CrmNotFound
from .grading import abc_grades, is_fast_move
from .model import (
    COMPLAINT,
    CallFacts,
    ChurnEntry,
    CustomerCard,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpRequest,
    Grade,
    GradeChange,
    GradingReport,
    Interaction,
    InteractionRow,
    NewCustomer,
    Outcome,
    ScreenPop,
    Ticket,
    WrapUp,
)
from .plan import Execute, ExecuteMany, Fetch, Plan
from .privacy import Right, Viewer
from .signals import ChurnFacts, ChurnRules, churn_signals, next_actions

AuditRow = tuple[float, str, str, str, int | None, str]
AUDIT_INSERT = (
    "INSERT INTO audit_log (at, actor, role, action, customer_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)


def audit_row(viewer: Viewer, action: str, customer_id: int | None, detail: str = "") -> AuditRow:
    return (time.time(), viewer.user, viewer.role.value, action, customer_id, detail)


@dataclass(frozen=True, slots=True)
class Identity:
    """What routing needs to know about a caller; no phone numbers or notes, so no privacy check."""

    customer_id: int
    name: str
    grade: Grade | None
    flags: frozenset[Flag]
    is_lead: bool

    @property
    def vip(self) -> bool:
        return Flag.VIP in self.flags


# ------------------------------------------------------------------------------------------- lookups


def customer_id_by_phone(e164: str) -> Plan[int | None]:
    rows = yield Fetch("SELECT customer_id FROM phones WHERE e164 = ?", (e164,))
    return rows[0][0] if rows else None


def customer_id_by_account(account: str) -> Plan[int | None]:
    rows = yield Fetch("SELECT customer_id FROM accounts WHERE account = ?", (account,))
    return rows[0][0] if rows else None


def identity(key: str, value: str) -> Plan[Identity | None]:
    if key == "phone":
        cid = yield from customer_id_by_phone(value)
    else:
        cid = yield from customer_id_by_account(value)
    if cid is None:
        return None
    c = yield Fetch("SELECT name, grade, is_lead FROM customers WHERE id = ?", (cid,))
    f = yield Fetch("SELECT flag FROM customer_flags WHERE customer_id = ?", (cid,))
    return Identity(
        cid, c[0][0], Grade(c[0][1]) if c[0][1] else None, frozenset(Flag(r[0]) for r in f), bool(c[0][2])
    )


def load_card(cid: int, viewer: Viewer) -> Plan[CustomerCard | None]:
    c = yield Fetch(f"SELECT {R.CUSTOMER_COLS} FROM customers WHERE id = ?", (cid,))
    if not c:
        return None
    ph = yield Fetch("SELECT e164 FROM phones WHERE customer_id = ? ORDER BY position, e164", (cid,))
    ac = yield Fetch("SELECT account FROM accounts WHERE customer_id = ? ORDER BY account", (cid,))
    return R.card(
        c[0],
        [r[0] for r in ph],
        [r[0] for r in ac],
        see_phones=viewer.may(Right.SEE_PHONES),
        see_notes=viewer.may(Right.SEE_NOTES),
    )


def _prefix_range(q: str) -> tuple[str, str]:
    return q, q + "\U0010ffff"


def _like_escape(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(query: str, e164: str | None, viewer: Viewer, limit: int) -> Plan[list[CustomerCard]]:
    """Prefix matches on name and company use the indexes; only if they do not fill ``limit`` do we fall
    back to a bounded substring scan (so '伟' still finds '张伟', at the cost of a scan)."""
    q = R.search_key(query)
    ids: list[int] = []
    if e164 is not None:
        found = yield from customer_id_by_phone(e164)
        if found is not None:
            ids.append(found)
    if q:
        lo, hi = _prefix_range(q)
        for col in ("name_key", "company_key"):
            if len(ids) >= limit:
                break
            got = yield Fetch(
                f"SELECT id FROM customers WHERE {col} >= ? AND {col} < ? ORDER BY {col}, id LIMIT ?",
                (lo, hi, limit),
            )
            ids.extend(r[0] for r in got if r[0] not in ids)
        if len(ids) < limit:
            pattern = f"%{_like_escape(q)}%"
            got = yield Fetch(
                "SELECT id FROM customers WHERE name_key LIKE ? ESCAPE '\\' OR company_key LIKE ? ESCAPE '\\'"
                " ORDER BY id LIMIT ?",
                (pattern, pattern, limit * 2),
            )
            ids.extend(r[0] for r in got if r[0] not in ids)
    cards = []
    for cid in ids[:limit]:
        card = yield from load_card(cid, viewer)
        if card is not None:
            cards.append(card)
    return cards


# ---------------------------------------------------------------------------------------- screen pop


@dataclass(frozen=True, slots=True)
class PopSettings:
    interactions: int = 5
    follow_up_horizon: timedelta = timedelta(days=1)  # follow-ups due before now + horizon are shown
    grade_change_window: timedelta = timedelta(days=30)
    churn: ChurnRules = field(default_factory=ChurnRules)


def churn_facts(
    cid: int, now: datetime, rules: ChurnRules, open_tickets: Sequence[Ticket]
) -> Plan[ChurnFacts]:
    today = now.date()
    recent = (today - timedelta(days=rules.window_days)).isoformat()
    prior = (today - timedelta(days=2 * rules.window_days)).isoformat()
    p = yield Fetch(
        "SELECT"
        " CAST(COALESCE(SUM(CASE WHEN purchased_on >= ? THEN 1 ELSE 0 END), 0) AS BIGINT),"
        " CAST(COALESCE(SUM(CASE WHEN purchased_on < ? THEN 1 ELSE 0 END), 0) AS BIGINT),"
        " CAST(COALESCE(SUM(CASE WHEN purchased_on >= ? THEN amount_cents ELSE 0 END), 0) AS BIGINT),"
        " CAST(COALESCE(SUM(CASE WHEN purchased_on < ? THEN amount_cents ELSE 0 END), 0) AS BIGINT)"
        " FROM purchases WHERE customer_id = ? AND purchased_on >= ?",
        (recent, recent, recent, recent, cid, prior),
    )
    since = R.ts(now - timedelta(days=rules.window_days))
    k = yield Fetch(
        "SELECT COUNT(*) FROM tickets WHERE customer_id = ? AND category = ? AND opened_at >= ?",
        (cid, COMPLAINT, since),
    )
    ages = tuple((now - t.opened_at).total_seconds() / 86400 for t in open_tickets)
    return ChurnFacts(p[0][0], p[0][1], p[0][2], p[0][3], k[0][0], ages)


def last_agent(cid: int | None, e164: str | None) -> Plan[str | None]:
    # `outcome || ''` keeps SQLite off the (outcome, started_at) index: without statistics it took that one
    # for the ORDER BY and walked every answered call of the history to find this caller's (a new caller's pop
    # read the whole table; the soak's server CPU grew with the day). The customer's or caller's own index
    # reads a handful of rows. PostgreSQL, with statistics, plans the same either way.
    if cid is not None:
        got = yield Fetch(
            "SELECT agent FROM interactions WHERE customer_id = ? AND outcome || '' = ? AND agent <> ''"
            " ORDER BY started_at DESC LIMIT 1",
            (cid, Outcome.ANSWERED.value),
        )
        if got:
            return str(got[0][0])
    if e164 is not None:
        got = yield Fetch(
            "SELECT agent FROM interactions WHERE caller = ? AND outcome || '' = ? AND agent <> ''"
            " ORDER BY started_at DESC LIMIT 1",
            (e164, Outcome.ANSWERED.value),
        )
        if got:
            return str(got[0][0])
    return None


def screen_pop(
    *,
    phone_e164: str | None,
    caller_readable: bool,
    customer_id: int | None,
    account: str | None,
    viewer: Viewer,
    now: datetime,
    settings: PopSettings,
) -> Plan[ScreenPop]:
    see_phones = viewer.may(Right.SEE_PHONES)
    see_notes = viewer.may(Right.SEE_NOTES)
    cid = customer_id
    if cid is None and phone_e164 is not None:
        cid = yield from customer_id_by_phone(phone_e164)
    if cid is None and account is not None:
        cid = yield from customer_id_by_account(account)
    card = None if cid is None else (yield from load_card(cid, viewer))
    shown_caller = None if phone_e164 is None else (phone_e164 if see_phones else R.mask_phone(phone_e164))
    if card is None:
        agent = yield from last_agent(None, phone_e164)
        actions = next_actions(now=now, known=False, caller_readable=caller_readable)
        return ScreenPop(shown_caller, None, (), None, None, (), (), (), (), actions, agent)
    cid = card.id
    f = yield Fetch(f"SELECT {R.FLAG_COLS} FROM customer_flags WHERE customer_id = ? ORDER BY flag", (cid,))
    flags = tuple(R.flag_mark(r) for r in f)
    g = yield Fetch(
        "SELECT old_grade, new_grade, changed_at, fast FROM grade_history WHERE customer_id = ?"
        " ORDER BY changed_at DESC LIMIT 1",
        (cid,),
    )
    change = None
    if g and R.dt(g[0][2]) >= now - settings.grade_change_window:
        change = GradeChange(
            cid, Grade(g[0][0]) if g[0][0] else None, Grade(g[0][1]), R.dt(g[0][2]), bool(g[0][3])
        )
    it = yield Fetch(
        f"SELECT {R.INTERACTION_COLS} FROM interactions WHERE customer_id = ? ORDER BY started_at DESC LIMIT ?",
        (cid, settings.interactions),
    )
    interactions = tuple(R.interaction(r, see_phones=see_phones, see_notes=see_notes) for r in it)
    t = yield Fetch(
        f"SELECT {R.TICKET_COLS} FROM tickets WHERE customer_id = ? AND status IN ('open', 'pending')"
        " ORDER BY opened_at",
        (cid,),
    )
    tickets = tuple(R.ticket(r) for r in t)
    fu = yield Fetch(
        f"SELECT {R.FOLLOW_UP_COLS} FROM follow_ups WHERE customer_id = ? AND status = 'open' AND due_at <= ?"
        " ORDER BY due_at",
        (cid, R.ts(now + settings.follow_up_horizon)),
    )
    follow_ups = tuple(R.follow_up(r) for r in fu)
    facts = yield from churn_facts(cid, now, settings.churn, tickets)
    churn = churn_signals(facts, settings.churn)
    agent = next((i.agent for i in interactions if i.outcome is Outcome.ANSWERED and i.agent), None)
    if agent is None:
        agent = yield from last_agent(cid, phone_e164)
    survey = next((i.survey_score for i in interactions if i.survey_score is not None), None)
    actions = next_actions(
        now=now,
        known=True,
        caller_readable=True,
        flags=flags,
        grade_change=change,
        open_tickets=tickets,
        due_follow_ups=follow_ups,
        churn=churn,
        last_survey_score=survey,
    )
    return ScreenPop(
        shown_caller,
        card,
        flags,
        card.grade,
        change,
        interactions,
        tickets,
        follow_ups,
        churn,
        actions,
        agent,
    )


# ------------------------------------------------------------------------------------------- writes


@dataclass(frozen=True, slots=True)
class CleanCustomer:
    """A NewCustomer whose phones are already E.164 (normalization happens before the plan)."""

    data: NewCustomer
    phones: tuple[str, ...]


def _check_phones_free(phones: Sequence[str], owner: int | None) -> Plan[None]:
    for p in phones:
        got = yield Fetch("SELECT customer_id FROM phones WHERE e164 = ?", (p,))
        if got and got[0][0] != owner:
            raise CrmConflict(f"phone {p} already belongs to customer {got[0][0]}")


def _check_accounts_free(accounts: Sequence[str], owner: int | None) -> Plan[None]:
    for a in accounts:
        got = yield Fetch("SELECT customer_id FROM accounts WHERE account = ?", (a,))
        if got and got[0][0] != owner:
            raise CrmConflict(f"account {a} already belongs to customer {got[0][0]}")


def insert_customer(c: CleanCustomer, audit: AuditRow | None, now: float) -> Plan[int]:
    d = c.data
    yield from _check_phones_free(c.phones, None)
    yield from _check_accounts_free(d.accounts, None)
    got = yield Fetch(
        "INSERT INTO customers (name, company, name_key, company_key, email, tags, notes, preferred_language,"
        " contact_time, contact_channel, is_lead, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            d.name,
            d.company,
            R.search_key(d.name),
            R.search_key(d.company),
            d.email,
            R.tags_text(d.tags),
            d.notes,
            d.preferred_language,
            d.contact_time,
            d.contact_channel,
            int(d.is_lead),
            now,
            now,
        ),
    )
    cid: int = got[0][0]
    yield ExecuteMany(
        "INSERT INTO phones (e164, customer_id, position) VALUES (?, ?, ?)",
        [(p, cid, i) for i, p in enumerate(c.phones)],
    )
    yield ExecuteMany(
        "INSERT INTO accounts (account, customer_id) VALUES (?, ?)", [(a, cid) for a in d.accounts]
    )
    if audit is not None:
        yield Execute(AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])
    return cid


_UPDATABLE = ("name", "company", "email", "notes", "preferred_language", "contact_time", "contact_channel")


def update_customer(cid: int, changes: Mapping[str, object], audit: AuditRow, now: float) -> Plan[None]:
    sets: list[str] = []
    args: list[object] = []
    for key, value in changes.items():
        if key == "tags":
            sets.append("tags = ?")
            args.append(R.tags_text([str(t) for t in cast(Sequence[object], value)]))
        elif key == "is_lead":
            sets.append("is_lead = ?")
            args.append(int(bool(value)))
        elif key in _UPDATABLE:
            sets.append(f"{key} = ?")
            args.append(str(value))
            if key in ("name", "company"):
                sets.append(f"{key}_key = ?")
                args.append(R.search_key(str(value)))
        else:
            raise ValueError(
                f"customer field {key!r} cannot be updated (use phones/accounts/flags operations)"
            )
    sets.append("updated_at = ?")
    args.append(now)
    n = yield Execute(f"UPDATE customers SET {', '.join(sets)} WHERE id = ?", (*args, cid))
    if n == 0:
        raise CrmNotFound(f"customer {cid} does not exist")
    yield Execute(AUDIT_INSERT, audit)


def add_phones(cid: int, phones: Sequence[str], audit: AuditRow) -> Plan[None]:
    yield from require_customer(cid)
    yield from _check_phones_free(phones, cid)
    pos = yield Fetch("SELECT COALESCE(MAX(position), -1) FROM phones WHERE customer_id = ?", (cid,))
    start = pos[0][0] + 1
    yield ExecuteMany(
        "INSERT INTO phones (e164, customer_id, position) VALUES (?, ?, ?) ON CONFLICT (e164) DO NOTHING",
        [(p, cid, start + i) for i, p in enumerate(phones)],
    )
    yield Execute(AUDIT_INSERT, audit)


def add_accounts(cid: int, accounts: Sequence[str], audit: AuditRow) -> Plan[None]:
    yield from require_customer(cid)
    yield from _check_accounts_free(accounts, cid)
    yield ExecuteMany(
        "INSERT INTO accounts (account, customer_id) VALUES (?, ?) ON CONFLICT (account) DO NOTHING",
        [(a, cid) for a in accounts],
    )
    yield Execute(AUDIT_INSERT, audit)


def require_customer(cid: int) -> Plan[None]:
    got = yield Fetch("SELECT 1 FROM customers WHERE id = ?", (cid,))
    if not got:
        raise CrmNotFound(f"customer {cid} does not exist")


def set_flag(cid: int, flag: Flag, reason: str, viewer: Viewer, audit: AuditRow) -> Plan[None]:
    yield from require_customer(cid)
    yield Execute(
        "INSERT INTO customer_flags (customer_id, flag, reason, set_at, set_by) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (customer_id, flag) DO UPDATE SET reason = excluded.reason, set_at = excluded.set_at,"
        " set_by = excluded.set_by",
        (cid, flag.value, reason, time.time(), viewer.user),
    )
    yield Execute(AUDIT_INSERT, audit)


DNC_REASON_MAX = 200


def add_do_not_call(number: str, reason: str, source: str, now: float, audit: AuditRow) -> Plan[bool]:
    """False when the number was already listed (its first reason stays). One list for every kind of
    outbound call: campaigns, callbacks, click-to-call."""
    got = yield Fetch("SELECT 1 FROM do_not_call WHERE number = ?", (number,))
    if got:
        return False
    yield Execute("INSERT INTO do_not_call (number, added_at, reason, source) VALUES (?, ?, ?, ?)",
                  (number, now, reason[:DNC_REASON_MAX], source))
    yield Execute(AUDIT_INSERT, audit)
    return True


def remove_do_not_call(number: str, audit: AuditRow) -> Plan[bool]:
    n = yield Execute("DELETE FROM do_not_call WHERE number = ?", (number,))
    if n:
        yield Execute(AUDIT_INSERT, audit)
    return bool(n)


def do_not_call_entry(number: str) -> Plan[tuple[float, str, str] | None]:
    got = yield Fetch("SELECT added_at, reason, source FROM do_not_call WHERE number = ?", (number,))
    return (got[0][0], got[0][1], got[0][2]) if got else None


def clear_flag(cid: int, flag: Flag, audit: AuditRow) -> Plan[bool]:
    n = yield Execute("DELETE FROM customer_flags WHERE customer_id = ? AND flag = ?", (cid, flag.value))
    yield Execute(AUDIT_INSERT, audit)
    return bool(n)


_INTERACTION_INSERT = (
    "INSERT INTO interactions (call_id, customer_id, direction, outcome, caller, started_at, answered_at,"
    " ended_at, queue, agent, wait_s, talk_s, hold_s, ivr_path, recording_ref, disposition, notes, wrapup_s)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TIMING_UPDATE = (
    " customer_id = COALESCE(excluded.customer_id, interactions.customer_id), direction = excluded.direction,"
    " outcome = excluded.outcome, caller = excluded.caller, started_at = excluded.started_at,"
    " answered_at = excluded.answered_at, ended_at = excluded.ended_at, queue = excluded.queue,"
    " agent = excluded.agent, wait_s = excluded.wait_s, talk_s = excluded.talk_s, hold_s = excluded.hold_s,"
    " ivr_path = excluded.ivr_path, recording_ref = excluded.recording_ref"
)


def _interaction_args(
    call: CallFacts, caller: str, cid: int | None, disposition: str, notes: str, wrapup_s: float
):
    return (
        call.call_id,
        cid,
        call.direction.value,
        call.outcome.value,
        caller,
        R.ts(call.started_at),
        R.ts_or_none(call.answered_at),
        R.ts_or_none(call.ended_at),
        call.queue,
        call.agent,
        float(call.wait_s),
        float(call.talk_s),
        float(call.hold_s),
        json.dumps(list(call.ivr_path), ensure_ascii=False),
        call.recording_ref,
        disposition,
        notes,
        float(wrapup_s),
    )


def _resolve_caller(call: CallFacts, e164: str | None) -> Plan[int | None]:
    if call.customer_id is not None:
        yield from require_customer(call.customer_id)
        return call.customer_id
    if e164 is None:
        return None
    return (yield from customer_id_by_phone(e164))


def log_interaction(call: CallFacts, e164: str | None, audit: AuditRow) -> Plan[int]:
    """Insert or refresh a call's timing facts; an existing wrap-up (disposition, notes) is kept."""
    cid = yield from _resolve_caller(call, e164)
    got = yield Fetch(
        _INTERACTION_INSERT + " ON CONFLICT (call_id) DO UPDATE SET" + _TIMING_UPDATE + " RETURNING id",
        _interaction_args(call, e164 or call.caller, cid, "", "", 0.0),
    )
    yield Execute(AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])
    return int(got[0][0])


def save_wrapup(w: WrapUp, e164: str | None, audit: AuditRow, now: float) -> Plan[tuple[int, int | None]]:
    """Interaction (upsert by call id, so a retried save never doubles) + follow-up + audit, one transaction.
    A follow-up for an unknown caller creates a lead: a follow-up needs somebody to follow up."""
    cid = yield from _resolve_caller(w.call, e164)
    if cid is None and w.follow_up is not None:
        lead = CleanCustomer(NewCustomer(is_lead=True), (e164,) if e164 else ())
        cid = yield from insert_customer(lead, None, now)
    got = yield Fetch(
        _INTERACTION_INSERT
        + " ON CONFLICT (call_id) DO UPDATE SET"
        + _TIMING_UPDATE
        + ", disposition = excluded.disposition, notes = excluded.notes, wrapup_s = excluded.wrapup_s RETURNING id",
        _interaction_args(w.call, e164 or w.call.caller, cid, w.disposition, w.notes, w.wrapup_s),
    )
    follow_up_id = None
    if w.follow_up is not None and cid is not None:
        follow_up_id = yield from insert_follow_up(cid, w.follow_up, w.call.call_id, now)
    yield Execute(AUDIT_INSERT, audit[:4] + (cid,) + audit[5:])
    return int(got[0][0]), follow_up_id


def insert_follow_up(cid: int, f: FollowUpRequest, source_call_id: str, now: float) -> Plan[int]:
    got = yield Fetch(
        "INSERT INTO follow_ups (customer_id, kind, owner, due_at, status, note, source_call_id, created_at)"
        " VALUES (?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
        (cid, f.kind.value, f.owner, R.ts(f.due_at), f.note, source_call_id, now),
    )
    return int(got[0][0])


def add_follow_up(cid: int, f: FollowUpRequest, audit: AuditRow, now: float) -> Plan[int]:
    yield from require_customer(cid)
    fid = yield from insert_follow_up(cid, f, "", now)
    yield Execute(AUDIT_INSERT, audit)
    return fid


def set_follow_up_status(fid: int, status: str, audit: AuditRow) -> Plan[None]:
    got = yield Fetch("UPDATE follow_ups SET status = ? WHERE id = ? RETURNING customer_id", (status, fid))
    if not got:
        raise CrmNotFound(f"follow-up {fid} does not exist")
    yield Execute(AUDIT_INSERT, audit[:4] + (got[0][0],) + audit[5:])


def save_survey(call_id: str, score: int, audit: AuditRow) -> Plan[None]:
    got = yield Fetch(
        "UPDATE interactions SET survey_score = ? WHERE call_id = ? RETURNING customer_id", (score, call_id)
    )
    if not got:
        raise CrmNotFound(f"call {call_id!r} is not in the CRM: log it before its survey")
    yield Execute(AUDIT_INSERT, audit[:4] + (got[0][0],) + audit[5:])


def add_purchase(cid: int, amount_cents: int, on: date, ref: str, audit: AuditRow) -> Plan[int]:
    yield from require_customer(cid)
    got = yield Fetch(
        "INSERT INTO purchases (customer_id, amount_cents, purchased_on, ref) VALUES (?, ?, ?, ?) RETURNING id",
        (cid, amount_cents, on.isoformat(), ref),
    )
    yield Execute(AUDIT_INSERT, audit)
    return int(got[0][0])


def open_ticket(
    cid: int, category: str, subject: str, opened_at: float, due_at: float | None, audit: AuditRow
) -> Plan[int]:
    yield from require_customer(cid)
    got = yield Fetch(
        "INSERT INTO tickets (customer_id, category, subject, status, opened_at, due_at) VALUES (?, ?, ?, 'open', ?, ?)"
        " RETURNING id",
        (cid, category, subject, opened_at, due_at),
    )
    yield Execute(AUDIT_INSERT, audit)
    return int(got[0][0])


def set_ticket_status(tid: int, status: str, closed_at: float | None, audit: AuditRow) -> Plan[None]:
    got = yield Fetch(
        "UPDATE tickets SET status = ?, closed_at = ? WHERE id = ? RETURNING customer_id",
        (status, closed_at, tid),
    )
    if not got:
        raise CrmNotFound(f"ticket {tid} does not exist")
    yield Execute(AUDIT_INSERT, audit[:4] + (got[0][0],) + audit[5:])


def add_user(name: str, role: str, display_name: str, audit: AuditRow) -> Plan[None]:
    yield Execute(
        "INSERT INTO users (name, role, display_name, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET role = excluded.role, display_name = excluded.display_name",
        (name, role, display_name, time.time()),
    )
    yield Execute(AUDIT_INSERT, audit)


def get_user(name: str) -> Plan[tuple[str, str] | None]:
    got = yield Fetch("SELECT name, role FROM users WHERE name = ?", (name,))
    return (got[0][0], got[0][1]) if got else None


def write_audit(entries: Sequence[AuditRow]) -> Plan[None]:
    yield ExecuteMany(AUDIT_INSERT, list(entries))


# ----------------------------------------------------------------------------------- grading, churn


def run_grading(period_start: date, period_end: date, audit: AuditRow, now: float) -> Plan[GradingReport]:
    """Revenue in [period_start, period_end), grades for every customer, history row per change."""
    rev = yield Fetch(
        "SELECT customer_id, CAST(SUM(amount_cents) AS BIGINT) FROM purchases"
        " WHERE purchased_on >= ? AND purchased_on < ? GROUP BY customer_id",
        (period_start.isoformat(), period_end.isoformat()),
    )
    revenue = {r[0]: r[1] for r in rev}
    current = yield Fetch("SELECT id, grade FROM customers")
    old = {r[0]: (Grade(r[1]) if r[1] else None) for r in current}
    grades = abc_grades({cid: revenue.get(cid, 0) for cid in old})
    changes = []
    for cid, new in grades.items():
        if old[cid] != new:
            changes.append(GradeChange(cid, old[cid], new, R.dt(now), is_fast_move(old[cid], new)))
    yield ExecuteMany(
        "UPDATE customers SET grade = ? WHERE id = ?", [(c.new.value, c.customer_id) for c in changes]
    )
    yield ExecuteMany(
        "INSERT INTO grade_history (customer_id, old_grade, new_grade, revenue_cents, period_start, period_end,"
        " changed_at, fast) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                c.customer_id,
                c.old.value if c.old else None,
                c.new.value,
                revenue.get(c.customer_id, 0),
                period_start.isoformat(),
                period_end.isoformat(),
                now,
                int(c.fast),
            )
            for c in changes
        ],
    )
    yield Execute(AUDIT_INSERT, audit)
    counts = {g: 0 for g in Grade}
    for g in grades.values():
        counts[g] += 1
    return GradingReport(period_start, period_end, len(grades), counts, tuple(changes))


def grade_history(cid: int) -> Plan[list[GradeChange]]:
    got = yield Fetch(
        "SELECT old_grade, new_grade, changed_at, fast FROM grade_history WHERE customer_id = ? ORDER BY changed_at, id",
        (cid,),
    )
    return [GradeChange(cid, Grade(r[0]) if r[0] else None, Grade(r[1]), R.dt(r[2]), bool(r[3])) for r in got]


def churn_list(now: datetime, rules: ChurnRules, limit: int) -> Plan[list[ChurnEntry]]:
    """Whole-base report: three grouped scans, then the same pure rules as the pop."""
    today = now.date()
    recent = (today - timedelta(days=rules.window_days)).isoformat()
    prior = (today - timedelta(days=2 * rules.window_days)).isoformat()
    p = yield Fetch(
        "SELECT customer_id,"
        " CAST(SUM(CASE WHEN purchased_on >= ? THEN 1 ELSE 0 END) AS BIGINT),"
        " CAST(SUM(CASE WHEN purchased_on < ? THEN 1 ELSE 0 END) AS BIGINT),"
        " CAST(SUM(CASE WHEN purchased_on >= ? THEN amount_cents ELSE 0 END) AS BIGINT),"
        " CAST(SUM(CASE WHEN purchased_on < ? THEN amount_cents ELSE 0 END) AS BIGINT)"
        " FROM purchases WHERE purchased_on >= ? GROUP BY customer_id",
        (recent, recent, recent, recent, prior),
    )
    orders = {r[0]: (r[1], r[2], r[3], r[4]) for r in p}
    since = R.ts(now - timedelta(days=rules.window_days))
    k = yield Fetch(
        "SELECT customer_id, COUNT(*) FROM tickets WHERE category = ? AND opened_at >= ? GROUP BY customer_id",
        (COMPLAINT, since),
    )
    complaints = {r[0]: r[1] for r in k}
    o = yield Fetch("SELECT customer_id, opened_at FROM tickets WHERE status IN ('open', 'pending')")
    ages: dict[int, list[float]] = {}
    for cid, opened in o:
        ages.setdefault(cid, []).append((R.ts(now) - opened) / 86400)
    entries: list[tuple[int, tuple]] = []
    for cid in sorted(set(orders) | set(complaints) | set(ages)):
        o4 = orders.get(cid, (0, 0, 0, 0))
        facts = ChurnFacts(o4[0], o4[1], o4[2], o4[3], complaints.get(cid, 0), tuple(ages.get(cid, ())))
        sig = churn_signals(facts, rules)
        if sig:
            entries.append((cid, sig))
    out = []
    for cid, sig in entries[:limit]:
        c = yield Fetch("SELECT name, grade FROM customers WHERE id = ?", (cid,))
        out.append(ChurnEntry(cid, c[0][0], Grade(c[0][1]) if c[0][1] else None, sig))
    return out


# ------------------------------------------------------------------------------------ history reads


def interactions_of(cid: int, viewer: Viewer, limit: int) -> Plan[list[Interaction]]:
    got = yield Fetch(
        f"SELECT {R.INTERACTION_COLS} FROM interactions WHERE customer_id = ? ORDER BY started_at DESC LIMIT ?",
        (cid, limit),
    )
    sp, sn = viewer.may(Right.SEE_PHONES), viewer.may(Right.SEE_NOTES)
    return [R.interaction(r, see_phones=sp, see_notes=sn) for r in got]


def interaction_by_call(call_id: str, viewer: Viewer) -> Plan[Interaction | None]:
    got = yield Fetch(f"SELECT {R.INTERACTION_COLS} FROM interactions WHERE call_id = ?", (call_id,))
    if not got:
        return None
    return R.interaction(
        got[0], see_phones=viewer.may(Right.SEE_PHONES), see_notes=viewer.may(Right.SEE_NOTES)
    )


def tickets_of(cid: int) -> Plan[list[Ticket]]:
    got = yield Fetch(f"SELECT {R.TICKET_COLS} FROM tickets WHERE customer_id = ? ORDER BY opened_at", (cid,))
    return [R.ticket(r) for r in got]


def flags_of(cid: int) -> Plan[list[FlagMark]]:
    got = yield Fetch(f"SELECT {R.FLAG_COLS} FROM customer_flags WHERE customer_id = ? ORDER BY flag", (cid,))
    return [R.flag_mark(r) for r in got]


def purchases_of(cid: int) -> Plan[list]:
    got = yield Fetch(
        f"SELECT {R.PURCHASE_COLS} FROM purchases WHERE customer_id = ? ORDER BY purchased_on, id", (cid,)
    )
    return [R.purchase(r) for r in got]


def due_follow_ups(owner: str | None, until: float, limit: int) -> Plan[list[FollowUp]]:
    if owner is None:
        got = yield Fetch(
            f"SELECT {R.FOLLOW_UP_COLS} FROM follow_ups WHERE status = 'open' AND due_at <= ? ORDER BY due_at LIMIT ?",
            (until, limit),
        )
    else:
        got = yield Fetch(
            f"SELECT {R.FOLLOW_UP_COLS} FROM follow_ups WHERE owner = ? AND status = 'open' AND due_at <= ?"
            " ORDER BY due_at LIMIT ?",
            (owner, until, limit),
        )
    return [R.follow_up(r) for r in got]


def audit_entries(customer_id: int | None, actor: str | None, since: float, limit: int,
                  action: str | None = None, until: float | None = None) -> Plan[list[tuple]]:
    where = ["at >= ?"]
    args: list[object] = [since]
    if customer_id is not None:
        where.append("customer_id = ?")
        args.append(customer_id)
    if actor is not None:
        where.append("actor = ?")
        args.append(actor)
    if action is not None:
        where.append("action = ?")
        args.append(action)
    if until is not None:
        where.append("at < ?")
        args.append(until)
    got = yield Fetch(
        "SELECT id, at, actor, role, action, customer_id, detail FROM audit_log WHERE "
        + " AND ".join(where)
        + " ORDER BY at DESC, id DESC LIMIT ?",
        (*args, limit),
    )
    return [tuple(r) for r in got]


def counts() -> Plan[dict[str, int]]:
    out = {}
    for table in ("customers", "interactions", "purchases", "tickets", "follow_ups"):
        got = yield Fetch(f"SELECT COUNT(*) FROM {table}")
        out[table] = int(got[0][0])
    return out


# ------------------------------------------------------------------------ interaction rows (journal)


_ROW_COLUMNS = (
    "call_id", "root_call_id", "segment", "customer_id", "direction", "outcome", "caller", "dialed",
    "started_at", "answered_at", "ended_at", "queue", "agent", "wait_s", "talk_s", "hold_s", "wrapup_s",
    "disposition", "notes", "ivr_path", "recording_ref", "survey_score", "hung_up_by", "end_cause",
    "end_inferred", "end_not_after", "call_ended_at", "transferred_to", "queued_at",
)
_ROW_UPSERT = (
    f"INSERT INTO interactions ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(_ROW_COLUMNS))})"
    " ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ROW_COLUMNS[1:])
)


def upsert_interaction_row(row: InteractionRow, e164: str | None) -> Plan[int | None]:
    """Write one agent part of a call (or the whole call when no agent took it) as the journal's
    projection sees it now; the same row again is a no-op. Never raises for a customer deleted since:
    the row then names no customer (a failing side write would hold back the journal's batch)."""
    cid = row.customer_id
    if cid is not None:
        found = yield Fetch("SELECT 1 FROM customers WHERE id = ?", (cid,))
        cid = cid if found else None
    if cid is None and e164 is not None:
        cid = yield from customer_id_by_phone(e164)
    args = tuple(cid if c == "customer_id" else getattr(row, c) for c in _ROW_COLUMNS)
    yield Execute(_ROW_UPSERT, args)
    return cid


def update_wrapup_only(root_call_id: str, agent: str, disposition: str, notes: str,
                       follow_up: FollowUpRequest | None = None, now: float = 0.0) -> Plan[int]:
    """A wrap-up saved after its call left the projection's memory (settled: the agent's wrap-up time was
    over): the disposition and notes of the agent's last part of it, and the follow-up asked for, once."""
    got = yield Fetch(
        "SELECT call_id, customer_id, caller FROM interactions WHERE root_call_id = ? AND agent = ? "
        "ORDER BY segment DESC LIMIT 1",
        (root_call_id, agent),
    )
    if not got:
        return 0
    call_id, customer_id, caller = got[0]
    changed = yield Execute("UPDATE interactions SET disposition = ?, notes = ? WHERE call_id = ?",
                            (disposition, notes, call_id))
    if follow_up is not None:
        e164 = caller if isinstance(caller, str) and caller.startswith("+") else None
        yield from follow_up_from_call(call_id, e164, customer_id, follow_up, now)
    return int(changed)


def follow_up_from_call(source_call_id: str, e164: str | None, customer_id: int | None, f: FollowUpRequest,
                        now: float) -> Plan[int | None]:
    """The follow-up an agent asked for in a wrap-up, once per call part: saving the wrap-up again, or
    replaying the journal, does not make a second one. An unknown caller becomes a lead."""
    got = yield Fetch("SELECT id FROM follow_ups WHERE source_call_id = ?", (source_call_id,))
    if got:
        yield Execute("UPDATE follow_ups SET kind = ?, owner = ?, due_at = ?, note = ? WHERE id = ?",
                      (f.kind.value, f.owner, R.ts(f.due_at), f.note, got[0][0]))
        return int(got[0][0])
    cid = customer_id
    if cid is not None:
        found = yield Fetch("SELECT 1 FROM customers WHERE id = ?", (cid,))
        cid = cid if found else None
    if cid is None and e164 is not None:
        cid = yield from customer_id_by_phone(e164)
    if cid is None:
        lead = CleanCustomer(NewCustomer(is_lead=True), (e164,) if e164 else ())
        cid = yield from insert_customer(lead, None, now)
    return (yield from insert_follow_up(cid, f, source_call_id, now))
