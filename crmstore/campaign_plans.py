"""The campaign repository's plans (see plan.py): SQL and the order of reads and writes, no I/O. Every
decision (may this contact be dialled, what comes after a busy signal) is asked of campaigns.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import campaigns as K
from .errors import CrmConflict, CrmNotFound
from .plan import Execute, ExecuteMany, Fetch, Plan
from .queries import AUDIT_INSERT, AuditRow

_ON_DNC = "CASE WHEN EXISTS (SELECT 1 FROM do_not_call d WHERE d.number = c.e164) THEN 1 ELSE 0 END"
# The number's owner now (phones) or the customer the contact was taken for: either one blacklisted is enough.
_BLACKLISTED = (
    "CASE WHEN EXISTS (SELECT 1 FROM customer_flags f WHERE f.flag = 'blacklist' AND (f.customer_id = c.customer_id"
    " OR f.customer_id IN (SELECT p.customer_id FROM phones p WHERE p.e164 = c.e164))) THEN 1 ELSE 0 END"
)
# The end of the contact's last abandoned call: Ofcom's 72 hours run from it (ix_campaign_attempts_contact).
_ABANDONED_AT = ("(SELECT MAX(a.ended_at) FROM campaign_attempts a WHERE a.contact_id = c.id"
                 f" AND a.outcome = '{K.AttemptOutcome.ABANDONED.value}')")
CONTACT_COLS = (
    f"c.id, c.e164, c.zones, c.preferred, c.status, c.attempts, c.next_at, c.position, {_ON_DNC}, {_BLACKLISTED},"
    f" c.name, c.customer_id, {_ABANDONED_AT}"
)


@dataclass(frozen=True, slots=True)
class StoredCampaign:
    id: int
    campaign: K.Campaign
    status: K.CampaignStatus

    @property
    def paused(self) -> bool:
        return self.status is K.CampaignStatus.PAUSED


def reach_key(zones: Sequence[str], preferred: K.LocalSpan | None) -> str:
    """Contacts with the same zones and preferred time are callable at the same moments: the list is
    filtered on this key, so a night in America does not scan every American contact."""
    return " ".join(zones) + "|" + (str(preferred) if preferred else "")


def _reach(key: str) -> tuple[tuple[str, ...], K.LocalSpan | None]:
    zones, _, pref = key.partition("|")
    return tuple(zones.split()), K.parse_span(pref)


def contact_state(row: Sequence[Any]) -> K.ContactState:
    return K.ContactState(
        contact_id=row[0], e164=row[1], zones=tuple(row[2].split()), preferred=K.parse_span(row[3]),
        status=K.ContactStatus(row[4]), attempts=row[5], next_at=row[6], position=row[7], on_dnc=bool(row[8]),
        blacklisted=bool(row[9]), name=row[10], customer_id=row[11],
        abandoned_at=None if row[12] is None else float(row[12]),
    )


def _stored(row: Sequence[Any]) -> StoredCampaign:
    return StoredCampaign(row[0], K.campaign_from_data(json.loads(row[2]), f"stored campaign {row[3]!r}"),
                          K.CampaignStatus(row[1]))


def load_campaign(name: str) -> Plan[StoredCampaign]:
    got = yield Fetch("SELECT id, status, settings, name FROM campaigns WHERE name = ?", (name,))
    if not got:
        raise CrmNotFound(f"no campaign {name!r}")
    return _stored(got[0])


def campaign_by_id(campaign_id: int) -> Plan[StoredCampaign]:
    got = yield Fetch("SELECT id, status, settings, name FROM campaigns WHERE id = ?", (campaign_id,))
    if not got:
        raise CrmNotFound(f"no campaign {campaign_id}")
    return _stored(got[0])


def list_campaigns() -> Plan[list[StoredCampaign]]:
    got = yield Fetch("SELECT id, status, settings, name FROM campaigns ORDER BY name")
    return [_stored(r) for r in got]


def save_campaign(c: K.Campaign, audit: AuditRow, now: float) -> Plan[tuple[int, bool]]:
    """(id, created). A saved campaign keeps its status and list; a new one starts paused."""
    settings = json.dumps(K.campaign_to_data(c), ensure_ascii=False, sort_keys=True)
    got = yield Fetch("SELECT id FROM campaigns WHERE name = ?", (c.name,))
    yield Execute(AUDIT_INSERT, audit)
    if got:
        yield Execute(
            "UPDATE campaigns SET kind = ?, mode = ?, settings = ?, updated_at = ? WHERE id = ?",
            (c.kind.value, c.mode.value, settings, now, got[0][0]),
        )
        return got[0][0], False
    rows = yield Fetch(
        "INSERT INTO campaigns (name, kind, mode, status, settings, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (c.name, c.kind.value, c.mode.value, K.CampaignStatus.PAUSED.value, settings, now, now),
    )
    return rows[0][0], True


def set_status(name: str, status: K.CampaignStatus, audit: AuditRow, now: float) -> Plan[bool]:
    """False when it already had that status."""
    stored = yield from load_campaign(name)
    if stored.status is status:
        return False
    yield Execute("UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ?", (status.value, now, stored.id))
    yield Execute(AUDIT_INSERT, audit)
    return True


# ------------------------------------------------------------------------------------- do-not-call


# ------------------------------------------------------------------------------------ the list


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact that passed every check that needs no database (number, zones, windows, twice in the file)."""

    label: str  # "row 3", "customer 12 ('张伟')": how the report names it
    e164: str
    name: str
    customer_id: int | None
    zones: tuple[str, ...]
    preferred: K.LocalSpan | None
    source: str


