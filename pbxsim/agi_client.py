"""The Asterisk side of FastAGI: connect to agi://host:port/script, send the environment, run commands.

Reply shapes, the HANGUP line, the 511s after a hangup, AGIExecStart/End and AGISTATUS follow captures
02, 03, 13 and 13b; prompts that are not installed (STREAM FILE, GET DATA, GET OPTION, CONTROL STREAM FILE)
follow capture 14.
"""

from __future__ import annotations

import asyncio
import random
import shlex
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from pbxsim import wire
from pbxsim.channels import HUNGUP, INTERRUPTED, STREAM_STOPPED, Channel
from pbxsim.dialplan import split_args
from pbxsim.mixmonitor import FRAME, LiveRecording
from pbxsim.prompts import DIGIT_SECONDS, moh_class, samples
from pbxsim.world import World

AGI_VERSION = "22.10.1"
CONNECT_TIMEOUT = 5.0
MAX_COMMAND = 8192
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
DEAD_TEXT = "Command Not Permitted on a dead channel or intercept routine"
# Commands res_agi allows on a dead channel (its "dead" column).
DEAD_OK = {"SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "DATABASE PUT", "DATABASE GET",
           "DATABASE DEL", "DATABASE DELTREE", "NOOP", "ASYNCAGI BREAK"}
VERBS = ["ANSWER", "STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "GET OPTION", "WAIT FOR DIGIT",
         "SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY DATE", "SAY TIME", "SAY DATETIME", "SET VARIABLE",
         "GET VARIABLE", "GET FULL VARIABLE", "CHANNEL STATUS", "VERBOSE", "RECORD FILE", "EXEC",
         "DATABASE PUT", "DATABASE GET", "DATABASE DEL", "DATABASE DELTREE", "HANGUP", "NOOP",
         "SET CONTEXT", "SET EXTENSION", "SET PRIORITY", "SET MUSIC", "SET CALLERID", "ASYNCAGI BREAK"]


class DialplanApps(Protocol):
    """What a FastAGI session needs of the dialplan applications (apps.Apps): ANSWER, prompts and EXEC."""

    def exists(self, app: str) -> bool: ...

    async def run(self, chan: Channel, app: str, data: str) -> Any: ...

    def do_answer(self, chan: Channel) -> None: ...

    async def play(self, chan: Channel, name: str, *, digits: str = "",
                   controls: bool = False) -> tuple[str | None, float]: ...


def split_command(line: str) -> tuple[str, list[str]]:
    """("STREAM FILE", ["custom/welcome", "0123456789#*"]) from the command line, res_agi style quoting."""
    try:
        words = shlex.split(line, posix=True)
    except ValueError:
        words = line.split()
    upper = [w.upper() for w in words]
    for n in (3, 2, 1):
        verb = " ".join(upper[:n])
        if verb in VERBS:
            return verb, words[n:]
    return line.strip().upper(), []


