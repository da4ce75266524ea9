"""A scripted caller behind an AgiChannel, answering exactly like Asterisk 22 in the captures.

Commands go through the real ``format_command`` (so unsafe values are refused exactly as on the wire) and
every answer is a real reply line fed through the real ``ReplyReader``/``parse_reply``. Reply shapes are
copied from tests/captures 02 and 03:

* STREAM FILE: ``200 result=0 endpos=16589``; key 5 pressed: ``200 result=53 endpos=13120``;
  hang-up during it: ``200 result=-1 endpos=31840``
* GET DATA: ``200 result=1234``; nothing: ``200 result= (timeout)``
* WAIT FOR DIGIT: ``200 result=35`` ('#'); timeout: ``200 result=0``
* RECORD FILE ... s=2 ended by silence: ``200 result=9705 (timeout) endpos=29600``
* listening (capture 23): ``EXEC MixMonitor ,r(<file>.sln48)`` and ``EXEC StopMixMonitor`` answer
  ``200 result=0``; the raw 48 kHz file grows in 32,768-byte steps (Asterisk's stdio buffer) as
  ``WAIT FOR DIGIT 100`` slices pass, and the rest is written when the recording stops; a key in a slice:
  ``200 result=50``; a hang-up: ``200 result=-1``, then ``HANGUP`` and ``511``
* after the hang-up: ``HANGUP`` then ``511 Command Not Permitted on a dead channel or intercept routine``;
  variable commands keep answering ``200``.

The caller's behaviour is a list of actions consumed by the commands that wait for input.
"""

from __future__ import annotations

import asyncio
import shlex
import struct
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ctiserver.agi.protocol import AgiEnvironment, AgiReply, ReplyReader, format_command, parse_environment
from ctiserver.agi.session import AgiChannel, ChannelHungUp

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"

ENV_BLOCK = (
    "agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1:4573/ivr\n"
    "agi_channel: Local/5551000@from-pstn-00000000;2\nagi_language: en\nagi_type: Local\n"
    "agi_uniqueid: 1795389319.1\nagi_version: 22.10.1\nagi_callerid: {caller}\nagi_calleridname: John Doe\n"
    "agi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    "agi_rdnis: unknown\nagi_context: from-pstn\nagi_extension: 5551000\nagi_priority: 3\nagi_enhanced: 0.0\n"
    "agi_accountcode: \nagi_threadid: 140387811735232\n\n"
)


@dataclass(frozen=True)
class Press:
    """One key: interrupts a prompt (if it is an escape digit), answers WAIT FOR DIGIT or a 1-digit GET DATA."""

    key: str


@dataclass(frozen=True)
class Digits:
    """Keys typed during GET DATA."""

    digits: str


@dataclass(frozen=True)
class Silence:
    """The caller says and presses nothing."""


@dataclass(frozen=True)
class Speak:
    """During RECORD FILE (or listening) the caller's audio is this 8 kHz WAV file, ``after`` seconds of
    silence into the listening."""

    wav: Path
    after: float = 0.0


@dataclass(frozen=True)
class Talk:
    """During RECORD FILE the caller talks for this many seconds (a voicemail, a message)."""

    seconds: float


@dataclass(frozen=True)
class HangUp:
    """The caller hangs up during the next command that waits for them."""


Action = Press | Digits | Silence | Speak | Talk | HangUp


def env_for(caller: str = "5551234") -> AgiEnvironment:
    return parse_environment(ENV_BLOCK.format(caller=caller))


def _write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)


