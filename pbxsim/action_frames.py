"""AMI actions as a client writes them, read the way Asterisk 22's manager reads them. Pure: bytes in, frames out.

An action is ``Key: Value`` lines, each ended by CRLF, and the action ends with an empty line. Keys may repeat
(``Variable:`` in Originate) and all values are kept in wire order. Lookups follow ``astman_get_header``
(manager.c): the key is matched case-insensitively, the first match wins, blanks after the colon are skipped.

This is the simulator's own reader, written from the wire format and not shared with the product: the CTI's
AMI codec is tested against this simulator, so it must not also be the thing that reads the CTI's actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

TERMINATOR = b"\r\n\r\n"
# A security limit, as websockets' read_line has one. Asterisk keeps at most 128 header lines of 1 kB each
# (AST_MAX_MANHEADERS, the session's 1025-byte input buffer); a longer action cannot be a real one.
MAX_ACTION_FRAME = 128 * 1024
_HEAD = 64  # bytes of a refused frame kept for the log line


@dataclass(frozen=True, slots=True)
class ActionFrame:
    """One action: its header lines in wire order, repeated keys included."""

    headers: tuple[tuple[str, str], ...]

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        wanted = key.lower()
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def all(self, key: str) -> list[str]:
        """Every value of a key that may repeat (``Variable``), in wire order."""
        wanted = key.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    @property
    def action(self) -> str | None:
        return self.get("Action")


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A frame longer than the parser's limit: it was skipped up to its terminating empty line."""

    limit: int
    head: bytes  # its first bytes, for the one log line that reports it


def parse_action(text: str) -> ActionFrame | None:
    """One frame's text (without its terminator) as an action; None when it holds no header line at all."""
    headers: list[tuple[str, str]] = []
    for line in text.split("\r\n"):
        key, colon, value = line.partition(":")
        if not colon:
            continue  # blank lines between actions, or a line no lookup could ever match (as in Asterisk)
        headers.append((key, value.lstrip(" \t")))
    return ActionFrame(tuple(headers)) if headers else None


class ActionParser:
    """Incremental: ``feed(data)`` returns the frames these bytes complete, whatever the read boundaries.

    A frame over ``max_frame`` bytes is reported as an ``OversizedFrame`` as soon as that is certain, and the
    parser skips to its end and goes on with the next one. Frames with no header line (stray empty lines)
    yield nothing.
    """

    __slots__ = ("_pending", "_skipping", "max_frame")

    def __init__(self, *, max_frame: int = MAX_ACTION_FRAME) -> None:
        if max_frame < _HEAD:
            raise ValueError(f"max_frame must be at least {_HEAD} bytes")
        self.max_frame = max_frame
        self._pending = b""  # the start of a frame whose terminator has not arrived yet
        self._skipping = False  # inside an oversized frame: drop bytes up to the next terminator

    def feed(self, data: bytes) -> list[ActionFrame | OversizedFrame]:
        buf = self._pending + data
        out: list[ActionFrame | OversizedFrame] = []
        pos = 0
        while True:
            end = buf.find(TERMINATOR, pos)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            elif end - pos > self.max_frame:
                out.append(OversizedFrame(self.max_frame, buf[pos:pos + _HEAD]))
            else:
                frame = parse_action(buf[pos:end].decode("utf-8", "replace"))
                if frame is not None:
                    out.append(frame)
            pos = end + len(TERMINATOR)
        rest = buf[pos:]
        # Up to 3 bytes of the rest may be the start of the terminator; anything beyond the limit plus those
        # is a frame that can no longer fit, whatever comes next.
        if not self._skipping and len(rest) > self.max_frame + len(TERMINATOR) - 1:
            out.append(OversizedFrame(self.max_frame, rest[:_HEAD]))
            self._skipping = True
        if self._skipping:
            rest = rest[-(len(TERMINATOR) - 1):]  # only a terminator split across reads matters now
        self._pending = rest
        return out
