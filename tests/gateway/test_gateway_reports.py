"""/api/reports over real HTTP from the real app, on a busy day of stored figures (report_day.py): the page's
JSON carries the engine's own figures, CSV and Excel downloads parse back to them, only supervisors and
admins with a live session get anything, and every mistake is one line with its status."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from crmstore.store import open_store
from ctiserver.reports.engine import Query, Report, labelled, run_report
from ctiserver.reports.runner import ReportRunner
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import ACD_YAML, AppSite, app_site
from tests.gateway.report_day import DAY, store_report_day, with_more_agents

YAML = with_more_agents(ACD_YAML)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, acd_yaml=YAML, timezone="UTC") as s:
        await store_report_day(s.db, YAML)
        yield s


async def get(site: AppSite, path: str, token: str | None = None,
              headers: tuple[str, ...] = ()) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection, as a browser's fetch does: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", site.gateway.port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)  # the gateway closes after the response
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    out = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), out, body


async def token_of(site: AppSite, username: str) -> str:
    client = await ConsoleClient.open(site.ws_url)
    try:
        await client.login(username, site.passwords[username])
        assert client.token is not None
        return client.token
    finally:
        await client.close()


async def engine(site: AppSite, name: str, grouping: str, days: int = 1, **kw: Any) -> Report:
    store = await open_store(f"sqlite:///{site.db}")
    try:
        query = Query(name, DAY, DAY + timedelta(days=days), grouping, **kw)
        return await run_report(store, query, site.server.projector.config)
    finally:
        await store.close()


def as_page(report: Report) -> list[dict[str, Any]]:
    """The engine's rows as the page gets them: periods as local times with their offset."""
    out = []
    for row in report.rows:
        row = dict(row)
        if isinstance(row.get("period"), int):
            row["period"] = (DAY + timedelta(seconds=row["period"] - DAY.timestamp())).isoformat(timespec="minutes")
        out.append(row)
    return out


async def test_the_page_gets_the_engines_figures(site: AppSite) -> None:
    token = await token_of(site, "super1")
    status, headers, body = await get(site, "/api/reports", token)
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    catalog = json.loads(body)
    assert catalog["queues"] == ["vip", "sales", "support", "complaints", "general"]  # as configured
    assert [a["id"] for a in catalog["agents"]] == ["1001", "1002", "1003", "1004", "1005"]
    assert {r["name"] for r in catalog["reports"]} >= {"inbound-summary", "grade-movements", "churn-candidates"}
    assert catalog["intervals"] == ["15m", "hour", "day", "month"] and catalog["timezone"] == "UTC"

    for name, grouping, extra in (("inbound-summary", "hour", ""), ("waiting-time", "day", "&queue=support"),
                                  ("agent-comparison", "day", "&agent=1001&agent=1003"),
                                  ("grade-movements", "day", "")):
        status, _, body = await get(site, f"/api/reports/{name}?from=2026-11-16&to=2026-11-16&interval={grouping}"
                                          f"{extra}", token)
        assert status == 200, body
        page = json.loads(body)
        kw: dict[str, Any] = {"queues": ("support",)} if "queue" in extra else {}
        kw |= {"agents": ("1001", "1003")} if "agent" in extra else {}
        want = await engine(site, name, grouping, **kw)
        assert page["rows"] == as_page(want), name
        assert [c["key"] for c in page["columns"]] == [c.key for c in want.columns]
        assert page["title"] == {"en": want.title_en, "zh": want.title_zh}
        assert page["rows"], name
    summary = json.loads((await get(site, "/api/reports/inbound-summary?from=2026-11-16&interval=hour", token))[2])
    # The downtime is said, as data, not as zero rows: no row of 13:00 shows more than its five minutes.
    assert summary["gaps"] == [{"from": "2026-11-16T13:05+00:00", "to": "2026-11-16T13:25+00:00", "minutes": 20}]
    assert summary["open"] is None and summary["notes"] == []
    today = json.loads((await get(site, f"/api/reports/inbound-summary?from={catalog['today']}", token))[2])
    assert today["open"]["included"] is True  # the open interval is the server's own: included
    grades = json.loads((await get(site, "/api/reports/grade-movements?from=2026-11-16", token))[2])
    assert {(r["from"], r["to"]): r["customers"] for r in grades["rows"]}[("A", "B")] == 3


async def test_csv_and_excel_downloads_carry_the_same_figures(site: AppSite) -> None:
    token = await token_of(site, "admin1")
    want = await engine(site, "call-loss", "hour", queues=("support",))
    heads, rows = labelled(want, "zh")
    status, headers, body = await get(
        site, "/api/reports/call-loss?from=2026-11-16&interval=hour&queue=support&format=csv&lang=zh", token)
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == 'attachment; filename="call-loss_2026-11-16_2026-11-16.csv"'
    assert body.startswith(b"\xef\xbb\xbf")  # spreadsheet programs read the Chinese
    got = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert got[0] == heads and got[0][-1] == "呼损率"
    figures = [r for r in got[1:] if not r[0].startswith("#")]
    assert figures == [["" if v is None else str(v) for v in row] for row in rows] and len(figures) >= 9
    assert any("13:05" in r[0] for r in got[1:] if r[0].startswith("#"))  # the gap, as a note

    status, headers, body = await get(
        site, "/api/reports/agent-load?from=2026-11-16&to=2026-11-16&interval=day&format=xlsx", token)
    assert status == 200
    assert headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert headers["content-disposition"] == 'attachment; filename="agent-load_2026-11-16_2026-11-16.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    heads, rows = labelled(await engine(site, "agent-load", "day"), "en")
    assert [c.value for c in sheet[3]] == heads
    assert [[c.value for c in sheet[4 + i]] for i in range(len(rows))] == rows and len(rows) == 5


