from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway.gw_harness import AppSite, app_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    """The real app: PBX simulator, CTI server (serving the pages), seeded SQLite CRM."""
    async with app_site(tmp_path) as s:
        yield s
