"""A campaign call in the supervisors' call list: one call for the line, talking with its agent, gone at the
hang-up; the agent's leg is the line's, not a call of its own (as an ACD offer's leg is its caller's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmstore.campaigns import DialingMode
from tests.dialer.harness import LONG_PERSON, DialerStack, campaign, dialer_stack


async def _calls(d: DialerStack) -> dict[str, dict[str, object]]:
    """What a supervisor connecting now is sent (the snapshot), checked against the pushed list."""
    return dict((await d.server.console.monitor_snapshot()).calls)


@pytest.mark.parametrize("mode", [DialingMode.PROGRESSIVE, DialingMode.PREDICTIVE])
async def test_campaign_call_is_one_call_talking_with_its_agent_until_the_line_hangs_up(
        tmp_path: Path, mode: DialingMode) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.ready("1001")
        await d.add_campaign(campaign("spring", mode), [(LONG_PERSON, "Ann", "Etc/UTC")])

        async def connected() -> bool:
            return bool(d.steps("connected"))
        await d.stack.until_async(connected, 20, "the line connected to its agent")
        [step] = d.steps("connected")
        assert step.agent_id == "1001"
        line = step.call_id

        async def talking() -> dict[str, dict[str, object]]:
            calls, pushed = await _calls(d), d.server.gateway.monitor.rows["calls"]
            row, shown = calls.get(line), pushed.get(line)
            return calls if row and shown and row["state"] == shown["state"] == "talking" else {}
        calls = await d.stack.until_async(talking, 10, "the line talking in the call list")
        assert list(calls) == [line]  # the agent's leg is no call of its own
        assert list(d.server.gateway.monitor.rows["calls"]) == [line]
        assert calls[line]["agent_id"] == d.server.gateway.monitor.rows["calls"][line]["agent_id"] == "1001"
        [model] = [pbx.model for pbx in d.server.calls.pbxes.values()]
        assert [(c.call_id, c.phase.value) for c in model.live_calls()] == [(line, "connected")]

        assert await d.outcome_of("spring", LONG_PERSON, timeout=30) == "done"

        async def none_left() -> bool:
            return not await _calls(d) and not d.server.gateway.monitor.rows["calls"] and not model.live_calls()
        await d.stack.until_async(none_left, 10, "no call left after the hang-up")
