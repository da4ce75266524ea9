"""The pure AMI parser on bytes, no sockets: its fast paths agree with the plain line-by-line reading."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.ami.protocol import (
    AmiParser,
    AmiProtocolError,
    Greeting,
    MalformedFrame,
    Message,
    RichMessage,
    UnsafeValue,
    encode_action,
    parse_text,
)
from ctiserver.callmodel.model import UNUSED_EVENTS
from pbxsim.captures import RECEIVED, ami_received, capture, captures_dir


def reference(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Headers in wire order and the lines that are not headers, read one line at a time.

    The key ends at the first ": " (a value may hold more of them); "Key:" with nothing after it is a
    header with an empty value; blank lines are nothing.
    """
    headers: list[tuple[str, str]] = []
    bad: list[str] = []
    for line in text.split("\r\n"):
        if ": " in line:
            key, value = line.split(": ", 1)
            headers.append((key, value))
        elif line.endswith(":") and " " not in line:
            headers.append((line[:-1], ""))
        elif line:
            bad.append(line)
    return headers, bad


Reading = tuple[list[tuple[str, str]], dict[str, list[str]], list[str]]


def as_reference(frame: object) -> Reading:
    """First value of every header in wire order, the later values of repeated ones, the bad lines."""
    assert isinstance(frame, Message)
    return list(frame.items()), dict(frame.repeated or {}), list(frame.malformed)


def regroup(headers: list[tuple[str, str]], bad: list[str]) -> Reading:
    first: dict[str, str] = {}
    more: dict[str, list[str]] = {}
    for key, value in headers:
        if key in first:
            more.setdefault(key, []).append(value)
        else:
            first[key] = value
    return list(first.items()), more, bad


def feed_all(data: bytes, cuts: list[int], **kw: object) -> tuple[AmiParser, list[object]]:
    parser = AmiParser(expect_greeting=False, **kw)  # type: ignore[arg-type]
    frames: list[object] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        frames.extend(parser.feed(data[last:cut]))
        last = max(last, cut)
    return parser, frames


# ------------------------------------------------------------------------------------ examples


def test_a_value_holding_colon_space_keeps_it() -> None:
    msg = parse_text("Event: UserEvent\r\nCallerIDName: Smith: John\r\nData: a: b: c")
    assert type(msg) is Message
    assert msg["CallerIDName"] == "Smith: John" and msg["Data"] == "a: b: c"
    [via_feed] = AmiParser(expect_greeting=False).feed(
        b"Event: UserEvent\r\nCallerIDName: Smith: John\r\nData: a: b: c\r\n\r\n"
    )
    assert via_feed == msg


def test_a_line_without_colon_space_goes_the_general_way() -> None:
    text = "Event: Weird\r\nno colon here\r\nAccountCode:\r\nFoo: bar"
    msg = parse_text(text)
    assert isinstance(msg, RichMessage)
    assert dict(msg) == {"Event": "Weird", "AccountCode": "", "Foo": "bar"}
    assert msg.malformed == ("no colon here",)
    # One line short of ": " and another with two: the counts match, the reading must not shift.
    msg = parse_text("A: x: B\r\n2\r\nC: 3")
    assert dict(msg) == {"A": "x: B", "C": "3"} and msg.malformed == ("2",)


def test_repeated_headers_are_kept_in_order() -> None:
    msg = parse_text("Response: Follows\r\nOutput: one\r\nOutput: two\r\nOutput: three")
    assert isinstance(msg, RichMessage)
    assert msg["Output"] == "one" and msg.all("Output") == ["one", "two", "three"]


def test_a_frame_with_no_header_is_malformed_and_the_stream_goes_on() -> None:
    frames = AmiParser(expect_greeting=False).feed(b"junk\r\n\r\nEvent: Hangup\r\nCause: 16\r\n\r\n")
    assert isinstance(frames[0], MalformedFrame) and frames[0].raw == b"junk"
    assert frames[1] == {"Event": "Hangup", "Cause": "16"}


