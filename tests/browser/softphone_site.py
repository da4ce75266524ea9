"""A site whose agents' consoles are their phones: the real app, the PBX simulator with its SIP-over-WebSocket
endpoint and aiortc media, and Chromium with fake audio devices (a fake microphone that beeps, auto-granted
permission). Shared by the browser tests and bench/softphone.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from ctiserver.consoles.devices import PhoneSettings
from ctiserver.consoles.softphone import SoftphoneSettings, sip_password
from pbxsim.sip_ws import BrowserCall, SipWsServer
from pbxsim.site import free_port
from tests.gateway.gw_harness import ACD_YAML, AGENT1, AppSite, app_site

SECRET = "softphone-browser-tests-secret"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]


@dataclass
class PhoneSite:
    site: AppSite
    pbx: SipWsServer

    def call_of(self, extension: str) -> BrowserCall:
        return next(c for c in reversed(self.pbx.calls) if c.extension == extension)


@asynccontextmanager
async def phone_site(tmp: Path, *, acd_yaml: str = ACD_YAML, auto_answer: bool = False,
                     passwords: Callable[[str], str | None] | None = None, media_nice: int = 0,
                     **settings: Any) -> AsyncIterator[PhoneSite]:
    port = free_port()
    phones = PhoneSettings(auto_answer=False, softphone=SoftphoneSettings(
        ws_url=f"ws://127.0.0.1:{port}/ws", secret=SECRET, domain="127.0.0.1"))
    if auto_answer:
        acd_yaml = acd_yaml.replace("endpoint: PJSIP/1001}", "endpoint: PJSIP/1001, auto_answer: true}")
    async with app_site(tmp, acd_yaml=acd_yaml, phones=phones, **settings) as site:
        pbx = SipWsServer(site.sim.world, passwords or (lambda ext: sip_password(SECRET, ext)), port=port,
                          media_dir=tmp / "media", media_nice=media_nice)
        await pbx.start()
        try:
            yield PhoneSite(site, pbx)
        finally:
            await pbx.stop()


def agent_state(ps: PhoneSite, agent: str = AGENT1) -> tuple[str, str | None]:
    """The ACD's state of the agent and its pause reason."""
    v = ps.site.server.projector.router.agent_view(agent, ps.site.server.now())
    return v.state, v.pause_reason


async def start_work(page: Page, site: AppSite, username: str, extension: str, queue: str,
                     state_text: str) -> None:
    await page.fill("#login-user", username)
    await page.fill("#login-pass", site.passwords[username])
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#phone-panel")).to_be_visible(timeout=15000)
    await page.fill("#phone-ext", extension)
    for box in await page.locator("#queue-list input").all():
        await box.set_checked(await box.get_attribute("value") == queue)
    await page.click("#phone-form button[type=submit]")
    await expect(page.locator("#state-badge")).to_contain_text(state_text, timeout=15000)


async def phone_stats(page: Page) -> dict[str, Any]:
    await page.evaluate("window.__softphone.measure()")
    return dict(await page.evaluate("window.__softphone.stats"))
