"""The simulator's SIP hang-ups held to capture 17 (Asterisk 22.10.1, sipp phones on PJSIP, the product
dialplan): what a phone's BYE and the CTI's AMI Hangup show on AMI, and in which order. The call model
decides who hung up from the first of these signs, so the order is the point."""

from __future__ import annotations

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import RECEIVED, capture
from tests.pbxsim.test_product_paths import Pbx, _bridge_caller_in_agi, _connected_call, pbx  # noqa: F401

_SIGNS = ("HangupRequest", "SoftHangupRequest", "Hangup")


def teardown(frames: list[Message], target: str, partner: str | None = None) -> list[tuple[str, str, str | None]]:
    """(event, whose, Cause) of the hang-up signs of the channel that ended first (``target``) and of its
    bridge partner, up to the target's Hangup. The partner's own Hangup is left out: on Asterisk it comes
    before or after the target's from one call to the next (captures 17 and the trial runs behind it)."""
    out: list[tuple[str, str, str | None]] = []
    for f in frames:
        name, chan = f.get("Event", ""), f.get("Channel")
        if name not in _SIGNS or chan not in (target, partner):
            continue
        if chan == partner and name == "Hangup":
            continue
        out.append((name, "target" if chan == target else "partner", f.get("Cause")))
        if chan == target and name == "Hangup":
            break
    return out


def _recorded() -> list[Message]:
    parser, out = AmiParser(), []
    for rec in capture("17"):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            out.extend(m for m in parser.feed(rec.payload) if isinstance(m, Message))
    return out


REAL = _recorded()
# Step 1: the caller's BYE while bridged; step 2: the agent's phone's BYE; step 3: the caller's BYE while
# waiting in FastAGI; step 4: the CTI's AMI Hangup of the agent's leg.
CALLER_BYE = teardown(REAL, "PJSIP/trunk-00000000", "PJSIP/1001-00000001")
AGENT_BYE = teardown(REAL, "PJSIP/1004-00000003", "PJSIP/trunk-00000002")
BYE_IN_AGI = teardown(REAL, "PJSIP/trunk-00000004")
AMI_HANGUP = teardown(REAL, "PJSIP/1001-00000006", "PJSIP/trunk-00000005")


def test_what_the_capture_shows() -> None:
    assert CALLER_BYE == [("HangupRequest", "target", None), ("SoftHangupRequest", "partner", "16"),
                          ("Hangup", "target", "16")]
    assert AGENT_BYE == [("HangupRequest", "target", None), ("SoftHangupRequest", "partner", "16"),
                         ("Hangup", "target", "16")]
    assert BYE_IN_AGI == [("HangupRequest", "target", None), ("SoftHangupRequest", "target", "16"),
                          ("Hangup", "target", "0")]
    assert AMI_HANGUP == [("SoftHangupRequest", "partner", "16"), ("Hangup", "target", "16")]


async def test_a_callers_bye_while_bridged(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    pbx.sim.world.queue_hangup(caller, 16)  # the caller's phone sends BYE
    await pbx.event("Hangup", caller.name)
    await pbx.event("Hangup", agent)
    assert teardown(pbx.ami.frames, caller.name, agent) == CALLER_BYE


async def test_an_agent_phones_bye_while_bridged(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    pbx.sim.world.queue_hangup(pbx.sim.world.channels[agent], 16)  # the desk phone sends BYE
    await pbx.event("Hangup", agent)
    await pbx.event("Hangup", caller.name)
    assert teardown(pbx.ami.frames, agent, caller.name) == AGENT_BYE


async def test_a_callers_bye_while_waiting_in_the_agi(pbx: Pbx) -> None:  # noqa: F811
    caller, session = await pbx.caller_in_ivr()
    pbx.sim.world.queue_hangup(caller, 16)
    session.close()  # the channel's Hangup waits for the FastAGI socket (capture 03)
    await pbx.event("Hangup", caller.name)
    assert teardown(pbx.ami.frames, caller.name) == BYE_IN_AGI


async def test_the_ctis_ami_hangup_of_the_bridged_agent_leg(pbx: Pbx) -> None:  # noqa: F811
    caller, agent = await _connected_call(pbx)
    await pbx.ami.action("Hangup", Channel=agent)
    await pbx.event("Hangup", agent)
    await pbx.event("Hangup", caller.name)
    # The caller's dialplan hang-up shows before the target's Hangup: nothing says the CTI asked first.
    assert teardown(pbx.ami.frames, agent, caller.name) == AMI_HANGUP
