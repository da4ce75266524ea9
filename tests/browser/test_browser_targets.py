"""The supervisor's wallboard against the targets, in real headless Chromium served by the real app: each
queue figure beside its target and coloured by where it stands (ok, warning, breach), the occupancy, and the
target alerts in Chinese and English. The calls are real (PBX simulator, IVR, ACD); screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.browser.test_browser_console import ARTIFACTS, login, open_page
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import ACD_YAML, AGENT1, HOSTILE_CALLER, PLAIN_CALLER, VIP_CALLER, app_site

VIP = "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}\n"
SALES = "  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}\n"
# vip: a service level that ignores abandons (100% with one quick answer: ok) and an abandon rate target of
# 60% (one abandon in two calls is 50%: past the warning line at 48%); sales: a caller waiting over 2 s is a
# breach. An agent in wrap-up for more than a second is an agent alert.
TARGETS_YAML = ACD_YAML.replace(
    "pause_reasons: [break, lunch, training, coaching, supervisor]\n",
    "pause_reasons: [break, lunch, training, coaching, supervisor]\n"
    "alerts: {raise_after_s: 0, clear_after_s: 0}\n"
    "agent_targets: {long_wrap_up_s: 1}\n",
).replace(VIP, "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 300, announce_every_s: 60,\n"
               "     short_abandon_s: 0, service_level: {percent: 80, within_s: 20, formula: abandons_ignored},\n"
               "     targets: {abandon_rate_pct: 60, min_calls: 1}}\n",
          ).replace(SALES, SALES.replace("60}", "60, targets: {longest_wait_s: 2}}"))


async def test_the_wallboard_colours_each_figure_against_its_target(browser: Browser, tmp_path: Path) -> None:
    assert VIP in ACD_YAML and SALES in ACD_YAML
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with app_site(tmp_path, acd_yaml=TARGETS_YAML, alert_every_s=0.1) as site:
        boss = await open_page(browser, site.http_url + "/supervisor", problems)
        await login(boss, site, "super1")
        vip = boss.locator("#wallboard tr[data-key=vip]")
        sales = boss.locator("#wallboard tr[data-key=sales]")
        await expect(vip.locator(".c-sl")).to_have_text("– / 80%")  # the target shows before any call
        await expect(vip.locator(".c-sl")).not_to_have_attribute("data-level", "ok")

        agent = await ConsoleClient.open(site.ws_url)
        await agent.login("agent1", site.passwords["agent1"])
        assert (await agent.request("agent_login", extension=AGENT1, queues=["vip"]))["type"] == "result"
        _, call_id = await site.ring_agent(AGENT1, VIP_CALLER)  # VIPs go straight to vip
        await site.answer(call_id)
        await agent.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "talking")
        assert (await agent.request("hangup", call_id=call_id))["type"] == "result"  # wrap-up starts
        await expect(vip.locator(".c-sl")).to_have_text("100.0% / 80%")
        await expect(vip.locator(".c-sl")).to_have_attribute("data-level", "ok")
        await expect(vip.locator(".c-abandon")).to_have_text("0.0% / 60%")
        await expect(vip.locator(".c-abandon")).to_have_attribute("data-level", "ok")
        # Occupancy: agent1 was available a moment, then busy (ringing, on the call, in wrap-up).
        await expect(vip.locator(".c-occupancy")).to_have_text(re.compile(r"^(9\d|100)\.\d%$"))

        # A second VIP caller waits (agent1 is in wrap-up) and hangs up: one abandon in two calls.
        gone = await site.add_waiting_call("vip", HOSTILE_CALLER)
        site.hang_up_caller(gone)
        await expect(vip.locator(".c-abandon")).to_have_text("50.0% / 60%")
        await expect(vip.locator(".c-abandon")).to_have_attribute("data-level", "warning")
        await expect(vip.locator(".c-sl")).to_have_attribute("data-level", "ok")  # abandons do not count here

        # A caller waits in sales, which nobody serves: past 2 s the cell turns red and the alert comes.
        await site.add_waiting_call("sales", PLAIN_CALLER)
        await expect(sales.locator(".c-longest")).to_have_attribute("data-level", "breach", timeout=10_000)
        await expect(sales.locator(".c-longest")).to_contain_text(" / 0:02")
        await expect(sales.locator(".c-sl")).not_to_have_attribute("data-level", "ok")  # nothing counted yet
        wait_alert = boss.locator("#alerts li[data-metric=longest_wait]")
        await expect(wait_alert).to_contain_text("销售 来电等待时间超过目标")  # queue names are translated
        await expect(wait_alert).to_have_class("alert alert-critical")
        wrap_alert = boss.locator(f"#alerts li[data-metric=long_wrap_up][data-subject='{AGENT1}']")
        await expect(wrap_alert).to_contain_text("李娜 Li Na (1001) 话后处理时间超过目标")
        await expect(wrap_alert).to_contain_text("/ 0:01")
        await expect(boss.locator("#wallboard").locator("xpath=..").locator("th").nth(7)).to_have_text("占用率")
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_targets_zh.png"), full_page=True)

        await boss.click("#lang")
        await expect(boss.locator("#conn")).to_have_text("online")
        await expect(wait_alert).to_contain_text("Sales a caller has waited longer than the target")
        await expect(wrap_alert).to_contain_text("in wrap-up longer than the target")
        await expect(vip.locator(".c-abandon")).to_have_attribute("title", "close to target")
        await expect(sales.locator(".c-longest")).to_have_attribute("title", "target missed")
        await boss.screenshot(path=str(ARTIFACTS / "supervisor_targets_en.png"), full_page=True)

        # The agent is done: the wrap-up alert goes from every supervisor's list.
        assert (await agent.request("ready"))["type"] == "result"
        await expect(wrap_alert).to_have_count(0)
    assert problems == [], problems
