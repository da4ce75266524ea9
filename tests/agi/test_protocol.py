"""The FastAGI codec over the exact lines of captures 02, 03 and 13: no sockets."""

from __future__ import annotations

import pytest

from ctiserver.agi.protocol import (
    AgiProtocolError,
    ReplyReader,
    UnsafeAgiArgument,
    format_command,
    parse_environment,
    parse_reply,
)
from pbxsim.captures import RECEIVED, capture


def _agi_lines(name: str, stream: str = "AGI1") -> tuple[str, list[str]]:
    recs = [r for r in capture(name) if r.stream == stream and r.direction == RECEIVED]
    return recs[0].payload.decode(), [r.payload.decode() for r in recs[1:]]


def test_environment_block_of_capture_02():
    env_block, _ = _agi_lines("02")
    env = parse_environment(env_block)
    assert env.script == "ivr" and env.params == {}
    assert env.channel == "Local/5551000@from-pstn-00000000;2"
    assert (env.caller_num, env.caller_name, env.extension) == ("5551234", "John Doe", "5551000")
    assert env.variables["agi_version"] == "22.10.1"
    assert env.variables["agi_accountcode"] == ""  # "agi_accountcode: " with nothing after


def test_script_query_is_parsed():
    env = parse_environment("agi_network: yes\nagi_network_script: ivr?flow=main&lang=zh\n\n")
    assert env.script == "ivr" and env.params == {"flow": "main", "lang": "zh"}


@pytest.mark.parametrize("bad", ["not an env line\n", "foo: bar\n", "agi_x: 1\n"])
def test_bad_environment_is_a_clear_error(bad: str):
    with pytest.raises(AgiProtocolError):
        parse_environment(bad)


def test_every_reply_line_of_captures_02_and_03_parses():
    lines = _agi_lines("02")[1] + _agi_lines("03")[1] + _agi_lines("03", "AGI2")[1]
    reader = ReplyReader()
    replies = [r for line in lines if (r := reader.feed(line)) is not None]
    assert {r.code for r in replies} == {200, 510, 511}
    assert any(r.hungup and r.code == 511 for r in replies)  # HANGUP line, then 511 (capture 03)


def test_reply_shapes():
    assert parse_reply("200 result=53 endpos=13120").digit == "5"
    t = parse_reply("200 result= (timeout)")
    assert t.timed_out and t.value is None and t.result == ""
    rec = parse_reply("200 result=9705 (timeout) endpos=29600")
    assert rec.timed_out and rec.endpos == 29600 and rec.digit is None
    assert parse_reply("200 result=-1 endpos=31840").value == -1
    assert parse_reply("200 result=12*3").result == "12*3"  # GET DATA keeps '*'
    assert parse_reply("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiProtocolError):
        parse_reply("hello")


def test_520_usage_spans_lines():
    reader = ReplyReader()
    assert reader.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert reader.feed("Usage: GET DATA <file to be streamed> [timeout] [max digits]") is None
    reply = reader.feed("520 End of proper usage.")
    assert reply is not None and reply.code == 520 and "GET DATA" in reply.message


def test_commands_are_quoted_and_injection_is_refused():
    assert format_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert format_command("GET DATA", "custom/enter-account", 6000, 4) == b"GET DATA custom/enter-account 6000 4\n"
    assert format_command("SET VARIABLE", "NAME", 'a "b"') == b'SET VARIABLE NAME "a \\"b\\""\n'
    for evil in ("x\nHANGUP", "x\rEXEC System rm", "a\x00b"):
        with pytest.raises(UnsafeAgiArgument):
            format_command("SET VARIABLE", "X", evil)
