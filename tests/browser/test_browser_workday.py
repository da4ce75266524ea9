"""The agent's working day in real headless Chromium, zh and en, against the real app: a wrap-up that
outlives its queue's timer while a new call waits, a pop that reads in two seconds, keyboard shortcuts and
the idle screen. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from crmstore.store import open_store
from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.gateway.gw_harness import ACD_YAML, AGENT1, HOSTILE_CALLER, PLAIN_CALLER, AppSite, app_site

pytestmark = pytest.mark.browser

# sales: 2 s of wrap-up, at most 7 s while the form is open (the server's seconds).
SHORT_WRAP_YAML = ACD_YAML.replace(
    "{name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30,",
    "{name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 2, wrap_up_max_s: 7,")
assert SHORT_WRAP_YAML != ACD_YAML


@pytest.fixture
async def short_site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, acd_yaml=SHORT_WRAP_YAML) as s:
        yield s


async def start_work(page: Page, site: AppSite, available: str) -> None:
    await login(page, site, "agent1")
    await expect(page.locator("#phone-panel")).to_be_visible()
    await page.fill("#phone-ext", AGENT1)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_have_text(available)


def router_state(site: AppSite, agent_id: str) -> str:
    return site.server.projector.router.agent_view(agent_id, site.server.clock()).state


async def test_a_wrap_up_that_outlives_its_queue_timer_while_a_new_call_waits(
        browser: Browser, short_site: AppSite) -> None:
    site = short_site
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    agent = await open_page(browser, site.http_url + "/agent", problems)  # zh
    await start_work(agent, site, "空闲")
    boss = await open_page(browser, site.http_url + "/supervisor", problems, lang="en")
    await login(boss, site, "super1")

    # The first caller chose sales in the menu: the pop says so in words, the number as people read it.
    _, first = await site.ring_agent(AGENT1, PLAIN_CALLER)
    await expect(agent.locator("#pop")).to_have_attribute("data-call-id", first)
    await expect(agent.locator("#pop-reason")).to_contain_text("来电原因")
    await expect(agent.locator("#pop-reason .reason")).to_have_text("销售咨询 (按了 1)")
    await expect(agent.locator("#offer-caller")).to_contain_text("+86 138 0000 0003")
    name = (await agent.locator("#pop-name").text_content()) or ""
    assert name.strip()
    await site.answer(first)
    await expect(agent.locator("#call-panel")).to_be_visible()
    await expect(agent.locator("#call-state")).to_have_text("通话中")
    await agent.keyboard.press("Alt+X")  # hang up from the keyboard

    # The form names its call and caller; while it is open the agent stays in wrap-up.
    panel = agent.locator("#wrapup-panel")
    await expect(panel).to_be_visible()
    await expect(panel).to_have_attribute("data-call-id", first)
    await expect(agent.locator("#wrapup-for")).to_contain_text(first)
    await expect(agent.locator("#wrapup-for")).to_contain_text(name.strip())
    await expect(agent.locator("#wrapup-held")).to_be_visible()
    await agent.fill("#wrapup-notes", "客户要求退款，尚未写完")
    waiting = await site.add_waiting_call("sales", "+8613900000011")
    # A reload keeps the form: its content is the server's draft.
    await expect(agent.locator("#wrapup-held")).to_be_visible()
    await agent.wait_for_timeout(800)  # the form's content goes to the server 700 ms after the last key
    await agent.reload()
    await expect(agent.locator("#wrapup-notes")).to_have_value("客户要求退款，尚未写完")
    await expect(agent.locator("#wrapup-for")).to_contain_text(first)

    # Past the queue's 2 s: the countdown is red, the agent is still in wrap-up, the caller still waits,
    # and the pop on screen is still the first caller's.
    await expect(agent.locator("#wrapup-timer")).to_have_attribute("data-late", "true", timeout=5000)
    await expect(agent.locator("#wrapup-timer")).to_contain_text("已超时")
    await expect(agent.locator("#wrapup-max")).to_contain_text("后存为草稿")
    assert router_state(site, AGENT1) == "wrap_up"
    view = site.server.projector.router.call_view(waiting)
    assert view is not None and view.state == "waiting"
    await expect(agent.locator("#pop")).to_have_attribute("data-call-id", first)
    await expect(agent.locator("#offer-banner")).to_be_hidden()
    await agent.screenshot(path=str(ARTIFACTS / "workday_wrapup_overtime_zh.png"), full_page=True)

    # The queue's maximum: the notes are kept as a draft on the first call, the form closes saying so,
    # and only now is the waiting caller offered (a pop of their own).
    await expect(agent.locator("#wrap-kept")).to_be_visible(timeout=10000)
    await expect(agent.locator("#wrap-kept")).to_contain_text(first)
    await expect(agent.locator("#offer-banner")).to_be_visible()
    await expect(agent.locator("#pop")).to_have_attribute("data-call-id", waiting)
    await expect(panel).to_be_hidden()
    kept = site.server.projector.drafts.kept[first]
    assert kept.notes == "客户要求退款，尚未写完" and kept.why == "wrap-up maximum reached"
    assert await site.saved_wrapup(first) is None
    alert = boss.locator(f"#alerts li[data-metric=wrapup_draft][data-call-id='{first}']")
    await expect(alert).to_contain_text("李娜 Li Na")
    await expect(alert).to_contain_text("kept as a draft")
    await expect(alert).to_contain_text("尚未写完")
    await agent.screenshot(path=str(ARTIFACTS / "workday_draft_kept_new_offer_zh.png"), full_page=True)
    await boss.screenshot(path=str(ARTIFACTS / "workday_supervisor_draft_alert_en.png"), full_page=True)

    # The second call: answered, hung up, saved with the keyboard. Its pop goes once it is saved.
    await site.answer(waiting)
    await expect(agent.locator("#call-panel")).to_be_visible()
    await expect(agent.locator("#call-caller")).to_contain_text("+86 139 0000 0011")
    await agent.keyboard.press("Alt+X")
    await expect(panel).to_have_attribute("data-call-id", waiting)
    await agent.select_option("#wrapup-disposition", "resolved")
    await agent.fill("#wrapup-notes", "已解决")
    await agent.keyboard.press("Alt+S")
    await expect(agent.locator("#wrapup-status")).to_have_text("小结已保存。")
    await expect(panel).to_be_hidden()
    await expect(agent.locator("#pop")).to_be_hidden()
    saved = await site.saved_wrapup(waiting)
    assert saved is not None and saved["notes"] == "已解决"

    # The idle screen: today's figures, the draft to finish; it is saved to its own call at last.
    day = agent.locator("#day-panel")
    await expect(day).to_be_visible()
    await expect(agent.locator("#day-calls")).to_have_text("2")
    draft = agent.locator(f"#day-drafts li[data-call-id='{first}']")
    await expect(draft).to_contain_text("尚未写完")
    await expect(draft).to_contain_text(name.strip())
    await agent.screenshot(path=str(ARTIFACTS / "workday_idle_with_draft_zh.png"), full_page=True)
    await draft.locator("button").click()
    await expect(panel).to_have_attribute("data-call-id", first)
    await expect(agent.locator("#wrapup-notes")).to_have_value("客户要求退款，尚未写完")
    await agent.select_option("#wrapup-disposition", "follow_up")
    await agent.fill("#wrapup-notes", "客户要求退款，已登记")
    await agent.click("#btn-save-wrapup")
    await expect(panel).to_be_hidden()
    await expect(agent.locator("#day-drafts-box")).to_be_hidden()
    stored = await site.saved_wrapup(first)
    assert stored is not None and stored["notes"] == "客户要求退款，已登记"
    await expect(alert).to_have_count(0)
    assert problems == [], problems


async def test_a_pop_that_reads_in_two_seconds_shortcuts_and_the_idle_screen(
        browser: Browser, site: AppSite) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    store = await open_store(f"sqlite:///{site.db}")
    try:  # a lead the CRM knows by number only
        await store.create_lead("+8613900000022")
    finally:
        await store.close()
    agent = await open_page(browser, site.http_url + "/agent", problems, lang="en")
    await start_work(agent, site, "Available")

    # Shortcuts are listed, and work: pause, then ready.
    await expect(agent.locator("#shortcut-list")).to_contain_text("Alt+R")
    await expect(agent.locator("#shortcut-list")).to_contain_text("Save wrap-up")
    await agent.keyboard.press("Alt+P")
    await expect(agent.locator("#state-badge")).to_contain_text("Paused")
    await agent.keyboard.press("Alt+R")
    await expect(agent.locator("#state-badge")).to_have_text("Available")
    await agent.keyboard.press("Alt+F")
    assert await agent.evaluate("document.activeElement.id") == "search-q"

    # An unknown caller: the title says so with the number formatted; the chip looks the number up.
    _, unknown = await site.ring_agent(AGENT1, "+8613900000011")
    await expect(agent.locator("#pop-name")).to_have_text("Unknown caller · +86 139 0000 0011")
    await expect(agent.locator("#pop-reason .reason")).to_have_text("Sales enquiry (pressed 1)")
    chip = agent.locator("#pop-actions button[data-kind=lead]")
    await expect(chip).to_have_text("Unknown caller: look the number up or create a lead")
    await chip.click()
    await expect(agent.locator("#search-q")).to_have_value("8613900000011")
    await expect(agent.locator("#search-results")).to_contain_text("No customer found.")
    await expect(agent.locator("#offer-auto")).to_be_hidden()  # a desk phone: answered by hand
    await agent.screenshot(path=str(ARTIFACTS / "workday_pop_unknown_en.png"), full_page=True)
    site.hang_up_caller(unknown)
    await expect(agent.locator("#offer-banner")).to_be_hidden()

    # A lead without a name: never a blank title.
    _, lead = await site.ring_agent(AGENT1, "+8613900000022")
    await expect(agent.locator("#pop")).to_have_attribute("data-call-id", lead)
    await expect(agent.locator("#pop-name")).to_have_text("Lead without a name · +86 139 0000 0022")
    site.hang_up_caller(lead)
    await expect(agent.locator("#offer-banner")).to_be_hidden()

    # A known VIP with history: agents by name, dates in the UI's language, translated chips that act.
    _, vip = await site.ring_agent(AGENT1, HOSTILE_CALLER)
    await expect(agent.locator("#pop")).to_have_attribute("data-call-id", vip)
    await expect(agent.locator("#pop-reason .reason")).to_have_text("VIP fast lane")
    history = agent.locator("#pop-history")
    await expect(history).to_contain_text("Alice Smith")
    assert "1002" not in ((await history.text_content()) or "")
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}", (await history.locator("td").first.text_content()) or "")
    await expect(agent.locator("#pop-actions button[data-kind=flag]").first).to_contain_text("Blacklisted")
    ticket_chip = agent.locator("#pop-actions button[data-kind=ticket]").first
    await expect(ticket_chip).to_contain_text("Complaint ticket")
    await ticket_chip.click()
    await expect(agent.locator("#pop-tickets li").first).to_have_class(re.compile("flash"))
    await agent.screenshot(path=str(ARTIFACTS / "workday_pop_vip_en.png"), full_page=True)
    await agent.click("#lang")  # the same pop in Chinese
    await expect(agent.locator("#pop-reason .reason")).to_have_text("VIP 快速通道")
    await expect(agent.locator("#pop-actions button[data-kind=flag]").first).to_contain_text("黑名单客户")
    await expect(agent.locator("#pop-actions button[data-kind=ticket]").first).to_contain_text("投诉工单")
    assert "年" in ((await history.locator("td").first.text_content()) or "")
    await expect(agent.locator("#shortcut-list")).to_contain_text("保存小结")
    await agent.screenshot(path=str(ARTIFACTS / "workday_pop_vip_zh.png"), full_page=True)
    site.hang_up_caller(vip)
    await expect(agent.locator("#offer-banner")).to_be_hidden()

    # The idle screen: figures, a caller waiting in one of the agent's queues, nothing due. A pop whose
    # caller hung up before the answer does not stay on screen.
    await expect(agent.locator("#pop")).to_be_hidden()
    await agent.keyboard.press("Alt+P")
    await expect(agent.locator("#state-badge")).to_contain_text("小休")
    await site.add_waiting_call("support", "+8613900000044")
    await agent.select_option("#pause-reason", "lunch")
    await agent.click("#btn-pause")  # a new reason: a state change, and the idle screen is asked again
    await expect(agent.locator("#state-badge")).to_contain_text("午餐")
    day = agent.locator("#day-panel")
    await expect(day).to_be_visible()
    await expect(agent.locator("#day-waiting li[data-queue=support]")).to_have_attribute("data-waiting", "1")
    await expect(agent.locator("#day-waiting li[data-queue=support]")).to_contain_text("技术支持")
    await expect(agent.locator("#day-calls")).to_have_text("0")
    await agent.screenshot(path=str(ARTIFACTS / "workday_idle_zh.png"), full_page=True)
    await agent.click("#lang")
    await expect(agent.locator("#day-panel h2")).to_have_text("My day")
    await agent.screenshot(path=str(ARTIFACTS / "workday_idle_en.png"), full_page=True)
    assert problems == [], problems