def test_ignored_events_are_skipped_and_counted() -> None:
    data = (
        b"Event: Cdr\r\nUniqueid: 1\r\n\r\n"
        b"Event: Cdr\r\n\r\n"  # only its Event line
        b"Event: CdrX\r\nA: 1\r\n\r\n"  # a longer name is another event
        b"Event: Cdr: odd\r\nA: 2\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1\r\n\r\n"
    )
    parser = AmiParser(expect_greeting=False, ignore=frozenset({"Cdr"}))
    frames = parser.feed(data)
    assert [f["Event"] for f in frames] == ["CdrX", "Cdr: odd", "Hangup"]  # type: ignore[index]
    assert parser.ignored == 2
    parser.ignore = frozenset({"Hangup"})  # a new set takes effect at the next read
    assert [f["Event"] for f in parser.feed(data)] == ["Cdr", "Cdr", "CdrX", "Cdr: odd"]  # type: ignore[index]


def test_greeting_limits_and_injection() -> None:
    parser = AmiParser()
    assert parser.feed(b"Asterisk Call Manager/11.0.0\r\nResponse: Pong\r\n\r\n") == [
        Greeting("Asterisk Call Manager/11.0.0"),
        {"Response": "Pong"},
    ]
    with pytest.raises(AmiProtocolError):
        AmiParser().feed(b"HTTP/1.1 200 OK\r\n")
    small = AmiParser(expect_greeting=False, max_frame=64)
    with pytest.raises(AmiProtocolError):
        small.feed(b"Event: Big\r\nData: " + b"x" * 100)
    with pytest.raises(UnsafeValue):
        encode_action("Redirect", "1", {"Exten": "100\r\nAction: Hangup"})


def test_every_capture_parses_the_same_whatever_the_reads() -> None:
    for name in ("02", "06", "07", "09"):
        data = ami_received(capture(name))
        whole = AmiParser().feed(data)
        parser = AmiParser()
        byte_by_byte = [f for i in range(0, len(data), 7) for f in parser.feed(data[i : i + 7])]
        assert byte_by_byte == whole
        texts = [t for t in data.decode().split("\r\n\r\n")[1:] if t]  # [0]: greeting + first frame
        assert len(whole) >= len(texts)
        assert all(not isinstance(f, MalformedFrame) for f in whole)


def test_ignore_drops_exactly_the_unused_events_of_the_burst() -> None:
    events = [r.payload for r in capture("09") if r.stream == "AMI1" and r.direction == RECEIVED]
    data = b"".join(e for e in events if e.startswith(b"Event: "))
    full = AmiParser(expect_greeting=False).feed(data)
    parser = AmiParser(expect_greeting=False, ignore=UNUSED_EVENTS)
    kept = parser.feed(data)
    assert kept == [f for f in full if f["Event"] not in UNUSED_EVENTS]  # type: ignore[index]
    assert parser.ignored == len(full) - len(kept) > 0


# ------------------------------------------------------------------------------------ properties

