"""The simulator on the product dialplan (asterisk-config/extensions.conf): trunk callers, agent phones,
FastAGI, dropping and restarting the AMI link with calls in progress, hostile caller names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ctiserver.ami.protocol import encode_action
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator
from tests.pbxsim.raw_ami import AmiClient

SCALE = 0.02


async def _agi_server(script: list[bytes], sessions: list[str]) -> asyncio.Server:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await reader.readuntil(b"\n\n")
        sessions.append(env.decode())
        for cmd in script:
            writer.write(cmd)
            line = await reader.readline()
            if line == b"HANGUP\n":
                line = await reader.readline()
            sessions.append(line.decode())
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


@pytest.fixture
async def agi_sessions() -> AsyncIterator[tuple[int, list[str]]]:
    sessions: list[str] = []
    script = [b"ANSWER\n", b'GET DATA demo/main-menu 3000 4\n', b"SET VARIABLE IVR_DONE 1\n"]
    server = await _agi_server(script, sessions)
    yield server.sockets[0].getsockname()[1], sessions
    server.close()


async def test_trunk_caller_walks_the_ivr_by_dtmf(agi_sessions: tuple[int, list[str]]) -> None:
    port, sessions = agi_sessions
    sim = Simulator(time_scale=SCALE, agi_port=port)
    ami_port = await sim.start()
    ami = await AmiClient.connect(ami_port)
    try:
        chan = sim.place_call("5551000", "5551234", "John Doe", CallerBehaviour(keys=("1234",)))
        assert chan.name.startswith("PJSIP/pstn-")
        hang = await ami.wait_event(lambda f: f.get("Event") == "Hangup" and f.get("Channel") == chan.name)
        assert hang["Cause"] == "16"
        digits = [f["Digit"] for f in ami.frames if f.get("Event") == "DTMFEnd"]
        assert digits == list("1234")
        assert all(f["Direction"] == "Received" for f in ami.frames if f.get("Event") == "DTMFEnd")
        assert "agi_extension: 5551000" in sessions[0] and "agi_callerid: 5551234" in sessions[0]
        assert sessions[2] == "200 result=1234\n"
        # IVR_DONE=1 so the call ends at the 'done' label, not in cti-fallback
        assert not any(f.get("Context") == "cti-fallback" for f in ami.frames)
    finally:
        ami.close()
        await sim.stop()


async def test_cti_down_sends_the_call_to_fallback() -> None:
    sim = Simulator(time_scale=SCALE, agi_port=1)  # nothing listens on port 1
    ami_port = await sim.start()
    ami = await AmiClient.connect(ami_port)
    try:
        sim.place_call("5551000", "5550001", "A")
        status = await ami.wait_event(lambda f: f.get("Variable") == "AGISTATUS")
        assert status["Value"] == "FAILURE"
        moh = await ami.wait_event(lambda f: f.get("Event") == "MusicOnHoldStart")
        assert moh["Context"] == "cti-fallback"
        assert not any(f.get("Event") == "AGIExecStart" for f in ami.frames)
    finally:
        ami.close()
        await sim.stop()


async def test_agent_leg_originate_and_bridge_keep_linkedid() -> None:
    sim = Simulator(time_scale=SCALE, agi_port=1)
    sim.add_agent_phone("1001", answer_after=0.5)
    sim.add_agent_phone("1002", busy=True)
    sim.add_agent_phone("1003", answer_after=None)
    ami_port = await sim.start()
    ami = await AmiClient.connect(ami_port)
    try:
        caller = sim.place_call("5551000", "5550002", "B")
        await ami.wait_event(lambda f: f.get("Event") == "MusicOnHoldStart")
        resp = await ami.action("Originate", Channel="PJSIP/1001", Context="cti-agent-ready", Exten="s",
                                Priority="1", Async="true", Timeout="5000", ChannelId="cti-leg-1",
                                CallerID='"B" <5550002>')
        assert resp["Message"] == "Originate successfully queued"
        ok = await ami.wait_event(lambda f: f.get("Event") == "OriginateResponse")
        assert ok["Response"] == "Success" and ok["Reason"] == "4" and ok["Uniqueid"] == "cti-leg-1"
        agent = sim.channel("cti-leg-1")
        assert agent is not None and agent.name.startswith("PJSIP/1001-")
        bridged = await ami.action("Bridge", Channel1=caller.name, Channel2=agent.name)
        assert bridged["Message"] == "Channels have been bridged"
        enters = [f for f in ami.frames if f.get("Event") == "BridgeEnter"]
        await ami.wait_event(lambda f: f.get("Event") == "BridgeEnter" and f.get("Channel") == agent.name)
        enter = next(f for f in ami.frames if f.get("Event") == "BridgeEnter" and f.get("Channel") == agent.name)
        assert enter["Linkedid"] == caller.uniqueid or enters
        truth = sim.snapshot().by_name()
        assert truth[caller.name].bridge == truth[agent.name].bridge is not None

        await ami.action("Originate", Channel="PJSIP/1002", Context="cti-agent-ready", Exten="s", Async="true",
                         ActionID="x")
        # A busy PJSIP phone (486) fails the Originate with Reason 0, its Hangup cause 17 (captures 26-28).
        busy = await ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("Channel") == "PJSIP/1002")
        assert (busy["Response"], busy["Reason"], busy["Channel"], busy["Uniqueid"]) == \
            ("Failure", "0", "PJSIP/1002", "<unknown>")
        await ami.action("Originate", Channel="PJSIP/1003", Context="cti-agent-ready", Exten="s", Async="true",
                         Timeout="500")
        noans = await ami.wait_event(lambda f: f.get("Event") == "OriginateResponse" and f.get("Reason") == "3")
        assert noans["Response"] == "Failure"
        sync = await ami.action("Originate", Channel="PJSIP/9999", Context="cti-agent-ready", Exten="s")
        assert sync["Response"] == "Error" and sync["Message"] == "Originate failed"
    finally:
        ami.close()
        await sim.stop()


async def test_drop_and_restart_ami_keep_calls() -> None:
    sim = Simulator(time_scale=SCALE, agi_port=1)
    ami_port = await sim.start()
    ami = await AmiClient.connect(ami_port)
    try:
        caller = sim.place_call("5551000", "5550003", "C")
        await ami.wait_event(lambda f: f.get("Event") == "MusicOnHoldStart")
        assert sim.drop_ami_clients() == 1
        with pytest.raises(ConnectionError):
            for _ in range(10):
                await ami._read()
        ami2 = await AmiClient.connect(ami_port)
        items = await ami2.list_action("CoreShowChannels", "CoreShowChannelsComplete")
        assert [f["Channel"] for f in items] == [caller.name]
        ami2.close()
        await sim.stop_ami()
        assert sim.snapshot().by_name()[caller.name].context == "cti-fallback"
        sim.ami.port = ami_port
        assert await sim.start() == ami_port
        ami3 = await AmiClient.connect(ami_port)
        items = await ami3.list_action("Status", "StatusComplete")
        assert [f["Channel"] for f in items] == [caller.name]
        redirected = await ami3.action("Redirect", Channel=caller.name, Context="cti-hold", Exten="caller",
                                       Priority="1")
        assert redirected["Message"] == "Redirect successful"
        moh = await ami3.wait_event(lambda f: f.get("Event") == "MusicOnHoldStart" and f.get("Context") == "cti-hold")
        assert moh["Channel"] == caller.name
        hung = await ami3.action("Hangup", Channel=caller.name, Cause="16")
        assert hung["Message"] == "Channel Hungup"
        await ami3.wait_event(lambda f: f.get("Event") == "Hangup" and f.get("Channel") == caller.name)
        ami3.close()
    finally:
        await sim.stop()


async def test_hostile_caller_name_still_gives_valid_frames() -> None:
    sim = Simulator(time_scale=SCALE, agi_port=1)
    ami_port = await sim.start()
    ami = await AmiClient.connect(ami_port)
    try:
        caller = sim.place_call("5551000", "555\r\n0004", "Eve\r\nEvent: Hangup\r\n\x01x")
        await ami.wait_event(lambda f: f.get("Event") == "MusicOnHoldStart")
        frames = [f for f in ami.frames if f.get("Channel") == caller.name]
        assert frames and all(not f.malformed for f in frames)
        assert {f["CallerIDName"] for f in frames if "CallerIDName" in f} == {"Eve Event: Hangup x"}
        assert not any(f.get("Event") == "Hangup" for f in ami.frames)
        assert b"\r\nEvent: Hangup\r\n" not in ami.raw
    finally:
        ami.close()
        await sim.stop()


async def test_unknown_action_and_permission_denied() -> None:
    sim = Simulator(time_scale=SCALE)
    port = await sim.start()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await r.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        w.write(encode_action("Ping", "p1"))
        assert b"Message: Permission denied\r\n" in await r.readuntil(b"\r\n\r\n")
        w.close()
        ami = await AmiClient.connect(port)
        resp = await ami.action("Frobnicate")
        assert resp["Message"] == ("Invalid/unknown command: Frobnicate. Use Action: ListCommands to show "
                                   "available commands.")
        pong = await ami.action("Ping")
        assert pong["Ping"] == "Pong" and "Timestamp" in pong
        ami.close()
    finally:
        await sim.stop()


async def test_random_load_places_calls_and_they_all_end() -> None:
    from pbxsim.scenarios import LoadProfile, run_for

    sim = Simulator(time_scale=SCALE, agi_port=1, globals_override={"CTI_FALLBACK_WAIT": "1"})
    await sim.start()
    try:
        n = await run_for(sim, LoadProfile(calls_per_s=5.0, duration=4.0, seed=7,
                                           behaviours=(CallerBehaviour(patience=2.0),)))
        assert n > 5
        await sim.wait_idle(5.0)
        assert sim.snapshot().channels == ()
    finally:
        await sim.stop()
