"""AMI wire format: a pure parser fed bytes, and a safe action encoder. No sockets.

The shapes come from the Asterisk captures (tests/captures): messages are ``Key: Value`` lines ending in CRLF, a message
ends with an empty line (CRLF CRLF); the only exception is the greeting line ``Asterisk Call Manager/11.0.0``
that opens every connection. Values may be empty (``AccountCode: ``) and a few keys repeat inside one
message (``Output:`` in a Command response, ``Variable:`` in Status).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

# A security limit (see websockets' read_line): a frame that grows past this without its terminator is
# refused rather than buffered forever. The largest real frame in the captures is about 3 kB.
MAX_FRAME = 1 << 20
# The greeting line, without its CRLF; Asterisk's is 28 bytes.
MAX_GREETING = 256

_TERM = b"\r\n\r\n"
_GREETING_PREFIX = b"Asterisk Call Manager/"
# The arguments of str.split(line, ": ", 1) for map(): no Python-level loop per header line.
_SPLIT = str.split
_SEP = repeat(": ")
_ONCE = repeat(1)


class AmiProtocolError(ValueError):
    """The peer sent something that cannot be AMI; the link should drop and resync.

    ``frames`` holds the frames the same read completed before the fault: they are as good as any other, and
    a reading that had split the stream elsewhere would have returned them from an earlier ``feed``.
    """

    def __init__(self, message: str, frames: list[Frame] | None = None) -> None:
        super().__init__(message)
        self.frames: list[Frame] = frames if frames is not None else []


class UnsafeValue(ValueError):
    """A value meant for an AMI action carries CR, LF or another control character (header injection)."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"refused AMI value for {field!r}: contains a control character")
        self.field = field
        self.value = value


class Message(dict[str, str]):
    """One AMI message: an event, a response, or (on the simulator's side) an action.

    A dict of the first value of every header, in wire order. A dict subclass rather than a wrapper
    because construction cost dominates parsing at burst rates (README 09: ~18,000 events/s).
    Headers that repeat (``Output``, ``Variable``) and unparsable lines live on ``RichMessage``.
    """

    __slots__ = ()

    repeated: dict[str, list[str]] | None = None
    malformed: tuple[str, ...] = ()

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action(self) -> str | None:
        return self.get("Action")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def all(self, key: str) -> list[str]:
        """Every value of a header that may repeat (``Output``, ``Variable``)."""
        first = self.get(key)
        if first is None:
            return []
        more = self.repeated.get(key, []) if self.repeated else []
        return [first, *more]

    def headers(self) -> list[tuple[str, str]]:
        """Headers in wire order, repeated ones right after their first occurrence."""
        out: list[tuple[str, str]] = []
        for k, v in self.items():
            out.append((k, v))
            if self.repeated and k in self.repeated:
                out.extend((k, x) for x in self.repeated[k])
        return out

    def __repr__(self) -> str:
        kind = self.event or self.response or self.action or "?"
        return f"<Message {kind} {len(self)} fields>"


class RichMessage(Message):
    """A message with repeated headers or lines that are not ``Key: Value``."""

    __slots__ = ("malformed", "repeated")  # type: ignore[misc]

    def __init__(
        self, fields: dict[str, str], repeated: dict[str, list[str]] | None, malformed: tuple[str, ...]
    ) -> None:
        super().__init__(fields)
        self.repeated = repeated
        self.malformed = malformed