@dataclass(frozen=True, slots=True)
class ListOutcome:
    label: str
    reason: str  # "" when added

    @property
    def added(self) -> bool:
        return not self.reason

    def __str__(self) -> str:
        return f"{self.label}: added" if self.added else f"{self.label}: rejected: {self.reason}"


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def add_contacts(campaign_id: int, contacts: Sequence[NewContact], now: float) -> Plan[list[ListOutcome]]:
    """Insert the contacts that are not on do-not-call, not blacklisted and not in the list yet; the rest are
    reported. One transaction per batch; nothing here raises for a bad row."""
    if not contacts:
        return []
    numbers = sorted({c.e164 for c in contacts})
    dnc = yield Fetch(f"SELECT number, reason FROM do_not_call WHERE number IN ({_marks(len(numbers))})",
                      tuple(numbers))
    on_dnc = {r[0]: r[1] for r in dnc}
    owners = yield Fetch(f"SELECT e164, customer_id FROM phones WHERE e164 IN ({_marks(len(numbers))})",
                         tuple(numbers))
    owner = {r[0]: r[1] for r in owners}
    ids = sorted({i for i in [*owner.values(), *(c.customer_id for c in contacts)] if i is not None})
    black: dict[int, str] = {}
    if ids:
        got = yield Fetch(
            f"SELECT customer_id, reason FROM customer_flags WHERE flag = 'blacklist' AND customer_id IN"
            f" ({_marks(len(ids))})", tuple(ids))
        black = {r[0]: r[1] for r in got}
    listed = yield Fetch(
        f"SELECT e164 FROM campaign_contacts WHERE campaign_id = ? AND e164 IN ({_marks(len(numbers))})",
        (campaign_id, *numbers))
    in_list = {r[0] for r in listed}
    top = yield Fetch("SELECT MAX(position) FROM campaign_contacts WHERE campaign_id = ?", (campaign_id,))
    position = (top[0][0] or 0) if top else 0
    out: list[ListOutcome] = []
    rows: list[tuple[Any, ...]] = []
    for c in contacts:
        cid = owner.get(c.e164, c.customer_id)
        flagged = next((i for i in (cid, c.customer_id) if i is not None and i in black), None)
        if c.e164 in on_dnc:
            why = on_dnc[c.e164]
            out.append(ListOutcome(c.label, f"{c.e164} is on the do-not-call list" + (f" ({why})" if why else "")))
        elif flagged is not None:
            why = black[flagged]
            out.append(ListOutcome(c.label, f"{c.e164} belongs to blacklisted customer {flagged}"
                                   + (f" ({why})" if why else "")))
        elif c.e164 in in_list:
            out.append(ListOutcome(c.label, f"{c.e164} is already in the campaign's list"))
        else:
            position += 1
            in_list.add(c.e164)
            rows.append((campaign_id, c.e164, cid, c.name, " ".join(c.zones), str(c.preferred or ""),
                         reach_key(c.zones, c.preferred), c.source, position, K.ContactStatus.PENDING.value,
                         now, now))
            out.append(ListOutcome(c.label, ""))
    if rows:
        yield ExecuteMany(
            "INSERT INTO campaign_contacts (campaign_id, e164, customer_id, name, zones, preferred, reach, source,"
            " position, status, added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return out


# --------------------------------------------------------------------------------- dialling


REACH_CHUNK = 400  # placeholders per IN list


def next_contacts(name: str, now: datetime, limit: int) -> Plan[list[K.ContactState]]:
    stored = yield from load_campaign(name)
    if stored.paused or limit <= 0:
        return []
    c = stored.campaign
    got = yield Fetch(
        "SELECT DISTINCT reach FROM campaign_contacts WHERE campaign_id = ? AND status IN (?, ?)",
        (stored.id, K.ContactStatus.PENDING.value, K.ContactStatus.RETRY.value))
    reaches = []
    for (key,) in got:
        zones, preferred = _reach(key)
        if K.inside_window(zones, c.windows, preferred, now):
            reaches.append(key)
    candidates: list[K.ContactState] = []
    t = now.timestamp()
    for i in range(0, len(reaches), REACH_CHUNK):
        chunk = reaches[i : i + REACH_CHUNK]
        where = (f"c.campaign_id = ? AND c.reach IN ({_marks(len(chunk))}) AND c.attempts < ?"
                 f" AND {_ON_DNC} = 0 AND {_BLACKLISTED} = 0")
        due = yield Fetch(
            f"SELECT {CONTACT_COLS} FROM campaign_contacts c WHERE {where} AND c.status = ? AND c.next_at <= ?"
            " ORDER BY c.next_at, c.id LIMIT ?",
            (stored.id, *chunk, c.max_attempts, K.ContactStatus.RETRY.value, t, limit))
        fresh = yield Fetch(
            f"SELECT {CONTACT_COLS} FROM campaign_contacts c WHERE {where} AND c.status = ?"
            " ORDER BY c.position, c.id LIMIT ?",
            (stored.id, *chunk, c.max_attempts, K.ContactStatus.PENDING.value, limit))
        candidates += [contact_state(r) for r in (*due, *fresh)]
    return K.next_contacts(c, stored.paused, now, candidates, limit)


@dataclass(frozen=True, slots=True)
class Begun:
    attempt_id: int | None
    refusal: str | None
    contact: K.ContactState


def _contact(contact_id: int) -> Plan[tuple[K.ContactState, int]]:
    got = yield Fetch(f"SELECT {CONTACT_COLS}, c.campaign_id FROM campaign_contacts c WHERE c.id = ?", (contact_id,))
    if not got:
        raise CrmNotFound(f"no campaign contact {contact_id}")
    return contact_state(got[0]), got[0][13]


def begin_attempt(contact_id: int, now: datetime, call_id: str) -> Plan[Begun]:
    """Everything checked again at dial time, in the transaction that marks the contact as dialling. A number
    found on do-not-call or blacklisted since it was listed is excluded for good (and that is committed)."""
    contact, campaign_id = yield from _contact(contact_id)
    stored = yield from campaign_by_id(campaign_id)
    refusal = K.dial_refusal(stored.campaign, stored.paused, contact, now)
    t = now.timestamp()
    if refusal is not None:
        if (contact.on_dnc or contact.blacklisted) and contact.status in (K.ContactStatus.PENDING, K.ContactStatus.RETRY):
            yield Execute(
                "UPDATE campaign_contacts SET status = ?, last_outcome = ?, next_at = NULL, updated_at = ?"
                " WHERE id = ?",
                (K.move(contact.status, "exclude").value, "do_not_call" if contact.on_dnc else "blacklisted", t,
                 contact_id))
        return Begun(None, refusal, contact)
    changed = yield Execute(
        "UPDATE campaign_contacts SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
        (K.move(contact.status, "dial").value, t, contact_id, contact.status.value))
    if not changed:
        return Begun(None, f"contact {contact_id} was taken by another dialer", contact)
    got = yield Fetch(
        "INSERT INTO campaign_attempts (campaign_id, contact_id, e164, started_at, call_id) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id", (campaign_id, contact_id, contact.e164, t, call_id))
    return Begun(got[0][0], None, contact)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: K.AttemptOutcome
    right_party: bool
    call_id: str = ""
    agent: str = ""
    disposition: str = ""
    amd: str = ""  # AMDSTATUS/AMDCAUSE as journaled


def record_outcome(attempt_id: int, result: AttemptResult, at: datetime) -> Plan[K.AfterAttempt]:
    got = yield Fetch("SELECT contact_id, campaign_id, outcome FROM campaign_attempts WHERE id = ?", (attempt_id,))
    if not got:
        raise CrmNotFound(f"no campaign attempt {attempt_id}")
    contact_id, campaign_id, recorded = got[0]
    if recorded:
        raise CrmConflict(f"attempt {attempt_id} already ended with {recorded}")
    contact, _ = yield from _contact(contact_id)
    if contact.status is not K.ContactStatus.DIALING:
        raise CrmConflict(f"contact {contact_id} is {contact.status.value}, not dialling")
    stored = yield from campaign_by_id(campaign_id)
    same = yield Fetch("SELECT COUNT(*) FROM campaign_attempts WHERE contact_id = ? AND outcome = ?",
                       (contact_id, result.outcome.value))
    after = K.after_outcome(stored.campaign, contact.attempts, result.outcome, int(same[0][0]), at)
    t = at.timestamp()
    rp = int(result.right_party and result.outcome is K.AttemptOutcome.CONNECTED)
    yield Execute(
        "UPDATE campaign_attempts SET ended_at = ?, outcome = ?, right_party = ?, call_id = CASE WHEN ? = '' THEN"
        " call_id ELSE ? END, agent = ?, disposition = ?, amd = ? WHERE id = ?",
        (t, result.outcome.value, rp, result.call_id, result.call_id, result.agent, result.disposition, result.amd,
         attempt_id))
    yield Execute(
        "UPDATE campaign_contacts SET status = ?, attempts = ?, next_at = ?, last_outcome = ?,"
        " right_party = CASE WHEN ? = 1 THEN 1 ELSE right_party END, updated_at = ? WHERE id = ?",
        (after.status.value, after.attempts, after.next_at, result.outcome.value, rp, t, contact_id))
    return after


@dataclass(frozen=True, slots=True)
class Disposed:
    """What a saved disposition did: the attempt's final outcome and the contact's next state."""

    campaign: str
    e164: str
    disposition: K.Disposition
    outcome: K.AttemptOutcome
    right_party: bool
    after: K.AfterAttempt


def settle_disposition(attempt_id: int, name: str, call_back_at: datetime | None, at: datetime) -> Plan[Disposed]:
    """The agent's disposition for an ended attempt, by the campaign's list: the attempt's final outcome and
    right-party mark, and the contact's next state (a booked call back, excluded for do-not-call)."""
    got = yield Fetch("SELECT contact_id, campaign_id, outcome, disposition FROM campaign_attempts WHERE id = ?",
                      (attempt_id,))
    if not got:
        raise CrmNotFound(f"no campaign attempt {attempt_id}")
    contact_id, campaign_id, recorded, disposed = got[0]
    if not recorded:
        raise CrmConflict(f"attempt {attempt_id} is still under way")
    if disposed:
        raise CrmConflict(f"attempt {attempt_id} already has the disposition {disposed}")
    stored = yield from campaign_by_id(campaign_id)
    c = stored.campaign
    d = c.disposition(name)
    if d is None:
        raise K.CampaignError(f"campaign {c.name!r} has no disposition {name!r}; choose one of "
                              f"{', '.join(c.disposition_names())}")
    contact, _ = yield from _contact(contact_id)
    after = K.after_disposition(c, d, contact.status, contact.attempts, call_back_at, at)
    outcome = K.AttemptOutcome(recorded)
    if d.then is K.AfterDisposition.WRONG_NUMBER:
        outcome = K.AttemptOutcome.WRONG_NUMBER
    # Only a call put through reaches anybody; the agent says whether it was the right person.
    rp = d.right_party and outcome is K.AttemptOutcome.CONNECTED
    t = at.timestamp()
    yield Execute("UPDATE campaign_attempts SET disposition = ?, outcome = ?, right_party = ? WHERE id = ?",
                  (d.name, outcome.value, int(rp), attempt_id))
    yield Execute(
        "UPDATE campaign_contacts SET status = ?, next_at = ?, last_outcome = ?, right_party = (SELECT"
        " COALESCE(MAX(a.right_party), 0) FROM campaign_attempts a WHERE a.contact_id = ?), updated_at = ? WHERE id = ?",
        (after.status.value, after.next_at, outcome.value, contact_id, t, contact_id))
    return Disposed(c.name, contact.e164, d, outcome, rp, after)


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """The attempt a dialer call was: what a disposition needs after the dialer's memory is gone (a restart)."""

    attempt_id: int
    campaign: str
    agent: str
    e164: str


def attempt_of_call(call_id: str) -> Plan[CallAttempt | None]:
    got = yield Fetch("SELECT a.id, c.name, a.agent, a.e164 FROM campaign_attempts a JOIN campaigns c"
                      " ON c.id = a.campaign_id WHERE a.call_id = ? ORDER BY a.id DESC LIMIT 1", (call_id,))
    return CallAttempt(int(got[0][0]), str(got[0][1]), str(got[0][2]), str(got[0][3])) if got else None


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An attempt begun and never ended (its contact is still dialling): what a crash leaves behind."""

    attempt_id: int
    campaign: str
    call_id: str
    started_at: float


def open_attempts() -> Plan[list[OpenAttempt]]:
    got = yield Fetch(
        "SELECT a.id, c.name, a.call_id, a.started_at FROM campaign_attempts a JOIN campaigns c ON c.id = a.campaign_id"
        " WHERE a.outcome = '' ORDER BY a.id", ())
    return [OpenAttempt(int(r[0]), str(r[1]), str(r[2] or ""), float(r[3])) for r in got]


def contacts_of(name: str, limit: int = 1000) -> Plan[list[K.ContactState]]:
    stored = yield from load_campaign(name)
    got = yield Fetch(f"SELECT {CONTACT_COLS} FROM campaign_contacts c WHERE c.campaign_id = ?"
                      " ORDER BY c.position LIMIT ?", (stored.id, limit))
    return [contact_state(r) for r in got]


def progress(name: str) -> Plan[K.CampaignProgress]:
    stored = yield from load_campaign(name)
    by_status = yield Fetch(
        "SELECT status, COUNT(*), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM campaign_contacts"
        " WHERE campaign_id = ? GROUP BY status", (stored.id,))
    counts = {r[0]: int(r[1]) for r in by_status}
    tried = sum(int(r[2] or 0) for r in by_status)
    by_outcome = yield Fetch(
        "SELECT outcome, COUNT(*), SUM(right_party) FROM campaign_attempts WHERE campaign_id = ? GROUP BY outcome",
        (stored.id,))
    outcomes = {r[0] or "under way": int(r[1]) for r in by_outcome}
    S = K.ContactStatus
    return K.CampaignProgress(
        name=name, status=stored.status, contacts=sum(counts.values()), pending=counts.get(S.PENDING, 0),
        retry=counts.get(S.RETRY, 0), dialing=counts.get(S.DIALING, 0), done=counts.get(S.DONE, 0),
        excluded=counts.get(S.EXCLUDED, 0), tried=tried, attempts=sum(outcomes.values()),
        connects=outcomes.get(K.AttemptOutcome.CONNECTED.value, 0),
        right_party=sum(int(r[2] or 0) for r in by_outcome), outcomes=outcomes,
    )


# ------------------------------------------------------------------------------ CRM selections


@dataclass(frozen=True, slots=True)
class Selected:
    customer_id: int
    name: str
    phones: tuple[str, ...]


def selection_page(sql: str, args: tuple[Any, ...], after: int, size: int) -> Plan[list[Selected]]:
    """One page of a named selection: customers (id > after) with their phones in order."""
    got = yield Fetch(f"SELECT id, name FROM customers WHERE id > ? AND id IN ({sql}) ORDER BY id LIMIT ?",
                      (after, *args, size))
    if not got:
        return []
    ids = [r[0] for r in got]
    ph = yield Fetch(f"SELECT customer_id, e164 FROM phones WHERE customer_id IN ({_marks(len(ids))})"
                     " ORDER BY customer_id, position, e164", tuple(ids))
    phones: dict[int, list[str]] = {}
    for cid, e164 in ph:
        phones.setdefault(cid, []).append(e164)
    return [Selected(r[0], r[1], tuple(phones.get(r[0], ()))) for r in got]


def write_audit(row: AuditRow) -> Plan[None]:
    yield Execute(AUDIT_INSERT, row)


def dialled_by(name: str, instants: Sequence[float]) -> Plan[list[int]]:
    """Contacts of the campaign dialled at least once before each instant (list penetration over time)."""
    stored = yield from load_campaign(name)
    out = []
    for at in instants:
        got = yield Fetch("SELECT COUNT(DISTINCT contact_id) FROM campaign_attempts WHERE campaign_id = ?"
                          " AND started_at < ?", (stored.id, at))
        out.append(int(got[0][0] or 0))
    return out