async def test_only_a_live_supervisor_or_admin_session_gets_reports(site: AppSite) -> None:
    path = "/api/reports/inbound-summary?from=2026-11-16"
    status, headers, body = await get(site, path)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert body == b"log in first: send the session token as Authorization: Bearer <token>\n"
    status, _, body = await get(site, path, headers=("Authorization: Basic c3VwZXIxOnN1cGVyMS1wYXNz",))
    assert status == 401

    agent = await token_of(site, "agent1")
    status, _, body = await get(site, path, agent)
    assert (status, body) == (403, b"reports are for supervisors and admins, not for a agent\n")
    status, _, body = await get(site, "/api/reports", agent)
    assert status == 403  # not even the list of queues

    boss = await token_of(site, "super1")
    payload, _, signature = boss.partition(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    assert (await get(site, path, forged))[:3:2] == (401, b"token not valid\n")
    account = site.gateway.accounts.get("super1")
    assert account is not None
    expired, _ = site.gateway.signer.issue(account, site.gateway.clock() - 2 * site.gateway.signer.ttl_s)
    assert (await get(site, path, expired))[:3:2] == (401, b"session expired: log in again\n")

    client = await ConsoleClient.open(site.ws_url)
    await client.login("super1", site.passwords["super1"])
    ended = client.token
    assert ended is not None and (await get(site, path, ended))[0] == 200
    await client.send("logout")
    await asyncio.sleep(0.2)
    assert (await get(site, path, ended))[:3:2] == (401, b"session ended: log in again\n")
    assert (await get(site, path, boss))[0] == 200  # another session of the same user lives on


@pytest.mark.parametrize(("query", "status", "line"), [
    ("/api/reports/inbound-summary?from=2026-11-16&to=2026-11-10", 400, "the period is empty or inverted"),
    ("/api/reports/inbound-summary", 400, "say which period: from=YYYY-MM-DD [&to=YYYY-MM-DD]"),
    ("/api/reports/inbound-summary?to=2026-11-16", 400, "say which period"),
    ("/api/reports/inbound-summary?from=2020-01-01&to=2026-11-16", 400, "longer than three years"),
    ("/api/reports/inbound-summary?from=2026-09-01&to=2026-11-16&interval=15m", 400, "up to a month"),
    ("/api/reports/inbound-summary?from=16/11/2026", 400, "'16/11/2026' is not a date"),
    ("/api/reports/inbound-summary?from=2026-11-16&queue=billing", 400, "unknown queue 'billing'"),
    ("/api/reports/agent-load?from=2026-11-16&agent=zz", 400, "unknown agent 'zz'"),
    ("/api/reports/no-such-report?from=2026-11-16", 404, "unknown report 'no-such-report'"),
    ("/api/reports/inbound-summary?from=2026-11-16&format=pdf", 400, "unknown format 'pdf'; use one of json, csv, xlsx"),
    ("/api/reports/inbound-summary?from=2026-11-16&format=table", 400, "unknown format 'table'"),
    ("/api/reports/inbound-summary?from=2026-11-16&interval=week", 400, "unknown interval 'week'"),
    ("/api/reports/inbound-summary?from=2026-11-16&lang=fr", 400, "unknown language 'fr'"),
    ("/api/reports/inbound-summary?from=2026-11-16&form=csv", 400, "unknown parameter 'form'"),
    ("/api/reports/inbound-summary?from=2026-11-16&from=2026-11-17", 400, "from given 2 times"),
    ("/api/reports/first-contact?from=2026-11-16&fcr_days=x", 400, "fcr_days: 'x' is not a number"),
    ("/api/reports/inbound-summary?" + "&".join(["queue=vip"] * 150), 400, "too many parameters"),
])
async def test_every_mistake_is_one_line(site: AppSite, query: str, status: int, line: str) -> None:
    token = await token_of(site, "super1")
    got, headers, body = await get(site, query, token)
    text = body.decode()
    assert got == status, text
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert text.endswith("\n") and text.count("\n") == 1 and line in text and "Traceback" not in text


async def test_reports_run_off_the_servers_loop(site: AppSite) -> None:
    """While a report is being made (here: held in its rendering), the server's loop goes on serving the
    consoles: a report runs in the reports' own thread."""
    entered, release = threading.Event(), threading.Event()

    def held(report: Report) -> tuple[threading.Thread, int]:
        entered.set()
        assert release.wait(30)
        return threading.current_thread(), len(report.rows)

    query = Query("inbound-summary", DAY, DAY + timedelta(days=1), "hour")
    running = asyncio.create_task(site.server.reports.run(query, held))
    assert await asyncio.to_thread(entered.wait, 30)
    console = await ConsoleClient.open(site.ws_url)  # the loop answers while the report is held
    try:
        await console.login("super1", site.passwords["super1"])
        assert (await console.request("ping"))["type"] == "pong"
    finally:
        release.set()
        await console.close()
    where, rows = await running
    assert where is not threading.current_thread() and where.name == "reports" and rows > 30
    assert (await site.server.reports.run(query, lambda r: threading.current_thread())) is where  # one thread, kept


async def test_a_runner_closes_its_thread(site: AppSite) -> None:
    server = site.server
    runner = ReportRunner(f"sqlite:///{site.db}", None, lambda: server.projector.config,
                          lambda: server.projector.intervals, server.clock)
    query = Query("agent-load", DAY, DAY + timedelta(days=1), "day")
    where = await runner.run(query, lambda r: threading.current_thread())
    assert where.is_alive()
    await runner.close()
    assert not where.is_alive()
