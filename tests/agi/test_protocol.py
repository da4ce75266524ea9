"""The FastAGI codec over the exact lines of captures 02, 03 and 13: no sockets."""

from __future__ import annotations

import pytest

from ctiserver.agi.protocol import (
    MAX_ENDPOS_DIGITS,
    MAX_ENV_BYTES,
    MAX_ENV_LINES,
    MAX_LINE,
    MAX_RESULT_CHARS,
    MAX_USAGE_BYTES,
    MAX_USAGE_LINES,
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


# ------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    "line",
    [
        "200 result=1 endpos=" + "9" * 5000,  # past int()'s digit limit: was a bare ValueError
        "200 result=1 endpos=-" + "9" * 5000,
        "200 result=1 endpos=" + "9" * (MAX_ENDPOS_DIGITS + 1),
        "200 result=" + "9" * 5000,
        "200 result=" + "1" * (MAX_RESULT_CHARS + 1) + " (timeout)",
        "\u0662\u0660\u0660 result=1",  # Arabic-Indic "200": not a status code
        "200 result=1 endpos=\u0661\u0662",
    ],
)
def test_oversized_or_foreign_numbers_are_protocol_errors(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply(line)
    with pytest.raises(AgiProtocolError):
        ReplyReader().feed(line)


def test_the_largest_real_numbers_still_parse() -> None:
    # GET DATA fills a 1024-byte buffer (res_agi.c); endpos is a 64-bit sample offset.
    keys = "1" * MAX_RESULT_CHARS
    assert parse_reply(f"200 result={keys} (timeout)").result == keys
    assert parse_reply("200 result=0 endpos=" + "9" * MAX_ENDPOS_DIGITS).endpos == int("9" * MAX_ENDPOS_DIGITS)
    assert parse_reply("200 result=-1 endpos=-1").endpos == -1


@pytest.mark.parametrize(("line_size", "limit"), [(10, "lines"), (4000, "bytes")])
def test_a_520_block_is_cut_at_its_limits_and_holds_no_more(line_size: int, limit: str) -> None:
    reader = ReplyReader()
    assert reader.feed("520-Invalid command syntax.  Proper usage follows:") is None
    fed = 0
    with pytest.raises(AgiProtocolError, match="520 usage reply over"):
        for _ in range(1_000_000):  # a peer that never sends "520 End of proper usage."
            reader.feed("x" * line_size)
            fed += 1
            assert reader.held <= MAX_USAGE_BYTES
    if limit == "lines":
        assert fed == MAX_USAGE_LINES - 1
    else:
        assert fed * (line_size + 1) <= MAX_USAGE_BYTES < (fed + 2) * (line_size + 1)
    assert reader.held == 0 and reader.held_peak <= MAX_USAGE_BYTES  # what it held is let go


def test_a_520_block_line_longer_than_a_line_is_refused() -> None:
    reader = ReplyReader()
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    with pytest.raises(AgiProtocolError, match="longer than"):
        reader.feed("u" * (MAX_LINE + 1))


def test_a_520_block_within_limits_still_arrives_whole() -> None:
    reader = ReplyReader()
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    for i in range(MAX_USAGE_LINES - 2):
        assert reader.feed(f"usage line {i}") is None
    reply = reader.feed("520 End of proper usage.")
    assert reply is not None and reply.code == 520 and reply.message.count("\n") == MAX_USAGE_LINES - 2
    assert reader.feed("200 result=0") is not None  # the reader goes on with the next command


def test_environment_limits() -> None:
    lines = "".join(f"agi_arg_{i}: x\n" for i in range(1, MAX_ENV_LINES)) + "agi_network_script: ivr\n"
    # As the server reads it: exactly the line limit, plus the terminating empty line.
    assert parse_environment(lines + "\n").script == "ivr"
    with pytest.raises(AgiProtocolError, match="lines"):
        parse_environment("agi_x: 1\n" + lines + "\n")
    long_lines = "".join(f"agi_arg_{i}: " + "a" * (MAX_LINE - 20) + "\n" for i in range(1, 10))
    assert len(long_lines) > MAX_ENV_BYTES  # every line within MAX_LINE, the block over its own limit
    with pytest.raises(AgiProtocolError, match="environment is longer than"):
        parse_environment("agi_network_script: ivr\n" + long_lines + "\n")