@dataclass(frozen=True, slots=True)
class Greeting:
    text: str  # "Asterisk Call Manager/11.0.0"


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame with no parsable header at all. Reported, skipped; the stream goes on."""

    raw: bytes
    reason: str


Frame = Message | Greeting | MalformedFrame


def parse_frame(raw: bytes) -> Message | MalformedFrame:
    """Parse one frame (the bytes between terminators, without the final CRLF CRLF)."""
    return parse_text(raw.decode("utf-8", "replace"))


def parse_text(text: str) -> Message | MalformedFrame:
    lines = text.split("\r\n")
    # Fast path: every line is "Key: Value" and no key repeats (nearly every event). It runs about twice as
    # fast as the general loop below, which matters at Asterisk's burst rate (~18,000 events/s, README 09).
    # A line without ": " makes a 1-item pair (ValueError); a repeated key makes the dict shorter than the
    # frame. A value that itself holds ": " is still right: split stops at the first one, like partition.
    # AmiParser.feed inlines this same path.
    try:
        msg = Message(map(_SPLIT, lines, _SEP, _ONCE))
    except ValueError:
        pass
    else:
        if len(msg) == len(lines):
            return msg
    return _parse_general(text, lines)


def _parse_general(text: str, lines: list[str]) -> Message | MalformedFrame:
    fields: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    bad: list[str] | None = None
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            # A header with nothing after the colon ("Key:") is still a header with an empty value.
            if line.endswith(":") and " " not in line:
                key, value = line[:-1], ""
            else:
                if line:
                    (bad := bad or []).append(line)
                continue
        if key in fields:
            if repeated is None:
                repeated = {}
            repeated.setdefault(key, []).append(value)
        else:
            fields[key] = value
    if not fields:
        return MalformedFrame(text.encode("utf-8", "replace"), "no 'Key: Value' header in frame")
    if repeated is None and bad is None:
        return Message(fields)
    return RichMessage(fields, repeated, tuple(bad) if bad else ())


class AmiParser:
    """Incremental parser: ``feed(data)`` returns the frames completed by these bytes.

    The output does not depend on where the reads split the stream: frames are cut at the leftmost CRLF CRLF
    as a one-read parse would cut them, every limit is judged on the whole frame or line, and a fault raises
    only after the frames before it (on the error's ``frames``). After a fault every ``feed`` raises again.
    """

    __slots__ = (
        "_buf", "_failed", "_greeted", "_ignore_prefixes", "_ignored_by", "ignore", "ignored", "max_frame",
    )

    def __init__(
        self,
        *,
        expect_greeting: bool = True,
        max_frame: int = MAX_FRAME,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        self._buf = b""
        self._greeted = not expect_greeting
        self._failed: str | None = None
        self.max_frame = max_frame
        # Event types nobody reads (DeviceStateChange, Cdr, VarSet ...) are dropped after reading their
        # first line: a quarter of a burst's events (README 09) cost nothing to parse then.
        self.ignore = ignore
        self.ignored = 0
        self._ignored_by: frozenset[str] | None = None  # the ``ignore`` that _ignore_prefixes was built from
        self._ignore_prefixes: tuple[str, ...] = ()

    def _prefixes(self) -> tuple[str, ...]:
        """``Event: <name>\r\n`` for every ignored name: one startswith in C tells an ignored frame."""
        if self._ignored_by is not self.ignore:
            self._ignored_by = self.ignore
            # A name holding CRLF can never be a whole Event line: it ignores nothing.
            self._ignore_prefixes = tuple(f"Event: {name}\r\n" for name in self.ignore if "\r\n" not in name)
        return self._ignore_prefixes

    def _fail(self, reason: str, out: list[Frame]) -> AmiProtocolError:
        self._buf = b""
        self._failed = reason
        return AmiProtocolError(reason, out)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise AmiProtocolError(self._failed)
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        pos = 0
        if not self._greeted:
            nl = buf.find(b"\r\n")
            # Without its CRLF yet, the line is as long as the buffer, less a final CR that may start the CRLF.
            if (nl if nl >= 0 else len(buf) - buf.endswith(b"\r")) > MAX_GREETING:
                raise self._fail(f"no AMI greeting in the first {MAX_GREETING} bytes", out)
            if nl < 0:
                self._buf = buf
                return out
            line = buf[:nl]
            if not line.startswith(_GREETING_PREFIX):
                raise self._fail(f"not an AMI greeting: {line[:60]!r}", out)
            out.append(Greeting(line.decode("ascii", "replace")))
            self._greeted = True
            pos = nl + 2
        last = buf.rfind(_TERM, pos)
        if last >= pos:
            # rfind pairs the CRLFs of a run of blank lines from the right, the wire from the left: a one-read
            # parse of "A CRLF CRLF CRLF | B" ends A at the first pair and leaves CRLF B for the next frame.
            # So find where the run starts and end on the last pair counted from there.
            run = last
            while run - 2 >= pos and buf.startswith(b"\r\n", run - 2):
                run -= 2
            end = run + (last + 4 - run) // 4 * 4
            if end - 4 - pos > self.max_frame:
                # Only a batch longer than the limit can hold a frame longer than it: look at each.
                cut = self._oversized(buf, pos, end - 4)
                if cut >= 0:
                    if cut > pos:
                        self._frames(buf, pos, cut - 4, out)
                    raise self._fail(f"AMI frame longer than {self.max_frame} bytes", out)
            self._frames(buf, pos, end - 4, out)
            pos = end
        rest = buf[pos:]
        if len(rest) > self.max_frame:
            # A final CR, CRLF or CRLF CR may be the start of the terminator rather than part of the frame.
            tail = 3 if rest.endswith(b"\r\n\r") else 2 if rest.endswith(b"\r\n") else rest.endswith(b"\r")
            if len(rest) - tail > self.max_frame:
                raise self._fail(f"AMI frame longer than {self.max_frame} bytes", out)
        self._buf = rest
        return out

    def _oversized(self, buf: bytes, start: int, stop: int) -> int:
        """Where the first frame longer than ``max_frame`` starts in ``buf[start:stop]``, or -1."""
        while True:
            term = buf.find(_TERM, start, stop)
            if (term if term >= 0 else stop) - start > self.max_frame:
                return start
            if term < 0:
                return -1
            start = term + 4

    def _frames(self, buf: bytes, start: int, stop: int, out: list[Frame]) -> None:
        """Parse the complete frames in ``buf[start:stop]`` (their terminators between them) onto ``out``."""
        # Decode every complete frame in one go: one decode and one split per read, not per frame.
        ignore = self.ignore
        prefixes = self._prefixes() if ignore else ()
        append = out.append
        ignored = 0
        for text in buf[start:stop].decode("utf-8", "replace").split("\r\n\r\n"):
            if prefixes and text.startswith(prefixes):
                ignored += 1
                continue
            lines = text.split("\r\n")
            if ignore and len(lines) == 1 and text.startswith("Event: ") and text[7:] in ignore:
                ignored += 1  # a frame that is only its Event line: no CRLF for the prefixes to match
                continue
            # parse_text's fast path, inlined: this loop runs once per event.
            try:
                msg = Message(map(_SPLIT, lines, _SEP, _ONCE))
            except ValueError:
                pass
            else:
                if len(msg) == len(lines):
                    append(msg)
                    continue
            if text:
                append(_parse_general(text, lines))
        self.ignored += ignored

    @property
    def pending(self) -> int:
        return len(self._buf)


def check_value(field: str, value: str) -> str:
    for ch in value:
        if ch < " " or ch == "\x7f":
            raise UnsafeValue(field, value)
    return value


def _check_key(key: str) -> str:
    if not key or not all(c.isalnum() or c in "-_()" for c in key):
        raise UnsafeValue(key, key)
    return key


HeaderValue = str | int | Sequence[str]


def encode_message(headers: Iterable[tuple[str, HeaderValue]]) -> bytes:
    """Encode ``Key: Value`` pairs as one CRLF-terminated AMI message, refusing control characters.

    A sequence value repeats the header (``Variable: A=1`` / ``Variable: B=2``).
    """
    lines: list[str] = []
    for key, value in headers:
        _check_key(key)
        if isinstance(value, (list, tuple)):
            for v in value:
                lines.append(f"{key}: {check_value(key, str(v))}")
        else:
            lines.append(f"{key}: {check_value(key, str(value))}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def encode_action(action: str, action_id: str, headers: Mapping[str, HeaderValue] | None = None) -> bytes:
    """``Action``, ``ActionID`` then the headers, in that order (as the captures' CTI side sent them)."""
    pairs: list[tuple[str, HeaderValue]] = [("Action", action), ("ActionID", action_id)]
    if headers:
        pairs.extend((k, v) for k, v in headers.items() if v is not None)
    return encode_message(pairs)
