"""Capture 15 (outbound outcomes on a real Asterisk 22) against the simulator: each Originate of the
capture, sent as it was, gives the same OriginateResponse (Response, Reason, Channel, Uniqueid) and the same
Hangup cause on each half of the Local pair. The expected values are read from the capture itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import capture
from pbxsim.simulator import Simulator
from tests.pbxsim.raw_ami import AmiClient

CONF = Path(__file__).with_name("capture15.conf")
SCALE = 0.05
_COUNTER = re.compile(r"-[0-9a-f]{8}(;[12])$")  # the global Local counter: where the capture's PBX had got


def _name(channel: str) -> str:
    return _COUNTER.sub(r"\1", channel)


def _capture15() -> tuple[list[Message], list[Message]]:
    actions, events = [], []
    for r in capture("15"):
        if not r.stream.startswith("AMI") or r.payload.startswith(b"Asterisk"):
            continue
        for m in AmiParser(expect_greeting=False).feed(r.payload):
            if isinstance(m, Message):
                (actions if r.direction == ">>>" else events).append(m)
    return [a for a in actions if a.get("Action") == "Originate"], events


ORIGINATES, EVENTS = _capture15()


def _outcome(frames: list[Message], channel_id: str) -> dict[str, str]:
    """What the capture (or the simulator) said about one attempt."""
    done = next(f for f in frames if f.get("Event") == "OriginateResponse" and f.get("Uniqueid") in
                (channel_id, "<unknown>") and f.get("Channel", "").startswith(
                    next(a["Channel"] for a in ORIGINATES if a["ChannelId"] == channel_id)))
    causes = {f["Uniqueid"]: f["Cause"] for f in frames if f.get("Event") == "Hangup"
              and f.get("Uniqueid") in (channel_id, channel_id + "-far")}
    return {"response": done["Response"], "reason": done["Reason"], "channel": _name(done["Channel"]),
            "uniqueid": done["Uniqueid"], "cause_1": causes.get(channel_id, "-"),
            "cause_2": causes.get(channel_id + "-far", "-")}


@pytest.fixture
async def ami() -> AsyncIterator[AmiClient]:
    sim = Simulator(dialplan_paths=[CONF], time_scale=SCALE)
    client = await AmiClient.connect(await sim.start())
    try:
        yield client
    finally:
        client.close()
        await sim.stop()


def test_the_capture_has_the_seven_outcomes() -> None:
    targets = [a["Channel"] for a in ORIGINATES]
    assert targets == [f"Local/{o}@far-end" for o in
                       ("busy", "congestion", "noanswer", "rejected", "human", "machine", "silence")]


@pytest.mark.parametrize("attempt", ORIGINATES[:4], ids=lambda a: a["Channel"].split("/")[1].split("@")[0])
async def test_failed_originate_matches_capture_15(ami: AmiClient, attempt: Message) -> None:
    headers = {k: v for k, v in attempt.items() if k not in ("Action", "ActionID")}
    await ami.action("Originate", **headers)
    cid = attempt["ChannelId"]
    await ami.wait_event(lambda f: f.get("Event") == "OriginateResponse", timeout=15)
    await ami.wait_event(lambda f: f.get("Event") == "Hangup" and f.get("Uniqueid") == cid + "-far", timeout=15)
    await asyncio.sleep(0.2)
    assert _outcome(ami.frames, cid) == _outcome(EVENTS, cid)


@pytest.mark.parametrize("attempt", ORIGINATES[4:], ids=lambda a: a["Channel"].split("/")[1].split("@")[0])
async def test_answered_originate_matches_capture_15(ami: AmiClient, attempt: Message) -> None:
    headers = {k: v for k, v in attempt.items() if k not in ("Action", "ActionID")}
    await ami.action("Originate", **headers)
    done = await ami.wait_event(lambda f: f.get("Event") == "OriginateResponse", timeout=15)
    want = next(f for f in EVENTS if f.get("Event") == "OriginateResponse" and f.get("Uniqueid") == attempt["ChannelId"])
    assert (done["Response"], done["Reason"], _name(done["Channel"]), done["Uniqueid"]) == \
        (want["Response"], want["Reason"], _name(want["Channel"]), want["Uniqueid"])
