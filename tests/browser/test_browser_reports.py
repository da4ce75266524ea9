"""The supervisor console's Reports tab in real headless Chromium, served by the real app over a busy day of
stored figures (tests/gateway/report_day.py): every report is opened, its table and charts are held to the
engine's own figures for the same query, in English and in Chinese; the CSV and Excel exports are the
server's files. One screenshot per report and language goes to test-artifacts/reports-<name>-<lang>.png."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from playwright.async_api import Browser, Page, expect

from crmstore.store import open_store
from ctiserver.reports.engine import Query, Report, labelled, run_report
from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.gateway.gw_harness import ACD_YAML, AppSite, app_site
from tests.gateway.report_day import DAY, store_report_day, with_more_agents

pytestmark = pytest.mark.browser
YAML = with_more_agents(ACD_YAML)
# (report, rows per, languages): every report once; the ones with charts in both languages.
CASES = [
    ("inbound-summary", "hour", ("en", "zh")),
    ("waiting-time", "day", ("en", "zh")),
    ("agent-comparison", "day", ("en", "zh")),
    ("grade-movements", "day", ("en", "zh")),
    ("agent-load", "day", ("en", "zh")),
    ("call-loss", "hour", ("en", "zh")),
    ("call-duration", "day", ("en", "zh")),
    ("transfer-rate", "day", ("en",)),
    ("satisfaction", "day", ("en",)),
    ("ivr-containment", "hour", ("en",)),
    ("callbacks", "day", ("en",)),
    ("first-contact", "day", ("en",)),
    ("churn-candidates", "day", ("en", "zh")),
]
CHARTS = {"inbound-summary": ["volume"], "call-loss": ["loss"], "waiting-time": ["wait", "abandon"],
          "call-duration": ["talk"], "agent-comparison": ["agents", "aht"], "agent-load": ["load"],
          "grade-movements": ["grades"]}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, acd_yaml=YAML, timezone="UTC") as s:
        await store_report_day(s.db, YAML)
        yield s


async def engine(site: AppSite, name: str, grouping: str, day: datetime = DAY) -> Report:
    store = await open_store(f"sqlite:///{site.db}")
    try:
        return await run_report(store, Query(name, day, day + timedelta(days=1), grouping),
                                site.server.projector.config)
    finally:
        await store.close()


def shown(value: Any, unit: str, lang: str) -> str:
    """A figure as the page writes it (reports.js `figure`)."""
    if value is None or value == "":
        return "–"
    if not isinstance(value, (int, float)):
        return str(value)
    text = f"{value:,.1f}".removesuffix(".0")
    if unit == "%":
        return text + "%"
    if unit == "s":
        if abs(value) < 60:
            return f"{text} s" if lang == "en" else f"{text} 秒"
        s = math.floor(value + 0.5)  # JavaScript's Math.round, not Python's half-to-even
        h, m, sec = s // 3600, s % 3600 // 60, s % 60
        return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
    if unit == "score":
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return text


async def choose(page: Page, name: str, grouping: str, day: datetime = DAY) -> None:
    await page.select_option("#rp-name", name)
    await page.fill("#rp-from", f"{day:%Y-%m-%d}")
    await page.fill("#rp-to", f"{day:%Y-%m-%d}")
    await page.select_option("#rp-interval", grouping)
    await page.click("#rp-form button[type=submit]")
    await expect(page.locator("body")).to_have_attribute("data-report", name)


async def table_matches_engine(page: Page, report: Report, lang: str) -> None:
    """Every cell: its value is the engine's, and its text is that value written in `lang`."""
    got = await page.eval_on_selector_all(
        "#rp-table tbody tr.rp-row", "rows => rows.map(r => [...r.cells].map(c => [c.dataset.value, c.textContent]))")
    assert len(got) == len(report.rows), report.name
    if not got:  # said, not an empty grid
        await expect(page.locator("#rp-table tbody tr.rp-empty")).to_have_text(
            "No figures in this period." if lang == "en" else "该时段无数据。")
    tz = report.query.first.tzinfo
    for row, cells in zip(report.rows, got, strict=True):
        for column, (value, text) in zip(report.columns, cells, strict=True):
            want = row.get(column.key)
            if column.key == "period":
                assert value == datetime.fromtimestamp(want, tz).isoformat(timespec="minutes")
            elif isinstance(want, (int, float)):
                assert float(value) == want, (report.name, column.key)
                assert text == shown(want, column.unit, lang), (report.name, column.key, text)
            elif column.key == "agent":
                assert value == (want or "") and (not want or text.endswith(f"({want})"))
            elif column.key in ("from", "to") and want == "new":
                assert value == "new" and text == ("new" if lang == "en" else "新客户")
            else:
                assert value == ("" if want is None else str(want)) and text == shown(want, column.unit, lang)


