"""CRM work in real headless Chromium, in Chinese and in English, served by the real app: the customer's card
from a search (grade, flags, surveys), edits refused and saved, a complaint opened and closed with its
history, a follow-up called from the worklist through the PBX simulator and recorded in the CRM, the
supervisors' churn list and grading, and a blacklisted caller routed by the queue's policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from crmstore.model import COMPLAINT, CallFacts, FollowUpKind, FollowUpRequest, WrapUp
from tests.gateway.gw_harness import (
    ACD_YAML,
    AGENT1,
    HOSTILE_CALLER,
    KEY_ACCOUNT_CALLER,
    PLAIN_CALLER,
    AppSite,
    app_site,
)

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TEXT = {
    "zh": {"available": "空闲", "saved": "客户已保存。", "closed": "已关闭", "opened": "已创建",
           "fu_saved": "回访结果已保存到客户资料。", "graded": "位客户分级", "blacklist": "黑名单", "complaints": "投诉",
           "bad_email": "电子邮件地址无效", "bad_phone": "电话号码无效", "settled": "回访已处理。"},
    "en": {"available": "Available", "saved": "Customer saved.", "closed": "closed", "opened": "opened",
           "fu_saved": "Follow-up call saved to the CRM.", "graded": "customers graded", "blacklist": "Blacklist", "complaints": "Complaints",
           "bad_email": "Not an e-mail address", "bad_phone": "Not a valid phone number",
           "settled": "Follow-up settled."},
}


async def open_page(browser: Browser, url: str, problems: list[str], lang: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1100},
                                        locale="zh-CN" if lang == "zh" else "en-GB")
    await context.add_init_script(f"localStorage.setItem('cti.lang', '{lang}')")
    page = await context.new_page()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(url)
    return page


async def login(page: Page, site: AppSite, username: str) -> None:
    await page.fill("#login-user", username)
    await page.fill("#login-pass", site.passwords[username])
    await page.click("#login-form button[type=submit]")


async def agent_at_work(browser: Browser, site: AppSite, problems: list[str], lang: str) -> Page:
    page = await open_page(browser, site.http_url + "/agent", problems, lang)
    await login(page, site, "agent1")
    await page.fill("#phone-ext", AGENT1)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_have_text(TEXT[lang]["available"])
    return page


def _customer_of(site: AppSite, phone: str) -> int:
    return int(site.crm_rows("SELECT customer_id FROM phones WHERE e164 = ?", phone)[0][0])


async def _seed(site: AppSite) -> tuple[int, int, int]:
    """A due follow-up on agent 1001's worklist, a survey on the plain caller's card, repeated complaints."""
    crm = site.server.crm
    plain = _customer_of(site, PLAIN_CALLER)
    key = _customer_of(site, KEY_ACCOUNT_CALLER)
    now = datetime.now(UTC)
    fid = await crm.add_follow_up(key, FollowUpRequest(FollowUpKind.SATISFACTION_CALL, now, AGENT1, "3DC 回访"))
    await crm.add_follow_up(plain, FollowUpRequest(FollowUpKind.VISIT, now - timedelta(days=1), AGENT1, "上门"))
    at = now - timedelta(days=1)
    await crm.save_wrapup(WrapUp(CallFacts("seed-survey-1", PLAIN_CALLER, at, queue="sales", agent="1002",
                                           answered_at=at, ended_at=at + timedelta(minutes=3)), "resolved"))
    await crm.save_survey("seed-survey-1", 4)
    hostile = _customer_of(site, HOSTILE_CALLER)
    await crm.open_ticket(hostile, COMPLAINT, "wrong invoice", opened_at=now - timedelta(days=1))
    return plain, key, fid


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_crm_work_in_the_agent_console(browser: Browser, site: AppSite, lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    words = TEXT[lang]
    problems: list[str] = []
    plain, key, fid = await _seed(site)
    page = await agent_at_work(browser, site, problems, lang)

    # The worklist is there as soon as the agent is at work.
    today = page.locator(f"#wl-today li[data-follow-up-id='{fid}']")
    await expect(today).to_be_visible()
    await expect(today.locator(".grade")).to_be_visible()

    # The customer's card from a search: grade, flags, survey results.
    await page.fill("#search-q", PLAIN_CALLER.removeprefix("+86"))
    await page.click("#search-form button[type=submit]")
    await page.locator(f"#search-results li[data-customer-id='{plain}'] .open-card").click()
    card = page.locator("#crm-card")
    await expect(card).to_be_visible()
    await expect(card.locator("#cc-grade .grade")).to_be_visible()
    await expect(card.locator("#cc-surveys .survey")).to_contain_text("4/5")

    # Bad input is refused with one line and nothing is written.
    before = site.crm_rows("SELECT email FROM customers WHERE id = ?", plain)[0][0]
    await page.fill("#cf-email", "wang@@example")
    await page.click("#cust-form button[type=submit]")
    await expect(page.locator("#cf-status")).to_contain_text(words["bad_email"])
    await expect(page.locator("#cf-email")).to_have_attribute("aria-invalid", "true")
    await page.fill("#cf-email", "wang.fang@example.cn")
    await page.fill("#cf-phone", "+86 100 0000 0000")
    await page.click("#cust-form button[type=submit]")
    await expect(page.locator("#cf-status")).to_contain_text(words["bad_phone"])
    await expect(page.locator("#cf-status")).to_contain_text("no such number range")
    await expect(page.locator("#cf-phone")).to_have_attribute("aria-invalid", "true")
    assert site.crm_rows("SELECT email FROM customers WHERE id = ?", plain)[0][0] == before
    await page.screenshot(path=str(ARTIFACTS / f"crm_edit_refused_{lang}.png"), full_page=True)
    await page.fill("#cf-phone", "13912345601")
    await page.click("#cust-form button[type=submit]")
    await expect(page.locator("#cf-status")).to_have_text(words["saved"])
    await expect(page.locator("#cc-facts")).to_contain_text("+8613912345601")
    assert site.crm_rows("SELECT email FROM customers WHERE id = ?", plain)[0][0] == "wang.fang@example.cn"

    # A complaint opened, then closed with a 3-day visit; its history shows each step.
    await page.fill("#tk-subject", "快递破损 parcel broken")
    await page.fill("#tk-note", "photo received")
    await page.click("#ticket-form button[type=submit]")
    await expect(page.locator("#tk-status")).to_contain_text(words["opened"])
    ticket = page.locator("#cc-tickets li.ticket[data-status='open']").first
    tid = await ticket.get_attribute("data-ticket-id")
    await ticket.locator(".tk-next").select_option("closed")
    await ticket.locator(".tk-note").fill("refunded")
    await ticket.locator(".tk-update").click()
    closed = page.locator(f"#cc-tickets li.ticket[data-ticket-id='{tid}']")
    await expect(closed).to_have_attribute("data-status", "closed")
    await expect(closed.locator(".tk-events li")).to_have_count(2)
    await expect(closed.locator(".tk-update")).to_have_count(0)  # a closed ticket offers no more moves
    # The seeded overdue visit and the 3-day visit of the closing.
    await expect(page.locator("#cc-followups li[data-status='open']")).to_have_count(2)
    assert site.crm_rows("SELECT COUNT(*) FROM follow_ups WHERE source_call_id = ?", f"ticket:{tid}")[0][0] == 1
    await page.screenshot(path=str(ARTIFACTS / f"crm_ticket_closed_{lang}.png"), full_page=True)
    events = site.crm_rows("SELECT status, note FROM ticket_events WHERE ticket_id = ? ORDER BY id", int(tid or 0))
    assert [tuple(e) for e in events] == [("open", "photo received"), ("closed", "refunded")]

    # A follow-up called from the worklist: the agent's phone rings, the customer is dialled, the result
    # is saved to the CRM.
    site.sim.world.phones[AGENT1].answer_after = 0.2
    await today.locator(".wl-call").click()
    await expect(page.locator("#fu-call-form")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / f"crm_follow_up_call_{lang}.png"), full_page=True)
    await page.click("#fu-hangup")
    await page.fill("#fu-notes", "满意 satisfied")
    await page.click("#fu-call-form button[type=submit]")
    await expect(page.locator("#wl-status")).to_have_text(words["fu_saved"])
    await expect(page.locator(f"#wl-done li[data-follow-up-id='{fid}'] .wl-result")).to_contain_text("satisfied")
    await expect(page.locator(f"#wl-today li[data-follow-up-id='{fid}']")).to_have_count(0)
    row = site.crm_rows("SELECT call_id, status, result FROM follow_ups WHERE id = ?", fid)[0]
    assert row["status"] == "done" and row["call_id"].startswith(f"cti-fu-{fid}-")
    call = site.crm_rows("SELECT direction, customer_id, notes FROM interactions WHERE call_id = ?", row["call_id"])
    assert tuple(call[0]) == ("outbound", key, "满意 satisfied")
    # An overdue visit made in person: settled from the worklist without a call.
    visit = page.locator("#wl-overdue li.wl-item").first
    visit_id = int(await visit.get_attribute("data-follow-up-id") or 0)
    await visit.locator(".wl-settle").click()
    await expect(page.locator("#fu-hangup")).to_be_hidden()
    await page.fill("#fu-notes", "上门完成 visited")
    await page.click("#fu-call-form button[type=submit]")
    await expect(page.locator("#wl-status")).to_have_text(words["settled"])
    await expect(page.locator(f"#wl-done li[data-follow-up-id='{visit_id}']")).to_contain_text("visited")
    assert site.crm_rows("SELECT status FROM follow_ups WHERE id = ?", visit_id)[0][0] == "done"
    await page.screenshot(path=str(ARTIFACTS / f"crm_worklist_done_{lang}.png"), full_page=True)

    # A new lead from a phone number alone.
    await page.click("#btn-new-customer")
    await page.fill("#cf-phone", "13912345602")
    await page.click("#cust-form button[type=submit]")
    await expect(page.locator("#cf-status")).to_have_text(words["saved"])
    assert site.crm_rows("SELECT c.is_lead FROM customers c JOIN phones p ON p.customer_id = c.id"
                         " WHERE p.e164 = '+8613912345602'")[0][0] == 1

    # The supervisor: churn candidates and grading on demand, grades everywhere at once.
    boss = await open_page(browser, site.http_url + "/supervisor", problems, lang)
    await login(boss, site, "super1")
    hostile = _customer_of(site, HOSTILE_CALLER)
    await expect(boss.locator(f"#churn-list tr[data-key='{hostile}']")).to_be_visible()
    await boss.click("#btn-grade")
    await expect(boss.locator("#grade-status")).to_contain_text(words["graded"])
    assert site.crm_rows("SELECT COUNT(*) FROM customers WHERE grade IS NULL")[0][0] == 0
    await boss.screenshot(path=str(ARTIFACTS / f"crm_supervisor_churn_{lang}.png"), full_page=True)
    assert problems == [], problems


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_blacklisted_caller_in_the_browser(browser: Browser, tmp_path: Path, lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    yaml = ACD_YAML.replace(
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}",
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60,\n"
        "     blacklist: {action: route, queue: complaints}}")
    problems: list[str] = []
    async with app_site(tmp_path, acd_yaml=yaml) as site:
        page = await agent_at_work(browser, site, problems, lang)
        _offer, call_id = await site.ring_agent(AGENT1, HOSTILE_CALLER)  # a VIP: the flow asks for vip
        await expect(page.locator("#offer-banner")).to_be_visible()
        # Routed to the complaints queue, named in the UI's language.
        await expect(page.locator("#offer-queue")).to_contain_text(TEXT[lang]["complaints"])
        await expect(page.locator("#pop-flags .flag-blacklist")).to_contain_text(TEXT[lang]["blacklist"])
        view = site.server.projector.router.call_view(call_id)
        assert view is not None and view.queue == "complaints"
        await page.screenshot(path=str(ARTIFACTS / f"crm_blacklisted_caller_{lang}.png"), full_page=True)
    assert problems == [], problems
