"""AudioSocket as app_audiosocket does it (Asterisk 22.10.1, capture 32), for the speech menus' ear.

The Originate's ;1 runs ``AudioSocket(<uuid>,<host:port>)``: it connects (res_audiosocket gives up after
2 s, "Failed to connect": the app returns -1 and ;1 hangs up), writes the UUID message, then every 20 ms
the audio its partner ;2 reads from ChanSpy: the spied channel's incoming audio only (option o), 320 bytes
of slin per message (kind 0x10, length 0x0140). What the server sends back is written to ;1 and read by
ChanSpy on ;2, which drops it; the first such frame gets ChanSpy going (apps.chanspy). A hang-up message
or the socket closing ends the app normally (return 0: ;1 hangs up, cause 0); two seconds without a
message either way end it with "Reached timeout" (-1). The caller's audio is a phone's: continuous, the
utterance where the caller says it and silence elsewhere, until the caller hangs up; ChanSpy (E) leaves only
when the caller's channel is gone, which for a FastAGI channel is once the server closes the session
(capture 32 D, as 03).

The wire is written here on its own (not with the server's encoder) so the tests hold the server's
reader to what this side sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid

from pbxsim.channels import Channel
from pbxsim.world import World

FRAME = 0.02
SAMPLES = 160  # 20 ms at 8 kHz
INACTIVITY = 2.0  # app_audiosocket MAX_WAIT_TIMEOUT_MSEC
CONNECT_TIMEOUT = 2.0  # res_audiosocket MAX_CONNECT_TIMEOUT_MSEC


def _message(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


async def run(world: World, chan: Channel, call_uuid: str, service: str) -> bool:
    """Returns True for a normal end (the server hung up or closed), False for an error (-1)."""
    try:
        uu = uuid.UUID(call_uuid)
    except ValueError:
        return False  # "Failed to parse UUID"
    if chan.state != 6:
        return False  # "Channel is not answered"
    host, _, port = service.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)),
                                                CONNECT_TIMEOUT)
    except (OSError, ValueError, TimeoutError):
        return False  # "Failed to connect to AudioSocket service"
    writer.write(_message(0x01, uu.bytes))
    inbound = asyncio.create_task(_read_server(reader, chan))
    last = world.vnow()
    sent = 0  # 8 kHz samples sent since ChanSpy attached (an integer clock: no drift between frames)
    started: float | None = None
    try:
        while not chan.hungup and not chan.dead and not inbound.done():
            spy = chan.partner
            spyee = spy.spying if spy is not None else None
            now = world.vnow()
            if spyee is not None and not spyee.hungup:  # a hung-up channel reads nothing (capture 32 D)
                if started is None:
                    started = now
                due = int((now - started) * 8000) // SAMPLES - sent // SAMPLES
                for _ in range(max(0, due)):
                    writer.write(_message(0x10, world.voice(spyee, started, sent, SAMPLES)))
                    sent += SAMPLES
                    last = now
            if chan.frames_in:
                last = max(last, chan.last_frame_in)
            if now - last >= INACTIVITY:
                return False  # "Reached timeout after 2000 ms of no activity"
            await writer.drain()
            await world.sleep(FRAME)
        return inbound.done() and inbound.result()
    except (ConnectionError, OSError):
        return False
    finally:
        inbound.cancel()
        with contextlib.suppress(BaseException):
            await inbound
        writer.close()


async def _read_server(reader: asyncio.StreamReader, chan: Channel) -> bool:
    """What the server sends: audio goes to ;1 (ChanSpy on ;2 reads it and drops it). True once it hangs
    up or closes; False for a message res_audiosocket refuses ("other than hangup or audio")."""
    while True:
        try:
            header = await reader.readexactly(3)
        except (asyncio.IncompleteReadError, ConnectionError):
            return True
        kind, length = header[0], struct.unpack(">H", header[1:])[0]
        if kind == 0x00:
            return True
        if not 0x10 <= kind <= 0x18 or length < 1:
            return False
        try:
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return True
        chan.frames_in += 1
        chan.last_frame_in = chan.clock.vnow()
        if chan.partner is not None:
            chan.partner.frames_in += 1
            chan.partner.wake()