async def charts_match_engine(page: Page, report: Report) -> None:
    for kind in CHARTS.get(report.name, []):
        chart = page.locator(f"figure.rp-chart[data-chart={kind}] svg")
        await expect(chart.first).to_be_visible()
    bars = "(sel) => [...document.querySelectorAll(sel)].map(b => [b.dataset.series, Number(b.dataset.value)])"

    async def values(kind: str, what: str = "rect.rp-bar") -> list[tuple[str, float]]:
        return [tuple(x) for x in await page.evaluate(bars, f"figure[data-chart={kind}] {what}")]

    rows = report.rows
    if report.name == "inbound-summary":
        got = await values("volume")
        for queue in {r["queue"] for r in rows}:
            assert sum(v for s, v in got if s == queue) == sum(r["offered"] for r in rows if r["queue"] == queue)
        dots = await values("volume", "circle.rp-dot")
        assert sorted(v for _, v in dots) == sorted(r["service_level"] for r in rows if r["service_level"] is not None)
        await expect(page.locator("figure[data-chart=volume] rect.rp-band-gap")).to_have_count(1)  # 13:00
    elif report.name == "waiting-time":
        wait = await values("wait")
        for i in range(8):
            answered = sum(r[f"aw_{i}"] for r in rows)
            assert [v for s, v in wait if s == "answered"].count(answered) >= 1 or answered == 0
        assert sum(v for s, v in wait if s == "abandoned") == sum(r["abandoned"] for r in rows)
        abandons = await values("abandon")
        assert sum(v for _, v in abandons) == sum(r["abandoned"] for r in rows)
        assert max(v for _, v in await values("abandon", "circle.rp-dot")) == 100.0  # the curve ends at all of them
    elif report.name == "agent-comparison":
        got = await page.evaluate("() => [...document.querySelectorAll('figure[data-chart=agents] rect.rp-bar')]"
                                  ".map(b => [b.dataset.agent, b.dataset.series, Number(b.dataset.value)])")
        assert sorted((a, v) for a, s, v in got if s == "answered") == sorted((r["agent"], r["answered"]) for r in rows)
        aht = await page.evaluate("() => [...document.querySelectorAll('figure[data-chart=aht] rect.rp-bar')]"
                                  ".map(b => [b.dataset.agent, Number(b.dataset.value)])")
        assert sorted(map(tuple, aht)) == sorted((r["agent"], r["aht"]) for r in rows)  # one row per agent: the engine's AHT
    elif report.name == "agent-load":
        got = await values("load")
        assert sum(v for s, v in got if s == "talking") == sum(r["talking"] for r in rows)
    elif report.name == "grade-movements":
        cells = await page.evaluate("() => [...document.querySelectorAll('figure[data-chart=grades] rect.rp-cell')]"
                                    ".map(c => [c.dataset.from, c.dataset.to, Number(c.dataset.value)])")
        assert {(a, b): n for a, b, n in cells if n} == {(r["from"], r["to"]): r["customers"] for r in rows}
    elif report.name == "call-loss":
        got = await values("loss")
        assert sum(v for _, v in got) == sum(r["lost_calls"] for r in rows)
        hours = sorted({r["period"] for r in rows})  # one loss rate per hour, all queues together
        overall = [math.floor(1000 * sum(r["lost_calls"] for r in rows if r["period"] == h)
                              / sum(r["offered"] for r in rows if r["period"] == h) + 0.5) / 10 for h in hours]
        assert [v for _, v in await values("loss", "circle.rp-dot")] == overall
    elif report.name == "call-duration":
        got = await values("talk")
        assert sum(v for _, v in got) == sum(r["handled"] for r in rows)


async def test_every_report_on_the_page_shows_the_engines_figures(browser: Browser, site: AppSite) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    pages: dict[str, Page] = {}
    for lang in ("en", "zh"):
        page = await open_page(browser, site.http_url + "/supervisor", problems, lang=lang)
        await login(page, site, "super1")
        await page.click(".tabs [data-tab=reports]")
        await expect(page.locator("#rp-name option")).to_have_count(14)
        await expect(page.locator("#rp-queue option")).to_have_text(
            ["All queues" if lang == "en" else "全部队列", "vip", "sales", "support", "complaints", "general"])
        await expect(page.locator("#wallboard")).to_be_hidden()  # the live monitor is the other tab
        pages[lang] = page
    # Churn signals are judged at the end of the period: two months on, the seeded tickets have been open
    # too long (and a customer's hostile name must show as text).
    later = datetime.combine(datetime.now(UTC).date() + timedelta(days=60), time(0), tzinfo=UTC)
    for name, grouping, langs in CASES:
        day = later if name == "churn-candidates" else DAY
        report = await engine(site, name, grouping, day)
        assert report.rows, name  # every report has something to show
        for lang in langs:
            page = pages[lang]
            await choose(page, name, grouping, day)
            title = report.title_en if lang == "en" else report.title_zh
            await expect(page.locator("#rp-title")).to_contain_text(title)
            await table_matches_engine(page, report, lang)
            await charts_match_engine(page, report)
            if report.gaps:
                gap = page.locator("#rp-notes .rp-gap")
                await expect(gap).to_contain_text("13:05")
                await expect(gap).to_contain_text("server was not running" if lang == "en" else "服务器未运行")
            assert await page.locator("#rp-table img, #rp-table script").count() == 0
            await page.screenshot(path=str(ARTIFACTS / f"reports-{name}-{lang}.png"), full_page=True)
    # Dates in the interface's language: the day's rows and the heading.
    await choose(pages["zh"], "inbound-summary", "day")
    await expect(pages["zh"].locator("#rp-table td[data-key=period]").first).to_contain_text("2026年11月16日")
    await choose(pages["en"], "inbound-summary", "day")
    await expect(pages["en"].locator("#rp-table td[data-key=period]").first).to_contain_text("16 Nov 2026")
    assert problems == []


