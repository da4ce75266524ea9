"""Reports over HTTP for the supervisor console: `GET /api/reports` (what can be asked) and
`GET /api/reports/<name>?from=...` (a report as JSON for the page, or a CSV or Excel download).

The session token the console got at login goes in `Authorization: Bearer <token>`; supervisors and
admins only. Every refusal is one line of text with its status: 400 a mistake in what was asked, 401 no
token or one that is forged, expired or ended, 403 an agent, 404 no such report, 503 too many reports at
once. The checks of what was asked are the `ctiserver report` command's (`ctiserver.reports.request`).
See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response

from acd.config import AcdConfig
from ctiserver.gateway.auth import Accounts, AuthError, Principal, Role, TokenSigner
from ctiserver.gateway.static import http_response
from ctiserver.reports import request as asked
from ctiserver.reports.engine import (
    ALL_REPORTS,
    GROUPINGS,
    OTHER_REPORTS,
    REPORTS,
    Query,
    Report,
    ReportError,
    check,
)
from ctiserver.reports.formats import as_csv, write_xlsx
from ctiserver.reports.intervals import TALK_BUCKETS, WAIT_BUCKETS

log = logging.getLogger("ctiserver.gateway.reports")
T = TypeVar("T")

REPORTS_PATH = "/api/reports"
PAGE_FORMATS = ("json", "csv", "xlsx")
ALLOWED_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
_PARAMS = frozenset({"from", "to", "queue", "agent", "interval", "format", "lang", "fcr_days"})
_REPEATABLE = frozenset({"queue", "agent"})
_MAX_PARAMS = 100  # queues and agents picked one by one: a few dozen at most
_TEXT = "text/plain; charset=utf-8"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ReportSource(Protocol):
    """The reports as the server runs them (ctiserver.reports.runner.ReportRunner)."""

    tz: tzinfo | None

    def config(self) -> AcdConfig: ...

    async def run(self, query: Query, render: Callable[[Report], T]) -> T: ...


class Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return http_response(self.status, self.reason, (self.message + "\n").encode(), _TEXT, self.headers)


def _bad(message: str) -> Refusal:
    return Refusal(400, "Bad Request", message)


@dataclass(frozen=True, slots=True)
class Asked:
    """A report request, checked: the query, how to send it and in which language."""

    query: Query
    fmt: str
    lang: str


def parse(path: str, tz: tzinfo | None, config: AcdConfig) -> Asked | None:
    """The request behind `path` (None: the catalog). Raises Refusal (400, 404) for a mistake."""
    parts = urlsplit(path)
    name = parts.path[len(REPORTS_PATH):].strip("/")
    try:
        fields = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False, max_num_fields=_MAX_PARAMS)
    except ValueError:
        raise _bad(f"too many parameters: at most {_MAX_PARAMS}") from None
    unknown = sorted(set(fields) - _PARAMS)
    if unknown:
        raise _bad(f"unknown parameter {unknown[0]!r}; the parameters are: {', '.join(sorted(_PARAMS))}")
    for key, values in fields.items():
        if key not in _REPEATABLE and len(values) > 1:
            raise _bad(f"{key} given {len(values)} times: give it once")
    if not name:
        return None
    if name not in ALL_REPORTS:
        raise Refusal(404, "Not Found", f"unknown report {name!r}; the reports are: {', '.join(ALL_REPORTS)}")

    def one(key: str, default: str) -> str:
        return fields.get(key, [default])[0]

    try:
        fcr_days = int(one("fcr_days", "3"))
    except ValueError:
        raise _bad(f"fcr_days: {one('fcr_days', '')!r} is not a number of days") from None
    try:
        query = asked.query(name, one("from", ""), one("to", "") or None, tz, interval=one("interval", "day"),
                            queues=[q for q in fields.get("queue", []) if q],
                            agents=[a for a in fields.get("agent", []) if a], fcr_days=fcr_days,
                            how="from=YYYY-MM-DD [&to=YYYY-MM-DD]")
        asked.check_format(one("format", "json"), PAGE_FORMATS)
        asked.check_language(one("lang", "en"))
        if not 1 <= fcr_days <= 90:
            raise ReportError("fcr_days: from 1 to 90 days")
        check(query, config)
    except ReportError as e:
        raise _bad(str(e)) from None
    return Asked(query, one("format", "json"), one("lang", "en"))


def bearer(headers: Any) -> str:
    """The session token of `Authorization: Bearer <token>`; Refusal 401 when there is none."""
    values = headers.get_all("Authorization")
    if len(values) != 1 or not values[0].startswith("Bearer ") or not values[0][7:].strip():
        raise Refusal(401, "Unauthorized", "log in first: send the session token as Authorization: Bearer <token>",
                      {"WWW-Authenticate": 'Bearer realm="ctiserver"'})
    return str(values[0][7:].strip())


class ReportsApi:
    """Answers `GET /api/reports[/<name>]`. At most `slots` reports are worked on at once; one more waits
    up to `wait_s` for its turn, then gets 503. A report that takes over `timeout_s` is given up."""

    def __init__(self, source: ReportSource, signer: TokenSigner, accounts: Accounts, clock: Callable[[], float],
                 *, slots: int = 2, wait_s: float = 10.0, timeout_s: float = 120.0) -> None:
        self.source = source
        self.signer = signer
        self.accounts = accounts
        self.clock = clock
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(slots)

    async def respond(self, request: Request) -> Response:
        try:
            who = self._who(request)
            wanted = parse(request.path, self.source.tz, self.source.config())
            if wanted is None:
                return _json(self.catalog())
            return await self._report(who, wanted)
        except Refusal as refusal:
            return refusal.response()
        except Exception:  # a database gone mid-way: one line, never a traceback to the browser
            log.exception("report %s failed", urlsplit(request.path).path)
            return Refusal(500, "Internal Server Error", "the report could not be made: see the server's log").response()

    def _who(self, request: Request) -> Principal:
        try:
            who = self.signer.check(bearer(request.headers), self.clock(), self.accounts)
        except AuthError as e:
            raise Refusal(401, "Unauthorized", e.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
        if who.role not in ALLOWED_ROLES:
            raise Refusal(403, "Forbidden", f"reports are for supervisors and admins, not for a {who.role}")
        return who

    def catalog(self) -> dict[str, object]:
        """What the page offers: the reports, the queues and agents as configured, the intervals, the zone."""
        config = self.source.config()
        titles = {name: (entry[0], entry[1]) for name, entry in REPORTS.items()} | dict(OTHER_REPORTS)
        return {"reports": [{"name": n, "en": titles[n][0], "zh": titles[n][1]} for n in ALL_REPORTS],
                "queues": [q.name for q in config.queues],
                "agents": [{"id": a.id, "name": a.name} for a in config.agents],
                "intervals": [g for g in GROUPINGS if g != "total"],
                "timezone": _zone_name(self.source.tz), "today": datetime.now(self.source.tz).date().isoformat()}

    async def _report(self, who: Principal, wanted: Asked) -> Response:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise Refusal(503, "Service Unavailable", "too many reports at once: try again in a moment",
                          {"Retry-After": "5"}) from None
        try:
            async with asyncio.timeout(self.timeout_s):
                body, content_type, extra = await self.source.run(wanted.query, _renderer(wanted))
        except TimeoutError:
            raise Refusal(503, "Service Unavailable",
                          f"the report took over {self.timeout_s:.0f} s: ask for a shorter period or coarser rows") from None
        except ReportError as e:  # checked already; the configuration may have changed meanwhile
            raise _bad(str(e)) from None
        finally:
            self._slots.release()
        log.info("report %s for %s (%s)", wanted.query.report, who.username, wanted.fmt)
        return http_response(200, "OK", body, content_type, extra)


def _renderer(wanted: Asked) -> Callable[[Report], tuple[bytes, str, dict[str, str]]]:
    """Runs in the reports' worker thread, like the report itself."""
    q = wanted.query
    last_day = datetime.fromtimestamp(q.stop.timestamp() - 1, q.stop.tzinfo)
    filename = f"{q.report}_{q.first:%Y-%m-%d}_{last_day:%Y-%m-%d}"

    def render(report: Report) -> tuple[bytes, str, dict[str, str]]:
        if wanted.fmt == "json":
            return json.dumps(page_json(report), ensure_ascii=False).encode(), "application/json; charset=utf-8", {}
        if wanted.fmt == "csv":  # with a BOM, as the command writes it: spreadsheets then read Chinese
            return (as_csv(report, wanted.lang).encode("utf-8-sig"), "text/csv; charset=utf-8",
                    _attachment(filename + ".csv"))
        with tempfile.TemporaryDirectory(prefix="report-") as tmp:
            path = Path(tmp) / "report.xlsx"
            write_xlsx(report, path, wanted.lang)
            return path.read_bytes(), _XLSX, _attachment(filename + ".xlsx")

    return render


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def page_json(report: Report) -> dict[str, object]:
    """The report for the page: figures as they are (the page writes numbers and dates in its language),
    both languages' column titles, periods as local times with their offset, and the notes as data."""
    q = report.query
    tz = q.first.tzinfo

    def local(at: float) -> str:
        return datetime.fromtimestamp(at, tz).isoformat(timespec="minutes")

    rows = []
    for row in report.rows:
        out = dict(row)
        if isinstance(out.get("period"), int):
            out["period"] = local(out["period"])
        rows.append(out)
    # The engine's notes are the gaps, then the open interval, then anything else: the rest is text.
    said = len(report.gaps) + (report.open_from is not None)
    return {
        "report": report.name, "title": {"en": report.title_en, "zh": report.title_zh},
        "from": q.first.isoformat(timespec="minutes"), "to": q.stop.isoformat(timespec="minutes"),
        "interval": q.grouping, "queues": list(q.queues), "agents": list(q.agents),
        "columns": [{"key": c.key, "en": c.en, "zh": c.zh, "unit": c.unit} for c in report.columns],
        "rows": rows,
        "gaps": [{"from": local(a), "to": local(b), "minutes": round((b - a) / 60)} for a, b in report.gaps],
        "open": None if report.open_from is None else {"from": local(report.open_from),
                                                        "included": report.open_included},
        "notes": report.notes[said:],
        "wait_buckets": list(WAIT_BUCKETS), "talk_buckets": list(TALK_BUCKETS),  # bounds of aw_i, ab_i, tk_i
    }


def _json(data: object) -> Response:
    return http_response(200, "OK", json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")


def _zone_name(tz: tzinfo | None) -> str:
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    return datetime.now(tz).astimezone().tzname() or ""
