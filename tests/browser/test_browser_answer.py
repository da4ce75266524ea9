"""The Answer control in real headless Chromium, zh and en: an agent whose auto-answer phone has
``answer: console`` sees an Answer button on the offer (a colleague with an ordinary phone does not);
clicking it, or Alt+A, dials the phone, which picks up by itself, and the call is connected. Screenshots go
to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.consoles.test_answer_control import ANSWER_AT_CONSOLE_ACD
from tests.gateway.gw_harness import AGENT1, AGENT2, PLAIN_CALLER, AppSite, app_site

pytestmark = pytest.mark.browser

TEXTS = {"zh": {"available": "空闲", "answer": "接听", "talking": "通话中"},
         "en": {"available": "Available", "answer": "Answer", "talking": "Talking"}}


async def start_work(page: Page, site: AppSite, username: str, extension: str, queue: str,
                     available: str) -> None:
    await login(page, site, username)
    await expect(page.locator("#phone-panel")).to_be_visible()
    await page.fill("#phone-ext", extension)
    for box in await page.locator("#queue-list input").all():
        await box.set_checked(await box.get_attribute("value") == queue)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_have_text(available)


def _phone_channels(site: AppSite, extension: str) -> list[str]:
    return [c.name for c in site.sim.world.channels.values()
            if not c.dead and (c.name.startswith(f"PJSIP/{extension}-") or f"/{extension}@" in c.name)]


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_answer_button_connects_the_call(browser: Browser, tmp_path: Path,
                                                   lang: str) -> None:
    text = TEXTS[lang]
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with app_site(tmp_path, acd_yaml=ANSWER_AT_CONSOLE_ACD) as site:
        site.sim.add_agent_phone(AGENT1, answer_after=None, auto_answer=True)
        agent = await open_page(browser, site.http_url + "/agent", problems, lang=lang)
        await start_work(agent, site, "agent1", AGENT1, "sales", text["available"])
        colleague = await open_page(browser, site.http_url + "/agent", problems, lang=lang)
        await start_work(colleague, site, "agent2", AGENT2, "support", text["available"])

        # A colleague's ordinary phone rings: their banner has no Answer button.
        await site.ring_agent(AGENT2, PLAIN_CALLER, "support")
        await expect(colleague.locator("#offer-banner")).to_be_visible()
        await expect(colleague.locator("#btn-answer")).to_be_hidden()

        # The agent's offer rings in the console only, with the button.
        site.call(PLAIN_CALLER, "sales")
        await expect(agent.locator("#offer-banner")).to_be_visible(timeout=15000)
        answer = agent.locator("#btn-answer")
        await expect(answer).to_be_visible()
        await expect(answer).to_have_text(text["answer"])
        await expect(agent.locator("#offer-console")).to_be_visible()
        await expect(agent.locator("#offer-title")).to_be_hidden()  # not "answer on your phone"
        await expect(colleague.locator("#offer-title")).to_be_visible()
        assert _phone_channels(site, AGENT1) == []
        await agent.screenshot(path=str(ARTIFACTS / f"answer_offer_{lang}.png"), full_page=True)

        if lang == "zh":
            await answer.click()
        else:
            await agent.keyboard.press("Alt+A")
        await expect(agent.locator("#call-panel")).to_be_visible(timeout=15000)
        await expect(agent.locator("#call-state")).to_have_text(text["talking"])
        await expect(agent.locator("#offer-banner")).to_be_hidden()
        phone = next(c for c in site.sim.world.channels.values() if c.name.startswith(f"PJSIP/{AGENT1}-"))
        assert phone.state == 6 and phone.bridge is not None  # picked up by itself
        await agent.screenshot(path=str(ARTIFACTS / f"answer_connected_{lang}.png"), full_page=True)
    assert problems == []
