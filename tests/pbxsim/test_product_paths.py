"""The paths the CTI server drives, on the product dialplan (asterisk-config/extensions.conf), through the
simulator's AMI port with a raw AMI client and a real FastAGI server on loopback:

1a  Originate of an agent leg on PJSIP/<ext> into cti-agent-ready (answered, no answer, busy, unknown);
1b  AMI Bridge of a caller that is inside the FastAGI IVR with the answered agent leg;
1c  the agent or the caller hanging up (ringing or connected);
1d  CTI hold (dual Redirect, un-hold by Bridge), transfers, recording, supervisor spy, Hangup of a leg;
1e  agents' phones that answer by themselves ([cti-agent-dial], its pre-dial handler), the trunk and
    operator placeholders of [globals].
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ctiserver.ami.protocol import Message
from pbxsim.channels import Channel
from pbxsim.simulator import Simulator
from tests.pbxsim.raw_ami import AmiClient

SCALE = 0.02
DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"


@dataclass
class AgiSession:
    env: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, command: str) -> None:
        self.writer.write(command.encode() + b"\n")
        await self.writer.drain()

    async def line(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def run(self, command: str) -> bytes:
        await self.send(command)
        return await self.line()

    def close(self) -> None:
        self.writer.close()


@dataclass
class AgiServer:
    """The CTI's FastAGI side, driven step by step by the test."""

    sessions: asyncio.Queue[AgiSession] = field(default_factory=asyncio.Queue)
    server: asyncio.Server | None = None

    async def start(self) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            env = await reader.readuntil(b"\n\n")
            await self.sessions.put(AgiSession(env.decode(), reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def next(self) -> AgiSession:
        return await asyncio.wait_for(self.sessions.get(), 5)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Pbx:
    sim: Simulator
    ami: AmiClient
    agi: AgiServer

    def events(self, channel: str, *names: str) -> list[Message]:
        return [f for f in self.ami.frames if f.get("Channel") == channel and (not names or f.get("Event") in names)]

    async def event(self, name: str, channel: str | None = None, timeout: float = 5.0, **want: str) -> Message:
        def match(f: Message) -> bool:
            if f.get("Event") != name or (channel is not None and f.get("Channel") != channel):
                return False
            return all(f.get(k) == v for k, v in want.items())

        return await self.ami.wait_event(match, timeout)

    async def originate_agent(self, ext: str, leg_id: str, *, timeout_ms: int = 20000,
                              callerid: str = '"John Doe" <5551234>') -> Message:
        resp = await self.ami.action("Originate", Channel=f"PJSIP/{ext}", Context="cti-agent-ready", Exten="s",
                                     Priority="1", Async="true", ChannelId=leg_id, Timeout=str(timeout_ms),
                                     CallerID=callerid)
        assert resp["Response"] == "Success" and resp["Message"] == "Originate successfully queued"
        return await self.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                         and f.get("ActionID") == resp["ActionID"])

    async def caller_in_ivr(self, num: str = "5551234", name: str = "John Doe") -> tuple[Channel, AgiSession]:
        caller = self.sim.place_call("5551000", num, name)
        session = await self.agi.next()
        assert await session.run("ANSWER") == b"200 result=0\n"
        return caller, session


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    agi = AgiServer()
    agi_port = await agi.start()
    sim = Simulator(time_scale=SCALE, agi_port=agi_port)
    sim.add_agent_phone("1001", answer_after=1.0)
    sim.add_agent_phone("1002", busy=True)
    sim.add_agent_phone("1003", answer_after=None)
    sim.add_agent_phone("1004", registered=False)
    sim.add_agent_phone("1005", answer_after=0.5, talk_time=3.0)
    sim.add_agent_phone("1006", answer_after=0.5)
    sim.add_agent_phone("1009", answer_after=0.5)  # supervisor
    sim.add_agent_phone("1007", answer_after=None, auto_answer=True)  # answers only when told to
    ami = await AmiClient.connect(await sim.start())
    try:
        yield Pbx(sim, ami, agi)
    finally:
        ami.close()
        await sim.stop()
        agi.close()


def names(frames: list[Message]) -> list[str]:
    return [f["Event"] for f in frames]


# ------------------------------------------------------------------------------------------------ 1a originate


async def test_originate_agent_leg_rings_then_answers_into_cti_agent_ready(pbx: Pbx) -> None:
    done = await pbx.originate_agent("1001", "cti-leg-1")
    assert (done["Response"], done["Reason"], done["Uniqueid"]) == ("Success", "4", "cti-leg-1")
    agent = done["Channel"]
    assert agent.startswith("PJSIP/1001-") and len(agent) == len("PJSIP/1001-") + 8
    assert (done["Context"], done["Exten"]) == ("cti-agent-ready", "s")
    assert (done["CallerIDNum"], done["CallerIDName"]) == ("5551234", "John Doe")
    await pbx.event("Newexten", agent, Application="Wait")
    mine = [f for f in pbx.ami.frames if agent in (f.get("Channel"), f.get("DestChannel"))
            and f["Event"] != "OriginateResponse"]  # its place is not fixed (README)
    assert names(mine)[:9] == ["Newchannel", "NewCallerid", "NewConnectedLine", "DialBegin", "Newstate",
                               "DialState", "Newstate", "DialEnd", "Newexten"]
    new = mine[0]
    assert (new["Uniqueid"], new["Linkedid"], new["ChannelState"]) == ("cti-leg-1", "cti-leg-1", "0")
    # Ringing, the phone's channel is in its endpoint's context (captures 19, 21), not yet the Originate's.
    assert (new["Context"], new["Exten"]) == ("cti-dial", "s")
    ringing, up = (f for f in mine if f["Event"] == "Newstate")
    # Ringing is on the wire before the answer, so the CTI can pop the agent's screen.
    assert (ringing["ChannelState"], ringing["ChannelStateDesc"]) == ("5", "Ringing")
    assert up["ChannelState"] == "6"
    assert mine[3]["DialString"] == "1001" and mine[7]["DialStatus"] == "ANSWER"
    assert pbx.ami.frames.index(ringing) < pbx.ami.frames.index(done)
    waits = [f for f in mine if f["Event"] == "Newexten"]
    assert [(f["Context"], f["Priority"], f["Application"]) for f in waits] == [
        ("cti-agent-ready", "1", "NoOp"), ("cti-agent-ready", "2", "Wait")]
    assert waits[1]["AppData"] == "3600"  # ${CTI_AGENT_WAIT}
    truth = pbx.sim.snapshot().by_name()[agent]
    assert (truth.state, truth.uniqueid, truth.application) == ("Up", "cti-leg-1", "Wait")


async def test_originate_no_answer_times_out_with_cause_19_and_reason_3(pbx: Pbx) -> None:
    done = await pbx.originate_agent("1003", "cti-leg-2", timeout_ms=2000)
    # With a ChannelId a failed Originate names its channel (capture 15); without one, "<unknown>" (05 C).
    assert (done["Response"], done["Reason"], done["Uniqueid"]) == ("Failure", "3", "cti-leg-2")
    assert done["Channel"] == "PJSIP/1003"  # the dial string, as in capture 05 C
    new = await pbx.event("Newchannel", Uniqueid="cti-leg-2")
    hang = await pbx.event("Hangup", new["Channel"])
    assert (hang["Cause"], hang["Cause-txt"]) == ("19", "User alerting, no answer")
    assert names(pbx.events(new["Channel"], "Newstate", "Hangup")) == ["Newstate", "Hangup"]
    assert pbx.events(new["Channel"], "Newstate")[0]["ChannelState"] == "5"
    assert not pbx.events(new["Channel"], "Newexten")


async def test_originate_busy_phone_gives_reason_0_after_its_hangup(pbx: Pbx) -> None:
    """A PJSIP channel originated at a busy phone (486): its session ends first (HangupRequest, DialEnd
    BUSY, Hangup 17), then the Originate fails with Reason 0, not 5 (captures 26 and 27)."""
    done = await pbx.originate_agent("1002", "cti-leg-3")
    assert (done["Response"], done["Reason"], done["Channel"]) == ("Failure", "0", "PJSIP/1002")
    new = await pbx.event("Newchannel", Uniqueid="cti-leg-3")
    end = await pbx.ami.wait_event(lambda f: f.get("Event") == "DialEnd" and f.get("DestChannel") == new["Channel"])
    assert end["DialStatus"] == "BUSY"
    hang = await pbx.event("Hangup", new["Channel"])
    assert hang["Cause"] == "17"
    order = [f["Event"] for f in pbx.ami.frames if f.get("Uniqueid") == "cti-leg-3"
             and f["Event"] in ("HangupRequest", "Hangup", "OriginateResponse")]
    assert order == ["HangupRequest", "Hangup", "OriginateResponse"]


@pytest.mark.parametrize("ext", ["1004", "4711"])  # unregistered, unknown
async def test_originate_to_unregistered_or_unknown_phone_gives_reason_0(pbx: Pbx, ext: str) -> None:
    """No channel is made, so no event but the outcome, which names the ChannelId it was given (capture 34 P;
    manager.c writes the ChannelId, or <unknown> without one, whenever the request made no channel)."""
    done = await pbx.originate_agent(ext, "cti-leg-4")
    assert (done["Response"], done["Reason"], done["Channel"], done["Uniqueid"]) == (
        "Failure", "0", f"PJSIP/{ext}", "cti-leg-4")
    assert not any(f.get("Uniqueid") == "cti-leg-4" for f in pbx.ami.frames if f.get("Event") != "OriginateResponse")


async def test_cti_hangs_up_a_ringing_agent_leg(pbx: Pbx) -> None:
    resp = await pbx.ami.action("Originate", Channel="PJSIP/1003", Context="cti-agent-ready", Exten="s",
                                Async="true", ChannelId="cti-leg-5", Timeout="20000")
    ring = await pbx.event("Newstate", ChannelState="5", Uniqueid="cti-leg-5")
    hung = await pbx.ami.action("Hangup", Channel=ring["Channel"])
    assert hung["Message"] == "Channel Hungup"
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert (done["Response"], done["Reason"]) == ("Failure", "1")
    await pbx.event("Hangup", ring["Channel"])


# ------------------------------------------------------------------------------------------------ 1b bridge


async def _bridge_caller_in_agi(pbx: Pbx, ext: str = "1001") -> tuple[Channel, AgiSession, str]:
    caller, session = await pbx.caller_in_ivr()
    await session.send('STREAM FILE custom/long-prompt ""')  # 11.6 s: still playing when the bridge comes
    await pbx.event("AGIExecStart", caller.name)
    done = await pbx.originate_agent(ext, f"leg-{ext}")
    agent = done["Channel"]
    resp = await pbx.ami.action("Bridge", Channel1=caller.name, Channel2=agent)
    assert (resp["Response"], resp["Message"]) == ("Success", "Channels have been bridged")
    return caller, session, agent


async def test_bridge_interrupts_the_callers_agi_and_the_dialplan_resumes_after_it(pbx: Pbx) -> None:
    caller, session, agent = await _bridge_caller_in_agi(pbx)
    # The prompt in progress ends as after a hangup; then HANGUP and 511 for channel commands.
    reply = await session.line()
    assert reply.startswith(b"200 result=-1 endpos=")
    assert await session.run("GET DATA beep 3000 4") == b"HANGUP\n"
    assert await session.line() == DEAD
    assert await session.run("CHANNEL STATUS") == DEAD
    assert await session.run("GET VARIABLE CALLERID(num)") == b"200 result=1 (5551234)\n"
    session.close()

    enter_caller = await pbx.event("BridgeEnter", caller.name)
    enter_agent = await pbx.event("BridgeEnter", agent)
    assert enter_caller["BridgeUniqueid"] == enter_agent["BridgeUniqueid"]
    assert (enter_caller["Context"], enter_caller["Priority"]) == ("from-pstn", "5")  # after AGI()
    assert enter_agent["Linkedid"] == caller.linkedid == enter_caller["Linkedid"]
    await pbx.event("VarSet", agent, Variable="BRIDGEPEER", Value=caller.name)
    # The caller's connected line becomes the agent leg's caller ID; the agent leg already shows the
    # caller (the CTI originated it with the caller's ID), and an unchanged line is not published (07 A).
    connected = pbx.events(caller.name, "NewConnectedLine")[-1]
    assert (connected["ConnectedLineNum"], connected["ConnectedLineName"]) == ("5551234", "John Doe")
    start = pbx.ami.frames.index(enter_caller) - 1
    bridge_events = [(f["Event"], f.get("Channel")) for f in pbx.ami.frames[start:]
                     if f.get("BridgeUniqueid") == enter_caller["BridgeUniqueid"]
                     or (f.get("Event") in ("VarSet", "NewConnectedLine") and f.get("Channel") in (caller.name, agent))]
    assert bridge_events[:6] == [("BridgeCreate", None), ("BridgeEnter", caller.name), ("BridgeEnter", agent),
                                 ("VarSet", caller.name), ("VarSet", agent), ("NewConnectedLine", caller.name)]
    assert pbx.events(agent, "NewConnectedLine")[-1]["Linkedid"] == "leg-1001"  # from before the bridge
    truth = pbx.sim.snapshot().by_name()
    assert truth[caller.name].bridge == truth[agent].bridge is not None
    assert not truth[caller.name].in_agi
    # The zombie's AGI is not reported as the caller's, and the caller did not hang up.
    after = pbx.ami.frames[pbx.ami.frames.index(enter_caller):]
    assert not [f for f in after if f.get("Channel") == caller.name and f["Event"].startswith("AGIExec")]
    assert not [f for f in after if f.get("Channel") == caller.name and f["Event"] in ("Hangup", "VarSet")
                and f.get("Variable") == "AGISTATUS"]

    set_done = await pbx.ami.action("Setvar", Channel=caller.name, Variable="IVR_DONE", Value="1")
    assert set_done["Response"] == "Success"
    await pbx.ami.action("Hangup", Channel=agent)
    hang_agent = await pbx.event("Hangup", agent)
    assert hang_agent["Cause"] == "16"
    resumed = await pbx.event("Newexten", caller.name, Priority="5")
    assert (resumed["Context"], resumed["Application"]) == ("from-pstn", "GotoIf")
    leave = await pbx.event("BridgeLeave", caller.name)
    assert pbx.ami.frames.index(leave) < pbx.ami.frames.index(resumed)
    hang_caller = await pbx.event("Hangup", caller.name)
    assert hang_caller["Priority"] == "8" and hang_caller["Cause"] == "16"  # after the 'done' label


async def test_bridge_while_the_agi_is_idle_and_the_session_stays_open(pbx: Pbx) -> None:
    caller, session = await pbx.caller_in_ivr()
    done = await pbx.originate_agent("1005", "leg-talk")  # talks 3 s, then hangs up
    agent = done["Channel"]
    await pbx.ami.action("Bridge", Channel1=caller.name, Channel2=agent)
    await pbx.event("BridgeEnter", caller.name)
    hang_agent = await pbx.event("Hangup", agent)
    assert hang_agent["Cause"] == "16"
    # The FastAGI session is still open, yet the caller goes on (IVR_DONE unset: the fallback).
    moh = await pbx.event("MusicOnHoldStart", caller.name)
    assert moh["Context"] == "cti-fallback"
    assert await session.run("STREAM FILE beep \"\"") == b"HANGUP\n"
    assert await session.line() == DEAD
    session.close()
    await pbx.ami.action("Hangup", Channel=caller.name)
    await pbx.event("Hangup", caller.name)


# ------------------------------------------------------------------------------------------------ 1c hang-ups


async def test_caller_hangs_up_while_connected_ends_the_agent_leg(pbx: Pbx) -> None:
    caller, session, agent = await _bridge_caller_in_agi(pbx)
    session.close()
    await pbx.event("BridgeEnter", agent)
    pbx.sim.world.queue_hangup(caller, 16)  # the caller's side sends BYE
    hang = await pbx.event("Hangup", caller.name)
    assert hang["Cause"] == "16"
    agent_hang = await pbx.event("Hangup", agent)
    assert agent_hang["Cause"] == "16"
    assert names(pbx.events(agent, "BridgeLeave", "Newexten", "Hangup"))[-3:] == ["BridgeLeave", "Newexten", "Hangup"]
    assert pbx.events(agent, "Newexten")[-1]["Application"] == "Hangup"  # cti-agent-ready after the Wait
    await pbx.sim.wait_idle(5)


async def test_caller_hangs_up_while_agent_rings_leaves_the_leg_to_the_cti(pbx: Pbx) -> None:
    caller, session = await pbx.caller_in_ivr()
    resp = await pbx.ami.action("Originate", Channel="PJSIP/1003", Context="cti-agent-ready", Exten="s",
                                Async="true", ChannelId="leg-ringing", Timeout="60000")
    ring = await pbx.event("Newstate", ChannelState="5", Uniqueid="leg-ringing")
    pbx.sim.world.queue_hangup(caller, 16)
    session.close()  # the Hangup of a channel in AGI waits for the FastAGI socket to close (capture 03)
    await pbx.event("Hangup", caller.name)
    assert pbx.sim.snapshot().by_name()[ring["Channel"]].state == "Ringing"  # no relation in the PBX
    await pbx.ami.action("Hangup", Channel=ring["Channel"])
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert done["Reason"] == "1"


async def test_agent_phone_hangs_up_after_talking_and_caller_continues(pbx: Pbx) -> None:
    caller, session, agent = await _bridge_caller_in_agi(pbx, ext="1005")
    await session.line()
    session.close()
    await pbx.ami.action("Setvar", Channel=caller.name, Variable="IVR_DONE", Value="1")
    hang = await pbx.event("Hangup", agent)
    assert hang["Cause"] == "16"
    assert names(pbx.events(agent, "BridgeLeave", "Hangup")) == ["BridgeLeave", "Hangup"]
    await pbx.event("Hangup", caller.name, Priority="8")


async def test_ami_hangup_of_the_bridged_agent_leg(pbx: Pbx) -> None:
    _, session, agent = await _bridge_caller_in_agi(pbx)
    session.close()
    await pbx.event("NewConnectedLine", agent)
    resp = await pbx.ami.action("Hangup", Channel=agent)
    assert (resp["Response"], resp["Message"]) == ("Success", "Channel Hungup")
    hang = await pbx.event("Hangup", agent)
    assert hang["Cause"] == "16"
    # No SoftHangupRequest on the target of AMI Hangup that was in a bridge (capture 05 B).
    assert not pbx.events(agent, "SoftHangupRequest", "HangupRequest")
    await pbx.event("BridgeDestroy")


# ------------------------------------------------------------------------------------------------ 1d hold, transfers


async def _connected_call(pbx: Pbx, ext: str = "1001") -> tuple[Channel, str]:
    caller, session, agent = await _bridge_caller_in_agi(pbx, ext)
    await session.line()
    session.close()
    await pbx.ami.action("Setvar", Channel=caller.name, Variable="IVR_DONE", Value="1")
    await pbx.event("VarSet", agent, Variable="BRIDGEPEER", Value=caller.name)
    return caller, agent


async def test_hold_by_dual_redirect_and_unhold_by_bridge(pbx: Pbx) -> None:
    caller, agent = await _connected_call(pbx)
    resp = await pbx.ami.action("Redirect", Channel=caller.name, Context="cti-hold", Exten="caller", Priority="1",
                                ExtraChannel=agent, ExtraContext="cti-hold", ExtraExten="agent", ExtraPriority="1")
    assert (resp["Response"], resp["Message"]) == ("Success", "Dual Redirect successful")
    moh = await pbx.event("MusicOnHoldStart", caller.name)
    assert (moh["Context"], moh["Exten"], moh["Class"]) == ("cti-hold", "caller", "default")
    wait = await pbx.event("Newexten", agent, Context="cti-hold", Application="Wait")
    assert wait["AppData"] == "3600"
    leave = await pbx.event("BridgeLeave", caller.name)
    assert leave["Context"] == "cti-hold"  # the move happens before the leave (07 E)
    await pbx.event("BridgeDestroy", BridgeUniqueid=leave["BridgeUniqueid"])
    truth = pbx.sim.snapshot().by_name()
    assert truth[caller.name].bridge is None and truth[agent].bridge is None
    assert truth[caller.name].application == "MusicOnHold"

    resp = await pbx.ami.action("Bridge", Channel1=agent, Channel2=caller.name)
    assert resp["Message"] == "Channels have been bridged"
    stop = await pbx.event("MusicOnHoldStop", caller.name)
    enter = await pbx.event("BridgeEnter", caller.name, Context="cti-hold")
    assert pbx.ami.frames.index(stop) < pbx.ami.frames.index(enter)
    assert enter["BridgeUniqueid"] != leave["BridgeUniqueid"]
    # The agent ends the call: the caller leaves cti-hold at the next priority (Hangup()).
    await pbx.ami.action("Hangup", Channel=agent)
    hang = await pbx.event("Hangup", caller.name)
    assert (hang["Context"], hang["Exten"], hang["Cause"]) == ("cti-hold", "caller", "16")


async def test_blind_transfer_action_moves_the_caller_to_another_phone(pbx: Pbx) -> None:
    caller, agent = await _connected_call(pbx)
    resp = await pbx.ami.action("BlindTransfer", Channel=agent, Context="cti-dial", Exten="1006")
    assert (resp["Response"], resp["Message"]) == ("Success", "Transfer succeeded")
    event = await pbx.ami.wait_event(lambda f: f.get("Event") == "BlindTransfer")
    assert (event["Result"], event["TransfererChannel"], event["TransfereeChannel"]) == ("Success", agent, caller.name)
    assert (event["Context"], event["Extension"], event["IsExternal"]) == ("cti-dial", "1006", "No")
    unhold = await pbx.event("Unhold", agent)
    assert pbx.ami.frames.index(unhold) < pbx.ami.frames.index(event)
    assert (await pbx.event("Hangup", agent))["Cause"] == "16"
    begin = await pbx.ami.wait_event(lambda f: f.get("Event") == "DialBegin" and f.get("Channel") == caller.name)
    target = begin["DestChannel"]
    assert target.startswith("PJSIP/1006-") and begin["DialString"] == "1006"
    enter = await pbx.event("BridgeEnter", target)
    assert enter["Linkedid"] == caller.linkedid
    truth = pbx.sim.snapshot().by_name()
    assert truth[caller.name].bridge == truth[target].bridge is not None


async def test_redirect_transfer_and_hangup_of_a_bridged_leg(pbx: Pbx) -> None:
    caller, agent = await _connected_call(pbx)
    resp = await pbx.ami.action("Redirect", Channel=caller.name, Context="cti-dial", Exten="1006", Priority="1")
    assert resp["Message"] == "Redirect successful"
    begin = await pbx.ami.wait_event(lambda f: f.get("Event") == "DialBegin" and f.get("Channel") == caller.name)
    target = begin["DestChannel"]
    await pbx.event("BridgeEnter", target)
    # The old agent leg was left alone: it runs on in cti-agent-ready and ends there.
    assert (await pbx.event("Hangup", agent))["Cause"] == "16"
    hung = await pbx.ami.action("Hangup", Channel=target)
    assert (hung["Response"], hung["Message"]) == ("Success", "Channel Hungup")
    assert (await pbx.event("Hangup", target))["Cause"] == "16"
    assert not pbx.events(target, "SoftHangupRequest")
    await pbx.event("Hangup", caller.name)


async def test_attended_transfer_merges_the_bridges(pbx: Pbx) -> None:
    caller, agent = await _connected_call(pbx)
    resp = await pbx.ami.action("Atxfer", Channel=agent, Exten="1006", Context="cti-dial")
    assert (resp["Response"], resp["Message"]) == ("Success", "Atxfer successfully queued")
    hold = await pbx.event("Hold", agent)
    moh = await pbx.event("MusicOnHoldStart", caller.name)
    assert pbx.ami.frames.index(hold) < pbx.ami.frames.index(moh)
    digits = [f["Digit"] for f in pbx.events(agent, "DTMFEnd")]
    assert digits[:2] == ["*", "2"]
    target_leg = await pbx.ami.wait_event(lambda f: f.get("Event") == "Newchannel"
                                          and f["Channel"].startswith("Local/1006@cti-dial-")
                                          and f["Channel"].endswith(";1"))
    local1 = target_leg["Channel"]
    phone = await pbx.ami.wait_event(lambda f: f.get("Event") == "Newchannel" and f["Channel"].startswith("PJSIP/1006-"))
    await pbx.event("Newstate", local1, ChannelState="6")  # the target answered
    assert pbx.sim.snapshot().by_name()[agent].bridge == pbx.sim.snapshot().by_name()[local1].bridge
    await pbx.ami.action("Hangup", Channel=agent)  # the agent completes the transfer by hanging up
    merge = await pbx.ami.wait_event(lambda f: f.get("Event") == "BridgeMerge")
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "AttendedTransfer")
    assert (done["Result"], done["OrigTransfererChannel"], done["TransfereeChannel"], done["TransferTargetChannel"]) == (
        "Success", agent, caller.name, local1)
    assert done["DestBridgeUniqueid"] == merge["ToBridgeUniqueid"]
    await pbx.event("MusicOnHoldStop", caller.name)
    assert (await pbx.event("Hangup", agent))["Cause"] == "16"
    truth = pbx.sim.snapshot().by_name()
    assert truth[caller.name].bridge == truth[local1].bridge is not None
    assert truth[phone["Channel"]].state == "Up"
    new_agent = pbx.sim.channel(phone["Channel"])
    assert new_agent is not None
    pbx.sim.world.queue_hangup(new_agent, 16)  # the new agent hangs up
    await pbx.event("Hangup", caller.name)
    await pbx.sim.wait_idle(5)


