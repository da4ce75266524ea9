"""The dialer end to end in the simulator: each dialing mode, AMD outcomes, retries, do-not-call, windows."""

from __future__ import annotations

from pathlib import Path

from crmstore.campaigns import DialingMode
from ctiserver.journal import facts as f
from tests.dialer.harness import PERSON, PERSON2, PERSON3, campaign, dialer_stack


def _most_lines_at_once(facts: list[object]) -> int:
    out = most = 0
    for x in facts:
        if isinstance(x, f.DialerLineDialled):
            out += 1
            most = max(most, out)
        elif isinstance(x, f.DialerLineEnded):
            out -= 1
    return most


async def test_progressive_dials_one_line_per_free_agent_and_connects_each_person(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path) as d:
        d.ready("1001", "1002")
        await d.add_campaign(campaign("spring", DialingMode.PROGRESSIVE),
                             [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC"), (PERSON3, "Cy", "Etc/UTC")])
        for number in (PERSON, PERSON2, PERSON3):
            assert await d.outcome_of("spring", number, timeout=30) == "done"
        assert _most_lines_at_once(d.facts) == 2  # two free agents: two lines, never more
        connected = d.steps("connected")
        assert len(connected) == 3 and {s.agent_id for s in connected} == {"1001", "1002"}
        assert not d.steps("abandon")
        for number in (PERSON, PERSON2, PERSON3):
            [ended] = d.ended(number)
            assert ended.outcome == "connected" and ended.amd.startswith("HUMAN/HUMAN-")
        progress = await d.campaigns.progress("spring")
        assert progress.connects == 3
