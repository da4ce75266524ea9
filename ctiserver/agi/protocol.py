"""FastAGI wire format: pure parsing and formatting, no sockets.

Shapes come from the captures (02, 03, 13): the environment block is ``agi_key: value`` lines ended by an
empty line; each reply is one line such as ``200 result=53 endpos=13120``, ``200 result= (timeout)``,
``200 result=9705 (timeout) endpos=29600``, ``510 Invalid or unknown command`` or ``511 Command Not
Permitted on a dead channel or intercept routine``. After a hangup, Asterisk sends a bare ``HANGUP`` line
before the next reply. A ``520-`` reply spans several lines until ``520 End of proper usage.``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ivr_flows.channel import AgiReply

# Security limits, as in websockets' read_line(m): whatever a peer sends is bounded before it is kept.
MAX_LINE = 8192  # any line: an environment line, a reply line, a line of a 520 usage block
MAX_ENV_LINES = 200
MAX_ENV_BYTES = 64 * 1024  # the env block in the captures is ~560 bytes; room for long agi_arg_N values
# A 520 reply carries the command's usage text from res_agi's documentation: tens of lines, a few kB.
MAX_USAGE_LINES = 256
MAX_USAGE_BYTES = 64 * 1024
# GET DATA answers with the keys typed, up to its 1024-byte buffer (res_agi.c handle_getdata); every other
# result is an int. endpos is a sample offset, a 64-bit long: 19 digits.
MAX_RESULT_CHARS = 1024
MAX_ENDPOS_DIGITS = 19

# [0-9], not \d: \d also takes other scripts' digits, which int() would then read.
_REPLY = re.compile(r"^([0-9]{3})(?:[ -](.*))?$")
# GET DATA returns the keys as typed, '*' included ("200 result=12*3"); only '#' ends it and is left out.
_RESULT = re.compile(r"^result=(-?[0-9*#]*)(?: \((.*?)\))?(?: endpos=(-?[0-9]+))?\s*$")


__all__ = ["MAX_ENV_BYTES", "MAX_ENV_LINES", "MAX_LINE", "MAX_USAGE_BYTES", "MAX_USAGE_LINES",
           "AgiEnvironment", "AgiProtocolError", "AgiReply", "ReplyReader", "UnsafeAgiArgument",
           "format_command", "parse_environment", "parse_reply", "quote"]


class AgiProtocolError(ValueError):
    """A peer sent something that is not FastAGI."""


class UnsafeAgiArgument(ValueError):
    """A value for an AGI command carries a line break or a control character."""


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    variables: dict[str, str]
    script: str  # the path of agi_network_script without the query ("ivr")
    params: dict[str, str] = field(default_factory=dict)  # the query ("flow=main")
    args: tuple[str, ...] = ()

    @property
    def channel(self) -> str:
        return self.variables.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.variables.get("agi_uniqueid", "")

    @property
    def caller_num(self) -> str:
        return self.variables.get("agi_callerid", "")

    @property
    def caller_name(self) -> str:
        return self.variables.get("agi_calleridname", "")

    @property
    def dnid(self) -> str:
        return self.variables.get("agi_dnid", "")

    @property
    def extension(self) -> str:
        return self.variables.get("agi_extension", "")

    @property
    def language(self) -> str:
        return self.variables.get("agi_language", "en")


def parse_environment(block: str, *, max_bytes: int = MAX_ENV_BYTES) -> AgiEnvironment:
    """Parse the ``agi_*`` block (without or with its terminating empty line)."""
    variables: dict[str, str] = {}
    if len(block) > max_bytes:
        raise AgiProtocolError(f"AGI environment is longer than {max_bytes} bytes")
    lines = block.rstrip("\r\n").split("\n")  # the terminating empty line is not a line of the block
    if len(lines) > MAX_ENV_LINES:
        raise AgiProtocolError(f"AGI environment has {len(lines)} lines (limit {MAX_ENV_LINES})")
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise AgiProtocolError(f"AGI environment line {n} is longer than {MAX_LINE} bytes")
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"AGI environment line {n} is not 'agi_name: value': {line[:80]!r}")
        variables[key] = value.removeprefix(" ")
    if "agi_network_script" not in variables and "agi_request" not in variables:
        raise AgiProtocolError("AGI environment has neither agi_network_script nor agi_request")
    script_path = variables.get("agi_network_script")
    if script_path is None:  # agi_request: agi://host:port/ivr?flow=main
        req = variables["agi_request"]
        script_path = req.split("://", 1)[-1].split("/", 1)[1] if "/" in req.split("://", 1)[-1] else ""
    script, _, query = script_path.partition("?")
    args = tuple(
        variables[f"agi_arg_{i}"] for i in range(1, 100) if f"agi_arg_{i}" in variables
    )
    return AgiEnvironment(variables, script.strip("/"), dict(parse_qsl(query)), args)


def parse_reply(line: str, *, hungup: bool = False) -> AgiReply:
    """Parse one reply line (no trailing newline). ``HANGUP`` lines are handled by the reader."""
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE:
        raise AgiProtocolError(f"AGI reply longer than {MAX_LINE} bytes")
    m = _REPLY.match(line)
    if not m:
        raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}")
    code, rest = int(m.group(1)), m.group(2) or ""
    if code != 200:
        return AgiReply(code=code, message=rest, hungup=hungup)
    r = _RESULT.match(rest)
    if not r:
        raise AgiProtocolError(f"AGI 200 reply without result=: {line[:80]!r}")
    result, endpos_text = r.group(1), r.group(3)
    if len(result) > MAX_RESULT_CHARS:
        raise AgiProtocolError(f"AGI result of {len(result)} characters (limit {MAX_RESULT_CHARS})")
    endpos = None
    if endpos_text is not None:
        # Also keeps int() clear of Python's digit limit, whose ValueError would read as a bug.
        if len(endpos_text.lstrip("-")) > MAX_ENDPOS_DIGITS:
            raise AgiProtocolError(f"AGI endpos of {len(endpos_text)} digits (limit {MAX_ENDPOS_DIGITS})")
        endpos = int(endpos_text)
    return AgiReply(code=200, result=result, data=r.group(2), endpos=endpos, hungup=hungup)


class ReplyReader:
    """Turns the lines Asterisk sends after a command into one AgiReply.

    Fed line by line; ``feed`` returns the reply once complete, else None. Handles the ``HANGUP`` line
    (capture 03) and multi-line ``520-`` usage replies, whose lines and bytes are bounded: a peer that goes
    past a limit gets AgiProtocolError, and what it sent is let go.
    """

    __slots__ = ("_hungup", "_usage", "held", "held_peak", "max_usage_bytes", "max_usage_lines")

    def __init__(self, *, max_usage_lines: int = MAX_USAGE_LINES, max_usage_bytes: int = MAX_USAGE_BYTES) -> None:
        self._hungup = False
        self._usage: list[str] | None = None
        self.max_usage_lines = max_usage_lines
        self.max_usage_bytes = max_usage_bytes
        self.held = 0  # bytes of an unfinished 520 block
        self.held_peak = 0

    def feed(self, line: str) -> AgiReply | None:
        line = line.rstrip("\r\n")
        if len(line) > MAX_LINE:
            self._drop_usage()
            raise AgiProtocolError(f"AGI reply line longer than {MAX_LINE} bytes")
        if self._usage is not None:
            if line.startswith("520 "):
                text = "\n".join(self._usage)
                self._drop_usage()
                return self._done(AgiReply(code=520, message=text))
            self._hold(line)
            return None
        if line == "HANGUP":
            self._hungup = True
            return None
        if line.startswith("520-"):
            self._usage = []
            self._hold(line[4:])
            return None
        return self._done(parse_reply(line))

    def _hold(self, line: str) -> None:
        assert self._usage is not None
        size = len(line.encode("utf-8", "replace")) + 1
        if len(self._usage) >= self.max_usage_lines or self.held + size > self.max_usage_bytes:
            self._drop_usage()
            raise AgiProtocolError(
                f"AGI 520 usage reply over {self.max_usage_lines} lines or {self.max_usage_bytes} bytes"
            )
        self._usage.append(line)
        self.held += size
        self.held_peak = max(self.held_peak, self.held)

    def _drop_usage(self) -> None:
        self._usage = None
        self.held = 0

    def _done(self, reply: AgiReply) -> AgiReply:
        if self._hungup:
            reply = AgiReply(reply.code, reply.result, reply.data, reply.endpos, reply.message, True)
            self._hungup = False
        return reply


def check_argument(value: str) -> str:
    """Refuse anything that could end the command line early or smuggle a second command."""
    for ch in value:
        if ch < " " or ch == "\x7f":
            raise UnsafeAgiArgument(f"AGI argument contains control character {ch!r}")
    return value


def quote(value: str) -> str:
    """Quote an argument the way res_agi's parser expects: double quotes, backslash escapes."""
    check_argument(value)
    if value and not any(c in value for c in ' "\\\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*words: str | int) -> bytes:
    """``format_command("STREAM FILE", "beep", "")`` -> ``b'STREAM FILE beep ""\\n'``.

    The first word is the command verb(s) and is sent as is; every other word is quoted when needed.
    """
    verb, *args = (str(w) for w in words)
    check_argument(verb)
    parts = [verb, *(quote(a) for a in args)]
    return (" ".join(parts) + "\n").encode("utf-8")
