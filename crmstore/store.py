"""The CRM repository: the one object the rest of the server talks to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Self, TypeVar

import phonenumbers

from . import queries as Q
from . import rows as R
from . import surveys as S
from .backends import PostgresBackend, SqliteBackend, open_backend
from .errors import CrmError, CrmNotFound
from .model import (
    AuditEntry,
    CallFacts,
    ChurnEntry,
    CustomerCard,
    Flag,
    FlagMark,
    FollowUp,
    FollowUpRequest,
    FollowUpStatus,
    GradeChange,
    GradingReport,
    Interaction,
    NewCustomer,
    Purchase,
    ScreenPop,
    Ticket,
    TicketStatus,
    WrapUp,
)
from .phones import normalize_phone, try_normalize_phone
from .plan import Plan
from .privacy import SYSTEM, Right, Role, Viewer
from .queries import Identity, PopSettings
from .signals import ChurnRules
from .surveys import SurveyResponse, response_problem
from .validation import clean_text

log = logging.getLogger(__name__)
T = TypeVar("T")

AUDIT_FLUSH_S = 0.5
AUDIT_BUFFER_MAX = 100_000


def _now() -> datetime:
    return datetime.now(UTC)


class CrmStore:
    """Async repository over SQLite or PostgreSQL. Create with ``await open_store(url)``.

    Views (pops, cards, searches) are audited through a buffer flushed every AUDIT_FLUSH_S by one write:
    an fsync per pop would cost more than the pop. Changes are audited inside their own transaction.
    """

    def __init__(
        self, backend: SqliteBackend | PostgresBackend, default_country: str, pop: PopSettings
    ) -> None:
        self.backend = backend
        self.default_country = default_country
        self.pop_settings = pop
        self._audit: list[Q.AuditRow] = []
        self._audit_wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def _start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="crm-audit-flush")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            await self.flush_audit()
        finally:
            await self.backend.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------- plumbing

    async def _read(self, plan: Plan[T]) -> T:
        return await self.backend.read(plan)

    async def _write(self, plan: Plan[T]) -> T:
        return await self.backend.write(plan)

    async def read_plan(self, plan: Plan[T]) -> T:
        """Run a read plan of another room (the journal) on a reader, in one transaction."""
        return await self.backend.read(plan)

    async def write_plan(self, plan: Plan[T]) -> T:
        """Run a write plan of another room (the journal's batches) in one durable transaction."""
        return await self.backend.write(plan)

    def _note_view(self, viewer: Viewer, action: str, customer_id: int | None, detail: str = "") -> None:
        if len(self._audit) >= AUDIT_BUFFER_MAX:
            log.error(
                "CRM audit buffer full (%d views); database unwritable? dropping the oldest", len(self._audit)
            )
            del self._audit[: AUDIT_BUFFER_MAX // 10]
        self._audit.append(Q.audit_row(viewer, action, customer_id, detail))

    async def flush_audit(self) -> int:
        """Write buffered view records now (tests and shutdown call it). Returns how many were written."""
        batch, self._audit = self._audit, []
        if not batch:
            return 0
        try:
            await self._write(Q.write_audit(batch))
        except CrmError:
            self._audit[:0] = batch  # keep them for the next attempt
            raise
        return len(batch)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(AUDIT_FLUSH_S)
            try:
                await self.flush_audit()
            except CrmError as exc:
                log.warning("CRM audit flush failed, will retry: %s", exc)

    def phone(self, raw: str) -> str:
        """E.164 of ``raw`` with the store's default country, or InvalidPhone."""
        return normalize_phone(raw, self.default_country)

    # ------------------------------------------------------------------------- identification

    async def identify_by_phone(self, caller: str | None) -> Identity | None:
        """The customer owning this number (any stored phone). Malformed, anonymous or unknown: None."""
        e164 = try_normalize_phone(caller, self.default_country)
        if e164 is None:
            return None
        return await self._read(Q.identity("phone", e164))

    async def identify_by_account(self, account: str) -> Identity | None:
        account = account.strip()
        if not account:
            return None
        return await self._read(Q.identity("account", account))

    async def search(self, query: str, viewer: Viewer, *, limit: int = 20) -> list[CustomerCard]:
        """Name or company, prefix first then substring ('张' finds '张伟'); a phone number finds its owner."""
        e164 = try_normalize_phone(query, self.default_country) if any(ch.isdigit() for ch in query) else None
        cards = await self._read(Q.search(query, e164, viewer, limit))
        self._note_view(viewer, "search", None, f"{query!r}: {len(cards)} found")
        return cards

    async def get_customer(self, customer_id: int, viewer: Viewer) -> CustomerCard:
        card = await self._read(Q.load_card(customer_id, viewer))
        if card is None:
            raise CrmNotFound(f"customer {customer_id} does not exist")
        self._note_view(viewer, "view", customer_id, "card")
        return card

    async def last_agent_for(self, caller: str | None) -> str | None:
        """Agent of the caller's last answered call (sticky routing); None if unknown or malformed."""
        e164 = try_normalize_phone(caller, self.default_country)
        if e164 is None:
            return None

        def plan() -> Plan[str | None]:
            cid = yield from Q.customer_id_by_phone(e164)
            return (yield from Q.last_agent(cid, e164))

        return await self._read(plan())

    # ------------------------------------------------------------------------------ screen pop

    async def screen_pop(
        self,
        *,
        viewer: Viewer,
        phone: str | None = None,
        customer_id: int | None = None,
        account: str | None = None,
        now: datetime | None = None,
    ) -> ScreenPop:
        """Everything for the agent's screen in one backend round (one thread hop on SQLite).

        Never raises for a bad caller number: the agent still gets a pop saying the number is unreadable.
        Precedence when several keys are given: customer_id, then phone, then account.
        """
        if phone is None and customer_id is None and account is None:
            raise ValueError("screen_pop needs phone=, customer_id= or account=")
        e164 = try_normalize_phone(phone, self.default_country)
        pop = await self._read(
            Q.screen_pop(
                phone_e164=e164,
                caller_readable=phone is None or e164 is not None,
                customer_id=customer_id,
                account=account.strip() if account else None,
                viewer=viewer,
                now=now or _now(),
                settings=self.pop_settings,
            )
        )
        self._note_view(viewer, "view", pop.customer.id if pop.customer else None, "screen pop")
        return pop

    # ----------------------------------------------------------------------------- customers

    def _clean(self, c: NewCustomer) -> Q.CleanCustomer:
        phones: list[str] = []
        for raw in c.phones:
            e164 = self.phone(raw)
            if e164 not in phones:
                phones.append(e164)
        return Q.CleanCustomer(c, tuple(phones))

    async def create_customer(self, customer: NewCustomer, viewer: Viewer = SYSTEM) -> int:
        """Raises InvalidPhone for a malformed phone, CrmConflict if a phone/account belongs to someone else."""
        viewer.require(Right.WRITE_CONTACT)
        clean = self._clean(customer)
        return await self._write(
            Q.insert_customer(clean, Q.audit_row(viewer, "create", None, "customer"), time.time())
        )

    async def create_lead(self, phone: str, name: str = "", viewer: Viewer = SYSTEM) -> int:
        """An unknown caller becomes a lead (a customer with is_lead set). If the number is already known,
        that customer's id is returned instead of a duplicate."""
        e164 = self.phone(phone)
        viewer.require(Right.WRITE_CONTACT)
        clean = Q.CleanCustomer(NewCustomer(name=name, is_lead=True), (e164,))
        audit = Q.audit_row(viewer, "create", None, "lead")

        def plan() -> Plan[int]:
            existing = yield from Q.customer_id_by_phone(e164)
            if existing is not None:
                return existing
            return (yield from Q.insert_customer(clean, audit, time.time()))

        return await self._write(plan())

    async def update_customer(
        self, customer_id: int, changes: Mapping[str, Any], viewer: Viewer = SYSTEM
    ) -> None:
        """Fields: name, company, email, notes, preferred_language, contact_time, contact_channel, tags, is_lead."""
        viewer.require(Right.WRITE_CONTACT)
        detail = "fields: " + ", ".join(sorted(changes))
        await self._write(
            Q.update_customer(
                customer_id, changes, Q.audit_row(viewer, "update", customer_id, detail), time.time()
            )
        )

    async def add_phone(self, customer_id: int, phone: str, viewer: Viewer = SYSTEM) -> str:
        viewer.require(Right.WRITE_CONTACT)
        e164 = self.phone(phone)
        await self._write(
            Q.add_phones(customer_id, [e164], Q.audit_row(viewer, "update", customer_id, "phone added"))
        )
        return e164

    async def add_account(self, customer_id: int, account: str, viewer: Viewer = SYSTEM) -> None:
        viewer.require(Right.WRITE_CONTACT)
        await self._write(
            Q.add_accounts(
                customer_id, [account.strip()], Q.audit_row(viewer, "update", customer_id, "account added")
            )
        )

    async def set_flag(self, customer_id: int, flag: Flag, reason: str = "", viewer: Viewer = SYSTEM) -> None:
        viewer.require(Right.SET_FLAGS)
        audit = Q.audit_row(viewer, "flag", customer_id, f"set {flag.value}: {reason}")
        await self._write(Q.set_flag(customer_id, flag, reason, viewer, audit))

    async def add_do_not_call(self, phone: str, reason: str = "", source: str = "",
                              viewer: Viewer = SYSTEM) -> str:
        """Put a number on the do-not-call list (normalised to E.164; InvalidPhone for a bad one); returns it.
        Campaigns, callbacks and click-to-call all check this one list. A number already listed keeps its
        first reason."""
        viewer.require(Right.WRITE_CONTACT)
        e164 = self.phone(phone)
        reason = clean_text(reason.strip(), "reason")
        audit = Q.audit_row(viewer, "do_not_call", None, f"add {e164}: {reason}")
        await self._write(Q.add_do_not_call(e164, reason, source or viewer.user, time.time(), audit))
        return e164

    async def remove_do_not_call(self, phone: str, viewer: Viewer = SYSTEM) -> bool:
        viewer.require(Right.SET_FLAGS)
        e164 = self.phone(phone)
        return await self._write(Q.remove_do_not_call(e164, Q.audit_row(viewer, "do_not_call", None,
                                                                         f"remove {e164}")))

    async def on_do_not_call(self, phone: str) -> bool:
        """Whether the number is on the do-not-call list (a number that does not parse is not)."""
        e164 = try_normalize_phone(phone, self.default_country)
        return e164 is not None and await self._read(Q.do_not_call_entry(e164)) is not None

    async def clear_flag(self, customer_id: int, flag: Flag, viewer: Viewer = SYSTEM) -> bool:
        viewer.require(Right.SET_FLAGS)
        return await self._write(
            Q.clear_flag(customer_id, flag, Q.audit_row(viewer, "flag", customer_id, f"cleared {flag.value}"))
        )

    async def flags(self, customer_id: int) -> list[FlagMark]:
        return await self._read(Q.flags_of(customer_id))

    # ----------------------------------------------------------------------------- write-back

    async def save_wrapup(self, wrapup: WrapUp, viewer: Viewer | None = None) -> int:
        """Store disposition, notes, follow-up and the call's timing facts in ONE transaction; returns the
        interaction id once committed and synced (SQLite synchronous=FULL, PostgreSQL synchronous_commit).
        Saving the same call_id again updates that interaction (a retry never doubles it).
        Raises CrmWriteError (nothing written) on a locked database, full disk, lost server."""
        who = viewer or Viewer(wrapup.call.agent or "system", Role.AGENT)
        who.require(Right.WRITE_CONTACT)
        if not wrapup.call.call_id:
            raise ValueError("wrap-up without a call_id")
        e164 = try_normalize_phone(wrapup.call.caller, self.default_country)
        audit = Q.audit_row(who, "wrapup", None, f"call {wrapup.call.call_id}: {wrapup.disposition}")
        interaction_id, _ = await self._write(Q.save_wrapup(wrapup, e164, audit, time.time()))
        return interaction_id

    async def log_interaction(self, call: CallFacts, viewer: Viewer = SYSTEM) -> int:
        """A call without wrap-up (abandoned, IVR-only, no answer), or the facts before the wrap-up arrives."""
        if not call.call_id:
            raise ValueError("interaction without a call_id")
        e164 = try_normalize_phone(call.caller, self.default_country)
        audit = Q.audit_row(viewer, "log_call", None, f"call {call.call_id}: {call.outcome.value}")
        return await self._write(Q.log_interaction(call, e164, audit))

    async def save_survey(self, call_id: str, score: int, viewer: Viewer = SYSTEM) -> None:
        """Post-call survey score 1..5 for a logged call (CrmNotFound if the call is unknown)."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValueError(f"survey score must be an integer 1..5, got {score!r}")
        await self._write(
            Q.save_survey(call_id, score, Q.audit_row(viewer, "survey", None, f"call {call_id}: {score}"))
        )

    async def save_survey_response(self, response: SurveyResponse) -> bool:
        """One answer of a survey flow, kept with the customer; False when this call had answered this
        question already (nothing changed). ValueError naming the field for an answer that is no answer."""
        problem = response_problem(response)
        if problem is not None:
            raise ValueError(problem)
        return await self._write(S.save_response(response))

    async def survey_responses(self, *, customer_id: int | None = None,
                               campaign: str | None = None) -> list[SurveyResponse]:
        """A customer's answers, or a campaign's, oldest first."""
        if customer_id is not None:
            return await self._read(S.responses_of_customer(customer_id))
        return await self._read(S.responses_of_campaign(campaign or ""))

    async def interaction(self, call_id: str, viewer: Viewer) -> Interaction | None:
        return await self._read(Q.interaction_by_call(call_id, viewer))

    async def interactions(self, customer_id: int, viewer: Viewer, *, limit: int = 50) -> list[Interaction]:
        items = await self._read(Q.interactions_of(customer_id, viewer, limit))
        self._note_view(viewer, "view", customer_id, "history")
        return items

    # ---------------------------------------------------------------- purchases, tickets, follow-ups

    async def add_purchase(
        self,
        customer_id: int,
        amount: Decimal | int | str,
        on: date,
        *,
        ref: str = "",
        viewer: Viewer = SYSTEM,
    ) -> int:
        """Negative amounts are refunds."""
        viewer.require(Right.WRITE_CONTACT)
        c = R.cents(amount)
        audit = Q.audit_row(viewer, "purchase", customer_id, f"{R.from_cents(c)} on {on.isoformat()}")
        return await self._write(Q.add_purchase(customer_id, c, on, ref, audit))

    async def purchases(self, customer_id: int) -> list[Purchase]:
        return await self._read(Q.purchases_of(customer_id))

    async def open_ticket(
        self,
        customer_id: int,
        category: str,
        subject: str = "",
        *,
        due_at: datetime | None = None,
        opened_at: datetime | None = None,
        viewer: Viewer = SYSTEM,
    ) -> int:
        """category 'complaint' counts for churn and pop actions; any other string is a plain ticket."""
        viewer.require(Right.WRITE_CONTACT)
        audit = Q.audit_row(viewer, "ticket", customer_id, f"opened {category}: {subject}")
        return await self._write(
            Q.open_ticket(
                customer_id, category, subject, R.ts(opened_at or _now()), R.ts_or_none(due_at), audit
            )
        )

    async def set_ticket_status(self, ticket_id: int, status: TicketStatus, viewer: Viewer = SYSTEM) -> None:
        viewer.require(Right.WRITE_CONTACT)
        closed = time.time() if status is TicketStatus.CLOSED else None
        audit = Q.audit_row(viewer, "ticket", None, f"ticket {ticket_id} -> {status.value}")
        await self._write(Q.set_ticket_status(ticket_id, status.value, closed, audit))

    async def tickets(self, customer_id: int) -> list[Ticket]:
        return await self._read(Q.tickets_of(customer_id))

    async def add_follow_up(self, customer_id: int, request: FollowUpRequest, viewer: Viewer = SYSTEM) -> int:
        viewer.require(Right.WRITE_CONTACT)
        audit = Q.audit_row(viewer, "follow_up", customer_id, f"{request.kind.value} for {request.owner}")
        return await self._write(Q.add_follow_up(customer_id, request, audit, time.time()))

    async def set_follow_up_status(
        self, follow_up_id: int, status: FollowUpStatus, viewer: Viewer = SYSTEM
    ) -> None:
        viewer.require(Right.WRITE_CONTACT)
        audit = Q.audit_row(viewer, "follow_up", None, f"follow-up {follow_up_id} -> {status.value}")
        await self._write(Q.set_follow_up_status(follow_up_id, status.value, audit))

    async def due_follow_ups(
        self, owner: str | None = None, until: datetime | None = None, *, limit: int = 500
    ) -> list[FollowUp]:
        """Open follow-ups due at or before ``until`` (default now), oldest first."""
        return await self._read(Q.due_follow_ups(owner, R.ts(until or _now()), limit))

    # ------------------------------------------------------------------------- grading, churn

    async def run_grading(
        self, period_start: date, period_end: date, viewer: Viewer = SYSTEM
    ) -> GradingReport:
        """Grade every customer on revenue in [period_start, period_end) (rules in grading.py)."""
        viewer.require(Right.RUN_GRADING)
        if period_end <= period_start:
            raise ValueError(f"grading period {period_start}..{period_end} is empty")
        audit = Q.audit_row(viewer, "grade", None, f"period {period_start}..{period_end}")
        return await self._write(Q.run_grading(period_start, period_end, audit, time.time()))

    async def grade_history(self, customer_id: int) -> list[GradeChange]:
        return await self._read(Q.grade_history(customer_id))

    async def churn_list(
        self, *, now: datetime | None = None, rules: ChurnRules | None = None, limit: int = 1000
    ) -> list[ChurnEntry]:
        return await self._read(Q.churn_list(now or _now(), rules or self.pop_settings.churn, limit))

    # --------------------------------------------------------------------------------- privacy

    async def add_user(
        self, name: str, role: Role, display_name: str = "", viewer: Viewer = SYSTEM
    ) -> Viewer:
        if viewer.role is not Role.ADMIN:
            raise CrmError(f"user {viewer.user!r} ({viewer.role}) may not manage users")
        await self._write(
            Q.add_user(name, role.value, display_name, Q.audit_row(viewer, "user", None, f"{name}={role}"))
        )
        return Viewer(name, role)

    async def viewer(self, name: str) -> Viewer:
        """The Viewer of a registered user (CrmNotFound otherwise): how the gateway turns a login into rights."""
        got = await self._read(Q.get_user(name))
        if got is None:
            raise CrmNotFound(f"user {name!r} is not registered in the CRM")
        return Viewer(got[0], Role(got[1]))

    async def audit_log(
        self,
        viewer: Viewer,
        *,
        customer_id: int | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
        action: str | None = None,
        until: datetime | None = None,
    ) -> list[AuditEntry]:
        """Newest first, `since` included, `until` excluded. Buffered view records are flushed first so the
        answer is complete."""
        viewer.require(Right.READ_AUDIT)
        await self.flush_audit()
        since_ts = R.ts(since) if since else 0.0
        until_ts = R.ts(until) if until else None
        got = await self._read(Q.audit_entries(customer_id, actor, since_ts, limit, action, until_ts))
        return [AuditEntry(r[0], R.dt(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in got]

    async def counts(self) -> dict[str, int]:
        return await self._read(Q.counts())


async def open_store(
    url: str,
    *,
    default_country: str = "CN",
    pop: PopSettings | None = None,
) -> CrmStore:
    """Open (and migrate) the CRM store named by ``url``:
    ``sqlite:///abs/path.db`` (options ?readers=2&busy_timeout_ms=5000&synchronous=FULL) or
    ``postgresql://user@127.0.0.1:5432/db`` (options ?pool_min=2&pool_max=10&lock_timeout_ms=5000)."""
    if default_country.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"default_country {default_country!r} is not a region code phonenumbers knows (e.g. CN)"
        )
    backend = await open_backend(url)
    store = CrmStore(backend, default_country.upper(), pop or PopSettings())
    store._start()
    return store


def period_ending(end: date, *, days: int = 365) -> tuple[date, date]:
    """The grading period of ``days`` ending (exclusive) at ``end``."""
    return end - timedelta(days=days), end
