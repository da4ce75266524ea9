"""The browser phone as the PBX sees it, with the console in real headless Chromium (JsSIP) against the real app
and the simulator's SIP-over-WebSocket endpoint: the PBX's qualify finds the page's phone Reachable; a frozen
page (its JavaScript stopped in Chromium's debugger, its websockets open) does not answer and is
Unreachable, its agent paused and told why in words, in Chinese and in English, and supervisors see why; the
page going on answers again and the agent is available; a page whose renderer crashed is Removed.
Screenshots go to test-artifacts/phone_state_*.png."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from ctiserver.consoles.devices import PhoneSettings
from ctiserver.consoles.softphone import SoftphoneSettings, sip_password
from pbxsim.sip_ws import SipWsServer
from pbxsim.site import free_port
from tests.browser.softphone_site import CHROMIUM_ARGS, PhoneSite, agent_state, start_work
from tests.browser.test_browser_console import ARTIFACTS
from tests.gateway.gw_harness import AGENT1, app_site
from tests.waiting import until

pytestmark = pytest.mark.browser

SECRET = "phone-state-browser-tests-secret"
NOT_REACHABLE = {"zh": "交换机联系不上您的话机", "en": "Your phone is not reachable from the PBX"}
GRID_WHY = {"unreachable": "交换机联系不上话机", "removed": "注册已过期或连接已关闭"}


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@asynccontextmanager
async def qualified_site(tmp: Path) -> AsyncIterator[PhoneSite]:
    """Consoles are phones; the PBX qualifies a contact when it registers and then when the test says
    (pbx.qualify), not every 30 s, so each step is the test's."""
    port = free_port()
    phones = PhoneSettings(auto_answer=False, softphone=SoftphoneSettings(
        ws_url=f"ws://127.0.0.1:{port}/ws", secret=SECRET, domain="127.0.0.1"))
    async with app_site(tmp, phones=phones) as site:
        pbx = SipWsServer(site.sim.world, lambda ext: sip_password(SECRET, ext), port=port, media=False,
                          qualify_frequency_s=3600, qualify_timeout_s=1.0)
        await pbx.start()
        try:
            yield PhoneSite(site, pbx)
        finally:
            await pbx.stop()


async def new_page(browser: Browser, ps: PhoneSite, problems: list[str], path: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(ps.site.http_url + path)
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"phone_state_{name}.png"), full_page=True)


async def test_a_frozen_page_is_unreachable_and_the_consoles_say_why(chromium: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    said: list[tuple[str, str]] = []
    async with qualified_site(tmp_path) as ps:
        ps.site.sim.world.listeners.append(
            lambda e: said.append((dict(e)["ContactStatus"], dict(e)["RoundtripUsec"]))
            if e[0][1] == "ContactStatus" else None)
        boss = await new_page(chromium, ps, problems, "/supervisor")
        await boss.fill("#login-user", "super1")
        await boss.fill("#login-pass", ps.site.passwords["super1"])
        await boss.click("#login-form button[type=submit]")
        page = await new_page(chromium, ps, problems, "/agent")
        await start_work(page, ps.site, "agent1", AGENT1, "sales", "空闲")
        # registered, then JsSIP answered the qualify: Reachable with its round trip
        await until(lambda: any(s == "Reachable" for s, _ in said), "the contact Reachable")
        assert int(next(rtt for s, rtt in said if s == "Reachable")) > 0
        assert agent_state(ps) == ("available", None)
        row = boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")
        await expect(row).to_contain_text("话机就绪", timeout=10000)

        # the page hangs (its JavaScript stopped, as a tab the browser froze or a renderer stuck on a core):
        # its websockets stay open, nobody answers the PBX's OPTIONS
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Debugger.enable")
        await cdp.send("Debugger.pause")
        assert await ps.pbx.qualify(AGENT1) == "Unreachable"
        assert said[-1] == ("Unreachable", "0")
        await until(lambda: agent_state(ps) == ("paused", "phone_unregistered"), "agent 1 paused")
        await expect(row).to_contain_text(GRID_WHY["unreachable"], timeout=10000)
        await shot(boss, "supervisor_unreachable_zh")

        # thawed, before the next qualify: the console tells the agent why, in both languages
        await cdp.send("Debugger.resume")
        notice = page.locator("#phone-message")
        await expect(notice).to_contain_text(NOT_REACHABLE["zh"], timeout=10000)
        await expect(page.locator("#state-badge")).to_contain_text("话机未注册")
        await expect(page.locator("#phone-status")).to_have_text("话机未注册")  # the PBX's word, not JsSIP's
        await shot(page, "agent_unreachable_zh")
        await page.click("#lang")
        await expect(notice).to_contain_text(NOT_REACHABLE["en"], timeout=10000)
        await expect(page.locator("#state-badge")).to_contain_text("Phone not registered")
        await shot(page, "agent_unreachable_en")
        await boss.click("#lang")
        await expect(row).to_contain_text("not reachable from the PBX", timeout=10000)
        await shot(boss, "supervisor_unreachable_en")

        # it answers again: Reachable, available, the notice gone
        assert await ps.pbx.qualify(AGENT1) == "Reachable"
        await until(lambda: agent_state(ps) == ("available", None), "agent 1 available again")
        await expect(notice).to_be_hidden(timeout=10000)
        await expect(page.locator("#phone-status")).to_have_text("Phone ready")

        # the page dies without unregistering (its renderer crashes): the websocket's end removes the contact
        await cdp.send("Debugger.disable")
        with contextlib.suppress(Exception):  # the crash takes the session with it: no answer comes
            await asyncio.wait_for(cdp.send("Page.crash"), 2)
        await until(lambda: said[-1][0] == "Removed", "ContactStatus Removed")
        await until(lambda: agent_state(ps) == ("paused", "phone_unregistered"), "agent 1 paused")
        await boss.click("#lang")
        await expect(row).to_contain_text(GRID_WHY["removed"], timeout=10000)
        await shot(boss, "supervisor_removed_zh")
    assert problems == []


def test_every_reason_a_console_can_show_has_words_in_both_languages() -> None:
    """Each pause reason of the server's own and each phone detail (the console's and the PBX's) has a text
    in zh and en: the consoles never show a raw code."""
    from acd.config import SYSTEM_PAUSE_REASONS
    from ctiserver.consoles.phones import CONTACT_GONE, NO_CONTACT

    text = (Path(__file__).resolve().parents[2] / "agent_console" / "static" / "i18n" / "phone.js").read_text()
    en, zh = text.split("  zh: {", 1)
    more = (Path(__file__).resolve().parents[2] / "agent_console" / "static" / "i18n")
    details = [*CONTACT_GONE.values(), NO_CONTACT, "network", "auth_failed", "no_microphone", "permission_denied"]
    for lang, part, base in (("en", en, (more / "en.js").read_text()), ("zh", zh, (more / "zh.js").read_text())):
        for reason in SYSTEM_PAUSE_REASONS:
            assert f'"reason.{reason}"' in part + base, (lang, reason)
        for detail in details:
            assert f'"phone.detail.{detail}"' in part and f'"phone.why.{detail}"' in part, (lang, detail)
