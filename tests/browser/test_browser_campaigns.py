"""The supervisor's outbound panels in real headless Chromium, in English and in Chinese: after simulated
campaign calls (a person put through to the agent, an answering machine, a busy line) the campaign's row
shows the figures counted here from the dialer's published facts and the campaign's list; pause and
resume change the campaign in the CRM and are journaled; a callback is booked and cancelled from the page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from acd import events as ev
from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import DialingMode
from ctiserver.journal import facts as f
from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.dialer.harness import BUSY, MACHINE, PERSON, campaign
from tests.gateway.gw_harness import AGENT1, AppSite

pytestmark = pytest.mark.browser

TEXTS = {
    "en": {"running": "Running", "paused": "Paused", "pause": "Pause", "resume": "Resume", "cancel": "Cancel",
           "waiting": "Waiting", "none": "No open callbacks.", "progress": "33.3% · 1 of 3 done"},
    "zh": {"running": "进行中", "paused": "已暂停", "pause": "暂停", "resume": "恢复", "cancel": "取消",
           "waiting": "等待中", "none": "没有待回呼。", "progress": "33.3% · 已完成 1 / 3"},
}


@pytest.fixture
def site(campaign_site: AppSite) -> AppSite:
    return campaign_site


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_the_campaign_panel_shows_the_calls_figures_and_pauses_and_resumes(
        browser: Browser, site: AppSite, lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    text = TEXTS[lang]
    server: Any = site.server
    facts: list[Any] = []
    server.bus.subscribe_all(lambda body: facts.append(body) if isinstance(
        body, (f.DialerLineDialled, f.DialerLineEnded, f.SupervisorAction)) else None)
    store = CampaignStore(server.crm)
    spring = campaign("spring", DialingMode.PROGRESSIVE, queue="sales")
    await store.save(spring)
    csv = site.db.parent / "spring.csv"
    csv.write_text("phone,name,timezone\n" + "".join(
        f"{n},{who},Etc/UTC\n" for n, who in ((PERSON, "Ann"), (MACHINE, "Cat"), (BUSY, "Dan"))), encoding="utf-8")
    assert (await store.import_list("spring", csv)).added == 3
    await store.resume("spring")
    server.queueing.command(ev.AgentLoggedIn(AGENT1, f"PJSIP/{AGENT1}", None))

    def ended() -> list[f.DialerLineEnded]:
        return [x for x in facts if isinstance(x, f.DialerLineEnded)]

    await site.until(lambda: len(ended()) >= 3 or None, "three lines ended", 30)
    # Counted here: what the dialer published, and the list as imported.
    attempts = sum(isinstance(x, f.DialerLineDialled) for x in facts)
    connects = sum(x.outcome == "connected" for x in ended())
    assert (attempts, connects) == (3, 1) and {x.outcome for x in ended()} == {
        "connected", "answering_machine", "busy"}

    problems: list[str] = []
    page = await open_page(browser, site.http_url + "/supervisor", problems, lang=lang)
    await login(page, site, "super1")
    row = page.locator("#campaign-list tr[data-key='spring']")
    await expect(row.locator(".c-state")).to_have_text(text["running"], timeout=10_000)
    await expect(row.locator(".c-attempts")).to_have_text(str(attempts))
    await expect(row.locator(".c-connects")).to_have_text(str(connects))
    await expect(row.locator(".c-rpc")).to_have_text(str(connects))  # no disposition says otherwise
    await expect(row.locator(".c-abandon")).to_have_text("0.0% / 3.0%")  # the pacer's window: no abandon
    await expect(row.locator(".c-penetration")).to_have_text("100.0% (3/3)")  # all three dialled once
    await expect(row.locator(".c-progress")).to_have_text(text["progress"])  # Ann done; Cat, Dan retried later
    await expect(row.locator(".c-occupancy")).to_contain_text("%")
    await page.locator("#outbound-sup").scroll_into_view_if_needed()
    await page.screenshot(path=str(ARTIFACTS / f"campaigns_running_{lang}.png"), full_page=True)

    await row.locator("button[data-action='pause']").click()
    await expect(row.locator(".c-state")).to_have_text(text["paused"])
    await expect(row.locator("button[data-action='resume']")).to_have_text(text["resume"])
    assert (await store.get("spring")).paused
    await page.screenshot(path=str(ARTIFACTS / f"campaigns_paused_{lang}.png"), full_page=True)
    await row.locator("button[data-action='resume']").click()
    await expect(row.locator(".c-state")).to_have_text(text["running"])
    assert not (await store.get("spring")).paused
    actions = [(x.user, x.action, x.target) for x in facts if isinstance(x, f.SupervisorAction)]
    assert actions == [("super1", "campaign_pause", "spring"), ("super1", "campaign_resume", "spring")]

    # The callback panel: book one for later, see it, cancel it.
    await page.fill("#cb-number", "+8613900001111")
    await page.select_option("#cb-queue", "support")
    await page.fill("#cb-name", "Zhao")
    await page.fill("#cb-topic", "invoice")
    await page.fill("#cb-at", "2099-01-05T10:30")
    await page.click("#cb-form button[type=submit]")
    cb = page.locator("#callback-list tr", has_text="+8613900001111")
    await expect(cb.locator(".c-state")).to_have_text(text["waiting"])
    await expect(cb.locator(".c-topic")).to_have_text("invoice")
    [booked] = server.projector.callbacks.open()
    assert (booked.number, booked.queue, booked.name, booked.source) == ("+8613900001111", "support", "Zhao",
                                                                         "supervisor")
    await page.screenshot(path=str(ARTIFACTS / f"callbacks_booked_{lang}.png"), full_page=True)
    await cb.locator("button[data-action='cancel']").click()
    await expect(page.locator("#callback-list")).to_contain_text(text["none"])
    assert server.projector.callbacks.open() == []

    # The outbound report of today on the Reports tab: the same counts, one row for the campaign.
    await page.click(".tabs [data-tab=reports]")
    await page.select_option("#rp-name", "outbound")
    today = datetime.now(UTC).date().isoformat()
    await page.fill("#rp-from", today)
    await page.fill("#rp-to", today)
    await page.click("#rp-form button[type=submit]")
    await expect(page.locator("body")).to_have_attribute("data-report", "outbound")
    report_row = page.locator("#rp-table tbody tr.rp-row")
    await expect(report_row).to_have_count(1)
    for key, value in (("campaign", "spring"), ("attempts", str(attempts)), ("connects", str(connects)),
                       ("right_party", str(connects)), ("abandoned", "0"), ("machines", "1"),
                       ("penetration", "100")):
        await expect(report_row.locator(f"td[data-key={key}]")).to_have_attribute("data-value", value)
    await page.screenshot(path=str(ARTIFACTS / f"outbound_report_{lang}.png"), full_page=True)
    assert problems == []
