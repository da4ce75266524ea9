"""The AudioSocket wire core on bytes only: the shapes of capture 32 (the UUID message, 20 ms slin frames with
header 10 01 40, the hang-up message 00 00 00) and malformed input, which gives one clear error and no
traceback-shaped surprise (no IndexError, no struct.error)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctiserver.audiosocket.protocol import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    KIND_UUID,
    AudioSocketError,
    MessageReader,
    encode,
    hangup,
    uuid_message,
)
from pbxsim.captures import capture

CALL = "5bbf2683-d849-1bab-78fa-4802f51173aa"


def as_records(stream: str) -> list[bytes]:
    return [r.payload for r in capture("32-speech-stream-audiosocket") if r.stream == stream]


def test_the_stream_as_asterisk_opens_it_in_capture_32() -> None:
    first = as_records("AS1")
    opening, headers = first[0], first[1:4]
    assert opening[:3] == b"\x01\x00\x10" and len(opening) == 19  # kind 1, 16 bytes: the UUID
    assert headers == [b"\x10\x01\x40"] * 3  # slin, 320 bytes: 20 ms at 8 kHz
    reader = MessageReader()
    got = reader.feed(opening + b"".join(h + bytes(320) for h in headers) + hangup())
    assert [m.kind for m in got] == [KIND_UUID, KIND_AUDIO, KIND_AUDIO, KIND_AUDIO, KIND_HANGUP]
    assert got[0].uuid == str(uuid.UUID(bytes=opening[3:]))
    assert got[1].rate == 8000 and len(got[1].payload) == 320
    assert reader.closed


def test_messages_split_anywhere_come_out_whole() -> None:
    wire = uuid_message(CALL) + encode(KIND_AUDIO, bytes(range(200)) * 2)[:403] + encode(KIND_DTMF, b"5")
    reader = MessageReader()
    got = [m for i in range(len(wire)) for m in reader.feed(wire[i : i + 1])]
    assert [m.kind for m in got] == [KIND_UUID, KIND_AUDIO, KIND_DTMF]
    assert got[0].uuid == CALL and got[2].digit == "5"


def test_the_hang_up_the_server_sends_is_three_bytes() -> None:
    assert hangup() == b"\x00\x00\x00"  # as the capture's CTI sent it (AS1 >>>)
    assert as_records("AS1")[-1] == hangup()


@pytest.mark.parametrize(("wire", "why"), [
    (encode(KIND_AUDIO, bytes(320)), "must open with its UUID"),
    (encode(KIND_UUID, bytes(15)), "UUID message carries 16 bytes"),
    (uuid_message(CALL) + uuid_message(CALL), "a second UUID"),
    (uuid_message(CALL) + encode(KIND_AUDIO, bytes(3)), "not whole 16-bit samples"),
    (uuid_message(CALL) + b"\x10\x00\x00", "not whole 16-bit samples"),
    (uuid_message(CALL) + encode(KIND_DTMF, b"12"), "DTMF message carries 1 byte"),
    (uuid_message(CALL) + encode(0x42, b"x"), "unknown message kind 0x42"),
    (uuid_message(CALL) + b"\x10\xff\xff", "over the limit"),
    (uuid_message(CALL) + hangup() + encode(KIND_AUDIO, bytes(2)), "after the end of the stream"),
])
def test_malformed_messages_give_one_clear_error(wire: bytes, why: str) -> None:
    reader = MessageReader()
    with pytest.raises(AudioSocketError, match=why) as caught:
        reader.feed(wire)
    assert "\n" not in str(caught.value)
    whole = caught.value.messages  # what came whole before the fault is not lost
    assert [m.kind for m in whole] == ([KIND_UUID] if wire.startswith(b"\x01\x00\x10") else []) + (
        [KIND_HANGUP] if why.startswith("after the end") else [])
    assert reader.closed
    with pytest.raises(AudioSocketError):
        reader.feed(b"\x10")  # nothing more is read from a broken stream


@given(st.binary(max_size=600))
def test_any_bytes_give_messages_or_an_audiosocket_error(junk: bytes) -> None:
    reader = MessageReader()
    try:
        reader.feed(uuid_message(CALL) + junk)
    except AudioSocketError:
        pass