@dataclass
class ScriptedChannel:
    """AgiChannel implementation driven by a caller script."""

    actions: list[Action]
    env: AgiEnvironment = field(default_factory=env_for)
    speed: float = 0.0  # seconds of wall time per second of recorded audio (0: as fast as possible)
    sent: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    dead: bool = False
    _hangup_pending: bool = False
    _listen: _Listening | None = None

    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        line = format_command(*words).decode("utf-8")  # raises UnsafeAgiArgument like the real channel
        self.sent.append(line.rstrip("\n"))
        lines = await self._answer(line)
        self.received.extend(lines)
        reader = ReplyReader()
        reply = None
        for ln in lines:
            reply = reader.feed(ln)
        assert reply is not None
        if reply.hungup or reply.dead_channel:
            raise ChannelHungUp(self.env.channel)
        return reply

    # ------------------------------------------------------------------ Asterisk's side
    def _next(self) -> Action:
        # A script that runs out means the caller is gone: tests never spin forever.
        return self.actions.pop(0) if self.actions else HangUp()

    def _peek(self) -> Action | None:
        return self.actions[0] if self.actions else None

    def _die(self) -> None:
        self.dead = True
        self._hangup_pending = True

    async def _answer(self, line: str) -> list[str]:
        argv = shlex.split(line)
        verb = " ".join(argv[:2]).upper()
        if self.dead:
            if argv[0].upper() in ("SET", "GET", "VERBOSE"):
                return ["200 result=1"]
            out = (["HANGUP"] if self._hangup_pending else []) + [DEAD]
            self._hangup_pending = False
            return out
        if argv[0].upper() == "ANSWER":
            return ["200 result=0"]
        if argv[0].upper() == "HANGUP":
            self._die()
            self._hangup_pending = False
            return ["200 result=1"]
        if verb == "STREAM FILE":
            escape = argv[3] if len(argv) > 3 else ""
            nxt = self._peek()
            if isinstance(nxt, Press) and nxt.key in escape:
                self._next()
                return [f"200 result={ord(nxt.key)} endpos=13120"]
            if isinstance(nxt, HangUp):
                self._next()
                self._die()
                return ["200 result=-1 endpos=31840"]
            return ["200 result=0 endpos=16589"]
        if verb == "EXEC MIXMONITOR":
            self._listen = _Listening(Path(argv[2].split("r(", 1)[1].rstrip(")")), self._next())
            return ["200 result=0"]
        if verb == "EXEC STOPMIXMONITOR":
            if self._listen is not None:
                self._listen.close()
                self._listen = None
            return ["200 result=0"]
        if verb == "WAIT FOR" and self._listen is not None:
            act = self._listen.act
            if isinstance(act, Press) and self._listen.waited >= 0.3:
                self._listen.act = Silence()
                return [f"200 result={ord(act.key)}"]
            if isinstance(act, HangUp):
                self._listen.close()
                self._listen = None
                self._die()
                return ["200 result=-1"]
            self._listen.advance(int(argv[3]) / 1000)
            await asyncio.sleep(self.speed * int(argv[3]) / 1000)
            return ["200 result=0"]
        if verb == "WAIT FOR":
            act = self._next()
            if isinstance(act, Press):
                return [f"200 result={ord(act.key)}"]
            if isinstance(act, HangUp):
                self._die()
                return ["200 result=-1"]
            return ["200 result=0"]
        if verb == "GET DATA":
            act = self._next()
            if isinstance(act, Digits):
                typed = act.digits.split("#")[0]  # '#' ends GET DATA and is not part of the result
                return [f"200 result={typed}" if typed else "200 result= (timeout)"]
            if isinstance(act, Press):
                return [f"200 result={act.key}" if act.key != "#" else "200 result="]
            if isinstance(act, HangUp):
                self._die()
                return ["200 result=-1"]
            return ["200 result= (timeout)"]
        if verb == "RECORD FILE":
            return await self._record(argv)
        if verb in ("SAY DIGITS", "SAY NUMBER", "SAY DATE", "SAY ALPHA"):
            return ["200 result=0"]
        if verb == "CHANNEL STATUS":
            return ["200 result=6"]
        if argv[0].upper() in ("SET", "GET", "VERBOSE"):
            return ["200 result=1"]
        return ["510 Invalid or unknown command"]

    async def _record(self, argv: list[str]) -> list[str]:
        base, escape, max_ms = Path(argv[2]), argv[4], int(argv[5])
        silence = next((int(a[2:]) for a in argv[6:] if a.startswith("s=")), 0)
        path = base.with_name(base.name + ".wav")
        act = self._next()
        if isinstance(act, Press) and act.key in escape:
            _write_wav(path, b"")
            return [f"200 result={ord(act.key)} (dtmf) endpos=0"]
        if isinstance(act, HangUp):
            _write_wav(path, b"")
            self._die()
            return ["200 result=-1 (hangup) endpos=0"]
        if isinstance(act, Speak):
            with wave.open(str(act.wav), "rb") as w:
                pcm = w.readframes(w.getnframes())
            pcm += b"\x00\x00" * 8000 * silence  # the caller stops talking; silence detection ends it
        elif isinstance(act, Talk):
            pcm = b"\x10\x00\xf0\xff" * int(4000 * act.seconds)
        else:
            pcm = b"\x00\x00" * 8000 * max(silence, 1)
        pcm = pcm[: max_ms * 16]  # RECORD FILE's timeout caps the recording
        await self._grow(path, pcm)
        samples = len(pcm) // 2
        left = max(0, max_ms - samples // 8) if samples // 8 < max_ms else 0
        return [f"200 result={left} (timeout) endpos={samples}"]

    async def _grow(self, path: Path, pcm: bytes) -> None:
        """Write the recording like Asterisk does: header first, audio appended while the caller talks."""
        _write_wav(path, b"")
        chunk = 1600  # 100 ms of 8 kHz 16-bit audio
        with open(path, "ab") as fh:  # noqa: ASYNC230 - stands in for Asterisk writing its spool file
            for i in range(0, len(pcm), chunk):
                fh.write(pcm[i : i + chunk])
                fh.flush()
                await asyncio.sleep(self.speed * 0.1)
        # Asterisk patches the sizes in the header when the file is closed.
        with open(path, "r+b") as fh:  # noqa: ASYNC230 - as above
            fh.seek(4)
            fh.write(struct.pack("<I", 36 + len(pcm)))
            fh.seek(40)
            fh.write(struct.pack("<I", len(pcm)))


class _Listening:
    """A MixMonitor r() recording into raw 48 kHz audio, written through a 32 KiB buffer like Asterisk."""

    BUFFER = 32768

    def __init__(self, path: Path, act: Action) -> None:
        self.path = path
        self.act = act
        self.waited = 0.0
        pcm = b""
        if isinstance(act, Speak):
            with wave.open(str(act.wav), "rb") as w:
                pcm = b"\x00\x00" * int(8000 * act.after) + w.readframes(w.getnframes())
        elif isinstance(act, Talk):
            pcm = b"\x10\x00\xf0\xff" * int(4000 * act.seconds)
        self.voice = pcm
        self.at = 0  # 8 kHz samples recorded
        self.buffered = bytearray()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    def advance(self, seconds: float) -> None:
        self.waited += seconds
        n = int(8000 * seconds)
        chunk = self.voice[2 * self.at : 2 * (self.at + n)]
        chunk += b"\x00\x00" * (n - len(chunk) // 2)
        self.at += n
        samples = struct.unpack(f"<{n}h", chunk)
        self.buffered += struct.pack(f"<{6 * n}h", *(x for x in samples for _ in range(6)))
        full = len(self.buffered) - len(self.buffered) % self.BUFFER
        if full:
            with open(self.path, "ab") as fh:
                fh.write(self.buffered[:full])
            del self.buffered[:full]

    def close(self) -> None:
        with open(self.path, "ab") as fh:
            fh.write(self.buffered)
        self.buffered.clear()


ChannelFactory = Callable[[Sequence[Action]], AgiChannel]


def scripted(actions: Sequence[Action], caller: str = "5551234", speed: float = 0.0) -> ScriptedChannel:
    return ScriptedChannel(list(actions), env_for(caller), speed)
