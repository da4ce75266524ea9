"""The simulator against the golden transcripts: same events, headers, order per channel, AGI replies."""

from __future__ import annotations

import pytest

from tests.pbxsim.pbxsim_replay import agi_shape, compare, replay

MATCHED = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "13", "13b"]


@pytest.mark.parametrize("name", MATCHED)
async def test_replay_matches_capture(name: str) -> None:
    expected, got, records, agi = await replay(name, agi_up=name != "13b")
    for stream, frames in expected.items():
        assert compare(frames, got[stream]) == [], f"{name} {stream}"
        assert len(got[stream]) == len(frames)
    agi_streams = {r.stream for r in records if r.stream.startswith("AGI")}
    assert set(agi) == agi_streams
    for stream, lines in agi.items():
        want = [r.payload for r in records if r.stream == stream and r.direction == "<<<"]
        assert agi_shape(lines) == agi_shape(want), stream


async def test_replay_matches_capture_15_outbound_outcomes() -> None:
    """Busy, congestion, no answer, rejected, and AMD's HUMAN / LONGGREETING / INITIALSILENCE verdicts."""
    expected, got, _, _ = await replay("15", ami_users={"acc": "accsecret"}, local_channels_before=10,
                                      cdr_events=False)
    assert compare(expected["AMI1"], got["AMI1"]) == []
    assert len(got["AMI1"]) == len(expected["AMI1"])


async def test_compare_detects_a_changed_header_order() -> None:
    expected, got, _, _ = await replay("01")
    frames = list(got["AMI1"])
    victim = next(i for i, f in enumerate(frames) if f.get("Event") == "Newchannel")
    from ctiserver.ami.protocol import Message

    swapped = Message(reversed(list(frames[victim].items())))
    frames[victim] = swapped
    assert compare(expected["AMI1"], frames) != []
