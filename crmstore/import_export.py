"""Import and export of customers and their history (CSV and JSON), for ``ctiserver crm import|export``.

Every data row is either created, merged into the customer it matches (same phone or account number) or
rejected with its row number and the reason; a row is never silently dropped or doubled, and every merge
is reported with what was kept. Reading (encodings, size limits, streaming) is ``import_source``; this
module checks rows and writes them. Files are read one row at a time: memory does not grow with the file.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import queries as Q
from . import rows as R
from .errors import InvalidPhone
from .import_source import HISTORY_FIELDS, MAX_FILE_BYTES, Source, guard_cell, open_source, rows
from .model import (
    Direction,
    Flag,
    FollowUpKind,
    FollowUpStatus,
    ImportReport,
    MergedRow,
    Outcome,
    RejectedRow,
    TicketStatus,
)
from .phones import normalize_phone
from .plan import Execute, ExecuteMany, Fetch, Plan
from .privacy import SYSTEM, Right, Viewer
from .store import CrmStore
from .validation import clean_text as _clean
from .validation import email_problem

CSV_COLUMNS = (
    "name",
    "company",
    "email",
    "phones",
    "accounts",
    "tags",
    "notes",
    "preferred_language",
    "contact_time",
    "contact_channel",
    "is_lead",
    "vip",
    "key_account",
    "blacklist",
    "difficult",
    "flag_reason",
    "grade",
)
_MULTI = re.compile(r"[;|；、/]")
_TRUE = {"1", "true", "yes", "y", "是", "x", "✓"}
_FALSE = {"", "0", "false", "no", "n", "否"}
CHUNK = 500  # rows per transaction
CHUNK_CHARS = 32 << 20  # ... or fewer when the rows are large (JSON with long histories)
DETAIL_LIMIT = 1000  # per-row details kept in the ImportReport, of each kind
AKA = "also known as: "  # the notes line that keeps a merged row's other name

RowOutcome = RejectedRow | MergedRow

# ------------------------------------------------------------------------------------- validation


class BadRow(ValueError):
    """The reason a row is rejected (a value of the wrong type is a bad row too, not a bug)."""


@dataclass(slots=True)
class ImportRow:
    row: int
    fields: dict[str, Any]
    phones: list[str]
    accounts: list[str]
    tags: list[str]
    flags: dict[Flag, str]
    # Column values ready for INSERT (after customer_id), checked before the write transaction starts:
    # nothing inside a write plan may fail on a bad value, that would roll back the rows beside it.
    history: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)


def _text(raw: Mapping[str, Any], key: str, what: str | None = None, *, multiline: bool = False) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRow(f"{what or key} must be text, not {type(value).__name__}")
    return _clean(str(value).strip(), what or key, multiline=multiline)


def _split(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    if isinstance(value, list):
        parts = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise BadRow(f"{key} must hold text, not {type(v).__name__}")
            parts.append(str(v).strip())
    elif value is None or isinstance(value, (str, int)) and not isinstance(value, bool):
        parts = [p.strip() for p in _MULTI.split(str(value or ""))]
    else:
        raise ValueError(f"{key} must be text or a list, not {type(value).__name__}")
    return [_clean(p, key) for p in parts if p]


def _bool(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{column}={value!r} is not yes/no")


def _shown(value: Any) -> str:
    """A value from the file inside a reason: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(n: int, raw: Mapping[str, Any], default_country: str) -> ImportRow:
    """Raise ValueError with the reason for a bad row."""
    if "__error__" in raw:
        raise ValueError(raw["__error__"])
    phones: list[str] = []
    for p in _split(raw, "phones"):
        try:
            # A hand-made sheet may carry Excel's text quote ('13800138000): never part of a number.
            e164 = normalize_phone(p.lstrip("'"), default_country, strict=True)
        except InvalidPhone as exc:
            raise ValueError(str(exc)) from None
        if e164 not in phones:
            phones.append(e164)
    name = _text(raw, "name")
    if not name and not phones:
        raise ValueError("neither a name nor a phone number")
    email = _text(raw, "email")
    if email and (why := email_problem(email)):
        raise ValueError(f"email {email!r} is not an address ({why})")
    fields: dict[str, Any] = {
        k: _text(raw, k) for k in ("company", "preferred_language", "contact_time", "contact_channel")
    }
    fields["notes"] = _text(raw, "notes", multiline=True)
    fields["name"] = name
    fields["email"] = email
    fields["is_lead"] = _bool(raw.get("is_lead", ""), "is_lead")
    grade = _text(raw, "grade").upper()
    if grade and grade not in ("A", "B", "C"):
        raise ValueError(f"grade {grade!r} is not A, B or C")
    fields["grade"] = grade
    flags: dict[Flag, str] = {}
    reason = _text(raw, "flag_reason")
    for flag in Flag:
        if _bool(raw.get(flag.value, ""), flag.value):
            flags[flag] = reason
    listed = raw.get("flags") or []
    if not isinstance(listed, list):
        raise BadRow("flags must be a list")
    for item in listed:
        if not isinstance(item, dict):
            raise BadRow(f'flags entry {_shown(item)} is not an object such as {{"flag": "vip", "reason": "..."}}')
        given = item.get("flag")
        try:
            flag = Flag(given if isinstance(given, str) else "")
        except ValueError:
            raise ValueError(f"flag {_shown(item)} is not one of {', '.join(f.value for f in Flag)}") from None
        flags[flag] = _text(item, "reason", "flag reason")
    history: dict[str, list[tuple[Any, ...]]] = {}
    for kind in sorted(HISTORY_FIELDS):
        items = raw.get(kind)
        if not items:
            continue
        if not isinstance(items, list):
            raise BadRow(f"{kind} must be a list")
        history[kind] = [_history_entry(kind, i, item) for i, item in enumerate(items, start=1)]
    return ImportRow(n, fields, phones, _split(raw, "accounts"), _split(raw, "tags"), flags, history)


