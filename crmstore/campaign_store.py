"""Outbound campaigns over the CRM store: save and pause campaigns, fill their contact lists (a CSV file or a
named CRM selection, each row reported), hand the dialer its next contacts and record what each attempt
gave. The decisions are campaigns.py's; the SQL is campaign_plans.py's; this module only moves them.

campaigns = CampaignStore(store)
await campaigns.save(campaign)
report = await campaigns.import_list("spring-sales", "contacts.csv")
for contact in await campaigns.next_contacts("spring-sales", now, limit=5):
    attempt = await campaigns.begin_attempt(contact.contact_id, now)      # DialRefused: do not dial
    ...
    await campaigns.record_outcome(attempt, AttemptResult(AttemptOutcome.BUSY, False), ended)
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import campaign_plans as P
from . import campaigns as K
from .errors import InvalidPhone
from .import_source import MAX_FILE_BYTES, Source, open_source, rows
from .phones import normalize_phone
from .privacy import SYSTEM, Right, Viewer
from .queries import audit_row
from .store import CrmStore
from .validation import clean_text

CONTACT_COLUMNS = ("phones", "name", "timezone", "contact_time", "accounts", "notes")
REQUIRED_COLUMNS = ("phones",)
CHUNK = 500
DETAIL_LIMIT = 1000
_MULTI = re.compile(r"[;|；、/]")

ListOutcome = P.ListOutcome
AttemptResult = P.AttemptResult


@dataclass(frozen=True, slots=True)
class ContactListReport:
    """Totals are exact; ``rejected`` keeps the first DETAIL_LIMIT (``on_row`` sees every row)."""

    source: str  # the file, or "selection NAME"
    encoding: str
    rows: int
    added: int
    rejected_count: int
    rejected: tuple[ListOutcome, ...] = field(default=())

    def summary(self) -> str:
        enc = f" ({self.encoding})" if self.encoding else ""
        return f"{self.source}{enc}: {self.rows} rows: {self.added} added, {self.rejected_count} rejected"


# ------------------------------------------------------------------------------- checks per row


def _one_number(raw: str, country: str) -> str:
    numbers = [p.strip().lstrip("'") for p in _MULTI.split(raw) if p.strip()]
    if not numbers:
        raise ValueError("no phone number")
    distinct = list(dict.fromkeys(numbers))
    if len(distinct) > 1:
        raise ValueError(f"{len(distinct)} phone numbers in one row ({', '.join(distinct[:3])}): give one number per row")
    try:
        return normalize_phone(distinct[0], country, strict=True)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


def check_row(
    n: int, raw: Mapping[str, Any], country: str, campaign: K.Campaign, now: datetime, seen: dict[str, int]
) -> P.NewContact:
    """A CSV row as a contact, or ValueError with the reason. ``seen``: numbers already taken from this file."""
    if "__error__" in raw:
        raise ValueError(raw["__error__"])
    e164 = _one_number(str(raw.get("phones") or ""), country)
    if e164 in seen:
        raise ValueError(f"{e164} is a duplicate of row {seen[e164]}")
    name = clean_text(str(raw.get("name") or "").strip(), "name")
    explicit = str(raw.get("timezone") or "").strip()
    zones = (K.check_zone(explicit),) if explicit else K.zones_of_number(e164)
    preferred = K.parse_span(clean_text(str(raw.get("contact_time") or ""), "contact_time"))
    why = K.never_callable_reason(e164, zones, bool(explicit), campaign.windows, preferred, now)
    if why is not None:
        raise ValueError(why)
    ref = clean_text(str(raw.get("accounts") or "").strip(), "accounts")
    seen[e164] = n
    return P.NewContact(f"row {n}", e164, name, None, zones, preferred, f"row {n}" + (f" {ref}" if ref else ""))


@dataclass(slots=True)
class _Batch:
    contacts: list[P.NewContact] = field(default_factory=list)
    rejected: list[tuple[int, ListOutcome]] = field(default_factory=list)
    seen: int = 0


def _number_in(label: str) -> int:
    """'row 12' and "customer 12 ('x')" both report in the order of that number."""
    return int(label.split()[1])


def _file_batches(
    source: Source, country: str, campaign: K.Campaign, now: datetime
) -> Generator[_Batch, None, None]:
    batch = _Batch()
    seen: dict[str, int] = {}
    for n, raw, _ in rows(source, CONTACT_COLUMNS):
        batch.seen += 1
        try:
            batch.contacts.append(check_row(n, raw, country, campaign, now, seen))
        except ValueError as exc:
            batch.rejected.append((n, ListOutcome(f"row {n}", str(exc))))
        if len(batch.contacts) + len(batch.rejected) >= CHUNK:
            yield batch
            batch = _Batch()
    if batch.seen:
        yield batch


def check_selected(s: P.Selected, campaign: K.Campaign, now: datetime) -> P.NewContact:
    """The customer's first phone that can be called under the windows; ValueError with the reason otherwise."""
    if not s.phones:
        raise ValueError("no phone number")
    first_reason = ""
    for e164 in s.phones:
        zones = K.zones_of_number(e164)
        why = K.never_callable_reason(e164, zones, False, campaign.windows, None, now)
        if why is None:
            return P.NewContact(_label(s), e164, s.name, s.customer_id, zones, None, f"customer {s.customer_id}")
        first_reason = first_reason or why
    raise ValueError(first_reason)


