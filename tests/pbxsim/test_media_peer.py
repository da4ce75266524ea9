"""The simulator's media side in its own process (pbxsim/media_peer.py): a call's WebRTC peer lives there, the
SIP endpoint gets its offer over the pipe and hands it the browser's answer; audio both ways, the first packet's
time, the counts and the recording come back (the digits too: tests/browser/test_browser_softphone.py). A media side that refuses the browser's answer or has died never holds up or breaks the
signalling: the channel is up with the 200, and a call that cannot have media fails with one line."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbxsim import sip, webrtc_peer
from pbxsim.media_peer import MediaProcess, MediaProcessError, decode
from pbxsim.simulator import Simulator
from pbxsim.sip_ws import SipWsServer
from pbxsim.world import OriginateRequest
from tests.pbxsim.ws_phone import WsPhone
from tests.waiting import until

PASSWORDS = {"1002": "pw-1002"}


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[tuple[Simulator, SipWsServer]]:
    sim = Simulator(time_scale=0.05)
    await sim.start()
    server = SipWsServer(sim.world, PASSWORDS.get, media_dir=tmp_path)
    await server.start()
    try:
        yield sim, server
    finally:
        await server.stop()
        await sim.stop()


async def registered_phone(server: SipWsServer) -> WsPhone:
    p = WsPhone(server.url, "1002", PASSWORDS["1002"], "127.0.0.1")
    await p.open()
    assert (await p.register()).status == 200
    return p


def ring(sim: Simulator) -> asyncio.Task[object]:
    req = OriginateRequest(channel="PJSIP/1002", application="Wait", data="30", timeout_ms=20000)
    return asyncio.create_task(sim.world.originate(req))


async def test_a_call_with_audio_both_ways_through_the_media_process(
        pbx: tuple[Simulator, SipWsServer], tmp_path: Path) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer, MediaRecorder

    sim, server = pbx
    assert server.media_process is not None and server.media_process.pid not in (None, os.getpid())
    p = await registered_phone(server)
    originate = ring(sim)
    invite = await p.next_request("INVITE")
    offer = invite.body.decode()
    assert "m=audio " in offer and " UDP/TLS/RTP/SAVPF 0 101" in offer and "a=fingerprint:sha-256 " in offer
    # the browser: a WebRTC peer of its own that answers the PBX's offer, plays a tone and records the PBX's
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    heard = MediaRecorder(str(tmp_path / "heard-by-browser.wav"))
    browser.on("track", heard.addTrack)
    player = MediaPlayer(str(webrtc_peer.write_tone(tmp_path / "agent.wav")), loop=True)
    assert player.audio is not None
    await browser.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    browser.getTransceivers()[0].sender.replaceTrack(player.audio)
    browser.getTransceivers()[0].direction = "sendrecv"
    await browser.setLocalDescription(await browser.createAnswer())
    await heard.start()
    await p.send(sip.response_to(invite, 200, "OK", to_tag="b1", extra=[
        ("Contact", p.contact), ("Content-Type", "application/sdp")], body=browser.localDescription.sdp.encode()))
    await p.next_request("ACK")
    assert (await asyncio.wait_for(originate, 10)).ok  # type: ignore[attr-defined]
    call = server.calls[-1]
    assert call.answered and call.peer is not None
    await until(lambda: call.peer is not None and call.peer.first_rtp_at is not None, "the browser's first RTP")
    assert call.answered_at is not None and call.peer.first_rtp_at >= call.answered_at  # one clock, two processes
    stats = await call.peer.stats()
    assert stats["packets_received"] > 0 and stats["packets_sent"] > 0, stats
    await asyncio.sleep(1.0)
    await call.peer.close()
    await heard.stop()
    await browser.close()
    player.audio.stop()
    assert webrtc_peer.rms(call.recording) > 50, "the browser's tone was not recorded"  # type: ignore[arg-type]
    assert webrtc_peer.rms(tmp_path / "heard-by-browser.wav") > 50, "the PBX side's tone did not arrive"
    final = await call.peer.stats()  # after the close: the last counts, kept
    assert final["packets_received"] >= stats["packets_received"]
    await p.close()


async def test_an_answer_the_media_side_refuses_still_brings_the_channel_up(
        pbx: tuple[Simulator, SipWsServer], caplog: pytest.LogCaptureFixture) -> None:
    sim, server = pbx
    p = await registered_phone(server)
    originate = ring(sim)
    invite = await p.next_request("INVITE")
    await p.send(sip.response_to(invite, 200, "OK", to_tag="b1", extra=[
        ("Contact", p.contact), ("Content-Type", "application/sdp")], body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"))
    await p.next_request("ACK")
    assert (await asyncio.wait_for(originate, 10)).ok  # type: ignore[attr-defined]
    call = server.calls[-1]
    assert call.answered
    chan = next(c for c in sim.world.channels.values() if c.name.startswith("PJSIP/1002-"))
    assert chan.state == 6
    await until(lambda: any("answer SDP not taken" in r.getMessage() for r in caplog.records), "the warning")
    lines = [r for r in caplog.records if "answer SDP not taken" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()
    await p.close()


async def test_a_dead_media_process_fails_the_call_with_one_line_and_registration_goes_on(
        pbx: tuple[Simulator, SipWsServer], caplog: pytest.LogCaptureFixture) -> None:
    sim, server = pbx
    assert server.media_process is not None and server.media_process.pid is not None
    os.kill(server.media_process.pid, 9)
    p = await registered_phone(server)
    await until(lambda: server.media_process is not None and server.media_process.gone, "the media process gone")
    result = await asyncio.wait_for(ring(sim), 10)
    assert not result.ok  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("no media for the call to 1002" in w for w in warnings), warnings
    assert all("Traceback" not in w for w in warnings)
    assert server.registered("1002")
    await p.close()


async def test_a_request_the_media_process_does_not_know_is_refused_in_one_line(tmp_path: Path) -> None:
    process = MediaProcess()
    await process.start()
    try:
        with pytest.raises(MediaProcessError, match="unknown op 'ring'"):
            await process.request("ring", 1)
        with pytest.raises(MediaProcessError, match="answer: KeyError"):
            await process.request("answer", 99, sdp="")  # no such call: refused, the process goes on
        await process.prepare(webrtc_peer.write_tone(tmp_path / "tone.wav"))
    finally:
        await process.stop()
    with pytest.raises(MediaProcessError):
        await process.request("stats", 1)


def test_pipe_lines() -> None:
    assert decode(b'{"id": 1, "result": null}\n') == {"id": 1, "result": None}
    assert decode(b"[1, 2]\n") == {}
    with pytest.raises(ValueError):
        decode(b"not json\n")
