"""The simulator's own reader of AMI actions (pbxsim/action_frames.py): pure, over bytes, and on a real socket."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsim import wire
from pbxsim.action_frames import MAX_ACTION_FRAME, ActionFrame, ActionParser, OversizedFrame, parse_action
from pbxsim.simulator import Simulator

SMALL = 64  # a frame limit small enough for generated streams to cross it


def _feed_all(parser: ActionParser, chunks: list[bytes]) -> list[ActionFrame | OversizedFrame]:
    out: list[ActionFrame | OversizedFrame] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def test_originate_keeps_every_variable_in_wire_order() -> None:
    data = (b"Action: Originate\r\nActionID: o-1\r\nChannel: Local/1001@cti-agent-ready\r\n"
            b"Variable: CTI_CALL=c-7\r\nVariable: CTI_LEG=l-2\r\nAsync: true\r\n\r\n")
    [frame] = ActionParser().feed(data)
    assert isinstance(frame, ActionFrame)
    assert frame.action == "Originate" and frame["ActionID"] == "o-1"
    assert frame.all("Variable") == ["CTI_CALL=c-7", "CTI_LEG=l-2"]
    assert frame.get("Variable") == "CTI_CALL=c-7"
    assert [k for k, _ in frame.headers] == ["Action", "ActionID", "Channel", "Variable", "Variable", "Async"]


def test_lookups_follow_astman_get_header() -> None:
    frame = parse_action("action: Ping\r\nActionID: first\r\nactionid: second\r\nData:\t  x: y \r\nEmpty:")
    assert frame is not None
    assert frame.action == "Ping"  # any case matches
    assert frame.get("ACTIONID") == "first"  # the first match wins
    assert frame.get("Data") == "x: y "  # blanks after the colon are skipped, the rest is the value
    assert frame.get("Empty") == "" and frame.get("Missing") is None and frame.get("Missing", "d") == "d"
    with pytest.raises(KeyError):
        frame["Missing"]


def test_stray_lines_and_empty_frames_yield_nothing() -> None:
    parser = ActionParser()
    out = parser.feed(b"\r\n\r\n\r\nno colon here\r\nAction: Ping\r\n\r\njunk\r\n\r\n")
    assert out == [ActionFrame((("Action", "Ping"),))]


def test_a_character_split_between_reads_is_decoded_whole() -> None:
    data = "Action: Originate\r\nCallerID: \"Zoë Ångström\" <5551234>\r\n\r\n".encode()
    cut = data.index("ë".encode()) + 1  # inside the two bytes of ë
    frames = _feed_all(ActionParser(), [data[:cut], data[cut:]])
    assert frames == ActionParser().feed(data)
    assert isinstance(frames[0], ActionFrame) and frames[0]["CallerID"] == "\"Zoë Ångström\" <5551234>"


def test_oversized_frame_is_reported_then_skipped() -> None:
    big = b"Action: Originate\r\nVariable: " + b"x" * 200 + b"\r\n\r\n"
    data = big + b"Action: Ping\r\n\r\n"
    for chunks in ([data], [bytes([b]) for b in data]):
        out = _feed_all(ActionParser(max_frame=SMALL), chunks)
        assert out == [OversizedFrame(SMALL, big[:64]), ActionFrame((("Action", "Ping"),))], chunks[:1]


def test_oversized_frame_is_reported_before_it_ends() -> None:
    parser = ActionParser(max_frame=SMALL)
    assert parser.feed(b"Action: Originate\r\n" + b"x" * (SMALL - 19 + 3)) == []  # may still end in time
    [refused] = parser.feed(b"x")
    assert isinstance(refused, OversizedFrame)
    assert parser.feed(b"y" * 10_000) == []  # skipped, not buffered
    assert parser.feed(b"\r\n\r\nAction: Ping\r\n\r\n") == [ActionFrame((("Action", "Ping"),))]


def test_limit_is_exact() -> None:
    body = b"Action: Ping\r\nX: " + b"y" * (SMALL - 17)
    assert len(body) == SMALL
    assert ActionParser(max_frame=SMALL).feed(body + b"\r\n\r\n") == [parse_action(body.decode())]
    assert isinstance(ActionParser(max_frame=SMALL).feed(body + b"z\r\n\r\n")[0], OversizedFrame)
    with pytest.raises(ValueError):
        ActionParser(max_frame=10)


_keys = st.sampled_from(["Action", "ActionID", "action", "Variable", "Channel", "X-Odd_Key"])
_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(lambda v: v.lstrip(" \t"))


@given(st.lists(st.tuples(_keys, _values), min_size=1, max_size=8))
def test_what_wire_renders_reads_back(pairs: list[tuple[str, str]]) -> None:
    """The simulator's writer and reader agree on the frame format (printable values)."""
    assert ActionParser().feed(wire.render(pairs)) == [ActionFrame(tuple(pairs))]


_frames = st.lists(st.tuples(_keys, _values), max_size=6).map(lambda pairs: wire.render(pairs))
_tokens = st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b" ", b"Action", b"x" * 40, "é".encode(),
                           b"\xff", b"Variable: a=1\r\n"])
_streams = st.lists(st.one_of(_frames, _tokens), max_size=30).map(b"".join)


@settings(max_examples=300)
@given(_streams, st.data())
def test_any_split_gives_the_same_frames(stream: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for limit in (SMALL, MAX_ACTION_FRAME):
        assert _feed_all(ActionParser(max_frame=limit), chunks) == ActionParser(max_frame=limit).feed(stream)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_session_answers_an_action_that_arrives_byte_by_byte() -> None:
    sim = Simulator(time_scale=0.02)
    port = await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        login = b"Action: Login\r\nActionID: l1\r\nUsername: cti\r\nSecret: ctisecret\r\nEvents: off\r\n\r\n"
        for byte in login:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        assert b"Message: Authentication accepted\r\n" in await _read_frame(reader)
        writer.write(b"action: Ping\r\nactionid: p1\r\n\r\n")
        pong = await _read_frame(reader)
        assert b"Ping: Pong\r\n" in pong and b"ActionID: p1\r\n" in pong
        writer.close()
    finally:
        await sim.stop()


async def test_session_refuses_an_oversized_action_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(time_scale=0.02)
    port = await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: ctisecret\r\nEvents: off\r\n\r\n")
        await _read_frame(reader)
        with caplog.at_level(logging.WARNING, logger="pbxsim.ami_server"):
            writer.write(b"Action: Originate\r\nVariable: " + b"x" * (MAX_ACTION_FRAME + 10))
            await writer.drain()
            try:
                rest = await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:  # closed with our last bytes still unread: a reset, not a FIN
                rest = b""
            assert rest == b""  # the session is closed
        warnings = [r for r in caplog.records if r.name == "pbxsim.ami_server"]
        assert len(warnings) == 1 and "over 131072 bytes" in warnings[0].getMessage()
        writer.close()
    finally:
        await sim.stop()