async def test_recording_and_supervisor_spy(pbx: Pbx) -> None:
    caller, agent = await _connected_call(pbx)
    resp = await pbx.ami.action("MixMonitor", Channel=caller.name, File="/tmp/pbxsim-call.wav", Options="b")
    assert resp["Response"] == "Success" and "Message" not in resp
    start = await pbx.event("MixMonitorStart", caller.name)
    assert pbx.events(caller.name, "VarSet")[-2]["Variable"] == "MIXMONITOR_FILENAME"
    resp = await pbx.ami.action("StopMixMonitor", Channel=caller.name)
    assert resp["Response"] == "Success"
    assert pbx.ami.frames.index(start) < pbx.ami.frames.index(await pbx.event("MixMonitorStop", caller.name))

    spy = await pbx.ami.action("Originate", Channel="PJSIP/1009", Application="ChanSpy", Data=f"{agent},qE",
                               CallerID='"Supervisor" <800>', Async="true")
    ok = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse" and f.get("ActionID") == spy["ActionID"])
    assert (ok["Response"], ok["Reason"], ok["Application"], ok["Data"]) == ("Success", "4", "ChanSpy", f"{agent},qE")
    sup = ok["Channel"]
    started = await pbx.ami.wait_event(lambda f: f.get("Event") == "ChanSpyStart")
    assert (started["SpyerChannel"], started["SpyeeChannel"]) == (sup, agent)
    await pbx.ami.action("Hangup", Channel=sup)
    stopped = await pbx.ami.wait_event(lambda f: f.get("Event") == "ChanSpyStop")
    assert stopped["SpyeeChannel"] == agent
    assert (await pbx.event("Hangup", sup))["Cause"] == "0"
    assert pbx.sim.snapshot().by_name()[agent].bridge is not None  # the call itself goes on


