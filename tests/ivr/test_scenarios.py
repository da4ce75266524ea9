"""Every node type through a FastAGI peer that answers like the captures (see agi_peer.py)."""

from __future__ import annotations

import pytest

from .agi_peer import scripted
from .scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario(name: str) -> None:
    await SCENARIOS[name](scripted)
