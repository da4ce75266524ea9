"""The PBX's side of a browser phone's media: a WebRTC peer (aiortc) that plays a known sound to the agent and
records what the agent sends, so tests can tell that audio flowed both ways. It also notes the RFC 4733
telephone-events the browser sends (DTMF), which aiortc itself does not decode.

Its offer is reshaped into the one a real Asterisk 22 sends for an ``agent-webrtc`` endpoint (captured in
tests/captures/22-webrtc-softphone.txt): ``UDP/TLS/RTP/SAVPF 0 101``, PCMU first, telephone-event/8000,
ptime 20, DTLS ``setup:actpass`` with a SHA-256 fingerprint, ICE credentials and host candidates, rtcp-mux.

aiortc is a test dependency (the ``test`` extra): this module imports it only when a call needs media, and the
peers run in the media process (media_peer.py), never in the simulator's or the CTI's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TONE_HZ = 1000.0  # the known sound: a 1 kHz tone, 0.4 s on, 0.1 s off
DTMF_EVENTS = "0123456789*#ABCD"
TELEPHONE_EVENT_PT = 101  # as Asterisk numbers it


def write_tone(path: Path, seconds: float = 2.0, rate: int = 8000) -> Path:
    frames = bytearray()
    for n in range(int(seconds * rate)):
        on = (n % (rate // 2)) < rate * 0.4
        frames += struct.pack("<h", int(12000 * math.sin(2 * math.pi * TONE_HZ * n / rate)) if on else 0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def warm_up() -> None:
    """Import aiortc and make one DTLS certificate (what the first peer would otherwise pay for)."""
    from aiortc.rtcdtlstransport import RTCCertificate

    RTCCertificate.generateCertificate()


def asterisk_shaped_offer(sdp: str) -> str:
    """aiortc's offer with the media line and attributes of Asterisk's (PCMU and telephone-event only)."""
    out: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            port = line.split()[1]
            out.append(f"m=audio {port} UDP/TLS/RTP/SAVPF 0 {TELEPHONE_EVENT_PT}")
            continue
        if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=extmap:", "a=ptime")):
            if line.startswith("a=rtpmap:0 "):
                out.append("a=rtpmap:0 PCMU/8000")
                out.append(f"a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000")
                out.append(f"a=fmtp:{TELEPHONE_EVENT_PT} 0-16")
                out.append("a=ptime:20")
                out.append("a=maxptime:60")
            continue
        if line.startswith("s="):
            line = "s=Asterisk"
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def rms(path: Path) -> float:
    """Root mean square of a 16-bit WAV (0: silence, ~8500: the tone above)."""
    try:
        with wave.open(str(path), "rb") as w:
            data = w.readframes(w.getnframes())
            width, channels = w.getsampwidth(), w.getnchannels()
    except (OSError, wave.Error, EOFError):
        return 0.0
    if width != 2 or not data:
        return 0.0
    samples = struct.unpack(f"<{len(data) // 2}h", data)[::channels]
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


class MediaPeer:
    """One call's media: offer, answer, play, record, DTMF tap. ``close()`` finishes the recording.

    The offer can be made before the call exists (a spare, see media_peer.py): the recording's path and the
    callbacks are given when a call takes the peer, and the recorder opens with the answer."""

    def __init__(self, sound: Path, recording: Path | None = None, *,
                 on_first_rtp: Callable[[float], None] | None = None,
                 on_digit: Callable[[str], None] | None = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.contrib.media import MediaPlayer

        # No ICE servers: aiortc's default is a public STUN server, which a PBX simulator on loopback must never
        # contact (and whose lookup, with no network, held each offer back). Host candidates are what Asterisk
        # offers too (capture 22).
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.player = MediaPlayer(str(sound), loop=True)
        self.recorder: Any = None  # aiortc's MediaRecorder, from the answer on
        self.recording = recording
        self.digits: list[str] = []
        self.rtp_in = 0  # SRTP-decrypted RTP packets from the browser, and their bytes (aiortc's inbound
        self.rtp_bytes_in = 0  # statistics have no byte count)
        self.first_rtp_at: float | None = None  # time.monotonic() of the first one
        self._last_event: tuple[int, int] | None = None  # (timestamp, event) of the last digit noted
        self.on_first_rtp, self.on_digit = on_first_rtp, on_digit
        self._closed = False

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if self.recorder is not None:
                self.recorder.addTrack(track)

    async def offer(self) -> str:
        assert self.player.audio is not None  # a WAV file has an audio track
        self.pc.addTrack(self.player.audio)
        transceiver = self.pc.getTransceivers()[0]
        transceiver.direction = "sendrecv"
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return asterisk_shaped_offer(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription
        from aiortc.contrib.media import MediaBlackhole, MediaRecorder

        # before the remote description: its "track" event hands the browser's audio to the recorder
        self.recorder = MediaRecorder(str(self.recording)) if self.recording is not None else MediaBlackhole()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self.recorder.start()
        self._tap_dtmf()

    def _tap_dtmf(self) -> None:
        # aiortc drops RTP of payload types it did not negotiate: look at each packet before it routes them.
        from aiortc.rtp import RtpPacket

        transport = self.pc.getTransceivers()[0].receiver.transport
        inner = transport._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            if self.first_rtp_at is None:
                self.first_rtp_at = time.monotonic()
                if self.on_first_rtp is not None:
                    self.on_first_rtp(self.first_rtp_at)
            self.rtp_in += 1
            self.rtp_bytes_in += len(data)
            if len(data) >= 16 and (data[1] & 0x7F) == TELEPHONE_EVENT_PT:
                packet = RtpPacket.parse(data)
                event = packet.payload[0] if packet.payload else 255
                key = (packet.timestamp, event)
                if event < len(DTMF_EVENTS) and key != self._last_event:
                    self._last_event = key
                    self.digits.append(DTMF_EVENTS[event])
                    if self.on_digit is not None:
                        self.on_digit(DTMF_EVENTS[event])
                return
            await inner(data, arrival_time_ms)

        transport._handle_rtp_data = handle  # type: ignore[method-assign]

    async def stats(self) -> dict[str, int]:
        """Packets and bytes each way, from aiortc's own statistics."""
        report = await self.pc.getStats()
        out = {"packets_sent": 0, "bytes_sent": 0, "packets_received": 0, "bytes_received": self.rtp_bytes_in}
        for s in report.values():
            if s.type == "outbound-rtp":
                out["packets_sent"] += s.packetsSent
                out["bytes_sent"] += s.bytesSent
            elif s.type == "inbound-rtp":
                out["packets_received"] += s.packetsReceived
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.recorder is not None:
                await asyncio.wait_for(self.recorder.stop(), 5)
        except Exception as e:  # noqa: BLE001 (a recorder that never got a frame has nothing to finish)
            log.debug("recording %s not finished: %s", self.recording, e)
        await self.pc.close()
        if self.player.audio is not None:
            self.player.audio.stop()
