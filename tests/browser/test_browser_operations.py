"""The supervisor's monitoring and the administration page in real headless Chromium, zh and en, served by the
real app: a listen that shows who is monitored and stops; an administrator's change refused in one line, then
one in force without a restart (an agent given a queue is offered its next call)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.admin.admin_site import QUEUES_YAML, admin_site
from tests.gateway.gw_harness import AGENT1, AGENT2, PLAIN_CALLER, SUPERVISOR_EXTENSION, app_site
from tests.gateway.test_gateway_protocol import call_state

from .test_browser_console import ARTIFACTS, login, open_page

pytestmark = pytest.mark.browser


async def test_supervisor_monitors_a_call_and_stops(browser: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with app_site(tmp_path) as site:
        site.sim.world.phones[SUPERVISOR_EXTENSION].answer_after = 0.2
        from tests.gateway.test_gateway_protocol import agent
        a = await agent(site, queues=("sales",))
        _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
        await site.answer(call_id)
        await a.wait_for(call_state("talking", call_id))

        boss = await open_page(browser, site.http_url + "/supervisor", problems)
        await login(boss, site, "super1")
        row = boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")
        idle = boss.locator(f"#agent-grid tr[data-key='{AGENT2}']")
        await expect(row.locator(".c-state")).to_have_text("通话中")
        await expect(row.locator(".c-calls")).to_have_text("1")
        await expect(boss.locator("#wallboard tr[data-key=sales] .c-queue")).to_have_text("销售")
        await expect(row.locator(".c-queues")).to_have_text("销售")
        # A logged-out agent: nothing to listen to, nobody to pause or log out.
        await expect(idle.locator(".c-state")).to_have_text("未签入")
        for key in ("sup.listen", "sup.force_pause", "sup.force_logout"):
            await expect(idle.locator(f"button[data-i18n='{key}']")).to_be_disabled()

        await row.locator("button[data-i18n='sup.listen']").click()
        await expect(boss.locator("#spy-banner")).to_be_visible()
        await expect(boss.locator("#spy-agent")).to_have_text(f"李娜 Li Na ({AGENT1})")
        await expect(boss.locator("#spy-mode")).to_have_text("监听中")
        await expect(row.locator(".monitored")).to_have_text("super1：监听中")
        await expect(row.locator("button[data-i18n='sup.listen']")).to_be_disabled()
        await expect(row.locator("button[data-i18n='sup.whisper']")).to_be_enabled()
        await expect(boss.locator("#spy-since")).to_contain_text("已 0:0")
        await expect(boss.locator("#action-status")).to_have_text(f"已接通：您可以在分机 {SUPERVISOR_EXTENSION} 上听到通话。")
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_monitoring_zh.png"), full_page=True)

        await row.locator("button[data-i18n='sup.whisper']").click()
        await boss.click("#lang")
        await expect(boss.locator("#spy-mode")).to_have_text("whispering")
        await expect(boss.locator("#action-status")).to_have_text(
            f"Connected: you hear the call on your phone {SUPERVISOR_EXTENSION}.")
        await expect(boss.locator("#spy-banner")).to_contain_text("You are monitoring")
        await expect(row.locator(".monitored")).to_have_text("super1: whispering")
        await expect(boss.locator("#wallboard tr[data-key=sales] .c-queue")).to_have_text("Sales")
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_monitoring_en.png"), full_page=True)

        await boss.click("#spy-stop")
        await expect(boss.locator("#spy-banner")).to_be_hidden()
        await expect(boss.locator("#action-status")).to_have_text("Monitoring stopped.")
        await expect(row.locator(".monitored")).to_have_count(0)
        assert site.server.console.listening("super1") is None
        # A pause waiting for the end of the call: the pause button has nothing more to do.
        await row.locator("button[data-i18n='sup.force_pause']").click()
        await expect(row.locator(".c-state")).to_have_text("On call · By supervisor")
        await expect(row.locator("button[data-i18n='sup.force_pause']")).to_be_disabled()
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_after_monitoring_en.png"), full_page=True)
    assert problems == [], problems


async def agent_row(page: Page, agent_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#agent-list tr[data-key='{agent_id}']")


async def test_admin_change_in_force_without_a_restart(browser: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with admin_site(tmp_path) as site:
        page = await open_page(browser, site.http_url + "/admin", problems)
        page.on("dialog", lambda dialog: dialog.accept())
        await expect(page.locator("h1")).to_have_text("系统管理")
        # An agent's account is turned away.
        await login(page, site, "agent1")
        await expect(page.locator("#login-error")).to_have_text("此页面仅供管理员使用。")
        await login(page, site, "admin1")
        await expect(page.locator("#user-list tr[data-key=agent1] .c-role")).to_have_text("坐席")
        first, second = await agent_row(page, AGENT1), await agent_row(page, AGENT2)
        await expect(second.locator("input[data-skill=complaints]")).to_have_value("")

        # Taking complaints away from the only agent who serves them: refused in one line, nothing written.
        await first.locator("input[data-skill=complaints]").fill("")
        await first.locator("input[data-queue=complaints]").uncheck()
        await first.locator("button.primary").click()
        await expect(page.locator("#admin-status")).to_have_text("已拒绝：投诉 队列将无人能接听。未做任何修改。")
        await page.screenshot(path=str(ARTIFACTS / "admin_refused_zh.png"), full_page=True)
        assert (tmp_path / "queues.yaml").read_text(encoding="utf-8") == QUEUES_YAML

        # Agent 1002 gets the complaints skill and queue.
        await page.reload()
        await login_if_needed(page, site)
        second = await agent_row(page, AGENT2)
        await second.locator("input[data-skill=complaints]").fill("4")
        await second.locator("input[data-queue=complaints]").check()
        await second.locator("button.primary").click()
        await expect(page.locator("#admin-status")).to_have_text("已保存并生效。")
        await expect(page.locator("#audit-list tr[data-action='admin:agent_set'] .c-action")).to_have_text("坐席技能与队列")
        await page.screenshot(path=str(ARTIFACTS / "admin_agents_zh.png"), full_page=True)

        # The agent logs in (the server never restarted) and a complaints caller rings at their console.
        desk = await open_page(browser, site.http_url + "/agent", problems, lang="en")
        await login(desk, site, "agent2")
        await desk.fill("#phone-ext", AGENT2)
        await desk.click("#phone-form button[type=submit]")
        await expect(desk.locator("#state-badge")).to_have_text("Available")
        _, call_id = await site.ring_agent(AGENT2, PLAIN_CALLER, queue="complaints")
        await expect(desk.locator("#offer-banner")).to_be_visible()
        await desk.screenshot(path=str(ARTIFACTS / "admin_agent_offered_complaints_en.png"), full_page=True)

        # In English: a new user, then the audit log filtered to user changes.
        await page.click("#lang")
        await expect(page.locator("h1")).to_have_text("Administration")
        await page.fill("#u-name", "super2")
        await page.select_option("#u-role", "supervisor")
        await page.fill("#u-display", "Zhou Lan")
        await page.fill("#u-ext", "2002")
        await page.fill("#u-pass", "s3cret-pass")
        await page.click("#user-form button[type=submit]")
        await expect(page.locator("#admin-status")).to_have_text("Saved and in force.")
        await expect(page.locator("#user-list tr[data-key=super2] .c-role")).to_have_text("Supervisor")
        assert "s3cret-pass" not in (tmp_path / "cti.yaml").read_text(encoding="utf-8")
        # Business hours: Saturday mornings open, one more holiday; in force for the next caller.
        calendar = page.locator("#calendar-list .calendar[data-key='hours_line/office']")
        await calendar.locator("textarea").nth(0).fill("mon-fri 08:00-20:00\nsat 09:00-12:00")
        await calendar.locator("textarea").nth(1).fill("2026-10-01\n2026-10-02")
        await calendar.locator("button.primary").click()
        await expect(page.locator("#admin-status")).to_have_text("Saved and in force.")
        office = site.server.flows.get("hours_line").calendars["office"]
        assert len(office.hours) == 6 and len(office.holidays) == 2
        await expect(page.locator("#calendar-list .calendar[data-key='hours_line/office'] textarea").nth(0)) \
            .to_have_value("mon-fri 08:00-20:00\nsat 09:00-12:00")

        await page.select_option("#a-action", "admin:user_set")
        await page.click("#audit-form button[type=submit]")
        await expect(page.locator("#audit-list tr")).to_have_count(1)
        await expect(page.locator("#audit-list .c-detail")).to_contain_text("super2: created, role supervisor")
        await page.screenshot(path=str(ARTIFACTS / "admin_audit_en.png"), full_page=True)
        assert site.server.projector.router.call_view(call_id).queue == "complaints"  # type: ignore[union-attr]
    assert problems == [], problems


async def login_if_needed(page: Page, site) -> None:  # type: ignore[no-untyped-def]
    """A reload resumes the session (sessionStorage); the form shows only if it did not."""
    await expect(page.locator("#admin-main")).to_be_visible()