def _label(s: P.Selected) -> str:
    return f"customer {s.customer_id} ({s.name!r})"


# ---------------------------------------------------------------------------------- selections


@dataclass(frozen=True, slots=True)
class Selection:
    name: str
    description: str
    query: Callable[[datetime, date], tuple[str, tuple[Any, ...]]]


def _bought_3_days_ago(now: datetime, today: date) -> tuple[str, tuple[Any, ...]]:
    return ("SELECT b.customer_id FROM purchases b WHERE b.purchased_on = ? AND b.amount_cents > 0",
            ((today - timedelta(days=3)).isoformat(),))


def _grade_a_idle(now: datetime, today: date) -> tuple[str, tuple[Any, ...]]:
    since = (now - timedelta(days=90)).timestamp()
    return (
        ("SELECT g.id FROM customers g WHERE g.grade = 'A'"
        " AND NOT EXISTS (SELECT 1 FROM interactions i WHERE i.customer_id = g.id AND i.started_at >= ?)"
        " AND NOT EXISTS (SELECT 1 FROM campaign_attempts a JOIN campaign_contacts k ON k.id = a.contact_id"
        " WHERE k.customer_id = g.id AND a.started_at >= ?)"),
        (since, since),
    )


def _closed_ticket(now: datetime, today: date) -> tuple[str, tuple[Any, ...]]:
    return ("SELECT t.customer_id FROM tickets t WHERE t.status = 'closed' AND t.closed_at >= ? AND t.closed_at < ?",
            ((now - timedelta(days=1)).timestamp(), now.timestamp()))


SELECTIONS: Mapping[str, Selection] = {
    s.name: s
    for s in (
        Selection("bought_3_days_ago", "customers with a purchase three days ago (3DC follow-up)", _bought_3_days_ago),
        Selection("grade_a_idle_90_days", "grade A customers with no call in the last 90 days", _grade_a_idle),
        Selection("survey_after_closed_ticket", "customers whose ticket was closed in the last 24 hours",
                  _closed_ticket),
    )
}


# ------------------------------------------------------------------------------------- the store


def _now() -> datetime:
    return datetime.now(UTC)


