"""The simulator's media side in a process of its own. Asterisk moves RTP in C threads beside its SIP stack;
the simulator's WebRTC peers (aiortc: ICE, DTLS, SRTP, the codec, the recorder) are Python, and run in the
same event loop as the SIP signalling and the CTI they would hold every INVITE and 180 back behind the audio
of the calls already talking. So the SIP endpoint (sip_ws.py) keeps the signalling and asks this process for
each call's media: offer SDP out, answer SDP in, the recording and the digits heard back.

The pipe carries one JSON object a line. Parent to child: ``{"id": n, "op": "offer"|"answer"|"stats"|"close",
"peer": k, ...}`` and ``{"op": "quit"}``. Child to parent: ``{"ready": true}`` once aiortc is loaded, then
``{"id": n, "result": ...}`` or ``{"id": n, "error": "..."}`` for each request, and unasked events
``{"peer": k, "event": "rtp", "at": t}`` (the first packet from the browser: time.monotonic(), one clock for
every process of the machine) and ``{"peer": k, "event": "digit", "digit": "5"}``.

Run as ``python -m pbxsim.media_peer``; MediaProcess starts it. aiortc is imported only in the child.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20  # an SDP is a few kB; anything near this is not ours
START_TIMEOUT_S = 60.0  # aiortc's import and first certificate on a loaded machine
REPLY_TIMEOUT_S = 30.0


class MediaProcessError(RuntimeError):
    """The media process is gone or refused a request."""


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One line of the pipe; {} for JSON that is not an object (nothing to act on). Raises ValueError."""
    obj = json.loads(line)
    return obj if isinstance(obj, dict) else {}


# ---------------------------------------------------------------------------------------------- the parent's side


