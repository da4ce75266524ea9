"""The AudioSocket listener over real sockets on loopback, with a client that speaks as Asterisk does (capture
32): an expected stream gets its audio, the server's first silence frame and keepalives, and a hang-up message
when the server ends it; anything else is closed with one log line, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from collections.abc import AsyncIterator

import pytest

from ctiserver.audiosocket.server import AudioSocketServer

CALL = str(uuid.uuid4())


def message(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


@pytest.fixture
async def listener() -> AsyncIterator[AudioSocketServer]:
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    yield server
    await server.close()


async def connect(server: AudioSocketServer, call: str = CALL) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(message(0x01, uuid.UUID(call).bytes))
    return reader, writer


async def test_the_expected_stream_gets_the_callers_audio_and_ends_with_a_hang_up(
        listener: AudioSocketServer) -> None:
    assert listener.address == f"127.0.0.1:{listener.port}"
    stream = listener.expect(CALL)
    reader, writer = await connect(listener)
    await asyncio.wait_for(stream.connected.wait(), 2)
    # at once a silence frame back: it gets ChanSpy going in 0.1 s instead of 0.6 s (capture 32 G)
    assert await asyncio.wait_for(reader.readexactly(323), 2) == message(0x10, bytes(320))
    voice = bytes(range(256)) + bytes(64)
    writer.write(message(0x10, voice) + message(0x10, voice))
    got = b""
    while len(got) < 640:
        chunk = await asyncio.wait_for(stream.read(), 2)
        assert chunk is not None
        got += chunk
    assert got == voice * 2
    # a keepalive within 0.5 s: Asterisk hangs up after 2 s without a message either way (32 F, F2)
    assert await asyncio.wait_for(reader.readexactly(323), 2) == message(0x10, bytes(320))
    stream.close()
    rest = await asyncio.wait_for(reader.read(), 2)
    assert rest.endswith(b"\x00\x00\x00")  # the hang-up message, then the socket closes
    assert stream.read_nowait() is None and await stream.read() is None
    writer.close()


async def test_the_pbx_ending_the_stream_ends_the_reading(listener: AudioSocketServer) -> None:
    stream = listener.expect(CALL)
    _, writer = await connect(listener)
    await asyncio.wait_for(stream.connected.wait(), 2)
    writer.write(message(0x10, bytes(320)))
    writer.close()
    assert await asyncio.wait_for(stream.read(), 2) == bytes(320)
    assert await asyncio.wait_for(stream.read(), 2) is None


async def test_a_stream_nobody_expects_is_closed_with_one_line(listener: AudioSocketServer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ctiserver.audiosocket")
    reader, writer = await connect(listener, str(uuid.uuid4()))
    assert await asyncio.wait_for(reader.read(), 2) == b"\x00\x00\x00"
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "is not expected" in lines[0].getMessage() and lines[0].exc_info is None
    writer.close()


@pytest.mark.parametrize(("bad", "why"), [
    (message(0x10, bytes(3)), "not whole 16-bit samples"),
    (message(0x42, b"x"), "unknown message kind 0x42"),
    (b"\x10\xff\xff", "over the limit"),
])
async def test_a_malformed_message_ends_the_stream_with_one_line(listener: AudioSocketServer, bad: bytes, why: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ctiserver.audiosocket")
    stream = listener.expect(CALL)
    _, writer = await connect(listener)
    await asyncio.wait_for(stream.connected.wait(), 2)
    writer.write(message(0x10, bytes(320)) + bad)
    assert await asyncio.wait_for(stream.read(), 2) == bytes(320)  # what came before is kept
    assert await asyncio.wait_for(stream.read(), 2) is None
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and why in lines[0].getMessage() and lines[0].exc_info is None
    writer.close()