class CampaignStore:
    """Campaigns, their lists and attempts in the CRM database (tables of migration 6)."""

    def __init__(self, store: CrmStore) -> None:
        self.store = store

    async def save(self, campaign: K.Campaign, viewer: Viewer = SYSTEM) -> int:
        """Create or update by name (a new campaign starts paused). CampaignError: nothing saved."""
        viewer.require(Right.IMPORT_EXPORT)
        K.check_campaign(campaign)
        cid, _ = await self.store.backend.write(
            P.save_campaign(campaign, audit_row(viewer, "campaign", None, f"saved {campaign.name}"), time.time()))
        return int(cid)

    async def get(self, name: str) -> P.StoredCampaign:
        return await self.store.backend.read(P.load_campaign(name))

    async def all(self) -> list[P.StoredCampaign]:
        return await self.store.backend.read(P.list_campaigns())

    async def pause(self, name: str, viewer: Viewer = SYSTEM) -> bool:
        return await self._status(name, K.CampaignStatus.PAUSED, viewer)

    async def resume(self, name: str, viewer: Viewer = SYSTEM) -> bool:
        return await self._status(name, K.CampaignStatus.ACTIVE, viewer)

    async def _status(self, name: str, status: K.CampaignStatus, viewer: Viewer) -> bool:
        viewer.require(Right.SET_FLAGS)
        audit = audit_row(viewer, "campaign", None, f"{name} -> {status.value}")
        return await self.store.backend.write(P.set_status(name, status, audit, time.time()))

    # --------------------------------------------------------------------------- do-not-call

    async def add_do_not_call(self, number: str, reason: str = "", source: str = "", viewer: Viewer = SYSTEM) -> str:
        """The number (E.164) is never dialled again, by a campaign or anything else (the CRM's one list)."""
        return await self.store.add_do_not_call(number, reason, source, viewer)

    async def remove_do_not_call(self, number: str, viewer: Viewer = SYSTEM) -> bool:
        return await self.store.remove_do_not_call(number, viewer)

    async def on_do_not_call(self, number: str) -> bool:
        return await self.store.on_do_not_call(number)

    # ------------------------------------------------------------------------------ the list

    async def import_list(
        self,
        name: str,
        path: str | Path,
        *,
        now: datetime | None = None,
        default_country: str | None = None,
        max_bytes: int = MAX_FILE_BYTES,
        viewer: Viewer = SYSTEM,
        on_row: Callable[[ListOutcome], None] | None = None,
    ) -> ContactListReport:
        """Add a CSV file's contacts to the campaign's list. The file as a whole (size, encoding, columns) is
        checked before anything is written (ImportFormatError); then each row is added or rejected with the
        reason: invalid number, twice in the file or already listed, on do-not-call, blacklisted, never
        callable under the windows."""
        viewer.require(Right.IMPORT_EXPORT)
        stored = await self.get(name)
        at = now or _now()
        country = (default_country or self.store.default_country).upper()
        p = Path(path)
        source = await asyncio.to_thread(open_source, p, CONTACT_COLUMNS, max_bytes, REQUIRED_COLUMNS)
        batches = _file_batches(source, country, stored.campaign, at)
        try:
            report = await self._fill(stored, batches, str(p), source.reported_encoding, viewer, on_row)
        finally:
            batches.close()
        return report

    async def select(
        self,
        name: str,
        selection: str,
        *,
        now: datetime | None = None,
        today: date | None = None,
        viewer: Viewer = SYSTEM,
        on_row: Callable[[ListOutcome], None] | None = None,
    ) -> ContactListReport:
        """Add the customers of a named CRM selection (SELECTIONS) to the campaign's list, each reported."""
        viewer.require(Right.IMPORT_EXPORT)
        if selection not in SELECTIONS:
            raise ValueError(f"no selection {selection!r}; known: {', '.join(SELECTIONS)}")
        stored = await self.get(name)
        at = now or _now()
        sql, args = SELECTIONS[selection].query(at, today or at.date())
        after = 0

        async def pages() -> list[_Batch]:
            nonlocal after
            page = await self.store.backend.read(P.selection_page(sql, args, after, CHUNK))
            if not page:
                return []
            after = page[-1].customer_id
            batch = _Batch(seen=len(page))
            for s in page:
                try:
                    batch.contacts.append(check_selected(s, stored.campaign, at))
                except ValueError as exc:
                    batch.rejected.append((s.customer_id, ListOutcome(_label(s), str(exc))))
            return [batch]

        total = ContactListReport(f"selection {selection}", "", 0, 0, 0)
        while batches := await pages():
            part = await self._fill(stored, batches, total.source, "", viewer, on_row)
            total = ContactListReport(total.source, "", total.rows + part.rows, total.added + part.added,
                                      total.rejected_count + part.rejected_count,
                                      (total.rejected + part.rejected)[:DETAIL_LIMIT])
        await self.store.backend.write(P.write_audit(
            audit_row(viewer, "campaign", None, f"{name}: {total.summary()}")))
        return total

    async def _fill(
        self,
        stored: P.StoredCampaign,
        batches: Iterable[_Batch],
        source: str,
        encoding: str,
        viewer: Viewer,
        on_row: Callable[[ListOutcome], None] | None,
    ) -> ContactListReport:
        total = added = rejected_count = 0
        rejected: list[ListOutcome] = []
        it = iter(batches)
        while (batch := await asyncio.to_thread(next, it, None)) is not None:
            total += batch.seen
            outcomes = list(batch.rejected)
            if batch.contacts:
                written = await self.store.backend.write(P.add_contacts(stored.id, batch.contacts, time.time()))
                outcomes += [(_number_in(o.label), o) for o in written]
            for _, o in sorted(outcomes, key=lambda x: x[0]):
                if o.added:
                    added += 1
                else:
                    rejected_count += 1
                    if len(rejected) < DETAIL_LIMIT:
                        rejected.append(o)
                if on_row is not None:
                    on_row(o)
        if encoding:  # a file: one audit line for it (a selection writes its own)
            await self.store.backend.write(P.write_audit(audit_row(
                viewer, "campaign", None, f"{stored.campaign.name}: {source}: {added} added, {rejected_count} rejected")))
        return ContactListReport(source, encoding, total, added, rejected_count, tuple(rejected))

    # ------------------------------------------------------------------------------ dialling

    async def next_contacts(self, name: str, now: datetime | None = None, limit: int = 10) -> list[K.ContactState]:
        """Due retries first, then fresh contacts in list order; only those inside their window now, not on
        do-not-call, not blacklisted, with attempts left. Nothing is reserved: begin_attempt does that."""
        return await self.store.backend.read(P.next_contacts(name, now or _now(), limit))

    async def begin_attempt(self, contact_id: int, now: datetime | None = None, call_id: str = "") -> int:
        """The attempt's id, the contact marked as dialling. Checks everything again (do-not-call above all):
        DialRefused with the reason, and a number now on do-not-call or blacklisted is excluded for good."""
        begun = await self.store.backend.write(P.begin_attempt(contact_id, now or _now(), call_id))
        if begun.attempt_id is None:
            raise K.DialRefused(begun.refusal or "refused")
        return int(begun.attempt_id)

    async def record_outcome(
        self, attempt_id: int, result: P.AttemptResult, at: datetime | None = None
    ) -> K.AfterAttempt:
        """What the originate and AMD() said; the contact gets its retry time or its final state."""
        return await self.store.backend.write(P.record_outcome(attempt_id, result, at or _now()))

    async def settle_disposition(self, attempt_id: int, disposition: str, call_back_at: datetime | None = None,
                                 at: datetime | None = None, agent: str = "") -> P.Disposed:
        """The agent's disposition for an ended attempt (the campaign's list, or call_back, wrong_number,
        do_not_call): its final outcome and right-party mark; a call back booked as the contact's next try; a
        do-not-call puts the number on the one list, with the campaign as its source."""
        disposed = await self.store.backend.write(P.settle_disposition(attempt_id, disposition, call_back_at,
                                                                       at or _now()))
        if disposed.disposition.then is K.AfterDisposition.DO_NOT_CALL:
            await self.store.add_do_not_call(
                disposed.e164, f"asked on a call of campaign {disposed.campaign}" + (f" (agent {agent})" if agent else ""),
                f"campaign:{disposed.campaign}")
        return disposed

    async def attempt_of_call(self, call_id: str) -> P.CallAttempt | None:
        """The latest attempt placed with this call id (None: not a campaign call)."""
        return await self.store.backend.read(P.attempt_of_call(call_id))

    async def open_attempts(self) -> list[P.OpenAttempt]:
        """Attempts begun and never ended, oldest first: after a crash, the dialer settles them."""
        return await self.store.backend.read(P.open_attempts())

    async def contacts(self, name: str, limit: int = 1000) -> list[K.ContactState]:
        return await self.store.backend.read(P.contacts_of(name, limit))

    async def progress(self, name: str) -> K.CampaignProgress:
        return await self.store.backend.read(P.progress(name))
