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

# A security limit, as in websockets' read_line(m): an env block or reply line longer than this is an error.
MAX_LINE = 8192
MAX_ENV_LINES = 200

_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")
# GET DATA returns the keys as typed, '*' included ("200 result=12*3"); only '#' ends it and is left out.
_RESULT = re.compile(r"^result=(-?[0-9*#]*)(?: \((.*?)\))?(?: endpos=(-?\d+))?\s*$")


__all__ = ["AgiEnvironment", "AgiProtocolError", "AgiReply", "ReplyReader", "UnsafeAgiArgument",
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


def parse_environment(block: str) -> AgiEnvironment:
    """Parse the ``agi_*`` block (without or with its terminating empty line)."""
    variables: dict[str, str] = {}
    lines = block.split("\n")
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
    endpos = int(r.group(3)) if r.group(3) is not None else None
    return AgiReply(code=200, result=r.group(1), data=r.group(2), endpos=endpos, hungup=hungup)


class ReplyReader:
    """Turns the lines Asterisk sends after a command into one AgiReply.

    Fed line by line; ``feed`` returns the reply once complete, else None. Handles the ``HANGUP`` line
    (capture 03) and multi-line ``520-`` usage replies.
    """

    __slots__ = ("_hungup", "_usage")

    def __init__(self) -> None:
        self._hungup = False
        self._usage: list[str] | None = None

    def feed(self, line: str) -> AgiReply | None:
        line = line.rstrip("\r\n")
        if self._usage is not None:
            if line.startswith("520 "):
                text = "\n".join(self._usage)
                self._usage = None
                return self._done(AgiReply(code=520, message=text))
            self._usage.append(line)
            return None
        if line == "HANGUP":
            self._hungup = True
            return None
        if line.startswith("520-"):
            self._usage = [line[4:]]
            return None
        return self._done(parse_reply(line))

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