# ---------------------------------------------------------------------------------- history entries


class _Entry:
    """Typed reads of one history entry; every error names the entry and the field."""

    def __init__(self, kind: str, i: int, item: Any) -> None:
        if not isinstance(item, dict):
            raise BadRow(f"{kind} entry {i} is not an object")
        self.where = f"{kind} entry {i}"
        self.item = item

    def text(self, key: str, *, required: bool = False, multiline: bool = False) -> str:
        if required and self.item.get(key) in (None, ""):
            raise ValueError(f"{self.where}: {key} is missing")
        return _text(self.item, key, f"{self.where}: {key}", multiline=multiline)

    def choice(self, key: str, kind: type[StrEnum], default: StrEnum) -> str:
        value = self.text(key) or default.value
        try:
            return kind(value).value
        except ValueError:
            allowed = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
            raise ValueError(f"{self.where}: {key} {value!r} is not one of {allowed}") from None

    def time(self, key: str, *, required: bool = False) -> float | None:
        text = self.text(key, required=required)
        if not text:
            return None
        try:
            return R.ts(datetime.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{self.where}: {key} {text!r} is not an ISO date and time") from None

    def seconds(self, key: str) -> float:
        value = self.item.get(key, 0)
        try:
            # float() first: an integer of hundreds of digits is past any float (OverflowError).
            seconds = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0
        except OverflowError:
            seconds = -1.0
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{self.where}: {key} {_shown(value)} is not a number of seconds")
        return seconds


def _history_entry(kind: str, i: int, item: Any) -> tuple[Any, ...]:
    e = _Entry(kind, i, item)
    if kind == "purchases":
        amount = e.text("amount", required=True)
        on = e.text("date", required=True)
        try:
            cents = R.cents(amount)
            day = date.fromisoformat(on).isoformat()
        except (ValueError, ArithmeticError):
            raise ValueError(f"{e.where}: amount {amount!r} or date {on!r} is malformed") from None
        return (cents, day, e.text("ref"))
    if kind == "interactions":
        path = item.get("ivr_path") or []
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise ValueError(f"{e.where}: ivr_path must be a list of node names")
        score = item.get("survey_score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5):
            raise ValueError(f"{e.where}: survey_score {score!r} is not 1 to 5")
        return (
            e.text("call_id", required=True),
            e.choice("direction", Direction, Direction.INBOUND),
            e.choice("outcome", Outcome, Outcome.ANSWERED),
            e.text("caller"),
            e.time("started_at", required=True),
            e.time("answered_at"),
            e.time("ended_at"),
            e.text("queue"),
            e.text("agent"),
            e.seconds("wait_s"),
            e.seconds("talk_s"),
            e.seconds("hold_s"),
            e.seconds("wrapup_s"),
            e.text("disposition"),
            e.text("notes", multiline=True),
            json.dumps([_clean(p, f"{e.where}: ivr_path") for p in path], ensure_ascii=False),
            e.text("recording_ref"),
            score,
        )
    if kind == "tickets":
        return (
            e.text("category", required=True),
            e.text("subject", multiline=True),
            e.choice("status", TicketStatus, TicketStatus.OPEN),
            e.time("opened_at", required=True),
            e.time("due_at"),
            e.time("closed_at"),
        )
    e.text("kind", required=True)
    return (
        e.choice("kind", FollowUpKind, FollowUpKind.CALLBACK),
        e.text("owner"),
        e.time("due_at", required=True),
        e.choice("status", FollowUpStatus, FollowUpStatus.OPEN),
        e.text("note", multiline=True),
        e.text("source_call_id"),
    )


# -------------------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class ChunkResult:
    created: int = 0
    merged: int = 0
    outcomes: list[RowOutcome] = field(default_factory=list)


def _import_chunk(rows: Sequence[ImportRow], viewer: Viewer, now: float) -> Plan[ChunkResult]:
    out = ChunkResult()
    for r in rows:
        owners: set[int] = set()
        new_phones: list[str] = []
        new_accounts: list[str] = []
        for p in r.phones:
            got = yield Fetch("SELECT customer_id FROM phones WHERE e164 = ?", (p,))
            owners.update(x[0] for x in got)
            if not got:
                new_phones.append(p)
        for a in r.accounts:
            got = yield Fetch("SELECT customer_id FROM accounts WHERE account = ?", (a,))
            owners.update(x[0] for x in got)
            if not got:
                new_accounts.append(a)
        if len(owners) > 1:
            ids = ", ".join(str(o) for o in sorted(owners))
            out.outcomes.append(
                RejectedRow(r.row, f"phones/accounts match several customers ({ids}): not merged")
            )
            continue
        if owners:
            cid = owners.pop()
            name, kept = yield from _merge(cid, r, new_phones, new_accounts, now)
            out.merged += 1
            out.outcomes.append(MergedRow(r.row, cid, name, kept))
            action = "merged"
        else:
            cid = yield from _create(r, now)
            out.created += 1
            action = "created"
        yield from _history(cid, r, now)
        yield Execute(Q.AUDIT_INSERT, Q.audit_row(viewer, "import", cid, f"row {r.row} {action}"))
    return out


def _create(r: ImportRow, now: float) -> Plan[int]:
    f = r.fields
    got = yield Fetch(
        "INSERT INTO customers (name, company, name_key, company_key, email, tags, notes, preferred_language,"
        " contact_time, contact_channel, is_lead, grade, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            f["name"],
            f["company"],
            R.search_key(f["name"]),
            R.search_key(f["company"]),
            f["email"],
            R.tags_text(r.tags),
            f["notes"],
            f["preferred_language"],
            f["contact_time"],
            f["contact_channel"],
            int(f["is_lead"]),
            f["grade"] or None,
            now,
            now,
        ),
    )
    cid: int = got[0][0]
    yield ExecuteMany(
        "INSERT INTO phones (e164, customer_id, position) VALUES (?, ?, ?)",
        [(p, cid, i) for i, p in enumerate(r.phones)],
    )
    yield ExecuteMany(
        "INSERT INTO accounts (account, customer_id) VALUES (?, ?)", [(a, cid) for a in r.accounts]
    )
    yield from _flags(cid, r, now)
    return cid


_MERGED_FIELDS = (  # (column in the SELECT below, field, label in the report)
    (1, "company", "company"),
    (2, "email", "email"),
    (5, "preferred_language", "language"),
    (6, "contact_time", "contact time"),
    (7, "contact_channel", "contact channel"),
    (8, "grade", "grade"),
)


def _merge(
    cid: int, r: ImportRow, new_phones: list[str], new_accounts: list[str], now: float
) -> Plan[tuple[str, str]]:
    """Fill what the stored customer lacks; never overwrite a stored value with a different one.
    A different name is kept in the notes ("also known as: ..."), different notes are appended,
    tags/phones/accounts are unions, flags are added. Returns the name and what was done, for the report."""
    got = yield Fetch(
        "SELECT name, company, email, tags, notes, preferred_language, contact_time, contact_channel, grade"
        " FROM customers WHERE id = ?",
        (cid,),
    )
    cur = got[0]
    f = r.fields
    done: list[str] = []
    name, notes = cur[0], cur[4]
    if f["notes"] and f["notes"] not in notes:
        notes = f"{notes}\n{f['notes']}" if notes else f["notes"]
        done.append("notes appended")
    if f["name"] and not name:
        name = f["name"]
        done.append(f"name {name!r} filled in")
    elif f["name"] and f["name"] != name:
        aka = AKA + f["name"]
        if aka not in notes.split("\n"):
            notes = f"{notes}\n{aka}" if notes else aka
            done.append(f"name {name!r} kept, {f['name']!r} added to the notes as another name")
        else:
            done.append(f"name {name!r} kept, {f['name']!r} already in the notes as another name")
    merged: dict[str, Any] = {}
    for col, key, label in _MERGED_FIELDS:
        stored, given = cur[col] or "", f[key]
        merged[key] = stored or given
        if given and not stored:
            done.append(f"{label} {given!r} filled in")
        elif given and given != stored:
            done.append(f"{label} {stored!r} kept, not {given!r}")
    tags = list(R.tags_of(cur[3]))
    added_tags = [t for t in r.tags if t not in tags]
    tags += added_tags
    for what, items in (("phones", new_phones), ("accounts", new_accounts), ("tags", added_tags)):
        if items:
            done.append(f"{what} {', '.join(items)} added")
    yield Execute(
        "UPDATE customers SET name = ?, company = ?, name_key = ?, company_key = ?, email = ?, tags = ?, notes = ?,"
        " preferred_language = ?, contact_time = ?, contact_channel = ?, grade = ?, updated_at = ? WHERE id = ?",
        (
            name,
            merged["company"],
            R.search_key(name),
            R.search_key(merged["company"]),
            merged["email"],
            R.tags_text(tags),
            notes,
            merged["preferred_language"],
            merged["contact_time"],
            merged["contact_channel"],
            merged["grade"] or None,
            now,
            cid,
        ),
    )
    pos = yield Fetch("SELECT COALESCE(MAX(position), -1) FROM phones WHERE customer_id = ?", (cid,))
    yield ExecuteMany(
        "INSERT INTO phones (e164, customer_id, position) VALUES (?, ?, ?) ON CONFLICT (e164) DO NOTHING",
        [(p, cid, pos[0][0] + 1 + i) for i, p in enumerate(r.phones)],
    )
    yield ExecuteMany(
        "INSERT INTO accounts (account, customer_id) VALUES (?, ?) ON CONFLICT (account) DO NOTHING",
        [(a, cid) for a in r.accounts],
    )
    if r.flags:
        stored_flags = yield Fetch("SELECT flag FROM customer_flags WHERE customer_id = ?", (cid,))
        added_flags = sorted({f.value for f in r.flags} - {x[0] for x in stored_flags})
        if added_flags:
            done.append(f"flags {', '.join(added_flags)} added")
    yield from _flags(cid, r, now)
    return name, "; ".join(done) or "nothing new"


def _flags(cid: int, r: ImportRow, now: float) -> Plan[None]:
    yield ExecuteMany(
        "INSERT INTO customer_flags (customer_id, flag, reason, set_at, set_by) VALUES (?, ?, ?, ?, 'import')"
        " ON CONFLICT (customer_id, flag) DO NOTHING",
        [(cid, flag.value, reason, now) for flag, reason in r.flags.items()],
    )


def _history(cid: int, r: ImportRow, now: float) -> Plan[None]:
    """History rows are appended unless an identical one is stored: re-importing an export doubles nothing."""
    for c, on, ref in r.history.get("purchases", ()):
        dup = yield Fetch(
            "SELECT 1 FROM purchases WHERE customer_id = ? AND purchased_on = ? AND amount_cents = ? AND ref = ?",
            (cid, on, c, ref),
        )
        if not dup:
            yield Execute(
                "INSERT INTO purchases (customer_id, amount_cents, purchased_on, ref) VALUES (?, ?, ?, ?)",
                (cid, c, on, ref),
            )
    for i in r.history.get("interactions", ()):
        yield Execute(
            "INSERT INTO interactions (call_id, customer_id, direction, outcome, caller, started_at, answered_at,"
            " ended_at, queue, agent, wait_s, talk_s, hold_s, wrapup_s, disposition, notes, ivr_path,"
            " recording_ref, survey_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO NOTHING",
            (i[0], cid, *i[1:]),
        )
    for t in r.history.get("tickets", ()):
        dup = yield Fetch(
            "SELECT 1 FROM tickets WHERE customer_id = ? AND category = ? AND opened_at = ?",
            (cid, t[0], t[3]),
        )
        if not dup:
            yield Execute(
                "INSERT INTO tickets (customer_id, category, subject, status, opened_at, due_at, closed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cid, *t),
            )
    for f in r.history.get("follow_ups", ()):
        dup = yield Fetch(
            "SELECT 1 FROM follow_ups WHERE customer_id = ? AND kind = ? AND due_at = ?",
            (cid, f[0], f[2]),
        )
        if not dup:
            yield Execute(
                "INSERT INTO follow_ups (customer_id, kind, owner, due_at, status, note, source_call_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, *f, now),
            )


# ------------------------------------------------------------------------------------- public API


@dataclass(slots=True)
class _Batch:
    rows: list[ImportRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    seen: int = 0  # data rows read (blank lines are not rows)


def _batches(source: Source, country: str) -> Generator[_Batch, None, None]:
    """The file's rows, checked, in batches of at most CHUNK rows or CHUNK_CHARS characters."""
    batch, chars = _Batch(), 0
    for n, raw, size in rows(source, CSV_COLUMNS):
        batch.seen += 1
        chars += size
        try:
            batch.rows.append(validate(n, raw, country))
        except ValueError as exc:
            batch.rejected.append(RejectedRow(n, str(exc)))
        if len(batch.rows) >= CHUNK or chars >= CHUNK_CHARS or len(batch.rejected) >= CHUNK:
            yield batch
            batch, chars = _Batch(), 0
    if batch.seen:
        yield batch


async def import_file(
    store: CrmStore,
    path: str | Path,
    *,
    default_country: str | None = None,
    viewer: Viewer = SYSTEM,
    max_bytes: int = MAX_FILE_BYTES,
    on_row: Callable[[RowOutcome], None] | None = None,
) -> ImportReport:
    """Import customers (CSV or JSON, by extension; JSON may carry history).

    Raises ImportFormatError, before anything is written, when the file as a whole is unusable (missing,
    larger than ``max_bytes``, undecodable, wrong columns, broken JSON); bad rows are reported, good rows
    imported. ``on_row`` is called with every merged or rejected row, in row order, as the import goes
    (the report itself keeps the first DETAIL_LIMIT of each). Rows are written in transactions of CHUNK
    rows; a failing chunk raises CrmWriteError: the chunks before it are stored, and running the same
    import again merges them (it doubles nothing)."""
    viewer.require(Right.IMPORT_EXPORT)
    p = Path(path)
    country = (default_country or store.default_country).upper()
    # Reading and checking is blocking file I/O and CPU work: off the event loop, one batch at a time.
    source = await asyncio.to_thread(open_source, p, CSV_COLUMNS, max_bytes)
    batches = _batches(source, country)
    total = created = merged = rejected_count = 0
    rejected: list[RejectedRow] = []
    merges: list[MergedRow] = []
    try:
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            total += batch.seen
            outcomes: list[RowOutcome] = list(batch.rejected)
            if batch.rows:
                res = await store.backend.write(_import_chunk(batch.rows, viewer, time.time()))
                created += res.created
                merged += res.merged
                outcomes += res.outcomes
            for o in sorted(outcomes, key=lambda o: o.row):
                if isinstance(o, RejectedRow):
                    rejected_count += 1
                    if len(rejected) < DETAIL_LIMIT:
                        rejected.append(o)
                elif len(merges) < DETAIL_LIMIT:
                    merges.append(o)
                if on_row is not None:
                    on_row(o)
    finally:
        batches.close()  # the file, now, even when a write failed
    return ImportReport(
        str(p), source.reported_encoding, total, created, merged, rejected_count, tuple(rejected), tuple(merges)
    )


def _export_page(after: int, size: int) -> Plan[list[dict[str, Any]]]:
    got = yield Fetch(
        f"SELECT {R.CUSTOMER_COLS} FROM customers WHERE id > ? ORDER BY id LIMIT ?", (after, size)
    )
    out = []
    for row in got:
        cid = row[0]
        ph = yield Fetch("SELECT e164 FROM phones WHERE customer_id = ? ORDER BY position, e164", (cid,))
        ac = yield Fetch("SELECT account FROM accounts WHERE customer_id = ? ORDER BY account", (cid,))
        fl = yield Fetch(
            "SELECT flag, reason FROM customer_flags WHERE customer_id = ? ORDER BY flag", (cid,)
        )
        pu = yield Fetch(f"SELECT {R.PURCHASE_COLS} FROM purchases WHERE customer_id = ? ORDER BY id", (cid,))
        it = yield Fetch(
            f"SELECT {R.INTERACTION_COLS} FROM interactions WHERE customer_id = ? ORDER BY id", (cid,)
        )
        tk = yield Fetch(f"SELECT {R.TICKET_COLS} FROM tickets WHERE customer_id = ? ORDER BY id", (cid,))
        fu = yield Fetch(
            f"SELECT {R.FOLLOW_UP_COLS} FROM follow_ups WHERE customer_id = ? ORDER BY id", (cid,)
        )
        out.append(
            {
                "id": cid,
                "name": row[1],
                "company": row[2],
                "email": row[3],
                "tags": list(R.tags_of(row[4])),
                "notes": row[5],
                "preferred_language": row[6],
                "contact_time": row[7],
                "contact_channel": row[8],
                "is_lead": bool(row[9]),
                "grade": row[10] or "",
                "phones": [r[0] for r in ph],
                "accounts": [r[0] for r in ac],
                "flags": [{"flag": r[0], "reason": r[1]} for r in fl],
                "purchases": [
                    {"amount": str(p.amount), "date": p.purchased_on.isoformat(), "ref": p.ref}
                    for p in map(R.purchase, pu)
                ],
                "interactions": [_interaction_json(r) for r in it],
                "tickets": [
                    {
                        "category": t.category,
                        "subject": t.subject,
                        "status": t.status.value,
                        "opened_at": t.opened_at.isoformat(),
                        "due_at": _iso(t.due_at),
                        "closed_at": _iso(t.closed_at),
                    }
                    for t in map(R.ticket, tk)
                ],
                "follow_ups": [
                    {
                        "kind": f.kind.value,
                        "owner": f.owner,
                        "due_at": f.due_at.isoformat(),
                        "status": f.status.value,
                        "note": f.note,
                        "source_call_id": f.source_call_id,
                    }
                    for f in map(R.follow_up, fu)
                ],
            }
        )
    return out


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()


def _interaction_json(row: Sequence[Any]) -> dict[str, Any]:
    i = R.interaction(row, see_phones=True, see_notes=True)
    return {
        "call_id": i.call_id,
        "direction": i.direction.value,
        "outcome": i.outcome.value,
        "caller": i.caller,
        "started_at": i.started_at.isoformat(),
        "answered_at": _iso(i.answered_at),
        "ended_at": _iso(i.ended_at),
        "queue": i.queue,
        "agent": i.agent,
        "wait_s": i.wait_s,
        "talk_s": i.talk_s,
        "hold_s": i.hold_s,
        "wrapup_s": i.wrapup_s,
        "disposition": i.disposition,
        "notes": i.notes,
        "ivr_path": list(i.ivr_path),
        "recording_ref": i.recording_ref,
        "survey_score": i.survey_score,
    }


EXPORT_FORMATS = ("csv", "json")


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """csv or json, from ``fmt`` or the file's extension; ValueError naming the choices otherwise."""
    kind = (fmt or Path(path).suffix.lstrip(".")).lower()
    if kind not in EXPORT_FORMATS:
        raise ValueError(f"export format {kind!r} is not known: use a .csv or .json file name")
    return kind


def _csv_line(c: Mapping[str, Any]) -> list[str]:
    flags = {f["flag"]: f["reason"] for f in c["flags"]}
    cells = [
        c["name"],
        c["company"],
        c["email"],
        ";".join(c["phones"]),
        ";".join(c["accounts"]),
        ";".join(c["tags"]),
        c["notes"],
        c["preferred_language"],
        c["contact_time"],
        c["contact_channel"],
        "yes" if c["is_lead"] else "",
        *("yes" if f.value in flags else "" for f in Flag),
        next((r for r in flags.values() if r), ""),
        c["grade"],
    ]
    # A phone in E.164 (+86...) or a note starting with "=" must reach a spreadsheet as text, never as a
    # formula: guard_cell quotes it, and import takes the quote off again (round trip exact).
    return [guard_cell(v) for v in cells]


async def export(
    store: CrmStore, path: str | Path, *, fmt: str | None = None, viewer: Viewer = SYSTEM, page: int = 500
) -> int:
    """Write every customer to ``path``: JSON with full history, or CSV (customers only; UTF-8 with BOM so
    Excel opens Chinese text correctly; cells a spreadsheet would run as formulas start with a quote).
    Returns the number of customers written. Admins only (full data). ValueError for an unknown format,
    OSError when the file cannot be written (nothing is left under its name)."""
    viewer.require(Right.IMPORT_EXPORT)
    p = Path(path)
    kind = export_format(p, fmt)
    count = 0
    tmp = p.with_name(p.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8-sig" if kind == "csv" else "utf-8", newline="") as fh:
            writer = csv.writer(fh, quoting=csv.QUOTE_ALL) if kind == "csv" else None
            if writer is not None:
                writer.writerow(CSV_COLUMNS)
            else:
                fh.write('{"format": "ctiserver-crm", "version": 1, "customers": [\n')
            after = 0
            while True:
                items = await store.backend.read(_export_page(after, page))
                if not items:
                    break
                for c in items:
                    if writer is not None:
                        writer.writerow(_csv_line(c))
                    else:
                        fh.write((",\n" if count else "") + json.dumps(c, ensure_ascii=False))
                    count += 1
                after = items[-1]["id"]
            if writer is None:
                fh.write("\n]}\n")
        tmp.replace(p)  # a half-written export never carries the final name
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    await store.backend.write(
        Q.write_audit([Q.audit_row(viewer, "export", None, f"{count} customers to {p.name}")])
    )
    return count