class RemotePeer:
    """One call's media, living in the media process: what sip_ws.py and the tests read of a call's peer.
    Its requests go one at a time, so a close never overtakes the answer still being applied."""

    def __init__(self, process: MediaProcess, key: int, sound: Path) -> None:
        self.process, self.key, self.sound = process, key, sound
        self.recording: Path | None = None  # where the browser's audio goes, given when a call takes the peer
        self.offer_sdp = ""  # the offer as Asterisk writes it, for the INVITE
        self.local_sdp = ""  # aiortc's own (a re-INVITE's 200 reuses it)
        self.digits: list[str] = []
        self.first_rtp_at: float | None = None  # time.monotonic() of the first RTP packet from the browser
        self.rtp_in = 0  # 1 once the first packet came; stats() has the counts
        self._closed = False
        self._final: dict[str, int] = {}  # the counts at close
        self._turn = asyncio.Lock()

    async def _request(self, op: str, **args: Any) -> Any:
        async with self._turn:
            return await self.process.request(op, self.key, **args)

    async def offer(self) -> None:
        result = await self._request("offer", sound=str(self.sound))
        self.offer_sdp, self.local_sdp = str(result["sdp"]), str(result["local"])

    async def answer(self, sdp: str) -> None:
        if not self._closed:
            await self._request("answer", sdp=sdp, recording=str(self.recording) if self.recording else None)

    async def stats(self) -> dict[str, int]:
        if self._closed:
            async with self._turn:  # the close's own request has the last counts
                return dict(self._final)
        return dict(await self._request("stats"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._final = await self._request("close")
        except MediaProcessError as e:
            log.warning("media of call %s not closed cleanly: %s", self.key, e)
        self.process.forget(self.key)

    def event(self, msg: dict[str, Any]) -> None:
        if msg.get("event") == "rtp":
            self.first_rtp_at = float(msg["at"])
            self.rtp_in = max(self.rtp_in, 1)
        elif msg.get("event") == "digit":
            self.digits.append(str(msg["digit"]))


class MediaProcess:
    """The child process and the pipe to it. ``nice`` lowers its CPU priority below the signalling's.

    ``spares`` peers have their offer made before any call needs one: Asterisk writes its SDP offer in
    microseconds, aiortc takes tens of milliseconds (a certificate, ICE gathering) and a round trip to a
    process that is busy with the audio of the calls already talking; the ring is the CTI's and the browser's
    to measure, not aiortc's."""

    def __init__(self, *, nice: int = 0, spares: int = 4) -> None:
        self.nice, self.spares = nice, spares
        self._spare: list[RemotePeer] = []
        self._filling: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._peers: dict[int, RemotePeer] = {}
        self._next_peer = 0
        self._next_request = 0
        self._ready: asyncio.Future[None] | None = None
        self._gone = ""

    @property
    def gone(self) -> bool:
        """The process has exited (or was stopped): every request fails at once."""
        return bool(self._gone)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbxsim.media_peer", str(self.nice), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=MAX_LINE, cwd=str(Path(__file__).resolve().parents[1]))
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name="media process reader")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except (TimeoutError, MediaProcessError):
            await self.stop()
            raise MediaProcessError(f"the media process did not start: {self._gone or 'no answer'}") from None

    async def prepare(self, sound: Path) -> None:
        """Have the spare peers, playing ``sound``, ready before the first call."""
        await self._fill(sound)

    async def peer_for_call(self, sound: Path, recording: Path) -> RemotePeer:
        """A peer with its offer made, for a call that records the browser's audio to ``recording``."""
        if self._gone:
            raise MediaProcessError(self._gone)
        spare = next((p for p in self._spare if p.sound == sound), None)
        if spare is not None:
            self._spare.remove(spare)
            peer = spare
        else:
            peer = self._new_peer(sound)
            await peer.offer()
        peer.recording = recording
        if self.spares and (self._filling is None or self._filling.done()) and not self._gone:
            self._filling = asyncio.create_task(self._fill(sound), name="media spares")
        return peer

    def _new_peer(self, sound: Path) -> RemotePeer:
        self._next_peer += 1
        peer = RemotePeer(self, self._next_peer, sound)
        self._peers[peer.key] = peer
        return peer

    async def _fill(self, sound: Path) -> None:
        try:
            while len(self._spare) < self.spares and not self._gone:
                peer = self._new_peer(sound)
                await peer.offer()
                self._spare.append(peer)
        except MediaProcessError as e:
            log.warning("media process: no spare peer made: %s", e)

    def forget(self, key: int) -> None:
        self._peers.pop(key, None)

    async def request(self, op: str, key: int, **args: Any) -> Any:
        if self._proc is None or self._proc.stdin is None or self._gone:
            raise MediaProcessError(self._gone or "the media process is not running")
        self._next_request += 1
        rid = self._next_request
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._proc.stdin.write(encode({"id": rid, "op": op, "peer": key, **args}))
        try:
            await self._proc.stdin.drain()
            return await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
        except TimeoutError:
            raise MediaProcessError(f"no answer to {op} in {REPLY_TIMEOUT_S:.0f} s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise MediaProcessError(self._gone or "the media process closed its pipe") from None
        finally:
            self._pending.pop(rid, None)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    msg = decode(line)
                except ValueError as e:
                    log.warning("media process: dropped a line that is not JSON (%s)", e)
                    continue
                self._dispatch(msg)
        except (ValueError, asyncio.LimitOverrunError) as e:
            log.warning("media process: output not understood (%s); giving up on it", e)
        self._gone = self._gone or "the media process exited"
        error = MediaProcessError(self._gone)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("ready"):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            return
        if "event" in msg:
            peer = self._peers.get(msg.get("peer", -1))
            if peer is not None:
                peer.event(msg)
            return
        fut = self._pending.get(msg.get("id", -1))
        if fut is None or fut.done():
            return
        if "error" in msg:
            fut.set_exception(MediaProcessError(str(msg["error"])))
        else:
            fut.set_result(msg.get("result"))

    async def stop(self) -> None:
        if self._filling is not None:
            self._filling.cancel()
            await asyncio.gather(self._filling, return_exceptions=True)
        self._spare.clear()
        for peer in list(self._peers.values()):
            if not self._gone:
                await peer.close()
        self._peers.clear()
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(encode({"op": "quit"}))
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                log.warning("media process %s did not quit; killing it", proc.pid)
                proc.kill()
                await proc.wait()
        self._gone = self._gone or "stopped"
        if self._reader is not None:
            await self._reader
            self._reader = None


# ----------------------------------------------------------------------------------------------- the child's side


async def serve(reader: asyncio.StreamReader, write: Callable[[dict[str, Any]], None]) -> None:
    from pbxsim import webrtc_peer

    await asyncio.get_running_loop().run_in_executor(None, webrtc_peer.warm_up)
    write({"ready": True})
    peers: dict[int, webrtc_peer.MediaPeer] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def handle(msg: dict[str, Any]) -> None:
        rid, op, key = msg.get("id"), msg.get("op"), int(msg.get("peer", 0))
        try:
            if op == "offer":
                peer = webrtc_peer.MediaPeer(
                    Path(msg["sound"]), on_first_rtp=lambda at: write({"peer": key, "event": "rtp", "at": at}),
                    on_digit=lambda d: write({"peer": key, "event": "digit", "digit": d}))
                peers[key] = peer
                sdp = await peer.offer()
                result: Any = {"sdp": sdp, "local": peer.pc.localDescription.sdp}
            elif op == "answer":
                peer = peers[key]
                peer.recording = Path(msg["recording"]) if msg.get("recording") else None
                await peer.answer(str(msg["sdp"]))
                result = None
            elif op == "stats":
                result = await peers[key].stats()
            elif op == "close":
                peer = peers.pop(key)
                result = await peer.stats()
                await peer.close()
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # noqa: BLE001 (every failure goes back to the asker as one line)
            write({"id": rid, "error": f"{op}: {type(e).__name__}: {e}"})
            return
        write({"id": rid, "result": result})

    while line := await reader.readline():
        try:
            msg = decode(line)
        except ValueError:
            continue
        if msg.get("op") == "quit":
            break
        if "id" not in msg:
            continue
        task = asyncio.create_task(handle(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for peer in peers.values():
        await peer.close()


async def _child() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def write(obj: dict[str, Any]) -> None:
        out.write(encode(obj))
        out.flush()

    await serve(reader, write)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="media peer: %(message)s")
    if len(sys.argv) > 1 and int(sys.argv[1]):
        os.nice(int(sys.argv[1]))  # below the signalling's priority: see MediaProcess
    asyncio.run(_child())


if __name__ == "__main__":
    main()
