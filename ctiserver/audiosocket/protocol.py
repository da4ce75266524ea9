"""AudioSocket wire format (res_audiosocket.c): pure parsing and encoding, no sockets.

Every message is kind (1 byte), payload length (2 bytes, big-endian), payload. Asterisk opens with the
UUID (kind 0x01, 16 bytes), then sends audio as it reads it from the channel: kind 0x10, 320 bytes of
16-bit 8 kHz mono every 20 ms (capture 32). Kinds 0x11-0x18 are the same audio at other rates, 0x03 a DTMF
digit, 0x00 a hang-up (length 0), 0xff an error. Either side ends the stream with a hang-up message or by
closing the socket.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10  # slin, 8 kHz
KIND_ERROR = 0xFF
# The other signed-linear rates Asterisk may send (res_audiosocket.h): kind -> samples per second.
AUDIO_RATES = {KIND_AUDIO: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000,
               0x17: 96000, 0x18: 192000}
HEADER = 3
# A security limit: 20 ms at 192 kHz is 7,680 bytes; nothing Asterisk sends is longer.
MAX_PAYLOAD = 8192
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit audio
SILENCE = bytes(FRAME_BYTES)

__all__ = ["AUDIO_RATES", "FRAME_BYTES", "KIND_AUDIO", "KIND_DTMF", "KIND_ERROR", "KIND_HANGUP", "KIND_UUID",
           "MAX_PAYLOAD", "SILENCE", "AudioSocketError", "Message", "MessageReader", "encode", "hangup"]


class AudioSocketError(ValueError):
    """The peer sent something that is not AudioSocket. ``messages``: the whole messages that came before
    it in the same feed, so nothing good is lost."""

    def __init__(self, why: str, messages: list[Message] | None = None) -> None:
        super().__init__(why)
        self.messages = messages or []


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    payload: bytes = b""

    @property
    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.payload))

    @property
    def rate(self) -> int | None:
        """Samples per second of an audio message (None: not audio)."""
        return AUDIO_RATES.get(self.kind)

    @property
    def digit(self) -> str:
        return chr(self.payload[0]) if self.payload else ""


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"AudioSocket payload of {len(payload)} bytes is longer than 65535")
    return struct.pack(">BH", kind, len(payload)) + payload


def hangup() -> bytes:
    return encode(KIND_HANGUP)


def uuid_message(call_uuid: str) -> bytes:
    return encode(KIND_UUID, uuid.UUID(call_uuid).bytes)


class MessageReader:
    """Fed bytes as they come, returns whole messages. The first message must be the UUID. A malformed
    message raises AudioSocketError with one line saying what was wrong (and the whole messages before it);
    the reader is then closed (the stream cannot be resynchronized), and so is anything fed after a hang-up."""

    def __init__(self, *, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self._seen_uuid = False
        self.closed = False

    def feed(self, data: bytes) -> list[Message]:
        if self.closed:
            if data:
                raise AudioSocketError("data after the end of the stream")
            return []
        self._buf += data
        out: list[Message] = []
        try:
            self._parse(out)
        except AudioSocketError as e:
            e.messages = out
            raise
        return out

    def _parse(self, out: list[Message]) -> None:
        while len(self._buf) >= HEADER:
            kind, length = struct.unpack_from(">BH", self._buf)
            if length > self.max_payload:
                self.closed = True
                raise AudioSocketError(f"message kind 0x{kind:02x} of {length} bytes is over the limit of "
                                       f"{self.max_payload}")
            if len(self._buf) < HEADER + length:
                break
            payload = bytes(self._buf[HEADER : HEADER + length])
            del self._buf[: HEADER + length]
            out.append(self._check(Message(kind, payload)))
            if kind in (KIND_HANGUP, KIND_ERROR):
                self.closed = True
                if self._buf:
                    raise AudioSocketError("data after the end of the stream")
                break

    def _check(self, m: Message) -> Message:
        def bad(why: str) -> AudioSocketError:
            self.closed = True
            return AudioSocketError(why)

        if not self._seen_uuid:
            if m.kind != KIND_UUID:
                raise bad(f"the stream must open with its UUID (kind 0x01), not kind 0x{m.kind:02x}")
            if len(m.payload) != 16:
                raise bad(f"a UUID message carries 16 bytes, not {len(m.payload)}")
            self._seen_uuid = True
            return m
        if m.kind == KIND_UUID:
            raise bad("a second UUID in one stream")
        if m.kind in AUDIO_RATES:
            if not m.payload or len(m.payload) % 2:
                raise bad(f"audio of {len(m.payload)} bytes is not whole 16-bit samples")
        elif m.kind == KIND_DTMF:
            if len(m.payload) != 1:
                raise bad(f"a DTMF message carries 1 byte, not {len(m.payload)}")
        elif m.kind not in (KIND_HANGUP, KIND_ERROR):
            raise bad(f"unknown message kind 0x{m.kind:02x}")
        return m

    @property
    def pending(self) -> int:
        """Bytes of a message not yet complete (a stream that ends here was cut short)."""
        return len(self._buf)
