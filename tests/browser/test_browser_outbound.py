"""Click-to-call in real headless Chromium, in English and in Chinese: the agent types a number, the call strip
shows each step (their phone, the customer's ringing, talking), the result stays in sight when it ends, and
the call is in the CRM (an outbound row, the customer matched by number) and in the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from ctiserver.outbound.dialling import DialSettings
from pbxsim.world import PhoneProfile
from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.gateway.gw_harness import AGENT1, PLAIN_CALLER, AppSite, app_site

pytestmark = pytest.mark.browser

TEXTS = {
    "en": {"ringing": "Customer's phone ringing", "talking": "Talking", "answered": "answered", "busy": "busy",
           "available": "Available"},
    "zh": {"ringing": "客户振铃中", "talking": "通话中", "answered": "已接通", "busy": "忙", "available": "空闲"},
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    # Virtual seconds at 0.05: the customer rings 3 s and talks 4 s of real time, long enough to see.
    async with app_site(tmp_path, outbound_dial=DialSettings(agent_ring_s=100.0, customer_ring_s=200.0)) as s:
        s.sim.world.phones[AGENT1].answer_after = 0.5
        s.sim.world.phones[PLAIN_CALLER] = PhoneProfile(answer_after=60.0, talk_time=80.0)
        s.sim.world.phones["+8613900009999"] = PhoneProfile(busy=True)
        yield s


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_click_to_call_shows_its_states_and_lands_in_crm_and_journal(browser: Browser, site: AppSite,
                                                                           lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    text = TEXTS[lang]
    problems: list[str] = []
    page = await open_page(browser, site.http_url + "/agent", problems, lang=lang)
    await login(page, site, "agent1")
    await page.fill("#phone-ext", AGENT1)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_have_text(text["available"])

    await page.fill("#dial-number", PLAIN_CALLER)
    await page.click("#dial-form button[type=submit]")
    await expect(page.locator("#call-state")).to_have_text(text["ringing"], timeout=10_000)
    await expect(page.locator("#call-state")).to_have_attribute("data-state", "customer_ringing")
    await page.screenshot(path=str(ARTIFACTS / f"outbound_ringing_{lang}.png"), full_page=True)
    await expect(page.locator("#call-state")).to_have_text(text["talking"], timeout=10_000)
    await expect(page.locator("#call-caller")).to_contain_text("138")
    await page.screenshot(path=str(ARTIFACTS / f"outbound_talking_{lang}.png"), full_page=True)
    await expect(page.locator("#dial-result")).to_contain_text(text["answered"], timeout=15_000)
    await expect(page.locator("#wrapup-panel")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / f"outbound_ended_{lang}.png"), full_page=True)

    rows = site.crm_rows("SELECT * FROM interactions WHERE direction = 'outbound' AND caller = ?", PLAIN_CALLER)
    assert len(rows) == 1
    row = rows[0]
    customer = site.crm_rows("SELECT customer_id FROM phones WHERE e164 = ?", PLAIN_CALLER)[0]["customer_id"]
    assert (row["outcome"], row["agent"], row["customer_id"]) == ("answered", AGENT1, customer)
    kinds = [r["kind"] for r in site.crm_rows("SELECT kind FROM journal WHERE call_id = ? ORDER BY seq",
                                              row["call_id"])]
    assert kinds[:2] == ["outbound.dialling", "acd.outbound_started"] and "acd.outbound_ended" in kinds
    assert kinds.count("outbound.progress") == 4

    # Save the wrap-up, then a busy number: the result line says so.
    await page.select_option("#wrapup-disposition", index=1)
    await page.click("#wrapup-form button[type=submit]")
    await expect(page.locator("#wrapup-panel")).to_be_hidden(timeout=10_000)
    await expect(page.locator("#state-badge")).to_have_text(text["available"], timeout=10_000)
    await page.fill("#dial-number", "+8613900009999")
    await page.click("#dial-form button[type=submit]")
    await expect(page.locator("#dial-result")).to_contain_text(text["busy"], timeout=15_000)
    await expect(page.locator("#dial-result")).to_have_attribute("data-outcome", "busy")
    await page.screenshot(path=str(ARTIFACTS / f"outbound_busy_{lang}.png"), full_page=True)
    assert problems == []
