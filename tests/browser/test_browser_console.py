"""The agent console and the supervisor monitor in real headless Chromium (Debian's package), served by the
real app: calls come from the PBX simulator through the IVR and the ACD, the pop and wrap-up are the CRM's."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.gateway.gw_harness import AGENT1, HOSTILE_CALLER, PLAIN_CALLER, XSS_NAME, AppSite, app_site

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def open_page(browser: Browser, url: str, problems: list[str], lang: str = "zh") -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = await context.new_page()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(url)
    if lang == "en":
        await page.click("#lang")
    return page


async def login(page: Page, site: AppSite, username: str) -> None:
    await page.fill("#login-user", username)
    await page.fill("#login-pass", site.passwords[username])
    await page.click("#login-form button[type=submit]")


async def test_agent_day_in_the_browser(browser: Browser, site: AppSite) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    agent = await open_page(browser, site.http_url + "/agent", problems, lang="en")
    await expect(agent.locator("h1")).to_have_text("Agent console")
    await login(agent, site, "agent1")
    await expect(agent.locator("#phone-panel")).to_be_visible()
    await agent.fill("#phone-ext", AGENT1)
    await agent.click("#phone-form button[type=submit]")
    await expect(agent.locator("#state-badge")).to_have_text("Available")

    boss = await open_page(browser, site.http_url + "/supervisor", problems)
    await expect(boss.locator("h1")).to_have_text("班长监控台")
    await login(boss, site, "super1")
    agent_row = boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")
    await expect(agent_row.locator(".c-state")).to_have_text("空闲")

    # A real call: the IVR knows the caller (a VIP, blacklisted, with a hostile name) and queues them on vip;
    # the pop is the CRM's and every bit of it shows as plain text.
    offer_id, call_id = await site.ring_agent(AGENT1, HOSTILE_CALLER)
    await expect(agent.locator("#offer-banner")).to_be_visible()
    await expect(agent.locator("#pop-name")).to_have_text(XSS_NAME)
    await expect(agent.locator("#pop-flags .flag-vip")).to_be_visible()
    await expect(agent.locator("#pop-flags .flag-blacklist")).to_contain_text("abusive <b>twice</b>")
    await expect(agent.locator("#pop-ivr")).to_contain_text("vip_queue")
    await expect(agent.locator("#pop-history")).to_contain_text("asked about <invoice>")
    await expect(agent.locator("#pop-tickets")).to_contain_text("late delivery <x>")
    assert await agent.locator("#pop img").count() == 0 and await agent.locator("#pop script").count() == 0
    assert await agent.evaluate("document.body.dataset.pops") == "1"
    await expect(agent.locator("#pop")).to_have_attribute("data-offer-id", offer_id)
    await expect(boss.locator(f"#call-list tr[data-key='{call_id}'] .c-state")).to_have_text("振铃")
    await expect(agent_row.locator(".c-state")).to_have_text("振铃")

    # Reload while ringing: the console resumes, the pop stays, and is not announced again.
    await agent.reload()
    await expect(agent.locator("#offer-banner")).to_be_visible()
    await expect(agent.locator("#pop-name")).to_have_text(XSS_NAME)
    assert await agent.evaluate("document.body.dataset.pops || '0'") == "0"
    await agent.screenshot(path=str(ARTIFACTS / "agent_offer_pop.png"), full_page=True)

    await site.answer(call_id)  # the agent picks up the desk phone
    await expect(agent.locator("#call-panel")).to_be_visible()
    await expect(agent.locator("#call-state")).to_have_text("Talking")
    await expect(agent_row.locator(".c-state")).to_have_text("通话中")
    await expect(boss.locator(f"#call-list tr[data-key='{call_id}'] .c-state")).to_have_text("通话中")
    await agent.click("#btn-hold")
    await expect(agent.locator("#call-state")).to_have_text("On hold")
    await agent.click("#btn-unhold")
    await expect(agent.locator("#call-state")).to_have_text("Talking")
    await agent.screenshot(path=str(ARTIFACTS / "agent_on_call.png"), full_page=True)
    await agent.click("#btn-hangup")

    # Wrap-up: a save that fails (the CRM is locked) keeps the form; the retry is in the CRM.
    await expect(agent.locator("#wrapup-panel")).to_be_visible()
    await expect(agent_row.locator(".c-state")).to_have_text("话后处理")
    notes = "<script>window.__xss=3</script> 客户要求退款"
    await agent.select_option("#wrapup-disposition", "follow_up")
    await agent.fill("#wrapup-notes", notes)
    await agent.check("#fu-on")
    await agent.fill("#fu-due", "2030-01-02T10:30")
    await agent.fill("#fu-note", "refund")
    site.lock_crm()
    await agent.click("#wrapup-form button[type=submit]")
    await expect(agent.locator("#wrapup-status")).to_contain_text("Not saved")
    await expect(agent.locator("#wrapup-notes")).to_have_value(notes)
    assert await site.saved_wrapup(call_id) is None
    site.unlock_crm()
    await agent.click("#wrapup-form button[type=submit]")
    await expect(agent.locator("#wrapup-status")).to_have_text("Wrap-up saved.")
    await expect(agent.locator("#wrapup-panel")).to_be_hidden()
    saved = await site.saved_wrapup(call_id)
    assert saved is not None and saved["notes"] == notes and saved["disposition"] == "follow_up"
    assert saved["follow_up"] == {"kind": "callback", "note": "refund", "owner": AGENT1}
    assert saved["agent"] == AGENT1

    # The monitor followed: agent available again, the call gone from the list, the vip queue answered one.
    await expect(agent_row.locator(".c-state")).to_have_text("空闲")
    await expect(boss.locator(f"#call-list tr[data-key='{call_id}']")).to_have_count(0)
    await expect(boss.locator("#wallboard tr[data-key=vip] .c-sl")).to_have_text("100.0% / 80%")

    # Search shows hostile names as text.
    await agent.fill("#search-q", "13800000002")
    await agent.click("#search-form button[type=submit]")
    await expect(agent.locator("#search-results .cust-name")).to_have_text(XSS_NAME)
    assert await agent.evaluate("window.__xss === undefined")
    assert await boss.evaluate("window.__xss === undefined")

    # Supervisor steps in: force pause shows on the agent's console; a caller waits in sales.
    await agent_row.locator("button[data-i18n='sup.force_pause']").click()
    await expect(agent.locator("#state-badge")).to_contain_text("Paused")
    waiting = await site.add_waiting_call("sales", "+8613900000011")
    await expect(boss.locator("#wallboard tr[data-key=sales] .c-waiting")).to_have_text("1")
    await expect(boss.locator(f"#call-list tr[data-key='{waiting}'] .c-state")).to_have_text("排队中")
    await boss.screenshot(path=str(ARTIFACTS / "supervisor_monitor.png"), full_page=True)
    await agent.screenshot(path=str(ARTIFACTS / "agent_after_wrapup.png"), full_page=True)

    await agent.click("#btn-agent-logout")
    await expect(agent.locator("#phone-panel")).to_be_visible()
    await expect(agent_row.locator(".c-state")).to_have_text("未签入")
    await agent.click("#logout")
    await expect(agent.locator("#login-panel")).to_be_visible()
    assert problems == [], problems


async def test_login_failure_and_role_pages(browser: Browser, site: AppSite) -> None:
    problems: list[str] = []
    page = await open_page(browser, site.http_url + "/agent", problems, lang="en")
    await page.fill("#login-user", "agent1")
    await page.fill("#login-pass", "wrong")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("Wrong username or password")
    # A supervisor account is turned away from the agent page.
    await login(page, site, "super1")
    await expect(page.locator("#login-error")).to_contain_text("for agents")
    await expect(page.locator("#login-panel")).to_be_visible()
    assert problems == [], problems


async def test_supervisor_sees_a_lost_console_and_a_missing_prompt(browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    async with app_site(tmp_path, console_lost_after_s=0.5) as site:
        site.sim.sounds.remove("demo/welcome")  # the demo flow's greeting is not on the PBX
        boss = await open_page(browser, site.http_url + "/supervisor", problems)
        await login(boss, site, "super1")
        agent = await open_page(browser, site.http_url + "/agent", problems, lang="en")
        await login(agent, site, "agent1")
        await agent.fill("#phone-ext", AGENT1)
        await agent.click("#phone-form button[type=submit]")
        await expect(agent.locator("#state-badge")).to_have_text("Available")
        agent_row = boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")
        await expect(agent_row.locator(".c-state")).to_have_text("空闲")

        await agent.close()  # the agent's tab is closed: the server sees the websocket go
        await expect(agent_row.locator(".c-state")).to_have_text("示忙 · 控制台断线")

        await site.add_waiting_call("sales", PLAIN_CALLER)  # the IVR meets the missing greeting
        alert = boss.locator("#alerts li[data-metric=prompt_missing]")
        await expect(alert).to_contain_text("语音提示无法播放")
        await expect(alert.locator("code")).to_have_text("demo/welcome")
        await boss.click("#lang")
        await expect(agent_row.locator(".c-state")).to_have_text("Paused · Console lost")
        await expect(alert).to_contain_text("Prompt cannot be played")
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_alerts.png"), full_page=True)
    assert problems == [], problems
