"""The agent console as the agent's phone, in real headless Chromium with fake audio devices, against the real
app and the simulator's SIP-over-WebSocket endpoint with aiortc media: register, get offered a call, answer
(by the button, by Alt+A, by itself), audio both ways (WebRTC statistics on both sides, an audio level above
silence, the PBX side's recording not silent), hold and resume through the server, mute, DTMF heard by the
PBX side, hang-up from either side, a network drop and the recovery; and the bad cases: an unregistered phone
gets no offers (supervisors see why), permission denied, wrong SIP credentials, a call to a console that is
not at work. Screenshots go to test-artifacts/softphone_*.png."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from ctiserver.consoles.phones import PhoneStateChanged
from pbxsim import webrtc_peer
from pbxsim.world import OriginateRequest
from tests.browser.softphone_site import (
    CHROMIUM_ARGS,
    PhoneSite,
    agent_state,
    phone_site,
    phone_stats,
    start_work,
)
from tests.browser.test_browser_console import ARTIFACTS
from tests.gateway.gw_harness import ACD_YAML, AGENT1, PLAIN_CALLER
from tests.waiting import until

pytestmark = pytest.mark.browser

TEXTS = {"zh": {"available": "空闲", "paused": "示忙", "talking": "通话中", "held": "保持中", "ready": "话机就绪",
                "answer": "接听", "wrap": "话后", "not_registered": "话机未注册", "failed": "话机故障"},
         "en": {"available": "Available", "paused": "Paused", "talking": "Talking", "held": "On hold",
                "ready": "Phone ready", "answer": "Answer", "wrap": "Wrap", "not_registered": "Phone not registered",
                "failed": "Phone not working"}}


@pytest.fixture
async def chromium() -> object:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def agent_page(browser: Browser, ps: PhoneSite, problems: list[str], lang: str = "zh",
                     init_script: str | None = None) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = await context.new_page()
    if init_script:
        await page.add_init_script(init_script)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(msg.text)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(ps.site.http_url + "/agent")
    if lang == "en":
        await page.click("#lang")
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"softphone_{name}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_call_in_the_browser_phone(chromium: Browser, tmp_path: Path, lang: str) -> None:
    text = TEXTS[lang]
    problems: list[str] = []
    async with phone_site(tmp_path) as ps:
        page = await agent_page(chromium, ps, problems, lang)
        await start_work(page, ps.site, "agent1", AGENT1, "sales", text["available"])
        await expect(page.locator("#phone-status")).to_have_text(text["ready"])
        assert ps.pbx.registered(AGENT1) and agent_state(ps) == ("available", None)

        # offered: the console rings with an Answer button
        ps.site.call(PLAIN_CALLER, "sales")
        await expect(page.locator("#offer-banner")).to_be_visible(timeout=15000)
        answer = page.locator("#btn-answer")
        await expect(answer).to_be_enabled(timeout=10000)
        await expect(answer).to_have_text(text["answer"])
        await expect(page.locator("body")).to_have_attribute("data-phone-ringing", "true")
        call = ps.call_of(AGENT1)
        assert call.ringing_at is not None and not call.answered
        await shot(page, f"ringing_{lang}")
        if lang == "zh":
            await answer.click()
        else:
            await page.keyboard.press("Alt+A")
        await expect(page.locator("#call-state")).to_have_text(text["talking"], timeout=15000)
        await until(lambda: call.answered, "the 200 OK at the PBX")

        # audio both ways
        await asyncio.sleep(2.5)
        stats = await phone_stats(page)
        assert stats["packetsReceived"] > 20 and stats["bytesReceived"] > 2000, stats
        assert stats["packetsSent"] > 20 and stats["bytesSent"] > 2000, stats
        assert stats["audioLevel"] > 0.01, stats  # the PBX side's tone, not silence
        peer = await call.peer.stats()  # type: ignore[union-attr]
        assert peer["packets_received"] > 20 and peer["bytes_received"] > 2000, peer
        await expect(page.locator("#call-quality")).to_be_visible()
        await expect(page.locator("#call-quality")).to_have_attribute("data-grade", "good")

        # DTMF to the PBX side (RFC 4733)
        for digit in "12#":
            await page.click(f"#dtmf-pad button[data-digit='{digit}']")
            await asyncio.sleep(0.3)
        await until(lambda: call.digits == "12#", f"digits 12# at the PBX side (got {call.digits!r})")

        # mute and unmute
        await page.click("#btn-mute")
        assert await page.evaluate("window.__softphone.muted")
        await expect(page.locator("#btn-mute")).to_have_attribute("data-muted", "true")
        await page.click("#btn-mute")
        assert not await page.evaluate("window.__softphone.muted")

        # hold and resume go through the server: the ACD knows, the SIP leg stays up
        await page.click("#btn-hold")
        await expect(page.locator("#call-state")).to_have_text(text["held"], timeout=10000)
        assert agent_state(ps)[0] == "on_hold" and not call.ended
        await shot(page, f"held_{lang}")
        await page.click("#btn-unhold")
        await expect(page.locator("#call-state")).to_have_text(text["talking"], timeout=10000)

        # the caller hangs up: the PBX sends BYE, the console's call ends and wrap-up starts
        for run in ps.site.sim.callers:
            run.hang_up()
        await until(lambda: call.ended, "BYE from the PBX")
        assert call.hung_up_by == "pbx"
        await expect(page.locator("#call-panel")).to_be_hidden(timeout=10000)
        await expect(page.locator("#btn-mute")).to_be_hidden()
        assert not await page.evaluate("window.__softphone.inCall")
        await asyncio.sleep(0.3)
        assert call.recording is not None and webrtc_peer.rms(call.recording) > 50, "the agent's audio was silent"
        await shot(page, f"after_{lang}")
    assert problems == []


async def test_auto_answer_hang_up_from_the_console_and_network_recovery(chromium: Browser, tmp_path: Path) -> None:
    text = TEXTS["en"]
    problems: list[str] = []
    async with phone_site(tmp_path, auto_answer=True, acd_yaml=ACD_YAML.replace("wrap_up_s: 30", "wrap_up_s: 1")) as ps:
        page = await agent_page(chromium, ps, problems, "en")
        await start_work(page, ps.site, "agent1", AGENT1, "sales", text["available"])
        await expect(page.locator("#phone-status")).to_have_text(text["ready"])

        ps.site.call(PLAIN_CALLER, "sales")
        await expect(page.locator("#call-state")).to_have_text(text["talking"], timeout=20000)
        call = ps.call_of(AGENT1)
        assert call.answered
        await expect(page.locator("#btn-answer")).to_be_hidden()
        await asyncio.sleep(1.5)
        stats = await phone_stats(page)
        assert stats["packetsReceived"] > 10 and stats["packetsSent"] > 10, stats
        # the agent hangs up: through the server, which hangs up the leg; the PBX's BYE ends the session
        await page.click("#btn-hangup")
        await until(lambda: call.ended, "the agent leg's end")
        assert call.hung_up_by == "pbx"
        await expect(page.locator("#call-panel")).to_be_hidden(timeout=10000)

        # wrap-up saved, then the network between the console and the PBX goes: no offers until the phone is back
        await expect(page.locator("#wrapup-panel")).to_be_visible(timeout=10000)
        await page.select_option("#wrapup-disposition", "resolved")
        await page.click("#btn-save-wrapup")
        await until(lambda: agent_state(ps)[0] == "available", "available after the call")
        await ps.pbx.drop_connections()
        await until(lambda: agent_state(ps) == ("paused", "phone_unregistered"), "paused: phone lost")
        await expect(page.locator("#phone-message")).to_be_visible()
        await shot(page, "network_lost_en")
        await until(lambda: ps.pbx.registered(AGENT1), "registered again", timeout=20)
        await until(lambda: agent_state(ps) == ("available", None), "available again")
        await expect(page.locator("#phone-status")).to_have_text(text["ready"])
        before = len(ps.pbx.calls)
        ps.site.call(PLAIN_CALLER, "sales")
        await until(lambda: len(ps.pbx.calls) > before and ps.pbx.calls[-1].answered, "a new call answered", 20)
        await expect(page.locator("#call-panel")).to_be_visible(timeout=10000)
        await expect(page.locator("#call-state")).to_have_text(text["talking"])
        # and this time the browser hangs up first (BYE from the phone)
        await page.evaluate("window.__softphone.session.terminate()")
        second = ps.call_of(AGENT1)
        await until(lambda: second.ended, "BYE from the browser")
        assert second.hung_up_by == "browser"
        await expect(page.locator("#call-panel")).to_be_hidden(timeout=10000)
    assert problems == []


async def test_starting_work_registers_the_phone_once(chromium: Browser, tmp_path: Path) -> None:
    """The phone registers before the agent logs in (no call may find the agent at work without one); news
    about the agent that arrives in that moment (the PBX's word on the new contact) must not take the
    phone away again, or every start of work costs a second registration and seconds of pause."""
    told: list[tuple[str, str]] = []
    async with phone_site(tmp_path) as ps:
        ps.site.server.bus.subscribe(PhoneStateChanged, lambda e: told.append((e.state, e.detail)))
        page = await agent_page(chromium, ps, [], "zh")
        await start_work(page, ps.site, "agent1", AGENT1, "sales", TEXTS["zh"]["available"])
        await asyncio.sleep(1.0)
        assert told and all(state == "registered" for state, _ in told), told  # never unregistered on the way
        assert agent_state(ps) == ("available", None)


@pytest.mark.parametrize(("error", "says"), [("NotAllowedError", "未获准使用麦克风"),  # permission denied
                                            ("NotFoundError", "未找到麦克风")])  # a browser with no microphone
async def test_unregistered_phone_gets_no_offers_and_supervisors_see_it(chromium: Browser, tmp_path: Path,
                                                                        error: str, says: str) -> None:
    text = TEXTS["zh"]
    problems: list[str] = []
    deny = ("navigator.mediaDevices.getUserMedia = () => "
            f"Promise.reject(new DOMException('Permission denied', '{error}'));")
    async with phone_site(tmp_path) as ps:
        boss = await agent_page(chromium, ps, problems, "zh")
        await boss.goto(ps.site.http_url + "/supervisor")
        await boss.fill("#login-user", "super1")
        await boss.fill("#login-pass", ps.site.passwords["super1"])
        await boss.click("#login-form button[type=submit]")
        page = await agent_page(chromium, ps, problems, "zh", init_script=deny)
        await start_work(page, ps.site, "agent1", AGENT1, "sales", text["paused"])
        await expect(page.locator("#phone-message")).to_contain_text(says)
        await expect(page.locator("#phone-status")).to_have_text(text["failed"])
        assert agent_state(ps) == ("paused", "phone_unregistered") and not ps.pbx.registered(AGENT1)
        call_id = await ps.site.add_waiting_call("sales", PLAIN_CALLER)
        await asyncio.sleep(1.0)
        assert agent_state(ps)[0] == "paused" and not ps.pbx.calls  # nobody rang
        await expect(page.locator("#offer-banner")).to_be_hidden()
        row = boss.locator(f"#agent-grid tr[data-key='{AGENT1}']")
        await expect(row).to_contain_text(text["failed"], timeout=10000)
        await shot(page, f"microphone_{error}_zh")
        await shot(boss, f"supervisor_phone_state_{error}_zh")
        del call_id
    assert [p for p in problems if "Permission denied" not in p] == []


async def test_wrong_sip_credentials_say_so_and_offer_nothing(chromium: Browser, tmp_path: Path) -> None:
    text = TEXTS["en"]
    problems: list[str] = []
    # the PBX's pjsip.conf was not updated after the secret changed
    async with phone_site(tmp_path, passwords=lambda ext: "an-old-password") as ps:
        page = await agent_page(chromium, ps, problems, "en")
        await start_work(page, ps.site, "agent1", AGENT1, "sales", text["paused"])
        await expect(page.locator("#phone-message")).to_contain_text("refused this phone's credentials",
                                                                     timeout=15000)
        assert agent_state(ps) == ("paused", "phone_unregistered")
        assert (AGENT1, 401) in ps.pbx.refused and not ps.pbx.registered(AGENT1)
        await shot(page, "auth_failed_en")
    assert problems == []


async def test_a_call_to_a_console_not_at_work_is_refused(chromium: Browser, tmp_path: Path) -> None:
    text = TEXTS["en"]
    problems: list[str] = []
    async with phone_site(tmp_path) as ps:
        page = await agent_page(chromium, ps, problems, "en")
        await start_work(page, ps.site, "agent1", AGENT1, "sales", text["available"])
        await expect(page.locator("#phone-status")).to_have_text(text["ready"])
        await page.click("#btn-agent-logout")
        await expect(page.locator("#phone-panel")).to_be_visible()
        await until(lambda: not ps.pbx.registered(AGENT1), "the phone unregistered at logout")
        # a phone left registered by a console that is not at work (started by hand here) refuses the call
        account = (await ps.site.server.console.phone_account(_agent_principal(ps), AGENT1))
        await page.evaluate("(a) => window.__softphone.start(a)", account)
        await until(lambda: ps.pbx.registered(AGENT1), "registered by hand")
        result = await ps.site.sim.world.originate(OriginateRequest(channel=f"PJSIP/{AGENT1}", application="Wait",
                                                                    data="5", timeout_ms=10000))
        assert not result.ok
        assert ps.call_of(AGENT1).final_status == 480
        await expect(page.locator("#phone-message")).to_contain_text("not at work")
        await shot(page, "refused_not_at_work_en")
    assert problems == []


def _agent_principal(ps: PhoneSite) -> object:
    from ctiserver.gateway.auth import Principal, Role

    return Principal(username="agent1", role=Role.AGENT, agent_id=AGENT1, extension=None, display_name="agent1",
                     session_id="t", expires_at=10**12)
