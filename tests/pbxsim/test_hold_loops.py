"""The simulator held to capture 19 (Asterisk 22.10.1, sipp phones on PJSIP, the product dialplan, the CTI's
own AMI session): what becomes of the legs of a call the CTI held (dual Redirect into [cti-hold]) and
bridged again with AMI Bridge (un-hold, a consultation and its end). AMI Bridge leaves a channel its place in
the dialplan, so when that bridge ends the agent's leg goes on at the next priority of [cti-hold] `agent`,
which loops back to waiting: nothing but the CTI ends it."""

from __future__ import annotations

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import RECEIVED, capture
from tests.pbxsim.test_product_paths import Pbx, _connected_call, pbx  # noqa: F401

_SHOWN = ("HangupRequest", "SoftHangupRequest", "Hangup", "BridgeLeave", "BridgeEnter", "Newexten",
          "MusicOnHoldStart", "MusicOnHoldStop")
Step = tuple[str, str]


def story(frames: list[Message], channel: str, start: int = 0, stop: str | None = None) -> list[Step]:
    """What happens to one channel from frames[start] on, up to its Hangup (or its first `stop` event):
    (event, the application and its data, or the cause)."""
    out: list[Step] = []
    for f in frames[start:]:
        name = f.get("Event", "")
        if f.get("Channel") != channel or name not in _SHOWN:
            continue
        if name == stop:
            break
        if name == "Newexten":
            detail = f"{f.get('Application')}({f.get('AppData')})"
        else:
            detail = f.get("Cause") or ""
        out.append((name, detail))
        if name == "Hangup":
            break
    return out


def first(frames: list[Message], event: str, channel: str, start: int = 0) -> int:
    return next(i for i in range(start, len(frames)) if frames[i].get("Event") == event
                and frames[i].get("Channel") == channel)


def _recorded() -> list[Message]:
    parser, out = AmiParser(), []
    for rec in capture("19"):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            out.extend(m for m in parser.feed(rec.payload) if isinstance(m, Message))
    return out


REAL = _recorded()
# Step A: the consulted agent's phone (1002) sends BYE; the first agent's leg (1001) left the consultation's
# bridge, until the CTI bridges it with the caller again.
CONSULTED_BYE = story(REAL, "PJSIP/1001-00000001", first(REAL, "HangupRequest", "PJSIP/1002-00000002"),
                      stop="BridgeEnter")
# Step B: the caller hangs up on hold (music on hold in [cti-hold]); then the CTI hangs up the agent's leg.
_B = first(REAL, "HangupRequest", "PJSIP/trunk-00000003")
CALLER_BYE_ON_HOLD = story(REAL, "PJSIP/trunk-00000003", _B)
HELD_AGENT_AFTER = story(REAL, "PJSIP/1001-00000004", _B)
# Step C: hold, un-hold, then the caller's BYE; the agent's leg waits again until the CTI hangs it up.
_C = first(REAL, "HangupRequest", "PJSIP/trunk-00000005")
CALLER_BYE_AFTER_UNHOLD = story(REAL, "PJSIP/trunk-00000005", _C)
UNHELD_AGENT_AFTER = story(REAL, "PJSIP/1001-00000006", _C)


def test_what_the_capture_shows() -> None:
    again = [("Newexten", "Goto(agent,1)"), ("Newexten", "Wait(3600)")]
    assert CONSULTED_BYE == [("BridgeLeave", ""), *again]
    assert CALLER_BYE_ON_HOLD == [("HangupRequest", "16"), ("MusicOnHoldStop", ""), ("SoftHangupRequest", "16"),
                                  ("Hangup", "16")]
    assert HELD_AGENT_AFTER == [("SoftHangupRequest", "16"), ("Hangup", "16")]  # the CTI's Hangup
    assert CALLER_BYE_AFTER_UNHOLD == [("HangupRequest", ""), ("BridgeLeave", ""), ("Hangup", "16")]
    assert UNHELD_AGENT_AFTER == [("BridgeLeave", ""), *again, ("SoftHangupRequest", "16"), ("Hangup", "16")]


async def _after(pbx: Pbx, start: int, event: str, channel: str, **want: str) -> None:  # noqa: F811
    """Wait for `event` on `channel` among the frames from index `start` on."""
    def seen() -> bool:
        return any(f.get("Event") == event and f.get("Channel") == channel
                   and all(f.get(k) == v for k, v in want.items()) for f in pbx.ami.frames[start:])
    await pbx.ami.wait_event(lambda f: seen())


async def _hold(pbx: Pbx, caller: str, agent: str) -> None:  # noqa: F811
    resp = await pbx.ami.action("Redirect", Channel=caller, Context="cti-hold", Exten="caller", Priority="1",
                                ExtraChannel=agent, ExtraContext="cti-hold", ExtraExten="agent", ExtraPriority="1")
    assert resp["Message"] == "Dual Redirect successful"
    await pbx.event("MusicOnHoldStart", caller)
    await pbx.event("Newexten", agent, Context="cti-hold", Application="Wait")


async def _bridge(pbx: Pbx, a: str, b: str) -> None:  # noqa: F811
    start = len(pbx.ami.frames)
    resp = await pbx.ami.action("Bridge", Channel1=a, Channel2=b)
    assert resp["Message"] == "Channels have been bridged"
    await _after(pbx, start, "BridgeEnter", b)


async def test_the_consulted_partys_bye_sends_the_first_agents_leg_back_to_waiting(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    await _hold(pbx, caller.name, agent)
    consulted = (await pbx.originate_agent("1006", "leg-1006"))["Channel"]
    await _bridge(pbx, agent, consulted)
    start = len(pbx.ami.frames)
    pbx.sim.world.queue_hangup(pbx.sim.world.channels[consulted], 16)  # 1006's phone sends BYE
    await _after(pbx, start, "Newexten", agent, Application="Wait")
    await _bridge(pbx, agent, caller.name)  # the CTI gives the caller back
    assert story(pbx.ami.frames, agent, start, stop="BridgeEnter") == CONSULTED_BYE


async def test_the_callers_bye_on_hold_then_the_ctis_hangup_of_the_agents_leg(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    await _hold(pbx, caller.name, agent)
    start = len(pbx.ami.frames)
    pbx.sim.world.queue_hangup(caller, 16)  # the caller's phone sends BYE while hearing the hold music
    await _after(pbx, start, "Hangup", caller.name)
    await pbx.ami.action("Hangup", Channel=agent)
    await _after(pbx, start, "Hangup", agent)
    assert story(pbx.ami.frames, caller.name, start) == CALLER_BYE_ON_HOLD
    assert story(pbx.ami.frames, agent, start) == HELD_AGENT_AFTER


async def test_after_an_unhold_the_callers_bye_leaves_the_agents_leg_waiting_in_hold(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    await _hold(pbx, caller.name, agent)
    await _bridge(pbx, agent, caller.name)  # un-hold
    start = len(pbx.ami.frames)
    pbx.sim.world.queue_hangup(caller, 16)
    await _after(pbx, start, "Newexten", agent, Application="Wait")
    await pbx.sim.world.sleep(5.0)  # it stays there (Wait(3600), then again)
    assert not pbx.sim.world.channels[agent].dead
    await pbx.ami.action("Hangup", Channel=agent)
    await _after(pbx, start, "Hangup", agent)
    assert story(pbx.ami.frames, caller.name, start) == CALLER_BYE_AFTER_UNHOLD
    assert story(pbx.ami.frames, agent, start) == UNHELD_AGENT_AFTER