_KEY = st.sampled_from(["Event", "Channel", "Uniqueid", "Cause-txt", "Output", "X", "AccountCode", "a b"])
_VALUE = st.text(alphabet=st.sampled_from(list("ab :\r\n\t-é")), max_size=12).map(
    lambda v: v.replace("\r\n", " ")  # a value never holds CRLF (it would end the line)
)
_LINE = st.one_of(
    st.tuples(_KEY, _VALUE).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.sampled_from(["no colon", "Key:", "Key :", ": lead", "", "Event: Cdr", "Event: VarSet"]),
)
# A frame whose own text held a blank line would be two frames on the wire.
_FRAME = (
    st.lists(_LINE, min_size=1, max_size=8)
    .map("\r\n".join)
    .filter(lambda t: t and "\r\n\r\n" not in t and not t.startswith("\r\n") and not t.endswith("\r\n"))
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_FRAME, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_feed_reads_every_frame_like_the_line_by_line_reference(frames: list[str], cuts: list[int]) -> None:
    data = "".join(f + "\r\n\r\n" for f in frames).encode()
    _, got = feed_all(data, cuts)
    # What the reference sees: the text between terminators, as one read would cut it.
    expected = []
    for text in data.decode().split("\r\n\r\n")[:-1]:
        headers, bad = reference(text)
        if headers:
            expected.append(regroup(headers, bad))
        elif text.strip("\r\n"):
            expected.append(None)
    assert [as_reference(f) if isinstance(f, Message) else None for f in got] == expected


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(_FRAME, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_ignore_only_removes_frames_whose_first_line_names_an_ignored_event(
    frames: list[str], cuts: list[int]
) -> None:
    data = "".join(f + "\r\n\r\n" for f in frames).encode()
    parser, kept = feed_all(data, cuts, ignore=frozenset({"Cdr", "VarSet"}))
    texts = data.decode().split("\r\n\r\n")[:-1]
    others = [t for t in texts if t.split("\r\n", 1)[0] not in ("Event: Cdr", "Event: VarSet")]
    assert parser.ignored == len(texts) - len(others)
    _, expected = feed_all("".join(t + "\r\n\r\n" for t in others).encode(), [])
    assert kept == expected


# ------------------------------------------------------------------------------------ split invariance
# A parser's output must not depend on where the socket reads happen to split the stream.

Outcome = tuple[list[object], str | None, int]


def describe(frame: object) -> object:
    """Everything a frame carries, so that two readings compare exactly (class included)."""
    if isinstance(frame, Message):
        return (type(frame).__name__, list(frame.items()), frame.repeated, frame.malformed)
    if isinstance(frame, MalformedFrame):
        return ("MalformedFrame", frame.raw, frame.reason)
    assert isinstance(frame, Greeting)
    return ("Greeting", frame.text)


def read_in_chunks(chunks: list[bytes], **kw: object) -> Outcome:
    """The frames, the protocol error (if any) and the ignored count, reading ``chunks`` one by one.

    An error ends the stream (the link drops); the frames completed before it ride on the error.
    """
    parser = AmiParser(**kw)  # type: ignore[arg-type]
    frames: list[object] = []
    error = None
    for chunk in chunks:
        try:
            frames.extend(parser.feed(chunk))
        except AmiProtocolError as exc:
            frames.extend(getattr(exc, "frames", ()))
            error = str(exc)
            break
    return [describe(f) for f in frames], error, parser.ignored


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted({min(c, len(data)) for c in cuts}), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def split_by_sizes(data: bytes, sizes: list[int]) -> list[bytes]:
    """Chunks of the given sizes, cycled over the whole stream (many small reads, as a slow link gives)."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[i : i + n])
        i, k = i + n, k + 1
    return out


GREETING = b"Asterisk Call Manager/11.0.0\r\n"
# Pieces of real frames and of every oddity a peer can send: bare CR or LF, blank lines between frames, a
# line too long for the greeting, a frame too long for max_frame=64, repeated keys, broken UTF-8.
_PIECES = [
    b"\r\n", b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"A: 1", b"B: 2", b"Event: Cdr", b"Event: Hangup",
    b"Event: ", b"Output: x", b"Output: y", b": ", b":", b" ", b"junk", b"\xff", b"\xe2\x82", b"\xac",
    "é".encode(), GREETING, b"Asterisk Call Manager/", b"y" * 70, b"z" * 260,
]
_STREAM = st.tuples(st.booleans(), st.lists(st.sampled_from(_PIECES), max_size=40)).map(
    lambda g: (GREETING if g[0] else b"") + b"".join(g[1])
)
_OPTIONS = st.fixed_dictionaries(
    {
        "expect_greeting": st.booleans(),
        "max_frame": st.sampled_from([64, 1 << 20]),
        "ignore": st.sampled_from([frozenset(), frozenset({"Cdr"}), frozenset({"Cdr", "Hangup"})]),
    }
)


def test_a_blank_line_split_between_reads_does_not_leak_into_the_next_key() -> None:
    reads = [b"A: 1\r\n\r\n", b"\r\n\r", b"\nB: 2\r\n\r\n"]
    whole = read_in_chunks([b"".join(reads)], expect_greeting=False)
    assert whole[0] == [("Message", [("A", "1")], None, ()), ("Message", [("B", "2")], None, ())]
    assert read_in_chunks(reads, expect_greeting=False) == whole


def test_an_odd_run_of_blank_lines_leaves_the_same_rest_whatever_the_reads() -> None:
    # One read pairs CRLFs from the left: "junk" CRLF CRLF | CRLF "B: 2" ... A last-terminator search
    # that pairs them from the right would give "junk\r\n" and a frame without its leading blank line.
    data = b"junk\r\n\r\n\r\nEvent: Cdr\r\nX: 1\r\n\r\n"
    whole = read_in_chunks([data], expect_greeting=False, ignore=frozenset({"Cdr"}))
    assert whole[0][0] == ("MalformedFrame", b"junk", "no 'Key: Value' header in frame")
    assert read_in_chunks([data[:10], data[10:]], expect_greeting=False, ignore=frozenset({"Cdr"})) == whole


def test_an_oversized_frame_is_refused_whole_or_in_pieces_after_the_frames_before_it() -> None:
    for data in (
        b"A: 1\r\n\r\nData: " + b"x" * 100 + b"\r\n\r\n",  # complete: one read used to accept it
        b"A: 1\r\n\r\nData: " + b"x" * 100,  # incomplete: one read used to lose A with the error
    ):
        whole = read_in_chunks([data], expect_greeting=False, max_frame=64)
        assert whole == ([("Message", [("A", "1")], None, ())], "AMI frame longer than 64 bytes", 0)
        assert read_in_chunks([data[:20], data[20:]], expect_greeting=False, max_frame=64) == whole


def test_after_a_fault_the_parser_stays_failed() -> None:
    parser = AmiParser(expect_greeting=False, max_frame=64)
    with pytest.raises(AmiProtocolError) as first:
        parser.feed(b"A: 1\r\n\r\n" + b"x" * 100)
    assert first.value.frames == [{"A": "1"}]
    # What follows the fault is not read as if it started a frame.
    with pytest.raises(AmiProtocolError, match="longer than 64") as again:
        parser.feed(b"\r\n\r\nEvent: Hangup\r\n\r\n")
    assert again.value.frames == []


def test_the_greeting_limit_does_not_depend_on_the_reads() -> None:
    line = GREETING[:-2] + b"x" * (256 - len(GREETING) + 2)  # exactly 256 bytes: allowed
    assert len(line) == 256
    for data in (line + b"\r\n", line + b"x\r\n"):
        whole = read_in_chunks([data])
        assert read_in_chunks([data[:-1], data[-1:]]) == whole
        assert read_in_chunks(split_by_sizes(data, [1])) == whole


@settings(max_examples=3000, deadline=None)
@given(data=_STREAM, options=_OPTIONS, cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_any_split_of_any_stream_reads_like_one_read(
    data: bytes, options: dict[str, object], cuts: list[int]
) -> None:
    assert read_in_chunks(split_at(data, cuts), **options) == read_in_chunks([data], **options)


@settings(max_examples=500, deadline=None)
@given(data=_STREAM, options=_OPTIONS, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_many_small_reads_read_like_one_read(data: bytes, options: dict[str, object], sizes: list[int]) -> None:
    assert read_in_chunks(split_by_sizes(data, sizes), **options) == read_in_chunks([data], **options)


def _ami_streams() -> list[tuple[str, str]]:
    out = []
    for path in sorted(captures_dir().glob("[0-9]*.txt")):
        if path.name.startswith("16-"):
            continue  # a queue_log file, not a wire transcript
        name = path.name.split("-", 1)[0]
        streams = sorted({r.stream for r in capture(name) if r.stream.startswith("AMI")})
        out.extend((name, s) for s in streams)
    return out


@pytest.mark.parametrize(("name", "stream"), _ami_streams())
@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8), cuts=st.lists(st.integers(0, 400_000)))
def test_every_capture_reads_the_same_in_random_splits(
    name: str, stream: str, sizes: list[int], cuts: list[int]
) -> None:
    records = [r.payload for r in capture(name) if r.stream == stream and r.direction == RECEIVED]
    data = b"".join(records)
    whole = read_in_chunks([data])
    frames, error, _ = whole
    # One message per record (the greeting is a record of its own), none malformed, no error.
    assert error is None and len(frames) == len(records)
    assert frames[0][0] == "Greeting" and all(f[0] in ("Message", "RichMessage") for f in frames[1:])
    assert read_in_chunks(split_by_sizes(data, sizes)) == whole
    assert read_in_chunks(split_at(data, cuts)) == whole