async def test_exports_are_the_servers_files_and_mistakes_are_said(browser: Browser, site: AppSite) -> None:
    problems: list[str] = []
    page = await open_page(browser, site.http_url + "/supervisor", problems, lang="zh")
    await login(page, site, "super1")
    await page.click(".tabs [data-tab=reports]")
    await expect(page.locator("#rp-name option")).to_have_count(14)
    await page.select_option("#rp-queue", "support")
    await choose(page, "call-loss", "hour")
    store = await open_store(f"sqlite:///{site.db}")
    try:
        report = await run_report(store, Query("call-loss", DAY, DAY + timedelta(days=1), "hour", ("support",)),
                                  site.server.projector.config)
    finally:
        await store.close()
    await table_matches_engine(page, report, "zh")
    heads, rows = labelled(report, "zh")
    # The language switched on a shown report: words, numbers and dates follow at once.
    await page.click("#lang")
    await expect(page.locator("#rp-title")).to_have_text("Call loss rate · Monday, 16 November 2026")
    await expect(page.locator("#rp-table td[data-key=period]").first).to_have_text("16 Nov 2026, 08:00")
    await expect(page.locator("figure[data-chart=loss] figcaption")).to_have_text(
        "Calls lost per interval and call loss rate")
    await table_matches_engine(page, report, "en")
    await page.click("#lang")
    await expect(page.locator("#rp-table th[data-key=period]")).to_have_text("时段")

    async with page.expect_download() as waiting:
        await page.click("#rp-csv")
    download = await waiting.value
    assert download.suggested_filename == "call-loss_2026-11-16_2026-11-16.csv"
    got = list(csv.reader(io.StringIO(Path(await download.path()).read_text(encoding="utf-8-sig"))))
    assert got[0] == heads and [r for r in got[1:] if not r[0].startswith("#")] == [
        ["" if v is None else str(v) for v in row] for row in rows]

    async with page.expect_download() as waiting:
        await page.click("#rp-xlsx")
    download = await waiting.value
    assert download.suggested_filename == "call-loss_2026-11-16_2026-11-16.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(await download.path()).read_bytes())).active
    assert sheet is not None and [c.value for c in sheet[3]] == heads
    await expect(page.locator("#rp-status")).to_contain_text("已保存")

    # An inverted period: the server's one line, shown as it is; the table keeps the last good figures.
    await page.fill("#rp-from", "2026-11-17")
    await page.click("#rp-form button[type=submit]")
    await expect(page.locator("#rp-status")).to_have_text(
        "the period is empty or inverted: from 2026-11-17 00:00 to 2026-11-17 00:00")
    await expect(page.locator("#rp-status")).to_have_attribute("data-kind", "error")
    await expect(page.locator("#rp-table tbody tr.rp-row")).to_have_count(len(rows))

    # Today: the interval still running is counted, and said so (not a row of zeros to come).
    today = datetime.now(UTC)
    await choose(page, "inbound-summary", "hour", datetime.combine(today.date(), time(0), tzinfo=UTC))
    await expect(page.locator("#rp-notes .rp-open")).to_contain_text(
        f"当前 15 分钟（自 {today.year}年{today.month}月{today.day}日")
    await expect(page.locator("#rp-notes .rp-open")).to_contain_text("已计入")

    # A reload resumes the session on the Reports tab, its pickers filled again; a logout empties it.
    await page.reload()
    await expect(page.locator("#rp-name option")).to_have_count(14)
    await expect(page.locator("#rp-queue option")).to_have_count(6)
    await expect(page.locator("#rp-from")).to_have_value(f"{today:%Y-%m-%d}")  # the centre's today
    await choose(page, "grade-movements", "day")
    await expect(page.locator("#rp-table tbody tr.rp-row")).to_have_count(6)
    await page.click("#logout")
    await expect(page.locator("#login-panel")).to_be_visible()
    await expect(page.locator("#rp-table tbody tr")).to_have_count(0)
    assert problems == [] or all("400" in p for p in problems), problems
