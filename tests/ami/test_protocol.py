"""The pure AMI parser on bytes, no sockets: its fast paths agree with the plain line-by-line reading."""

from __future__ import annotations

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
from pbxsim.captures import RECEIVED, ami_received, capture


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