async def test_redirect_of_a_caller_inside_the_agi(pbx: Pbx) -> None:
    """A Redirect is an async goto: res_agi reports it like a hangup, and the channel moves once the
    FastAGI server closes the session (the dialplan cannot run while AGI() still holds the channel)."""
    caller, session = await pbx.caller_in_ivr()
    await session.send('STREAM FILE custom/long-prompt ""')
    await pbx.event("AGIExecStart", caller.name, Command='STREAM FILE custom/long-prompt ""')
    resp = await pbx.ami.action("Redirect", Channel=caller.name, Context="cti-hold", Exten="caller", Priority="1")
    assert resp["Message"] == "Redirect successful"
    assert (await session.line()).startswith(b"200 result=-1 endpos=")
    assert await session.run("WAIT FOR DIGIT 1000") == b"HANGUP\n"
    assert await session.line() == DEAD
    assert not pbx.events(caller.name, "MusicOnHoldStart")
    session.close()
    moh = await pbx.event("MusicOnHoldStart", caller.name)
    assert (moh["Context"], moh["Exten"]) == ("cti-hold", "caller")
    status = [f for f in pbx.events(caller.name, "VarSet") if f["Variable"] == "AGISTATUS"]
    assert [f["Value"] for f in status] == ["SUCCESS"]
    await pbx.ami.action("Hangup", Channel=caller.name)
    assert (await pbx.event("Hangup", caller.name))["Cause"] == "0"


