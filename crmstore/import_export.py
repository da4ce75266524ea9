"""Import and export of customers and their history (CSV and JSON), for ``ctiserver crm import|export``.

Files from Chinese systems are often GBK or UTF-8 with a BOM; both are detected. Every data row is either
created, merged into the customer it matches (same phone or account number) or reported as rejected with
its row number and the reason; a row is never silently dropped or doubled.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from . import queries as Q
from . import rows as R
from .errors import ImportFormatError, InvalidPhone
from .model import Flag, ImportReport, RejectedRow
from .phones import normalize_phone
from .plan import Execute, ExecuteMany, Fetch, Plan
from .privacy import SYSTEM, Right, Viewer
from .store import CrmStore

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
# Headers seen in exports of Chinese CRMs and in hand-made sheets.
ALIASES = {
    "姓名": "name",
    "客户名称": "name",
    "名称": "name",
    "公司": "company",
    "单位": "company",
    "邮箱": "email",
    "电子邮件": "email",
    "电话": "phones",
    "手机": "phones",
    "手机号": "phones",
    "联系电话": "phones",
    "账号": "accounts",
    "账户": "accounts",
    "客户编号": "accounts",
    "标签": "tags",
    "备注": "notes",
    "语言": "preferred_language",
    "联系时间": "contact_time",
    "联系方式": "contact_channel",
    "等级": "grade",
    "phone": "phones",
    "mobile": "phones",
    "telephone": "phones",
    "account": "accounts",
    "account_number": "accounts",
    "tag": "tags",
    "language": "preferred_language",
}
REQUIRED = ("name",)
_MULTI = re.compile(r"[;|；、/]")
_TRUE = {"1", "true", "yes", "y", "是", "x", "✓"}
_FALSE = {"", "0", "false", "no", "n", "否"}
CHUNK = 500


# ------------------------------------------------------------------------------------------ reading


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name). UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030 (a superset of GBK)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gbk"
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"cannot decode the file as UTF-8 or GBK (byte {exc.start})") from None


def _column(name: str) -> str:
    key = name.strip().lstrip("\ufeff")
    return ALIASES.get(key, ALIASES.get(key.lower(), key.lower().replace(" ", "_")))


def read_csv(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ImportFormatError("the CSV file is empty (no header row)")
    cols = [_column(h) for h in header]
    unknown = [h for h, c in zip(header, cols) if c not in CSV_COLUMNS]
    missing = [c for c in REQUIRED if c not in cols]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unknown column(s) " + ", ".join(repr(u) for u in unknown))
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        raise ImportFormatError("; ".join(parts) + ". Accepted columns: " + ", ".join(CSV_COLUMNS))
    dup = sorted({c for c in cols if cols.count(c) > 1 and c != "phones"})
    if dup:
        raise ImportFormatError("column(s) given twice: " + ", ".join(dup))
    for n, values in enumerate(reader, start=1):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(cols):
            yield n, {"__error__": f"{len(values)} fields, the header has {len(cols)}"}
            continue
        row: dict[str, str] = {}
        for c, v in zip(cols, values):
            # Several phone columns (手机, 电话) are merged into one list.
            row[c] = f"{row[c]};{v}" if c in row and v.strip() else row.get(c) or v
        yield n, row


def read_json(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"not valid JSON: {exc}") from None
    items = doc.get("customers") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ImportFormatError('JSON must be a list of customers or {"customers": [...]}')
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield n, {"__error__": "not a JSON object"}
            continue
        unknown = sorted(set(item) - set(CSV_COLUMNS) - _JSON_HISTORY - {"flags", "id"})
        if unknown:
            yield n, {"__error__": "unknown field(s) " + ", ".join(unknown)}
            continue
        yield n, item


_JSON_HISTORY = {"purchases", "interactions", "tickets", "follow_ups"}


# ------------------------------------------------------------------------------------- validation


@dataclass(slots=True)
class ImportRow:
    row: int
    fields: dict[str, Any]
    phones: list[str]
    accounts: list[str]
    tags: list[str]
    flags: dict[Flag, str]
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in _MULTI.split(str(value or "")) if p.strip()]


def _bool(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{column}={value!r} is not yes/no")


def validate(n: int, raw: Mapping[str, Any], default_country: str) -> ImportRow:
    """Raise ValueError with the reason for a bad row."""
    if "__error__" in raw:
        raise ValueError(raw["__error__"])
    phones: list[str] = []
    for p in _split(raw.get("phones", "")):
        try:
            e164 = normalize_phone(p, default_country)
        except InvalidPhone as exc:
            raise ValueError(str(exc)) from None
        if e164 not in phones:
            phones.append(e164)
    name = str(raw.get("name") or "").strip()
    if not name and not phones:
        raise ValueError("neither a name nor a phone number")
    email = str(raw.get("email") or "").strip()
    if email and ("@" not in email or " " in email):
        raise ValueError(f"email {email!r} is not an address")
    fields: dict[str, Any] = {
        k: str(raw.get(k) or "").strip()
        for k in ("company", "notes", "preferred_language", "contact_time", "contact_channel")
    }
    fields["name"] = name
    fields["email"] = email
    fields["is_lead"] = _bool(raw.get("is_lead", ""), "is_lead")
    grade = str(raw.get("grade") or "").strip().upper()
    if grade and grade not in ("A", "B", "C"):
        raise ValueError(f"grade {grade!r} is not A, B or C")
    fields["grade"] = grade
    flags: dict[Flag, str] = {}
    reason = str(raw.get("flag_reason") or "").strip()
    for flag in Flag:
        if _bool(raw.get(flag.value, ""), flag.value):
            flags[flag] = reason
    for item in raw.get("flags") or ():
        try:
            flags[Flag(item["flag"])] = str(item.get("reason", ""))
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"flag {item!r} is not one of {', '.join(f.value for f in Flag)}") from None
    history = {k: list(raw.get(k) or ()) for k in _JSON_HISTORY if raw.get(k)}
    for k, items in history.items():
        for item in items:
            if not isinstance(item, dict):
                raise ValueError(f"{k} entry {item!r} is not an object")  # noqa: TRY004 - a rejected row, not a bug
            _check_history(k, item)
    return ImportRow(
        n, fields, phones, _split(raw.get("accounts", "")), _split(raw.get("tags", "")), flags, history
    )


def _check_history(kind: str, item: Mapping[str, Any]) -> None:
    try:
        if kind == "purchases":
            R.cents(str(item["amount"]))
            date.fromisoformat(str(item["date"]))
        elif kind == "interactions":
            str(item["call_id"])
            datetime.fromisoformat(str(item["started_at"]))
        elif kind == "tickets":
            str(item["category"])
            datetime.fromisoformat(str(item["opened_at"]))
        else:
            str(item["kind"])
            datetime.fromisoformat(str(item["due_at"]))
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"{kind} entry {dict(item)!r} is incomplete or malformed ({exc})") from None


# -------------------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class ChunkResult:
    created: int = 0
    merged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def _import_chunk(rows: Sequence[ImportRow], viewer: Viewer, now: float) -> Plan[ChunkResult]:
    out = ChunkResult()
    for r in rows:
        owners: set[int] = set()
        for p in r.phones:
            got = yield Fetch("SELECT customer_id FROM phones WHERE e164 = ?", (p,))
            owners.update(x[0] for x in got)
        for a in r.accounts:
            got = yield Fetch("SELECT customer_id FROM accounts WHERE account = ?", (a,))
            owners.update(x[0] for x in got)
        if len(owners) > 1:
            ids = ", ".join(str(o) for o in sorted(owners))
            out.rejected.append(
                RejectedRow(r.row, f"phones/accounts match several customers ({ids}): not merged")
            )
            continue
        if owners:
            cid = owners.pop()
            yield from _merge(cid, r, now)
            out.merged += 1
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


def _merge(cid: int, r: ImportRow, now: float) -> Plan[None]:
    """Fill what the stored customer lacks; never overwrite a stored value with a different one.
    Differing notes are appended, tags/phones/accounts are unions, flags are added."""
    got = yield Fetch(
        "SELECT name, company, email, tags, notes, preferred_language, contact_time, contact_channel, grade"
        " FROM customers WHERE id = ?",
        (cid,),
    )
    cur = got[0]
    f = r.fields
    name, company, email = cur[0] or f["name"], cur[1] or f["company"], cur[2] or f["email"]
    tags = list(R.tags_of(cur[3]))
    tags += [t for t in r.tags if t not in tags]
    notes = cur[4]
    if f["notes"] and f["notes"] not in notes:
        notes = f"{notes}\n{f['notes']}" if notes else f["notes"]
    yield Execute(
        "UPDATE customers SET name = ?, company = ?, name_key = ?, company_key = ?, email = ?, tags = ?, notes = ?,"
        " preferred_language = ?, contact_time = ?, contact_channel = ?, grade = ?, updated_at = ? WHERE id = ?",
        (
            name,
            company,
            R.search_key(name),
            R.search_key(company),
            email,
            R.tags_text(tags),
            notes,
            cur[5] or f["preferred_language"],
            cur[6] or f["contact_time"],
            cur[7] or f["contact_channel"],
            cur[8] or f["grade"] or None,
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
    yield from _flags(cid, r, now)


def _flags(cid: int, r: ImportRow, now: float) -> Plan[None]:
    yield ExecuteMany(
        "INSERT INTO customer_flags (customer_id, flag, reason, set_at, set_by) VALUES (?, ?, ?, ?, 'import')"
        " ON CONFLICT (customer_id, flag) DO NOTHING",
        [(cid, flag.value, reason, now) for flag, reason in r.flags.items()],
    )


def _ts(text: str | None) -> float | None:
    return None if not text else R.ts(datetime.fromisoformat(text))


def _history(cid: int, r: ImportRow, now: float) -> Plan[None]:
    """History rows are appended unless an identical one is stored: re-importing an export doubles nothing."""
    for p in r.history.get("purchases", ()):
        c, on, ref = R.cents(str(p["amount"])), str(date.fromisoformat(str(p["date"]))), str(p.get("ref", ""))
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
            (
                str(i["call_id"]),
                cid,
                str(i.get("direction", "inbound")),
                str(i.get("outcome", "answered")),
                str(i.get("caller", "")),
                _ts(i["started_at"]),
                _ts(i.get("answered_at")),
                _ts(i.get("ended_at")),
                str(i.get("queue", "")),
                str(i.get("agent", "")),
                float(i.get("wait_s", 0)),
                float(i.get("talk_s", 0)),
                float(i.get("hold_s", 0)),
                float(i.get("wrapup_s", 0)),
                str(i.get("disposition", "")),
                str(i.get("notes", "")),
                json.dumps(list(i.get("ivr_path", ())), ensure_ascii=False),
                str(i.get("recording_ref", "")),
                i.get("survey_score"),
            ),
        )
    for t in r.history.get("tickets", ()):
        opened = _ts(t["opened_at"])
        dup = yield Fetch(
            "SELECT 1 FROM tickets WHERE customer_id = ? AND category = ? AND opened_at = ?",
            (cid, str(t["category"]), opened),
        )
        if not dup:
            yield Execute(
                "INSERT INTO tickets (customer_id, category, subject, status, opened_at, due_at, closed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    str(t["category"]),
                    str(t.get("subject", "")),
                    str(t.get("status", "open")),
                    opened,
                    _ts(t.get("due_at")),
                    _ts(t.get("closed_at")),
                ),
            )
    for f in r.history.get("follow_ups", ()):
        due = _ts(f["due_at"])
        dup = yield Fetch(
            "SELECT 1 FROM follow_ups WHERE customer_id = ? AND kind = ? AND due_at = ?",
            (cid, str(f["kind"]), due),
        )
        if not dup:
            yield Execute(
                "INSERT INTO follow_ups (customer_id, kind, owner, due_at, status, note, source_call_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    str(f["kind"]),
                    str(f.get("owner", "")),
                    due,
                    str(f.get("status", "open")),
                    str(f.get("note", "")),
                    str(f.get("source_call_id", "")),
                    now,
                ),
            )


# ------------------------------------------------------------------------------------- public API


async def import_file(
    store: CrmStore, path: str | Path, *, default_country: str | None = None, viewer: Viewer = SYSTEM
) -> ImportReport:
    """Import customers (CSV or JSON, by extension; JSON may carry history). Raises ImportFormatError when the
    file as a whole is unusable (wrong columns, undecodable); bad rows are reported, good rows imported.
    Rows are written in transactions of CHUNK rows; a failing chunk raises CrmWriteError and the report of
    the chunks already stored is lost only from memory, not from the database (re-running merges them)."""
    viewer.require(Right.IMPORT_EXPORT)
    p = Path(path)
    text, encoding = decode(p.read_bytes())
    suffix = p.suffix.lower()
    if suffix == ".json":
        source: Iterator[tuple[int, Mapping[str, Any]]] = read_json(text)
    elif suffix in (".csv", ".txt"):
        source = read_csv(text)
    else:
        raise ImportFormatError(f"{p.name}: unknown file type {suffix!r} (use .csv or .json)")
    country = (default_country or store.default_country).upper()
    total = created = merged = 0
    rejected: list[RejectedRow] = []
    chunk: list[ImportRow] = []

    async def flush() -> None:
        nonlocal created, merged
        if chunk:
            res = await store.backend.write(_import_chunk(list(chunk), viewer, time.time()))
            created += res.created
            merged += res.merged
            rejected.extend(res.rejected)
            chunk.clear()

    for n, raw in source:
        total += 1
        try:
            chunk.append(validate(n, raw, country))
        except ValueError as exc:
            rejected.append(RejectedRow(n, str(exc)))
        if len(chunk) >= CHUNK:
            await flush()
    await flush()
    rejected.sort(key=lambda r: r.row)
    return ImportReport(str(p), encoding, total, created, merged, tuple(rejected))


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


async def export(
    store: CrmStore, path: str | Path, *, fmt: str | None = None, viewer: Viewer = SYSTEM, page: int = 500
) -> int:
    """Write every customer to ``path``: JSON with full history, or CSV (customers only; UTF-8 with BOM so
    Excel opens Chinese text correctly). Returns the number of customers written. Admins only (full data)."""
    viewer.require(Right.IMPORT_EXPORT)
    p = Path(path)
    kind = (fmt or p.suffix.lstrip(".")).lower()
    if kind not in ("csv", "json"):
        raise ValueError(f"export format {kind!r}: use csv or json")
    count = 0
    tmp = p.with_name(p.name + ".part")
    with tmp.open("w", encoding="utf-8-sig" if kind == "csv" else "utf-8", newline="") as fh:
        writer = csv.writer(fh) if kind == "csv" else None
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
                    flags = {f["flag"]: f["reason"] for f in c["flags"]}
                    writer.writerow(
                        [
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
                    )
                else:
                    fh.write((",\n" if count else "") + json.dumps(c, ensure_ascii=False))
                count += 1
            after = items[-1]["id"]
        if writer is None:
            fh.write("\n]}\n")
    tmp.replace(p)  # a half-written export never carries the final name
    await store.backend.write(
        Q.write_audit([Q.audit_row(viewer, "export", None, f"{count} customers to {p.name}")])
    )
    return count