class AgiRun:
    def __init__(self, world: World, apps: DialplanApps, chan: Channel, url: str, args: list[str]) -> None:
        self.world = world
        self.apps = apps
        self.chan = chan
        self.url = url
        self.args = args
        self.hangup_sent = False
        self.pending = b""
        self.gen = chan.pbx_gen

    @property
    def zombie(self) -> bool:
        """AMI Bridge yanked the channel away: this session now talks to a zombie (World.yank_into_bridge)."""
        return self.chan.pbx_gen != self.gen

    @property
    def dead(self) -> bool:
        # A Redirect is an async goto, a soft hangup res_agi reports like a real one (HANGUP, then 511s).
        return self.chan.hungup or self.zombie or self.chan.interrupt is not None

    def event(self, name: str, *extra: tuple[str, str]) -> None:
        if not self.zombie:  # the zombie's events are not the caller's
            self.world.chan_event(name, self.chan, *extra)

    def env_block(self, script: str) -> bytes:
        c = self.chan
        unknown = "unknown"
        lines = [
            ("agi_network", "yes"), ("agi_network_script", script), ("agi_request", self.url),
            ("agi_channel", c.name), ("agi_language", c.language), ("agi_type", c.tech),
            ("agi_uniqueid", c.uniqueid), ("agi_version", AGI_VERSION),
            ("agi_callerid", c.cid_num if c.cid_num != "<unknown>" else unknown),
            ("agi_calleridname", c.cid_name if c.cid_name != "<unknown>" else unknown),
            ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
            ("agi_callingtns", "0"), ("agi_dnid", c.variables.get("__DID", unknown)), ("agi_rdnis", unknown),
            ("agi_context", c.context), ("agi_extension", c.exten), ("agi_priority", str(c.priority)),
            ("agi_enhanced", "0.0"), ("agi_accountcode", c.accountcode),
            ("agi_threadid", str(140000000000000 + threading.get_ident() % 10**9 + random.randrange(10**6))),
        ]
        lines += [(f"agi_arg_{i}", a) for i, a in enumerate(self.args, 1)]
        text = "".join(f"{k}: {_one_line(v)}\n" for k, v in lines) + "\n"
        return text.encode("utf-8")

    async def run(self) -> None:
        w, chan = self.world, self.chan
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 4573
        if w.agi_host_override is not None:
            host, port = w.agi_host_override
        script = self.url.split("://", 1)[-1].split("/", 1)[1] if "/" in self.url.split("://", 1)[-1] else ""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            w.set_var(chan, "AGISTATUS", "FAILURE")  # no AGIExecStart at all (capture 13b)
            return
        chan.agi_active = True
        status = "SUCCESS"
        try:
            writer.write(self.env_block(script))
            await writer.drain()
            while True:
                try:
                    raw = self.pending + await reader.readuntil(b"\n") if self.pending != b"\n" else b"\n"
                    self.pending = b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except asyncio.LimitOverrunError:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    continue
                await self.command(line, reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            zombie = self.zombie
            if not zombie:
                chan.agi_active = False
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            if chan.hungup:
                status = "HANGUP"
            if not chan.dead and not zombie:
                w.set_var(chan, "AGISTATUS", status)
            chan.wake()

    async def command(self, line: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        w, chan = self.world, self.chan
        verb, args = split_command(line)
        command_id = str(random.randrange(1, 2**31))
        self.event("AGIExecStart", ("CommandId", command_id), ("Command", line))
        chan.stream_stop = False  # res_agi read and dropped it while waiting for this command (capture 24 B)
        dead = self.dead
        if dead and not self.hangup_sent:
            self.hangup_sent = True
            writer.write(b"HANGUP\n")  # before the next reply after a hangup (capture 03)
        # EXEC runs on a dead channel: StopMixMonitor after a hang-up answers HANGUP, then 200 (capture 23 C).
        stop_mix = verb == "EXEC" and bool(args) and args[0].lower() == "stopmixmonitor"
        if dead and verb not in DEAD_OK and verb in VERBS and not stop_mix:
            self.event("AGIExecEnd", ("CommandId", command_id), ("Command", line),
                       ("ResultCode", "511"), ("Result", DEAD_TEXT))
            writer.write((DEAD + "\n").encode())
            await writer.drain()
            return
        if self.zombie and verb in DEAD_OK:
            # Variable and database commands act on the zombie's copy, not on the live channel.
            value = w.read_var(chan, args[0]) if verb.startswith("GET") and args else None
            reply = f"200 result=1 ({value})" if value else ("200 result=0" if verb.startswith("GET") else
                                                             "200 result=1")
            writer.write((reply + "\n").encode())
            await writer.drain()
            return
        # The FastAGI server may close while a command runs: Asterisk stops at once (capture 13).
        eof = asyncio.ensure_future(reader.read(1))
        work = asyncio.ensure_future(self.execute(verb, args, line))
        try:
            await asyncio.wait([eof, work], return_when=asyncio.FIRST_COMPLETED)
            if eof.done() and not work.done() and not eof.cancelled() and eof.result():
                self.pending += eof.result()  # a pipelined byte, not a close
                await work
        finally:
            if not work.done():
                work.cancel()
                try:
                    await work
                except asyncio.CancelledError:
                    pass
                self.event("AGIExecEnd", ("CommandId", command_id), ("Command", line),
                           ("ResultCode", "200"), ("Result", "Success"))
                raise ConnectionResetError("FastAGI server closed mid-command")
            if not eof.done():
                eof.cancel()
                try:
                    await eof
                except asyncio.CancelledError:
                    pass
            elif not eof.cancelled() and eof.exception() is None and eof.result() and not self.pending:
                self.pending += eof.result()
        code, reply, result_text = work.result()
        self.event("AGIExecEnd", ("CommandId", command_id), ("Command", line),
                   ("ResultCode", code), ("Result", result_text))
        writer.write((reply + "\n").encode("utf-8"))
        await writer.drain()

    async def execute(self, verb: str, args: list[str], line: str) -> tuple[str, str, str]:
        w, chan = self.world, self.chan
        apps = self.apps
        if verb == "ANSWER":
            apps.do_answer(chan)
            return _ok("0")
        if verb in ("STREAM FILE", "CONTROL STREAM FILE", "GET OPTION") and not w.sounds.exists(args[0] if args else ""):
            return self.missing_prompt(verb)
        if verb in ("STREAM FILE", "CONTROL STREAM FILE"):
            name = args[0] if args else ""
            escape = args[1] if len(args) > 1 else ""
            r, played = await apps.play(chan, name, digits=escape, controls=True)
            endpos = samples(played)
            if r == STREAM_STOPPED:
                # AMI ControlPlayback stop (capture 24 A): STREAM FILE ends as if finished, endpos in
                # samples; CONTROL STREAM FILE says REMOTESTOPPED and its endpos is in milliseconds.
                if verb == "CONTROL STREAM FILE":
                    w.set_var(chan, "CPLAYBACKSTATUS", "REMOTESTOPPED")
                    w.set_var(chan, "CPLAYBACKOFFSET", str(int(played * 1000)))
                    return _ok("0", f" endpos={int(played * 1000)}")
                w.set_var(chan, "PLAYBACKSTATUS", "SUCCESS")
                return _ok("0", f" endpos={endpos}")
            if r == HUNGUP or r == INTERRUPTED:
                if not self.zombie:
                    w.set_var(chan, "PLAYBACKSTATUS", "FAILED")
                return "-1", f"200 result=-1 endpos={endpos}", "Failure"
            w.set_var(chan, "PLAYBACKSTATUS", "FAILED" if r else "SUCCESS")
            return _ok(str(ord(r)) if r else "0", f" endpos={endpos}")
        if verb == "GET DATA":
            return await self.get_data(args)
        if verb == "GET OPTION":
            return await self.get_option(args)
        if verb == "WAIT FOR DIGIT":
            timeout_ms = int(args[0]) if args and args[0].lstrip("-").isdigit() else -1
            for obs in chan.observers:
                obs.input_wanted(chan, 1)
            r = await chan.wait_for(None if timeout_ms < 0 else timeout_ms / 1000, digits=True, controls=True)
            if r == HUNGUP or r == INTERRUPTED:
                return "-1", "200 result=-1", "Failure"
            if r == STREAM_STOPPED:
                return _ok("1000")  # the control frame's number, AST_CONTROL_STREAM_STOP (capture 24 B)
            return _ok(str(ord(r)) if r else "0")
        if verb in ("SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY DATE", "SAY TIME", "SAY DATETIME"):
            text = args[0] if args else ""
            count = len(text) if verb in ("SAY DIGITS", "SAY ALPHA") else max(1, min(6, len(text)))
            escape = args[1] if len(args) > 1 else ""
            r = await chan.wait_for(DIGIT_SECONDS * count, digits=bool(escape))
            if r == HUNGUP or r == INTERRUPTED:
                return "-1", "200 result=-1", "Failure"
            return _ok(str(ord(r)) if r else "0")
        if verb == "SET VARIABLE":
            if len(args) >= 1:
                w.set_var(chan, args[0], args[1] if len(args) > 1 else "")
            return _ok("1")
        if verb == "GET VARIABLE":
            value = w.read_var(chan, args[0]) if args else None
            return _ok("0") if value is None else _ok("1", f" ({value})")
        if verb == "GET FULL VARIABLE":
            value = w.expand(chan, args[0]) if args else ""
            return _ok("1", f" ({value})")
        if verb == "CHANNEL STATUS":
            return _ok(str(chan.state))
        if verb in ("VERBOSE",):
            return _ok("1")
        if verb == "NOOP":
            return _ok("0")
        if verb == "RECORD FILE":
            return await self.record(args)
        if verb == "EXEC":
            app = args[0] if args else ""
            data = " ".join(args[1:])
            if not apps.exists(app):
                return "200", "200 result=-2", "Unknown Result"
            target = await apps.run(chan, app, data.replace("|", ","))
            if app.lower() == "stopmixmonitor":
                return _ok("0")
            if isinstance(target, tuple) and not self.zombie:
                # EXEC Goto moves the channel's place (ast_explicit_goto stores priority - 1 while the pbx
                # loop runs): when the AGI script ends, the dialplan continues at the target.
                chan.context, chan.exten, chan.priority = target[0], target[1], target[2] - 1
            return _ok("-1" if chan.hungup else "0")
        if verb == "DATABASE PUT":
            if len(args) >= 3:
                w.astdb[(args[0], args[1])] = args[2]
            return _ok("1")
        if verb == "DATABASE GET":
            value = w.astdb.get((args[0], args[1])) if len(args) >= 2 else None
            return _ok("0") if value is None else _ok("1", f" ({value})")
        if verb in ("DATABASE DEL", "DATABASE DELTREE"):
            existed = len(args) >= 2 and w.astdb.pop((args[0], args[1]), None) is not None
            return _ok("1" if existed else "0")
        if verb == "HANGUP":
            # res_agi's HANGUP is a soft hangup with AST_SOFTHANGUP_EXPLICIT (32), which SoftHangupRequest
            # reports as its Cause; no Q.850 cause is set, so the Hangup says 0 / Unknown once the AGI
            # returns (a real 22.10.1: a blacklisted caller refused by the IVR).
            w.chan_event("SoftHangupRequest", chan, ("Cause", "32"))
            w.soft_hangup(chan, None)
            return _ok("1")
        if verb in ("SET CONTEXT", "SET EXTENSION", "SET PRIORITY"):
            return _ok("0")
        if verb == "SET CALLERID":
            return _ok("1")
        if verb == "SET MUSIC":
            on = bool(args) and args[0].lower() == "on"
            if on and chan.moh is None:
                chan.moh = moh_class(args[1] if len(args) > 1 else "")
                w.chan_event("MusicOnHoldStart", chan, ("Class", chan.moh))
            elif not on and chan.moh is not None:
                chan.moh = None
                w.chan_event("MusicOnHoldStop", chan)
            return _ok("0")
        return "510", "510 Invalid or unknown command", "Invalid or unknown command"

    def missing_prompt(self, verb: str) -> tuple[str, str, str]:
        """A prompt that is not installed, on a live channel (capture 14): the command fails at once with
        result=-1, which is also what a hang-up gives; only the shape of endpos differs."""
        if verb == "CONTROL STREAM FILE":
            self.world.set_var(self.chan, "CPLAYBACKSTATUS", "ERROR")
            self.world.set_var(self.chan, "CPLAYBACKOFFSET", "-1")
            return "-1", "200 result=-1 endpos=-1", "Failure"
        return "-1", "200 result=-1 endpos=0", "Failure"  # STREAM FILE, GET OPTION

    async def get_option(self, args: list[str]) -> tuple[str, str, str]:
        """GET OPTION <file> <escape digits> [timeout ms]: STREAM FILE, then a wait for one of the digits
        (res_agi's default wait is the dialplan's digit timeout, 5 s)."""
        chan = self.chan
        name = args[0] if args else ""
        escape = args[1] if len(args) > 1 else ""
        timeout_ms = int(args[2]) if len(args) > 2 and args[2].lstrip("-").isdigit() else 5000
        r, played = await self.apps.play(chan, name, digits=escape)
        endpos = samples(played)
        if r == HUNGUP or r == INTERRUPTED:
            return "-1", f"200 result=-1 endpos={endpos}", "Failure"
        while r is None and escape and timeout_ms > 0:
            r = await chan.wait_for(timeout_ms / 1000, digits=True)
            if r == HUNGUP or r == INTERRUPTED:
                return "-1", f"200 result=-1 endpos={endpos}", "Failure"
            if r is None or r in escape:
                break
            r = None  # a key that is not an escape digit is ignored
        return _ok(str(ord(r)) if r else "0", f" endpos={endpos}")

    async def get_data(self, args: list[str]) -> tuple[str, str, str]:
        chan = self.chan
        name = args[0] if args else ""
        timeout = int(args[1]) / 1000 if len(args) > 1 and args[1].isdigit() else 6.0
        max_digits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        if not self.world.sounds.exists(name):
            return "200", "200 result=-1", "Success"  # no endpos, and no wait for keys (capture 14)
        r, _ = await self.apps.play(chan, name, digits="0123456789*#")
        got = ""
        if r == HUNGUP or r == INTERRUPTED:
            return "-1", "200 result=-1", "Failure"
        if r is not None:
            if r == "#":
                return _ok("")
            got += r
        while len(got) < max_digits:
            r = await chan.wait_for(timeout, digits=True)
            if r == HUNGUP or r == INTERRUPTED:
                return "-1", "200 result=-1", "Failure"
            if r is None:
                return "200", f"200 result={got} (timeout)", "Success"
            if r == "#":
                break
            got += r
        return _ok(got)

    async def record(self, args: list[str]) -> tuple[str, str, str]:
        """RECORD FILE as res_agi does it (captures 02 and 23 E): the file is opened without making its
        directory (``(writefile)`` when it cannot be); the silence limit counts from the start of the
        recording, so a caller who starts later than s= seconds finds it over; on silence the last
        s-1 seconds are cut off, on a key the last 0.2 s; the file grows while the caller talks."""
        w, chan = self.world, self.chan
        path = args[0] if args else "/tmp/recording"
        fmt = args[1] if len(args) > 1 else "wav"
        escape = args[2] if len(args) > 2 else ""
        timeout_ms = int(args[3]) if len(args) > 3 and args[3].lstrip("-").isdigit() else -1
        rest = args[4:]
        beep = any(a.upper() == "BEEP" for a in rest)
        silence = next((float(a[2:]) for a in rest if a.lower().startswith("s=")), None)
        if beep:
            r, _ = await self.apps.play(chan, "beep")
            if r == HUNGUP:
                return "-1", "200 result=-1 (hangup) endpos=0", "Failure"
        target = f"{path}.{fmt}"
        if not Path(target).parent.is_dir():
            return "-1", "200 result=-1 (writefile)", "Failure"
        recording = LiveRecording(target, w.vnow())
        for obs in chan.observers:
            obs.record_started(chan)
        start = w.vnow()
        limit = None if timeout_ms < 0 else timeout_ms / 1000
        outcome = "timeout"
        digit = ""
        while True:
            now = w.vnow()
            recording.write_until(now, lambda t0, first, n: w.voice(chan, t0, first, n))
            elapsed = now - start
            if limit is not None and elapsed >= limit:
                break
            speaking, last_end = chan.heard_speech_until(now)
            quiet_since = max(start, last_end) if last_end is not None and last_end > start else start
            if silence is not None and not speaking and now - quiet_since >= silence:
                outcome = "silence"
                break
            waits = [FRAME * 5]  # the file grows while waiting
            if limit is not None:
                waits.append(limit - elapsed)
            if silence is not None and not speaking:
                waits.append(silence - (now - quiet_since))
            if speaking:
                end_of_voice = next(a.start + a.speech for a in chan.audio if a.start <= now < a.start + a.speech)
                waits.append(end_of_voice - now)
            r = await chan.wait_for(max(0.0, min(waits)), digits=bool(escape))
            if r == HUNGUP or r == INTERRUPTED:
                outcome = "hangup"
                break
            if r is not None and r in escape:
                outcome, digit = "dtmf", r
                break
        now = w.vnow()
        recording.write_until(now, lambda t0, first, n: w.voice(chan, t0, first, n))
        elapsed = now - start
        cut = {"silence": max(0.0, (silence or 1.0) - 1.0), "dtmf": 0.2}.get(outcome, 0.0)
        kept = max(0.0, elapsed - cut)
        endpos = recording.close(keep_samples=samples(kept))  # ast_tellstream: what the file holds
        if outcome == "hangup":
            return "-1", f"200 result=-1 (hangup) endpos={endpos}", "Failure"
        if outcome == "dtmf":
            return _ok(str(ord(digit)), f" (dtmf) endpos={endpos}")
        left = 0 if limit is None else max(0, int((limit - elapsed) * 1000))
        return "200", f"200 result={left} (timeout) endpos={endpos}", "Success"


def _ok(result: str, tail: str = "") -> tuple[str, str, str]:
    return "200", f"200 result={result}{tail}", "Success"


def _one_line(value: str) -> str:
    return wire.escape_value(value)


async def run_agi(world: World, apps: DialplanApps, chan: Channel, data: str) -> None:
    args = split_args(data)
    url = args[0].strip()
    if not url.startswith("agi://"):
        world.set_var(chan, "AGISTATUS", "FAILURE")  # only FastAGI is simulated
        return
    await AgiRun(world, apps, chan, url, [a for a in args[1:]]).run()