# ------------------------------------------------------------------------------------------------ 1e phones, [globals]


async def test_an_auto_answer_phone_is_rung_through_the_pre_dial_handler(pbx: Pbx) -> None:
    resp = await pbx.ami.action("Originate", Channel="Local/1007@cti-agent-dial/n", Context="cti-agent-ready",
                                Exten="s", Priority="1", Async="true", ChannelId="cti-leg-aa", Timeout="20000",
                                CallerID='"John Doe" <5551234>')
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert (done["Response"], done["Reason"], done["Uniqueid"]) == ("Success", "4", "cti-leg-aa")
    leg = done["Channel"]
    assert leg.startswith("Local/1007@cti-agent-dial-") and leg.endswith(";1")  # the option is not in the name
    bridge = await pbx.event("LocalBridge")
    assert (bridge["LocalOneChannel"], bridge["LocalOptimization"]) == (leg, "No")
    phone = (await pbx.ami.wait_event(lambda f: f.get("Event") == "Newchannel"
                                      and f["Channel"].startswith("PJSIP/1007-")))["Channel"]
    # app_dial runs the b() Gosub on the new channel after requesting it and before calling it.
    steps = [(f["Event"], f.get("Context"), f.get("Application")) for f in pbx.events(phone)
             if f["Event"] in ("Newexten", "DialBegin", "VarSet") or f.get("DestChannel") == phone]
    assert steps[:4] == [("Newexten", "cti-autoanswer", "Set"), ("Newexten", "cti-autoanswer", "Set"),
                         ("Newexten", "cti-autoanswer", "Return"), ("VarSet", "default", None)]
    begin = await pbx.ami.wait_event(lambda f: f.get("Event") == "DialBegin" and f.get("DestChannel") == phone)
    assert pbx.ami.frames.index(begin) > pbx.ami.frames.index(pbx.events(phone, "VarSet")[0])
    chan = pbx.sim.channel(phone)
    assert chan is not None and chan.state == 6  # nobody picked it up: the header did
    headers = dict(chan.sip_headers)
    assert headers["Call-Info"] == "<sip:127.0.0.1>;answer-after=0"
    assert headers["Alert-Info"] == "<http://127.0.0.1>;info=alert-autoanswer;delay=0"
    await pbx.event("Newexten", leg, Application="Wait")  # ';1' waits in cti-agent-ready for the bridge


