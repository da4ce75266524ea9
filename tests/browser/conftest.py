from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.dialer.harness import CUSTOMERS, DIALER
from tests.gateway.gw_harness import AGENT1, AppSite, app_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    """The real app: PBX simulator, CTI server (serving the pages), seeded SQLite CRM."""
    async with app_site(tmp_path) as s:
        yield s


@pytest.fixture
async def campaign_site(tmp_path: Path) -> AsyncIterator[AppSite]:
    """The real app with the dialer on, its customers' dialplan, and agent 1001's phone answering."""
    async with app_site(tmp_path, dialplans=[CUSTOMERS], dialer=DIALER) as s:
        s.sim.world.phones[AGENT1].answer_after = 0.5
        # the PBX counts virtual seconds, the CTI's 2 s are real ones: an answered line waits long enough
        s.sim.world.dialplan.globals["CTI_DIALER_WAIT"] = "600"
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium (never a downloaded one)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        await browser.close()
