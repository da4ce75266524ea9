"""Recordings and voicemails in real headless Chromium, zh and en: a call of an always-recorded queue,
paused for a card payment from the console, played back by its agent and by a supervisor (each playback
audited); a voicemail left in the IVR, played by the supervisor, assigned to the agent, played and marked
done by the agent. The audio plays through the gateway's real HTTP server: the <audio> element loads it
and reports its duration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.gateway.gw_harness import AGENT1, KEY_ACCOUNT_CALLER, PLAIN_CALLER
from tests.recordings.rec_site import leave_voicemail, message_wav, rec_site, voicemail_row

pytestmark = pytest.mark.browser

WORDS = {
    "zh": {"recording": "● 正在录音", "paused": "❚❚ 录音已暂停", "audited": "审计日志", "new": "新留言",
           "assigned": "已分配给 1001", "done": "已处理（agent1）", "available": "空闲"},
    "en": {"recording": "● recording", "paused": "❚❚ recording paused", "audited": "audit log", "new": "new",
           "assigned": "assigned to 1001", "done": "done (agent1)", "available": "Available"},
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"])
        yield browser
        await browser.close()


async def audio_seconds(page: Page, audio_id: str) -> float:
    """Wait until the <audio> element has loaded its file over HTTP and knows how long it is."""
    await page.wait_for_function(
        "(id) => { const a = document.getElementById(id); "
        "return a && a.readyState >= 1 && Number.isFinite(a.duration) && a.duration > 0; }",
        arg=audio_id, timeout=10_000)
    return float(await page.evaluate("(id) => document.getElementById(id).duration", audio_id))


async def row_appears(page: Page, selector: str, refresh: str) -> None:
    """Lists are read on demand: press refresh until the row is there (the CRM row lands at call end)."""
    for _ in range(40):
        if await page.locator(selector).count():
            return
        await page.click(refresh)
        await page.wait_for_timeout(250)
    await expect(page.locator(selector)).to_be_visible()


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_recording_paused_played_and_audited_and_voicemail_inbox(
        browser: Browser, tmp_path: Path, lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    words = WORDS[lang]
    problems: list[str] = []
    async with rec_site(tmp_path) as site:
        agent = await open_page(browser, site.http_url + "/agent", problems, lang=lang)
        await login(agent, site, "agent1")
        await agent.fill("#phone-ext", AGENT1)
        await agent.click("#phone-form button[type=submit]")
        await expect(agent.locator("#state-badge")).to_have_text(words["available"])
        boss = await open_page(browser, site.http_url + "/supervisor", problems, lang=lang)
        await login(boss, site, "super1")
        await expect(boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")).to_be_visible()

        # sales records always: the recording starts at the bridge; the agent pauses it for a card payment.
        _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER, "sales")
        await site.answer(call_id)
        await expect(agent.locator("#rec-state")).to_have_text(words["recording"])
        await agent.click("#rec-pause")
        await expect(agent.locator("#rec-state")).to_have_text(words["paused"])
        await expect(agent.locator("#rec-resume")).to_be_enabled()
        await agent.screenshot(path=str(ARTIFACTS / f"recordings_{lang}_agent_paused.png"), full_page=True)
        await agent.click("#rec-resume")
        await expect(agent.locator("#rec-state")).to_have_text(words["recording"])
        site.hang_up_caller(call_id)
        await expect(agent.locator("#wrapup-panel")).to_be_visible()

        # The agent plays the call back from the list: the <audio> element loads it over HTTP.
        row = f"#recordings-list tr[data-call-id='{call_id}']"
        await row_appears(agent, row, "#recordings-refresh")
        await agent.click(f"{row} button.play")
        seconds = await audio_seconds(agent, "recordings-audio")
        assert seconds > 0
        await expect(agent.locator("#recordings-status")).to_contain_text(words["audited"])
        plays = site.crm_rows("SELECT actor, detail FROM audit_log WHERE action = 'recording_play'")
        assert [(r["actor"], r["detail"]) for r in plays] == [("agent1", f"call {call_id}")]
        await agent.screenshot(path=str(ARTIFACTS / f"recordings_{lang}_agent_played.png"), full_page=True)

        # The supervisor hears it too (audited again).
        boss_row = f"#recordings-list tr[data-call-id='{call_id}']"
        await row_appears(boss, boss_row, "#recordings-refresh")
        await boss.click(f"{boss_row} button.play")
        assert abs(await audio_seconds(boss, "recordings-audio") - seconds) < 0.05
        plays = site.crm_rows("SELECT actor FROM audit_log WHERE action = 'recording_play' ORDER BY id")
        assert [r["actor"] for r in plays] == ["agent1", "super1"]

        # A known caller leaves a voicemail; the supervisor sees the CRM's name, plays it, gives it to 1001.
        leave_voicemail(site, KEY_ACCOUNT_CALLER, message_wav(tmp_path / "message.wav"))
        vm_id = await voicemail_row(site, KEY_ACCOUNT_CALLER)
        name = site.crm_rows("SELECT c.name FROM customers c JOIN phones p ON p.customer_id = c.id "
                             "WHERE p.e164 = ?", KEY_ACCOUNT_CALLER)[0]["name"]
        vm_row = f"#voicemail-list tr[data-call-id='{vm_id}']"
        await row_appears(boss, vm_row, "#voicemails-refresh")
        await expect(boss.locator(vm_row)).to_contain_text(name)
        await expect(boss.locator(vm_row)).to_contain_text(words["new"])
        await boss.click(f"{vm_row} button.play")
        voicemail = await audio_seconds(boss, "voicemails-audio")
        assert 2.5 < voicemail < 2.5 + 3.0  # the 2.5 s message, the pause before it, RECORD FILE's 1 s after
        await boss.select_option(f"{vm_row} select.assign", AGENT1)
        await expect(boss.locator(vm_row)).to_contain_text(words["assigned"])
        assert abs(await audio_seconds(boss, "voicemails-audio") - voicemail) < 0.05  # the list redrew, the player stayed
        await boss.screenshot(path=str(ARTIFACTS / f"recordings_{lang}_supervisor.png"), full_page=True)

        # The agent gets it (pushed), plays it and marks it done.
        await expect(agent.locator(vm_row)).to_be_visible()
        await agent.click(f"{vm_row} button.play")
        assert abs(await audio_seconds(agent, "voicemails-audio") - voicemail) < 0.05
        await agent.click(f"{vm_row} button.done")
        await expect(agent.locator(vm_row)).to_contain_text(words["done"])
        await agent.screenshot(path=str(ARTIFACTS / f"recordings_{lang}_agent_voicemail_done.png"),
                               full_page=True)
        vm_audits = site.crm_rows("SELECT actor, action FROM audit_log WHERE action LIKE 'voicemail%' ORDER BY id")
        assert [(r["actor"], r["action"]) for r in vm_audits] == [
            ("super1", "voicemail_play"), ("super1", "voicemail_assign"), ("agent1", "voicemail_play"),
            ("agent1", "voicemail_done")]
    assert problems == [], problems