async def test_a_phone_that_refuses_auto_answer_just_rings(pbx: Pbx) -> None:
    resp = await pbx.ami.action("Originate", Channel="Local/1003@cti-agent-dial/n", Context="cti-agent-ready",
                                Exten="s", Async="true", ChannelId="cti-leg-ab", Timeout="2000")
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert (done["Response"], done["Reason"]) == ("Failure", "3")
    phone = next(f["Channel"] for f in pbx.ami.frames
                 if f.get("Event") == "Newchannel" and f["Channel"].startswith("PJSIP/1003-"))
    await pbx.event("Hangup", phone)


async def test_outside_numbers_go_through_the_trunk_template() -> None:
    for trunk, dialled in (("PJSIP/%s@trunk", "PJSIP/13800138000@trunk"),
                           ("IAX2/carrier/%s", "IAX2/carrier/13800138000")):
        sim = Simulator(time_scale=SCALE, globals_override={"CTI_TRUNK": trunk})
        ami = await AmiClient.connect(await sim.start())
        try:
            await ami.action("Originate", Channel="Local/13800138000@cti-outbound/n", Application="Wait",
                             Data="1", Async="true")
            dial = await ami.wait_event(lambda f: f.get("Event") == "Newexten" and f.get("Application") == "Dial")
            assert (dial["Context"], dial["AppData"]) == ("cti-outbound", f"{dialled},60,tT")
        finally:
            ami.close()
            await sim.stop()


