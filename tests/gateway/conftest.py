from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.gw_harness import MemorySite, memory_site


@pytest.fixture
async def site() -> AsyncIterator[MemorySite]:
    # The lead re-points this fixture at the real app + PBX simulator (a `Site`).
    async with memory_site() as s:
        yield s
