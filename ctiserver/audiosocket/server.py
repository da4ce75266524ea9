"""The AudioSocket listener: Asterisk connects here for each speech menu that listens to a stream.

The IVR expects a stream by its UUID before it asks the PBX for it (AMI Originate of Local/s@cti-listen,
whose ;1 runs ``AudioSocket(<uuid>,<this address>)``); the connection carrying that UUID is handed to the
stream, any other is closed with one log line. Everything read goes through the pure MessageReader, so a
malformed message ends that stream with one clear line and never a traceback.

Two quirks of Asterisk 22 (capture 32): its AudioSocket hangs up after 2 s with no message either way, and
ChanSpy reads nothing while the caller's channel is silent, so the listener sends a 20 ms silence frame at
once and then every KEEPALIVE_SECONDS (ChanSpy writes them to a channel nobody hears); and that first frame
also gets ChanSpy going ~0.1 s after the Originate instead of ~0.6 s.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging

from .protocol import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    SILENCE,
    AudioSocketError,
    Message,
    MessageReader,
    encode,
    hangup,
)

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 0.5
UUID_TIMEOUT = 2.0  # Asterisk writes the UUID as soon as it connects
READ_CHUNK = 4096


class AudioStream:
    """One stream the IVR waits for: 8 kHz 16-bit audio as it arrives (``read``), ``connected`` once the
    PBX is on the line. ``close`` ends it at once: a hang-up message makes AudioSocket return and the
    Local channel hang up. It is ivr_flows.speech.AudioFeed."""

    def __init__(self, call_uuid: str, server: AudioSocketServer) -> None:
        self.uuid = call_uuid
        self.connected = asyncio.Event()
        self.digits: list[str] = []
        self._server = server
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.closed = False

    async def read(self) -> bytes | None:
        """The next audio; None once the stream has ended (either side)."""
        if self.closed and self._audio.empty():
            return None
        return await self._audio.get()

    def read_nowait(self) -> bytes | None:
        """Audio that has arrived, joined (b"" when none); None once the stream has ended."""
        out = bytearray()
        while not self._audio.empty():
            item = self._audio.get_nowait()
            if item is None:
                self._audio.put_nowait(None)
                return bytes(out) if out else None
            out += item
        return bytes(out)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._server._forget(self)
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(hangup())
                self._writer.close()
        self._audio.put_nowait(None)

    def _attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        writer.write(encode(KIND_AUDIO, SILENCE))
        self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(writer))
        self.connected.set()

    async def _keep_alive(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while not self.closed:
                await asyncio.sleep(KEEPALIVE_SECONDS)
                writer.write(encode(KIND_AUDIO, SILENCE))

    def _ended(self) -> None:
        if not self.closed:
            self.closed = True
            self._server._forget(self)
            if self._keepalive is not None:
                self._keepalive.cancel()
            self._audio.put_nowait(None)


class AudioSocketServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, advertise: str | None = None) -> None:
        self.host, self.port = host, port
        self._advertise = advertise
        self._server: asyncio.Server | None = None
        self._expected: dict[str, AudioStream] = {}
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """host:port as the PBX dials it (AudioSocket's service argument)."""
        host = self._advertise or ("127.0.0.1" if self.host in ("", "0.0.0.0") else self.host)
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("AudioSocket listener on %s:%s", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for stream in list(self._expected.values()):
            stream.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def expect(self, call_uuid: str) -> AudioStream:
        stream = AudioStream(call_uuid.lower(), self)
        self._expected[stream.uuid] = stream
        return stream

    def _forget(self, stream: AudioStream) -> None:
        if self._expected.get(stream.uuid) is stream:
            del self._expected[stream.uuid]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        stream: AudioStream | None = None
        messages = MessageReader()
        fault: AudioSocketError | None = None  # found after the UUID in the first read: raised once attached
        try:
            try:
                async with asyncio.timeout(UUID_TIMEOUT):
                    first: list[Message] = []
                    while not first:
                        data = await reader.read(READ_CHUNK)
                        if not data:
                            return
                        try:
                            first = messages.feed(data)
                        except AudioSocketError as e:
                            if not e.messages:
                                raise
                            first, fault = e.messages, e
            except TimeoutError:
                log.warning("AudioSocket from %s: no UUID within %.0f s; closed", peer, UUID_TIMEOUT)
                return
            stream = self._expected.get(first[0].uuid)
            if stream is None or stream._writer is not None:
                log.warning("AudioSocket from %s: stream %s is not expected; closed", peer, first[0].uuid)
                with contextlib.suppress(Exception):
                    writer.write(hangup())
                return
            stream._attach(writer)
            pending = first[1:]
            if fault is not None:
                _deliver(stream, pending)
                raise fault
            while not stream.closed:
                if not _deliver(stream, pending):
                    return
                data = await reader.read(READ_CHUNK)
                if not data:
                    return
                try:
                    pending = messages.feed(data)
                except AudioSocketError as e:
                    _deliver(stream, e.messages)  # what came whole before the fault is kept
                    raise
        except AudioSocketError as e:
            log.warning("AudioSocket from %s: %s; stream closed", peer, e)
        except (ConnectionError, OSError) as e:
            log.info("AudioSocket from %s: connection lost (%s)", peer, e)
        finally:
            if stream is not None:
                stream._ended()
            with contextlib.suppress(Exception):
                writer.close()
            self._handlers.discard(task)


def _deliver(stream: AudioStream, messages: list[Message]) -> bool:
    """Hand the messages to the stream; False once the PBX has ended it (hang-up, error)."""
    for m in messages:
        if m.kind == KIND_HANGUP:
            return False
        rate = m.rate
        if rate is not None:
            stream._audio.put_nowait(_to_8k(m.payload, rate))
        elif m.kind == KIND_DTMF:
            stream.digits.append(m.digit)
        else:  # KIND_ERROR
            log.warning("AudioSocket stream %s: the PBX reported an error (%s)", stream.uuid,
                        m.payload.hex() or "no code")
            return False
    return True


def _to_8k(pcm: bytes, rate: int) -> bytes:
    """8 kHz audio from Asterisk's signed-linear rates (app_audiosocket sends 8 kHz; the others are kept
    by taking every n-th sample of a rate that is a multiple of 8 kHz, the rest as it comes)."""
    if rate == 8000 or rate % 8000:
        return pcm
    wide = array.array("h")
    wide.frombytes(pcm)
    return wide[:: rate // 8000].tobytes()