async def test_the_fallback_placeholder_takes_a_message_for_the_operator() -> None:
    sim = Simulator(time_scale=SCALE, globals_override={"CTI_FALLBACK_WAIT": "1"})
    ami = await AmiClient.connect(await sim.start())
    try:
        caller = sim.place_call("5551000", "5551234", "John Doe")
        await ami.action("Redirect", Channel=caller.name, Context="cti-fallback", Exten="s", Priority="1")
        dial = await ami.wait_event(lambda f: f.get("Event") == "Newexten" and f.get("Application") == "Dial"
                                    and f.get("Channel") == caller.name)
        assert dial["AppData"] == "Local/s@cti-operator,60"
        vm = await ami.wait_event(lambda f: f.get("Event") == "Newexten" and f.get("Application") == "VoiceMail")
        assert vm["Channel"].startswith("Local/s@cti-operator-") and vm["AppData"] == "1000@default,u"
    finally:
        ami.close()
        await sim.stop()


async def test_a_channel_id_alone_names_the_second_half_of_a_local_pair(pbx: Pbx) -> None:
    """Originate with ChannelId and no OtherChannelId: ';2' is "<ChannelId>;2" and shares ';1''s Linkedid,
    as a real 22.10.1 did for an answer-at-console agent leg (LocalTwoUniqueid: cti-offer-1-1003;2)."""
    resp = await pbx.ami.action("Originate", Channel="Local/1007@cti-agent-dial/n", Context="cti-agent-ready",
                                Exten="s", Priority="1", Async="true", ChannelId="cti-offer-1-1007",
                                Timeout="20000")
    await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse" and f.get("ActionID") == resp["ActionID"])
    bridge = await pbx.event("LocalBridge")
    assert (bridge["LocalOneUniqueid"], bridge["LocalTwoUniqueid"]) == ("cti-offer-1-1007", "cti-offer-1-1007;2")
    assert bridge["LocalTwoLinkedid"] == "cti-offer-1-1007"
    two = bridge["LocalTwoChannel"]
    assert {f["Uniqueid"] for f in pbx.events(two, "Newchannel")} == {"cti-offer-1-1007;2"}


# ------------------------------------------------------------------------------------------------ 1f AGI HANGUP


async def test_the_ivr_hangs_up_a_caller_with_agi_hangup(pbx: Pbx) -> None:
    """A real 22.10.1 refusing a blacklisted caller: HANGUP is a soft hangup with AST_SOFTHANGUP_EXPLICIT
    (SoftHangupRequest Cause 32) answered 200 result=1; the next command gets the HANGUP line (SET VARIABLE
    still 200); when the AGI returns the pbx thread raises its own (Cause 16) and the Hangup has no cause."""
    caller, session = await pbx.caller_in_ivr()
    assert await session.run("HANGUP") == b"200 result=1\n"
    soft = await pbx.event("SoftHangupRequest", caller.name)
    assert soft["Cause"] == "32"
    assert await session.run("SET VARIABLE IVR_DONE 1") == b"HANGUP\n"
    assert await session.line() == b"200 result=1\n"
    session.close()
    end = await pbx.event("Hangup", caller.name)
    assert (end["Cause"], end["Cause-txt"]) == ("0", "Unknown")
    assert [f["Cause"] for f in pbx.events(caller.name, "SoftHangupRequest")] == ["32", "16"]
