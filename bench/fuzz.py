"""Fuzzing benchmark: generated and mutated inputs through every parser that reads what others send us.

Prints ONE JSON object. Targets, each fed inputs seeded from the real thing:

  ami          AmiParser fed a window of AMI records from the captures, in random splits. Expected: frames or
               AmiProtocolError. The same bytes fed in one read must give the same frames, the same error and
               the same leftover: a difference counts in ami_split_mismatches.
  agi          parse_environment on an agi_* block and ReplyReader/parse_reply on reply lines of the
               captures' FastAGI sessions, split into lines as the server splits them. Expected: parsed
               results or AgiProtocolError.
  websocket    decode_client on console messages (valid ones, mutated), then the error reply and the log
               redaction. Expected: a Command or a ProtocolError whose reply fits the documented error shape.
  flow_yaml    validator.load_checked on mutated flow files. Expected: a Flow or FlowErrors with file:line.
  queues_yaml  acd.config.load_config on mutated queues files. Expected: an AcdConfig or AcdConfigError.
  csv_import   crmstore's import reading and row checks (open_source, rows, validate; no database) on
               mutated customer files in UTF-8, GBK, UTF-16 with BOM and Latin-1. Expected: rows accepted or
               rejected with a reason, or ImportFormatError for the file.
  json_import  the same on JSON customer files, whose values have types and whose history entries nest.

Every message a parser gives back must be one line: a traceback is never an error message.

Mutations: bit flips, random bytes, interesting tokens (CR, LF, NUL, U+2028, BOMs, huge integers, long
strings, deep nesting, tabs, YAML anchors and alias bombs), deletions, duplications, truncation, splicing two
seeds, and per-format ones (JSON values of the wrong type, YAML scalars and keys, CSV cells and encodings).
Input i of a target comes from random.Random seeded by (--seed, target, i // 1000), so a run is reproducible
and ``--replay TARGET:I`` runs one input again with its traceback.

    .venv/bin/python bench/fuzz.py [--quick] [--seed N] [--jobs N] [--inputs N] [--only T,...] [--crashes DIR]

Keys: targets.{name}.{inputs, unexpected_exceptions, slowest_input_ms, slowest_input_index, accepted,
refused, rss_growth_mb, seconds (summed over workers), inputs_per_s}, inputs_per_target, unexpected_exceptions,
max_rss_growth_mb (resident memory from after warm-up to the highest sample, per worker process of 25,000
inputs), slowest_input_ms, ami_split_mismatches, examples (target, index, exception, message, where),
seed_problems (seeds a target refuses: must be empty), crashes_dir (failing inputs, .bin and .json; null when
none), seed, quick, jobs, seconds, load_avg_1m.

The flow loader composes YAML with PyYAML's pure-Python composer (it bounds the nesting depth by hooking
compose_node): a 1-4 kB flow takes milliseconds, so flow_yaml is the slowest target of the full run;
queues files go through libyaml.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import itertools
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acd.config import AcdConfig, load_config
from acd.errors import AcdConfigError
from crmstore.errors import ImportFormatError
from crmstore.import_export import CSV_COLUMNS, ImportRow, validate
from crmstore.import_source import open_source, rows
from ctiserver.agi.protocol import AgiProtocolError, ReplyReader, parse_environment, parse_reply
from ctiserver.ami.protocol import MAX_FRAME, AmiParser, AmiProtocolError, Greeting, MalformedFrame, Message
from ctiserver.callmodel.model import UNUSED_EVENTS
from ctiserver.gateway import schema
from ivr_flows.errors import FlowError
from ivr_flows.validator import FlowCatalog, load_checked
from pbxsim.captures import RECEIVED, Record, captures_dir, read_records

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("ami", "agi", "websocket", "flow_yaml", "queues_yaml", "csv_import", "json_import")
# Flow files go through the pure-Python YAML composer (0.5-200 ms each, 300-435 inputs/s on one core of
# this machine): their million is the longest part of the full run (about 40 core-minutes).
FULL_INPUTS = {"ami": 1_000_000, "agi": 1_000_000, "websocket": 1_000_000, "flow_yaml": 1_000_000,
               "queues_yaml": 1_000_000, "csv_import": 1_000_000, "json_import": 1_000_000}
QUICK_INPUTS = {"ami": 30_000, "agi": 50_000, "websocket": 50_000, "flow_yaml": 2_000, "queues_yaml": 8_000,
                "csv_import": 8_000, "json_import": 5_000}
BLOCK = 1000  # inputs per random.Random seeding
CHUNK_BLOCKS = 25  # blocks per worker task (a fresh process each, so memory growth is per task)
INPUT_TIME_LIMIT_S = 20.0  # an input still running after this is a hang: reported as unexpected
MAX_EXAMPLES = 10  # in the JSON, at most 3 of one target
MAX_SAVED = 100  # failing inputs saved per worker task: a bug that fails every input must not fill the disk
UNMUTATED = 0.06  # share of inputs that are a seed as is (they must be accepted: see --check-seeds)


class BadOutcome(Exception):
    """The parser returned, but not what its contract promises (a message of several lines, no position)."""


class SplitMismatch(Exception):
    """The AMI parser gave a different result for the same bytes read in other pieces."""


class Hang(Exception):
    """An input ran longer than INPUT_TIME_LIMIT_S."""


@dataclass(slots=True)
class Case:
    data: bytes
    params: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ mutations

LONG_CHARS = (b"A", b"9", b" ", b"\t", "字".encode(), b"\\", b"{", b"[", b"-", b"'")
TOKENS: tuple[bytes, ...] = (
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\n\n", b"\x00", b"\t", b" ", b"\x7f", b"\x1b[2J", b"\x0c",
    "\u2028".encode(), "\u2029".encode(), "\ufeff".encode(), "\u202e".encode(), "\u200d".encode(),
    b"\xff", b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe4\xb8",
    "张伟".encode(), "客户".encode("gbk"), "😀".encode(), "é".encode("latin-1"), "\U0010ffff".encode(),
    b"0", b"-1", b"-0", b"1.5", b"2147483648", b"9223372036854775808", b"18446744073709551616", b"1e999",
    b"-1e999", b"NaN", b"Infinity", b"0x1F", b"0o17", b"012", b"1_000", b"190:20:30", b"\xd9\xa3",
    b":", b": ", b"=", b'"', b"'", b"\\", b"{", b"}", b"[", b"]", b",", b"#", b"*", b"&", b"%", b"!", b"|",
    b">", b"- ", b"? ", b"...", b"---", b"~", b"null", b"true", b"yes", b"no", b".inf", b".nan",
)


def long_token(rng: random.Random) -> bytes:
    return rng.choice(LONG_CHARS) * rng.choice((64, 300, 1100, 4500, 9000, 17000, 70000))


def huge_int(rng: random.Random) -> bytes:
    return (b"-" if rng.random() < 0.2 else b"") + b"9" * rng.choice((20, 40, 400, 4301, 5000))


def nesting(rng: random.Random) -> bytes:
    n = rng.choice((10, 70, 100, 999, 1001, 3000))
    return rng.choice((b"[", b"{", b"{a: ", b'{"a":', b"- ", b"(")) * n


def token(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.08:
        return long_token(rng)
    if r < 0.12:
        return huge_int(rng)
    if r < 0.15:
        return nesting(rng)
    return rng.choice(TOKENS)


def mutate_bytes(rng: random.Random, data: bytes, others: list[bytes], tokens: tuple[bytes, ...] = ()) -> bytes:
    """One to four mutations of ``data``; ``others`` for splicing, ``tokens`` the format's own words."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        n = len(buf)
        op = rng.randrange(12)
        pos = rng.randrange(n + 1)
        if op == 0 and n:
            buf[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[min(pos, n - 1)] = rng.randrange(256)
        elif op in (2, 3):
            buf[pos:pos] = token(rng)
        elif op == 4 and tokens:
            buf[pos:pos] = rng.choice(tokens)
        elif op == 5 and n:
            end = min(n, pos + rng.choice((1, 2, 4, 16, 64, n // 4 + 1)))
            del buf[pos:end]
        elif op == 6 and n:
            end = min(n, pos + rng.choice((1, 8, 64, 512)))
            buf[pos:pos] = buf[pos:end] * rng.choice((1, 2, 10))
        elif op == 7:
            del buf[pos:]
        elif op == 8 and others:
            other = rng.choice(others)
            buf[pos:] = other[rng.randrange(len(other) + 1):]
        elif op == 9 and n:  # overwrite with a token
            tok = token(rng)
            buf[pos : pos + len(tok)] = tok
        elif op == 10:  # line level: drop, double or swap lines
            lines = bytes(buf).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            how = rng.randrange(3)
            if how == 0 and len(lines) > 1:
                del lines[i]
            elif how == 1:
                lines.insert(i, lines[j])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\n".join(lines))
        elif op == 11 and tokens:  # replace what follows a separator with one of the format's words
            m = re.compile(rb"(: |=|,)([^\r\n,]*)").search(bytes(buf), pos)
            if m:
                buf[m.start(2) : m.end(2)] = rng.choice(tokens)
    return bytes(buf)


def cuts(rng: random.Random, data: bytes) -> list[int]:
    """Where a reader splits ``data``: anywhere, or next to CR and LF, or every byte."""
    n = len(data)
    if n < 2:
        return []
    r = rng.random()
    if r < 0.04 and n <= 800:
        return list(range(1, n))
    if r < 0.5:
        eol = [i + d for i, b in enumerate(data) if b in (10, 13) for d in (0, 1)]
        if eol:
            return sorted({min(max(1, rng.choice(eol)), n - 1) for _ in range(rng.randint(1, 6))})
    return sorted({rng.randrange(1, n) for _ in range(rng.choice((1, 2, 3, 5, 12)))})


# ------------------------------------------------------------------------------------------ seeds


def _capture_records() -> list[tuple[str, list[Record]]]:
    """Every wire transcript (16-queue_log is a log file, not one)."""
    return [(p.name, read_records(p)) for p in sorted(captures_dir().glob("[0-9]*.txt"))
            if p.read_bytes().startswith(b"### t=")]


class Target:
    name = ""
    tokens: tuple[bytes, ...] = ()

    def generate(self, rng: random.Random) -> Case:
        raise NotImplementedError

    def check(self, case: Case) -> bool:
        """True: accepted, False: refused with the parser's own error. Anything else raises."""
        raise NotImplementedError

    def seeds(self) -> Iterator[Case]:
        """Unmutated inputs that must all be accepted (a check of the seeds themselves)."""
        return iter(())

    def close(self) -> None:
        pass


def one_line(what: str, text: object) -> None:
    if not isinstance(text, str) or not text.strip():
        raise BadOutcome(f"{what}: empty or not a string: {text!r}")
    if "\n" in text or "\r" in text:
        raise BadOutcome(f"{what}: message of several lines: {text[:200]!r}")
    if "Traceback (most recent call last)" in text:
        raise BadOutcome(f"{what}: a traceback as a message")


# ------------------------------------------------------------------------------------------ AMI


def _frame_key(f: object) -> object:
    if isinstance(f, Message):
        rep = tuple((k, tuple(v)) for k, v in f.repeated.items()) if f.repeated else ()
        return ("M", tuple(f.items()), rep, tuple(f.malformed))
    if isinstance(f, (Greeting, MalformedFrame)):
        return f
    raise BadOutcome(f"AmiParser returned a {type(f).__name__}")


class Ami(Target):
    name = "ami"
    tokens = (b"\r\n\r\n", b"\r\n\r\n\r\n", b"Event: ", b"Response: ", b"Asterisk Call Manager/11.0.0\r\n",
              b"ActionID: ", b"Output: ", b"Key:", b"Event: Cdr\r\n", b"Event: VarSet\r\n\r\n", b"\r\n ")

    def __init__(self) -> None:
        self.streams: list[tuple[bool, list[bytes]]] = []  # (starts with the greeting, records)
        for _, records in _capture_records():
            names = {(r.stream, r.direction) for r in records if r.stream.startswith("AMI")}
            for stream, direction in sorted(names):
                payloads = [r.payload for r in records if r.stream == stream and r.direction == direction]
                if payloads:
                    greeted = direction == RECEIVED and payloads[0].startswith(b"Asterisk Call Manager/")
                    self.streams.append((greeted, payloads))
        self.flat = [p for _, ps in self.streams for p in ps]
        self.ignores: tuple[frozenset[str], ...] = (frozenset(), UNUSED_EVENTS, frozenset({"Newexten", "VarSet", "Cdr"}))

    def _window(self, rng: random.Random) -> tuple[bytes, bool]:
        greeted, payloads = rng.choice(self.streams)
        start = 0 if greeted and rng.random() < 0.3 else rng.randrange(len(payloads))
        data = b"".join(payloads[start : start + rng.choice((1, 1, 2, 3, 5, 8))])
        return data, greeted and start == 0

    def generate(self, rng: random.Random) -> Case:
        data, greeting = self._window(rng)
        if rng.random() >= UNMUTATED:
            data = mutate_bytes(rng, data, self.flat, self.tokens)
        small = rng.random() < 0.3
        params = {
            "expect_greeting": greeting or rng.random() < 0.05,
            "max_frame": rng.choice((16, 64, 200, 1000, 4096)) if small else MAX_FRAME,
            "ignore": rng.randrange(len(self.ignores)),
            "cuts": cuts(rng, data),
        }
        return Case(data, params)

    def _parse(self, case: Case, pieces: list[bytes]) -> tuple[list[object], str | None, int, int]:
        p = case.params
        parser = AmiParser(expect_greeting=p["expect_greeting"], max_frame=p["max_frame"],
                           ignore=self.ignores[p["ignore"]])
        frames: list[object] = []
        error = None
        for piece in pieces:
            try:
                frames.extend(_frame_key(f) for f in parser.feed(piece))
            except AmiProtocolError as exc:
                frames.extend(_frame_key(f) for f in exc.frames)
                error = str(exc)
                one_line("AmiProtocolError", error)
                try:
                    parser.feed(b"\r\n\r\n")
                except AmiProtocolError:
                    pass
                else:
                    raise BadOutcome("AmiParser accepted bytes after a protocol error") from None
                break
        return frames, error, parser.ignored, parser.pending

    def check(self, case: Case) -> bool:
        whole = self._parse(case, [case.data])
        bounds = [0, *case.params["cuts"], len(case.data)]
        split = self._parse(case, [case.data[a:b] for a, b in itertools.pairwise(bounds)])
        if split != whole:
            what = ("frames", "error", "ignored", "pending")
            diff = [w for w, a, b in zip(what, whole, split) if a != b]
            raise SplitMismatch(f"split at {case.params['cuts'][:10]} differs in {', '.join(diff)}")
        return whole[1] is None

    def seeds(self) -> Iterator[Case]:
        for greeted, payloads in self.streams:
            data = b"".join(payloads)
            yield Case(data, {"expect_greeting": greeted, "max_frame": MAX_FRAME, "ignore": 0,
                              "cuts": list(range(1, len(data), 1500))})


# ------------------------------------------------------------------------------------------ AGI

USAGE_520 = (b"520-Invalid command syntax.  Proper usage follows:\n"
             b"Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
             b" Stream the given file, and receive DTMF data.\n"
             b"520 End of proper usage.\n")


def read_env_block(data: bytes) -> str | None:
    """The environment block as FastAgiServer._read_env reads it off the socket; None: no ending line."""
    lines: list[bytes] = []
    for line in io.BytesIO(data):
        if not line.endswith(b"\n"):
            return None
        if line in (b"\n", b"\r\n"):
            return b"".join(lines).decode("utf-8", "replace")
        lines.append(line)
    return None


class Agi(Target):
    name = "agi"
    tokens = (b"200 result=", b"200 result=-1 endpos=", b"510 ", b"511 ", b"520-", b"520 ", b"HANGUP\n",
              b" (timeout)", b" endpos=", b"agi_network_script: ", b"agi_request: agi://h/", b"agi_arg_1: ",
              b"?flow=", b"&", b"%00", b"%ZZ", b"agi_", b"result=" + b"1" * 1100)

    def __init__(self) -> None:
        self.envs: list[bytes] = []
        self.sessions: list[list[bytes]] = []
        for _, records in _capture_records():
            streams = sorted({r.stream for r in records if r.stream.startswith("AGI")})
            for stream in streams:
                got = [r.payload for r in records if r.stream == stream and r.direction == RECEIVED]
                if got:
                    self.envs.append(got[0])
                    if len(got) > 1:
                        self.sessions.append(got[1:])
        self.sessions.append(USAGE_520.splitlines(keepends=True))
        self.flat = self.envs + [line for s in self.sessions for line in s]

    def generate(self, rng: random.Random) -> Case:
        if rng.random() < 0.4:
            data = rng.choice(self.envs)
            mode = "env"
        else:
            session = rng.choice(self.sessions)
            start = rng.randrange(len(session))
            data = b"".join(session[start : start + rng.choice((1, 2, 3, 6, 12))])
            mode = "replies"
        if rng.random() >= UNMUTATED:
            data = mutate_bytes(rng, data, self.flat, self.tokens)
        return Case(data, {"mode": mode, "hungup": rng.random() < 0.2})

    def check(self, case: Case) -> bool:
        if case.params["mode"] == "env":
            block = read_env_block(case.data)
            if block is None:
                return False  # the server sees the socket close inside the block
            try:
                env = parse_environment(block)
            except AgiProtocolError as exc:
                one_line("AgiProtocolError", str(exc))
                return False
            _ = (env.script, env.params, env.args, env.channel, env.uniqueid, env.caller_num, env.language)
            return True
        reader = ReplyReader()
        for raw in io.BytesIO(case.data):
            if not raw.endswith(b"\n"):
                break  # EOF inside a line: the read loop stops there
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            try:
                parse_reply(text, hungup=case.params["hungup"])
            except AgiProtocolError as exc:
                one_line("AgiProtocolError", str(exc))
            try:
                reply = reader.feed(text)
            except AgiProtocolError as exc:
                one_line("AgiProtocolError", str(exc))
                return False  # the session drops the peer
            if reply is not None:
                _ = (reply.ok, reply.value, reply.digit, reply.timed_out, reply.dead_channel)
        return True

    def seeds(self) -> Iterator[Case]:
        for env in self.envs:
            yield Case(env, {"mode": "env", "hungup": False})
        for s in self.sessions:
            yield Case(b"".join(s), {"mode": "replies", "hungup": False})


# ------------------------------------------------------------------------------------------ websocket

CALL = "1764312345.12"
WS_SEEDS: tuple[dict[str, Any], ...] = (
    {"v": 1, "type": "auth", "id": 1, "username": "agent1", "password": "s3cret passphrase"},
    {"v": 1, "type": "auth", "id": "a-1", "username": "张伟", "password": "密码"},
    {"v": 1, "type": "resume", "id": "r-1", "token": "abcdefghijklmnop.q-_=", "last_seq": 42, "stream": "1f3a"},
    {"type": "ping"},
    {"v": 1, "type": "logout", "id": 7},
    {"v": 1, "type": "agent_login", "id": 2, "extension": "1001", "queues": ["sales", "support"]},
    {"v": 1, "type": "agent_logout"},
    {"v": 1, "type": "ready", "id": 3},
    {"v": 1, "type": "pause", "id": 4, "reason": "lunch"},
    {"v": 1, "type": "hold", "id": 5, "call_id": CALL},
    {"v": 1, "type": "unhold", "call_id": CALL},
    {"v": 1, "type": "transfer", "id": 6, "call_id": CALL, "mode": "blind", "target_kind": "number",
     "target": "+8613800000001"},
    {"v": 1, "type": "transfer", "call_id": "c1", "mode": "attended", "target_kind": "agent", "target": "agent2"},
    {"v": 1, "type": "transfer_complete", "call_id": "c1"},
    {"v": 1, "type": "transfer_cancel", "call_id": "c1"},
    {"v": 1, "type": "hangup", "call_id": "c1"},
    {"v": 1, "type": "wrapup", "id": 8, "call_id": CALL, "disposition": "resolved", "notes": "客户满意\n\t下次回访",
     "follow_up": {"kind": "callback", "due_at": "2026-11-30T10:00:00+08:00", "note": "call back"}},
    {"v": 1, "type": "search", "id": 9, "q": "张伟", "limit": 10},
    {"v": 1, "type": "dial", "customer_id": 12},
    {"v": 1, "type": "dial", "number": "+8613800000001"},
    {"v": 1, "type": "spy", "agent_id": "agent1", "mode": "whisper", "extension": "2001"},
    {"v": 1, "type": "force_pause", "agent_id": "agent1", "reason": "training"},
    {"v": 1, "type": "force_logout", "agent_id": "agent1"},
    {"v": 1, "type": "move_call", "call_id": CALL, "queue": "vip", "head": True},
)
_ERROR_FIELDS = schema.SERVER_MESSAGES["error"][1]


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value a client should not send (or should, in the wrong place)."""
    r = rng.randrange(22)
    if r == 0:
        return rng.choice((0, -1, 1, 50, 51, 2**53 - 1, 2**53, 2**63, -(2**63) - 1, 10**30))
    if r == 1:
        return int("9" * rng.choice((20, 400, 4000)))
    if r == 2:
        return rng.choice((1.5, -0.0, 1e308, 5e-324, float("nan"), float("inf"), float("-inf"), 1.0))
    if r == 3:
        return rng.choice((True, False, None))
    if r == 4:
        return ""
    if r == 5:
        return rng.choice(("a", "Z", "1")) * rng.choice((31, 32, 33, 64, 65, 100, 101, 257, 2049, 4001, 17000))
    if r == 6:
        return rng.choice(("\x00", "a\nb", "a\r\nb", "\t", "\u2028", "\u2029", "\ud800", "\udfff", "\x7f",
                           "\x85", "\u200b", "\u202e", "\ufeff", "\U000e0001", "\uffff", "a\u0000"))
    if r == 7:
        return rng.choice(("张伟", "김민지", "Ω", "ﷺ", "😀", "e\u0301", "١٢٣", "１００１", "x" * 3 + "😀" * 10))
    if r == 8 and depth < 3:
        return [json_value(rng, depth + 1) for _ in range(rng.choice((0, 1, 2, 51)))]
    if r == 9 and depth < 3:
        return {rng.choice(("a", "type", "v", "id", "", "\x00", "password")): json_value(rng, depth + 1)}
    if r == 10:
        d = rng.choice((2, 50, 500, 900, 1100))
        return json.loads("[" * d + "]" * d) if d < 900 else [[]]  # deeper ones are built as text below
    if r == 11:
        return rng.choice(("sales", "1001", "+86138", CALL, "agent1", "blind", "number", "queue", "listen",
                           "callback", "2026-11-30T10:00:00Z", "2026-13-45T99:99", "1f3a", "ping", "auth"))
    if r == 12:
        return rng.choice(("../../etc", "a b", "a;b", "${x}", "%s", "<script>", "' OR 1=1", "\\", '"', "a/b"))
    return rng.choice(("x", 1, True, None, [], {}, "1", 0.5))


class Websocket(Target):
    name = "websocket"
    tokens = (b'"v":1,', b'"type":"ping",', b'"id":', b'"id":1e400,', b'"v":true,', b'"v":1.0,', b'"type":',
              b"NaN", b"-Infinity", b'"\\ud800"', b'"\\u0000"', b'"\\u2028"', b"[[[[", b"{}", b"null",
              b'"password":"x",', b'"token":', b'"__proto__":{},', b'"type":"auth","type":"ping",')

    def __init__(self) -> None:
        self.texts = [json.dumps(m, ensure_ascii=False).encode() for m in WS_SEEDS]

    def generate(self, rng: random.Random) -> Case:
        r = rng.random()
        if r < UNMUTATED:
            return Case(rng.choice(self.texts), {"binary": False})
        if r < 0.08:
            return Case(rng.choice(self.texts), {"binary": True})
        msg = dict(rng.choice(WS_SEEDS))
        if rng.random() < 0.7:
            for _ in range(rng.choice((1, 1, 2, 3))):
                self._mutate_message(rng, msg)
        try:
            text = json.dumps(msg, ensure_ascii=rng.random() < 0.3)
        except (ValueError, RecursionError):
            text = "{}"
        if rng.random() < 0.05:  # depth beyond what a dict built here holds
            d = rng.choice((900, 1001, 5000))
            text = text[:-1] + ',"x":' + "[" * d + "]" * d + "}"
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.45:
            data = mutate_bytes(rng, data, self.texts, self.tokens)
        return Case(data, {"binary": False})

    def _mutate_message(self, rng: random.Random, msg: dict[str, Any]) -> None:
        op = rng.randrange(6)
        keys = list(msg)
        if op <= 1 and keys:
            key = rng.choice(keys)
            if isinstance(msg[key], dict) and rng.random() < 0.5:
                inner = dict(msg[key])
                inner[rng.choice([*inner, "extra"])] = json_value(rng)
                msg[key] = inner
            else:
                msg[key] = json_value(rng)
        elif op == 2 and keys:
            del msg[rng.choice(keys)]
        elif op == 3:
            msg[rng.choice(("extra", "", "Type", "v ", "\x00", "x" * 300, "字段", "head", "notes"))] = json_value(rng)
        elif op == 4:
            msg["type"] = rng.choice(list(schema.CLIENT_MESSAGES))
        else:
            other = rng.choice(WS_SEEDS)
            msg.update({k: v for k, v in other.items() if rng.random() < 0.5})

    def check(self, case: Case) -> bool:
        text = case.data.decode("utf-8", "replace")
        raw: str | bytes = case.data if case.params["binary"] else text
        got = schema.decode_client(raw)
        if isinstance(got, schema.ProtocolError):
            reply = got.reply()
            for name, value in reply.items():
                spec = _ERROR_FIELDS.get(name)
                if spec is not None and name in ("message", "field", "code"):
                    why = schema.check_value(spec.kind, value, name)
                    if why is not None:
                        raise BadOutcome(f"error reply {why[0]}: {why[1]}: {str(value)[:120]!r}")
            one_line("ProtocolError.message", got.message)
            why_server = schema.validate_server(reply)
            if why_server is not None:
                raise BadOutcome(f"error reply does not match the documented shape: {why_server}")
            schema.encode(reply)
            accepted = False
        elif isinstance(got, schema.Command):
            if got.type not in schema.CLIENT_MESSAGES:
                raise BadOutcome(f"a Command of unknown type {got.type!r}")
            schema.encode(schema.server_message("result", re=got.id))
            accepted = True
        else:
            raise BadOutcome(f"decode_client returned a {type(got).__name__}")
        # Every frame goes through the log filter when debug logging is on.
        redacted = schema.redact(text)
        if not isinstance(redacted, str):
            raise BadOutcome("redact did not return text")
        return accepted

    def seeds(self) -> Iterator[Case]:
        for t in self.texts:
            yield Case(t, {"binary": False})


# ------------------------------------------------------------------------------------------ YAML

YAML_SCALARS: tuple[bytes, ...] = (
    b"~", b"null", b"''", b'""', b"[]", b"{}", b"yes", b"no", b"on", b"off", b"Y", b".inf", b"-.inf", b".nan",
    b".NaN", b"0x1F", b"0o17", b"012", b"0b101", b"1_000", b"190:20:30", b"1e999", b"-1e999", b"1e-999",
    b"-0", b"0", b"-1", b"2025-13-45", b"2026-11-28", b"24:00", b"25:61", b"9" * 30, b"9" * 5000,
    b"&a x", b"*a", b"*nope", b"!!str 5", b"!!int x", b"!!float abc", b"!!binary AAAA", b"!!map {}",
    b"!!python/object:os.system", b"!custom x", b"!!set {a}", b"'quo''ted'", b'"\\u0000"', b'"\\ud800"',
    b'"\\x85"', b'"a\\nb"', b"|\n  block\n", b">-\n  folded\n", b"\t", b"- a\n- b", b"{a: 1, a: 2}",
    b"[*a, *a]", b"<<: *a", b"? [a]\n: 1", b"{[a]: 1}", b"{? {a: 1}: 2}", b"[a, [b, [c]]]", b"'x'" * 40,
    "张伟".encode(), "\u2028".encode(), b"%TAG ! tag:x,2000:", b"--- ", b"...", b"@x", b"`x", b"a: b: c",
)


def alias_bomb(rng: random.Random, where: str) -> tuple[bytes, bytes]:
    """Anchors defined where nobody reads them, then one alias where a builder walks the tree."""
    depth = rng.choice((5, 10, 20, 30))
    wide = rng.choice((2, 3, 9))
    leaf = rng.choice(("{var: x, eq: '1'}", "[a, b]", "lol", "{a: 1}"))
    parts = [f"&b0 {leaf}"]
    key = "all" if rng.random() < 0.5 else "any"
    for i in range(1, depth):
        items = ", ".join([f"*b{i - 1}"] * wide)
        parts.append(f"&b{i} {{{key}: [{items}]}}" if rng.random() < 0.7 else f"&b{i} [{items}]")
    return (f"{where}: [" + ", ".join(parts) + "]\n").encode(), f"*b{depth - 1}".encode()


class YamlTarget(Target):
    """A YAML file target: mutated text, written to a file and loaded by the product's file loader."""

    suffix = ".yaml"
    keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.texts: list[bytes] = []
        self.full: list[bytes] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{self.name}-", dir=_tmp_root()))
        self.path = self.tmp / f"input{self.suffix}"
        self.tokens = YAML_SCALARS + tuple(k.encode() + b": " for k in self.keys)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def generate(self, rng: random.Random) -> Case:
        base = rng.choice(self.full) if rng.random() < 0.1 else rng.choice(self.texts)
        if rng.random() < UNMUTATED:
            return Case(base)
        r = rng.random()
        if r < 0.35:
            data = self._yaml_mutation(rng, base)
        elif r < 0.45:
            data = self._yaml_mutation(rng, self._yaml_mutation(rng, base))
        else:
            data = mutate_bytes(rng, base, self.texts, self.tokens)
        return Case(data)

    def _yaml_mutation(self, rng: random.Random, text: bytes) -> bytes:
        lines = text.split(b"\n")
        i = rng.randrange(len(lines))
        line = lines[i]
        op = rng.randrange(7)
        if op == 0 and b": " in line:  # a scalar of another kind
            head = line.split(b": ", 1)[0]
            lines[i] = head + b": " + rng.choice(YAML_SCALARS)
        elif op == 1 and b":" in line and self.keys:  # a key of another place
            indent = line[: len(line) - len(line.lstrip())]
            rest = line.lstrip().split(b":", 1)[1]
            lines[i] = indent + rng.choice(self.keys).encode() + b":" + rest
        elif op == 2:  # indentation
            lines[i] = rng.choice((b" ", b"  ", b"\t", b"")) + (line.lstrip() if rng.random() < 0.5 else line)
        elif op == 3:
            bomb, alias = alias_bomb(rng, "comment" if self.name == "flow_yaml" else "x_anchors")
            j = rng.randrange(len(lines))
            if b": " in lines[j]:
                lines[j] = lines[j].split(b": ", 1)[0] + b": " + alias
            lines.insert(0, bomb)
        elif op == 4 and b": " in line:  # a value that refers to itself
            head, _ = line.split(b": ", 1)
            lines[i] = head + b": " + rng.choice((b"&r {not: *r}", b"&r {all: [*r]}", b"&r [*r]", b"&r {a: *r}",
                                                   b"&r {var: *r, eq: 1}"))
        elif op == 5:  # an anchor on a value and an alias of it elsewhere
            j = rng.randrange(len(lines))
            if b": " in line and b": " in lines[j] and i != j:
                a, b = min(i, j), max(i, j)
                lines[a] = lines[a].replace(b": ", b": &z ", 1)
                lines[b] = lines[b].split(b": ", 1)[0] + b": *z"
        else:
            lines.insert(i, line)
        return b"\n".join(lines)

    def lines_of(self, data: bytes) -> int:
        """Lines as YAML counts them: CR, LF, CRLF, NEL, LS and PS each end one."""
        return len(_YAML_BREAK.findall(data.decode("utf-8", "replace"))) + 1


_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _tmp_root() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _dump(obj: Any, rng: random.Random) -> bytes:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True,
                          default_flow_style=rng.choice((False, None))).encode()


class FlowYaml(YamlTarget):
    name = "flow_yaml"
    keys = ("flow", "language", "start", "nodes", "subflows", "calendars", "variables", "fallback", "speech",
            "type", "prompts", "next", "options", "key", "keywords", "on_fail", "cases", "when", "default",
            "all", "any", "not", "var", "eq", "in", "gt", "set", "open", "holiday", "queue", "wait_above",
            "timezone", "hours", "holidays", "values", "subflow", "target", "to", "kind", "pattern", "min",
            "max", "retries", "timeout", "skills", "priority", "say", "value", "by", "found", "not_found")

    def __init__(self) -> None:
        super().__init__()
        files = [*sorted((ROOT / "ctiserver/demo/flows").glob("*.yaml")),
                 *sorted((ROOT / "tests/ivr/flows").glob("*.yaml")),
                 *sorted((ROOT / "tests/ivr_sim/flows").glob("*.yaml"))]
        rng = random.Random(0)
        queues: set[str] = set()
        skills: set[str] = set()
        languages: set[str] = set()
        for f in files:
            raw = f.read_bytes()
            self.full.append(raw)
            self.texts.append(raw)
            doc = yaml.safe_load(raw)
            languages.add(doc.get("language", "en-US"))
            # Small flows cut from the big ones: one node, with the nodes it goes to as hang-ups. The
            # pure-Python YAML composer is slow, and most mistakes show in a small file as well.
            for graph in [doc, *(doc.get("subflows") or {}).values()]:
                nodes = graph.get("nodes") or {}
                for name, node in nodes.items():
                    queues.update(str(v) for k, v in node.items() if k == "queue")
                    skills.update(node.get("skills") or ())
                    targets = {str(t) for t in _targets(node) if t in nodes and t != name}
                    mini = {k: v for k, v in doc.items() if k not in ("nodes", "subflows", "start", "comment")}
                    mini["start"] = name
                    mini["nodes"] = {name: node, **{t: {"type": "hangup"} for t in sorted(targets)}}
                    if node.get("type") == "call" and node.get("subflow") in (doc.get("subflows") or {}):
                        mini["subflows"] = {node["subflow"]: doc["subflows"][node["subflow"]]}
                    self.texts.append(_dump(mini, rng))
            queues.add(str((doc.get("fallback") or {}).get("queue", "general")))
            skills.update((doc.get("fallback") or {}).get("skills") or ())
        self.queues, self.skills, self.languages = frozenset(queues), frozenset(skills), frozenset(languages)

    def check(self, case: Case) -> bool:
        self.path.write_bytes(case.data)
        catalog = FlowCatalog(queues=self.queues, skills=self.skills, speech_languages=self.languages)
        flow, errors = load_checked(self.path, catalog)
        if flow is None and not errors:
            raise BadOutcome("no flow and no error")
        last = self.lines_of(case.data)
        for e in errors:
            if not isinstance(e, FlowError):
                raise BadOutcome(f"an error of type {type(e).__name__}")
            if e.file != str(self.path) or not 1 <= e.line <= last + 1 or e.column < 1:
                raise BadOutcome(f"error without a position in the file: {e.file}:{e.line}:{e.column}")
            one_line("FlowError", str(e))
        return flow is not None

    def seeds(self) -> Iterator[Case]:
        for raw in self.full:
            yield Case(raw)


def _targets(node: dict[str, Any]) -> Iterator[object]:
    """Every value of a flow node that may name another node (next, on_fail, cases[].next, options ...)."""
    for key, value in node.items():
        if key in ("next", "on_fail", "default", "found", "not_found", "target"):
            yield value
        elif key in ("cases", "options") and isinstance(value, list):
            yield from (item.get("next") for item in value if isinstance(item, dict))


class QueuesYaml(YamlTarget):
    name = "queues_yaml"
    keys = ("skills", "pause_reasons", "queues", "agents", "priority_aging_per_s", "name", "policy",
            "service_level", "percent", "within_s", "max_wait_s", "on_max_wait", "escalation", "after_s",
            "min_levels", "also_offer_to", "action", "wrap_up_s", "announce_every_s", "short_abandon_s",
            "ring_timeout_s", "sticky_window_s", "default_handle_s", "priority", "vip", "grades", "id",
            "endpoint")

    def __init__(self) -> None:
        super().__init__()
        rng = random.Random(0)
        for f in (ROOT / "ctiserver/demo/queues.yaml", *sorted((ROOT / "acd/examples").glob("*.yaml"))):
            raw = f.read_bytes()
            self.full.append(raw)
            self.texts.append(raw)
            doc = yaml.safe_load(raw)
            for q in doc["queues"]:
                agents = [a for a in doc["agents"] if q["name"] in a.get("queues", ())]
                mini = {"skills": doc["skills"], "pause_reasons": doc["pause_reasons"], "queues": [q],
                        "agents": agents[:2]}
                for step in q.get("escalation") or ():  # overflow targets must exist
                    for name in [*step.get("also_offer_to", ()), str(step.get("action", ""))[6:]]:
                        mini["queues"] += [x for x in doc["queues"] if x["name"] == name and x not in mini["queues"]]
                self.texts.append(_dump(mini, rng))

    def check(self, case: Case) -> bool:
        self.path.write_bytes(case.data)
        try:
            config = load_config(self.path)
        except AcdConfigError as exc:
            if not exc.issues:
                raise BadOutcome("AcdConfigError without issues") from None
            last = self.lines_of(case.data)
            for issue in exc.issues:
                if not 1 <= issue.line <= last + 1:
                    raise BadOutcome(f"issue at line {issue.line} of a {last}-line file: {issue}") from None
                one_line("ConfigIssue", str(issue))
            return False
        if not isinstance(config, AcdConfig):
            raise BadOutcome(f"load_config returned a {type(config).__name__}")
        return True


# ------------------------------------------------------------------------------------------ CSV

CSV_SEEDS = (
    ("姓名,公司,手机,电话,账号,备注,vip,flag_reason\n"
     "张伟,华为技术,13800000001,010-12345678,AC1,老客户,是,董事\n"
     "李娜,腾讯科技,13800000002,,AC2,,,\n"),
    ("name,phones,email,vip,grade\n"
     "Good One,13800000001,a@b.cn,,\n"
     "Bad Phone,12ab,,,\n"
     ",,,,\n"
     "Nobody,,,,\n"
     "Bad Mail,13800000009,not-an-address,,\n"
     "Bad Grade,13800000007,,,Z\n"),
    (",".join(CSV_COLUMNS) + "\n"
     '"Wang Fang","ACME","wang@example.cn","\'+8613900000000;13900000001","AC9;AC10","a;b|c",'
     '"two\r\nlines ""quoted""","zh-CN","evenings","phone","yes","是","","","no","VIP since 2020","A"\n'),
    ("客户名称,手机号,邮箱,标签,等级,语言,联系时间,联系方式\n"
     "王芳,+86 139 0000 0000,wang@例子.中国,重要；长期,b,zh-CN,上午,微信\n"
     "赵敏,13700000000,,,C,,,\n"),
    ("Name,Mobile,Telephone,Account,Tag,Is Lead\n"
     "Kim Minji,+82 10-1234-5678,,K-1,vip,1\n"
     "Lee Junho,010-9876-5432,+82 2 312 3456,,,n\n"),
)
CSV_CELLS = (
    "", " ", "\x00", "a\x00b", "line1\nline2", "line1\r\nline2", "\r", "\n", '"', 'a"b', '"unclosed', "=1+1",
    "'=1+1", "''x", "'", "+8613800000001", "13800000001", "１３８００１３８０００", "+", "--", "0" * 300,
    "9" * 5000, "x" * 70000, "x" * 140000, "\u2028", "\ufeff", "\x85", "\x1b", "是", "否", "maybe", "Y", "✓",
    "a@b", "@b.cn", "a@@b.cn", "a@b..cn", "a@-b.cn", "a@b.123", "A", "z", "D", "anonymous", "1e999", "NaN",
    "\t", "\t=cmd", "a;b;;c", "；、|/", "\\", "张伟" * 20, "e\u0301", "\ud800", "2026-11-28", "+86 (0) 10 1234",
)
CSV_HEADERS = ("name", "姓名", "phones", "手机", "电话", "mobile", "email", "tags", "flags", "id", "__error__",
               "\ufeffname", "Name ", "", "NAME", "vip", "grade", "notes", "purchases", "x" * 200)
ENCODINGS = ("utf-8", "utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "utf-16", "utf-16-le", "latin-1")


class CsvImport(Target):
    name = "csv_import"
    tokens: tuple[bytes, ...] = (b",", b'"', b'""', b"\r\n", b"\n", b"\r", b"\x00", b"\x00\x00", b";", b"\xef\xbb\xbf",
              b"\xff\xfe", b"\xfe\xff", b"\xa1", b"\x81\x30", b"\x80", b"\xc3\x28")

    def __init__(self) -> None:
        self.tables = [list(csv.reader(io.StringIO(t))) for t in CSV_SEEDS]
        self.raw = [t.encode() for t in CSV_SEEDS]
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-csv-", dir=_tmp_root()))
        self.path = self.tmp / "customers.csv"

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def generate(self, rng: random.Random) -> Case:
        table = [list(r) for r in rng.choice(self.tables)]
        mutated = rng.random() >= UNMUTATED
        if mutated:
            for _ in range(rng.choice((1, 1, 2, 3, 6))):
                self._mutate_table(rng, table)
        out = io.StringIO()
        csv.writer(out, quoting=rng.choice((csv.QUOTE_MINIMAL, csv.QUOTE_ALL)),
                   lineterminator=rng.choice(("\r\n", "\n", "\r\n", "\r"))).writerows(table)
        encoding = rng.choice(ENCODINGS) if mutated else rng.choice(("utf-8", "utf-8-sig", "gbk", "utf-16"))
        # Lone surrogates written as UTF-8 bytes make a file that no codec reads.
        errors = "surrogatepass" if encoding.startswith("utf-8") and rng.random() < 0.3 else "replace"
        data = out.getvalue().encode(encoding, errors)
        if mutated and rng.random() < 0.35:
            data = mutate_bytes(rng, data, self.raw, self.tokens)
        return Case(data, {"encoding": encoding})

    def _mutate_table(self, rng: random.Random, table: list[list[str]]) -> None:
        op = rng.randrange(6)
        r = rng.randrange(len(table))
        row = table[r]
        if op <= 2 and row:
            row[rng.randrange(len(row))] = rng.choice(CSV_CELLS) if rng.random() < 0.8 else rng.choice(
                CSV_CELLS) + rng.choice(CSV_CELLS)
        elif op == 3 and table[0]:
            table[0][rng.randrange(len(table[0]))] = rng.choice(CSV_HEADERS)
        elif op == 4:
            if rng.random() < 0.5 and row:
                row.pop()
            else:
                row.append(rng.choice(CSV_CELLS))
        else:
            table.insert(rng.randrange(1, len(table) + 1), list(rng.choice(table)))

    def check(self, case: Case) -> bool:
        self.path.write_bytes(case.data)
        try:
            source = open_source(self.path, CSV_COLUMNS)
            accepted = False
            for n, raw, _ in rows(source, CSV_COLUMNS):
                try:
                    row = validate(n, raw, "CN")
                except ValueError as exc:
                    one_line("rejected row reason", str(exc))
                    continue
                if not isinstance(row, ImportRow):
                    raise BadOutcome(f"validate returned a {type(row).__name__}")
                accepted = True
            return accepted
        except ImportFormatError as exc:
            one_line("ImportFormatError", str(exc))
            return False

    def seeds(self) -> Iterator[Case]:
        for t in CSV_SEEDS:
            yield Case(t.encode(), {"encoding": "utf-8"})


JSON_CUSTOMERS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "张伟", "company": "华为技术", "email": "zhang@example.cn", "phones": ["+8613800000001"],
     "accounts": ["AC1"], "tags": ["老客户", "vip"], "notes": "多行\n备注", "preferred_language": "zh-CN",
     "contact_time": "上午", "contact_channel": "phone", "is_lead": False, "grade": "A",
     "flags": [{"flag": "vip", "reason": "董事"}],
     "purchases": [{"amount": "12345.67", "date": "2025-01-02", "ref": "o1"}],
     "interactions": [{"call_id": "1764312345.12", "direction": "inbound", "outcome": "answered",
                       "caller": "+8613800000001", "started_at": "2026-11-28T09:00:00+08:00",
                       "answered_at": "2026-11-28T09:00:20+08:00", "ended_at": "2026-11-28T09:05:00+08:00",
                       "queue": "support", "agent": "agent1", "wait_s": 20.0, "talk_s": 280.5, "hold_s": 0,
                       "wrapup_s": 30, "disposition": "resolved", "notes": "ok", "ivr_path": ["entry", "menu"],
                       "recording_ref": "rec/1.wav", "survey_score": 5}],
     "tickets": [{"category": "complaint", "subject": "late", "status": "open",
                  "opened_at": "2026-11-28T09:05:00+08:00", "due_at": None, "closed_at": None}],
     "follow_ups": [{"kind": "callback", "owner": "agent1", "due_at": "2026-11-30T10:00:00+08:00",
                     "status": "open", "note": "call back", "source_call_id": "1764312345.12"}]},
    {"name": "Li Na", "phones": ["13900000000", "010-12345678"], "tags": "a;b", "vip": "yes",
     "purchases": [{"amount": 99, "date": "2024-12-31"}]},
    {"name": "", "phones": "13700000000", "key_account": True, "blacklist": "no", "flag_reason": "x"},
)
JSON_DOCS = (
    json.dumps(list(JSON_CUSTOMERS), ensure_ascii=False, indent=1),
    '{"format": "ctiserver-crm", "version": 1, "customers": [\n'
    + ",\n".join(json.dumps(c, ensure_ascii=False) for c in JSON_CUSTOMERS) + "\n]}\n",
)


class JsonImport(CsvImport):
    """The same reading and row checks on JSON customer files, which carry typed values and history."""

    name = "json_import"
    tokens = (b",", b'"', b"{", b"}", b"[", b"]", b":", b"null", b"NaN", b"-Infinity", b"1e400", b"\\u0000",
              b'"\\ud800"', b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b'"customers":', b"[[[[[[[[")

    def __init__(self) -> None:
        super().__init__()
        self.path = self.tmp / "customers.json"
        self.raw = [d.encode() for d in JSON_DOCS]

    def generate(self, rng: random.Random) -> Case:
        if rng.random() < UNMUTATED:
            return Case(rng.choice(self.raw), {"encoding": "utf-8"})
        picked = rng.sample(range(len(JSON_CUSTOMERS)), rng.choice((1, 2, 3)))
        customers = json.loads(json.dumps([JSON_CUSTOMERS[i] for i in sorted(picked)]))
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            self._mutate_customer(rng, rng.choice(customers))
        if rng.random() < 0.3:
            doc: Any = {"format": "ctiserver-crm", "version": 1, "customers": customers}
        else:
            doc = customers
        try:
            text = json.dumps(doc, ensure_ascii=rng.random() < 0.3, indent=rng.choice((None, 1)))
        except (ValueError, RecursionError):
            text = "[]"
        encoding = rng.choice(ENCODINGS)
        data = text.encode(encoding, "surrogatepass" if encoding.startswith("utf-8") else "replace")
        if rng.random() < 0.3:
            data = mutate_bytes(rng, data, self.raw, self.tokens)
        return Case(data, {"encoding": encoding})

    def _mutate_customer(self, rng: random.Random, customer: dict[str, Any]) -> None:
        target = customer
        histories = [k for k in ("flags", "purchases", "interactions", "tickets", "follow_ups") if customer.get(k)]
        if histories and rng.random() < 0.5:
            entries = customer[rng.choice(histories)]
            if isinstance(entries, list) and entries and rng.random() < 0.8:
                i = rng.randrange(len(entries))
                if not isinstance(entries[i], dict) or rng.random() < 0.1:
                    entries[i] = json_value(rng)
                    return
                target = entries[i]
            else:
                customer[rng.choice(histories)] = json_value(rng)
                return
        op = rng.randrange(4)
        if op <= 1 and target:
            target[rng.choice(list(target))] = json_value(rng)
        elif op == 2 and target:
            del target[rng.choice(list(target))]
        else:
            key = rng.choice(("name", "phones", "email", "flags", "purchases", "wait_s", "amount", "date",
                              "extra", "", "started_at", "survey_score", "ivr_path", "kind", "flag"))
            target[key] = json_value(rng)

    def seeds(self) -> Iterator[Case]:
        for raw in self.raw:
            yield Case(raw, {"encoding": "utf-8"})


TARGET_CLASSES: dict[str, Callable[[], Target]] = {
    "ami": Ami, "agi": Agi, "websocket": Websocket, "flow_yaml": FlowYaml, "queues_yaml": QueuesYaml,
    "csv_import": CsvImport, "json_import": JsonImport,
}


# ------------------------------------------------------------------------------------------ running


def rng_for(seed: int, target: str, block: int) -> random.Random:
    return random.Random(f"{seed}:{target}:{block}")


def case_at(target: Target, seed: int, index: int) -> Case:
    rng = rng_for(seed, target.name, index // BLOCK)
    for _ in range(index % BLOCK):
        target.generate(rng)
    return target.generate(rng)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _on_alarm(signum: int, frame: object) -> None:
    raise Hang(f"input still running after {INPUT_TIME_LIMIT_S:g} s")


@dataclass(slots=True)
class Result:
    target: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    unexpected: int = 0
    split_mismatches: int = 0
    slowest_ms: float = 0.0
    slowest_index: int = -1
    rss_growth_mb: float = 0.0
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: Result) -> None:
        self.inputs += other.inputs
        self.accepted += other.accepted
        self.refused += other.refused
        self.unexpected += other.unexpected
        self.split_mismatches += other.split_mismatches
        if other.slowest_ms > self.slowest_ms:
            self.slowest_ms, self.slowest_index = other.slowest_ms, other.slowest_index
        self.rss_growth_mb = max(self.rss_growth_mb, other.rss_growth_mb)
        self.seconds += other.seconds
        self.examples += other.examples


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "/bench/" not in f.filename] or tb
    if not ours:
        return ""
    f = ours[-1]
    return f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}"


def _save(crashes: Path, target: str, index: int, case: Case, exc: BaseException) -> None:
    crashes.mkdir(parents=True, exist_ok=True)
    stem = crashes / f"{target}-{index}"
    stem.with_suffix(".bin").write_bytes(case.data)
    stem.with_suffix(".json").write_text(json.dumps({
        "target": target, "index": index, "params": case.params, "exception": type(exc).__name__,
        "message": str(exc)[:2000], "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }, indent=1, default=str))


def run_range(name: str, seed: int, start: int, stop: int, crashes: Path | None,
              target: Target | None = None) -> Result:
    """Inputs start..stop-1 of one target. ``crashes``: where failing inputs are saved (None: not saved)."""
    own = target is None
    tgt = target or TARGET_CLASSES[name]()
    res = Result(name)
    timed = threading.current_thread() is threading.main_thread()
    if timed:
        old = signal.signal(signal.SIGALRM, _on_alarm)
    warm = start + min(500, max(1, (stop - start) // 10))
    base = peak = 0.0
    t_start = time.perf_counter()
    rng = rng_for(seed, name, start // BLOCK)
    for _ in range(start % BLOCK):
        tgt.generate(rng)
    try:
        for i in range(start, stop):
            if i % BLOCK == 0:
                rng = rng_for(seed, name, i // BLOCK)
            case = tgt.generate(rng)
            t0 = time.perf_counter()
            try:
                if timed:
                    signal.setitimer(signal.ITIMER_REAL, INPUT_TIME_LIMIT_S)
                try:
                    ok = tgt.check(case)
                finally:
                    if timed:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            except Exception as exc:  # noqa: BLE001 - finding these is the point
                if isinstance(exc, SplitMismatch):
                    res.split_mismatches += 1
                else:
                    res.unexpected += 1
                if len(res.examples) < MAX_EXAMPLES:
                    res.examples.append({"target": name, "index": i, "exception": type(exc).__name__,
                                         "message": str(exc)[:300], "where": _where(exc)})
                if crashes is not None and res.unexpected + res.split_mismatches <= MAX_SAVED:
                    _save(crashes, name, i, case, exc)
            else:
                if ok:
                    res.accepted += 1
                else:
                    res.refused += 1
            dt = (time.perf_counter() - t0) * 1000
            if dt > res.slowest_ms:
                res.slowest_ms, res.slowest_index = dt, i
            res.inputs += 1
            if i + 1 == warm:
                gc.collect()
                base = peak = rss_mb()
            elif i > warm and i % 256 == 0:
                peak = max(peak, rss_mb())
        gc.collect()
        if base:
            res.rss_growth_mb = max(peak, rss_mb()) - base
    finally:
        if timed:
            signal.signal(signal.SIGALRM, old)
        if own:
            tgt.close()
    res.seconds = time.perf_counter() - t_start
    return res


def _task(args: tuple[str, int, int, int, str | None]) -> Result:
    name, seed, start, stop, crashes = args
    # re.compile of a flow's collect pattern such as "[[a]" warns (FutureWarning): once per worker is noise.
    warnings.simplefilter("ignore", FutureWarning)
    return run_range(name, seed, start, stop, Path(crashes) if crashes else None)


def check_seeds(names: list[str]) -> list[str]:
    """Every unmutated seed must be accepted: a target that refuses its seeds tests nothing."""
    problems = []
    for name in names:
        tgt = TARGET_CLASSES[name]()
        try:
            for i, case in enumerate(tgt.seeds()):
                try:
                    if not tgt.check(case):
                        problems.append(f"{name} seed {i} is refused")
                except Exception as exc:  # noqa: BLE001 - reported with the seed
                    problems.append(f"{name} seed {i}: {type(exc).__name__}: {exc}")
        finally:
            tgt.close()
    return problems


def run(names: list[str], counts: dict[str, int], seed: int, jobs: int, crashes: Path | None) -> dict[str, Result]:
    tasks = []
    step = BLOCK * CHUNK_BLOCKS
    for name in names:
        n = counts[name]
        tasks += [(name, seed, a, min(n, a + step), str(crashes) if crashes else None) for a in range(0, n, step)]
    # The slow targets first, interleaved, so the last tasks are short ones.
    tasks.sort(key=lambda t: (t[0] not in ("flow_yaml", "queues_yaml", "csv_import", "json_import"), t[2]))
    results = {name: Result(name) for name in names}
    if jobs <= 1:
        for t in tasks:
            results[t[0]].merge(_task(t))
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs, maxtasksperchild=1) as pool:
            for r in pool.imap_unordered(_task, tasks):
                results[r.target].merge(r)
    for r in results.values():
        r.examples.sort(key=lambda e: e["index"])
    return results


def replay(spec: str, seed: int) -> None:
    name, _, index = spec.partition(":")
    tgt = TARGET_CLASSES[name]()
    try:
        case = case_at(tgt, seed, int(index))
        print(f"input ({len(case.data)} bytes, params {case.params}):\n{case.data[:3000]!r}", file=sys.stderr)
        print("accepted" if tgt.check(case) else "refused", file=sys.stderr)
    finally:
        tgt.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="under a minute: fewer inputs, same keys")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    ap.add_argument("--inputs", type=int, default=0, help="inputs per target (default: FULL_INPUTS/QUICK_INPUTS)")
    ap.add_argument("--only", default="", help="comma-separated targets")
    ap.add_argument("--crashes", default="", help="directory for failing inputs (default: a new temp dir)")
    ap.add_argument("--replay", default="", help="TARGET:INDEX: run one input again, with its traceback")
    args = ap.parse_args(argv)
    if args.replay:
        replay(args.replay, args.seed)
        return {}
    names = [n for n in args.only.split(",") if n] or list(TARGETS)
    unknown = [n for n in names if n not in TARGET_CLASSES]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    table = QUICK_INPUTS if args.quick else FULL_INPUTS
    counts = {n: args.inputs or table[n] for n in names}
    crashes = Path(args.crashes) if args.crashes else Path(tempfile.mkdtemp(prefix="fuzz-crashes-"))
    crashes.mkdir(parents=True, exist_ok=True)
    seed_problems = check_seeds(names)
    t0 = time.perf_counter()
    results = run(names, counts, args.seed, args.jobs, crashes)
    seconds = time.perf_counter() - t0
    examples = [e for r in results.values() for e in r.examples[:3]]
    out: dict[str, Any] = {
        "unexpected_exceptions": sum(r.unexpected for r in results.values()),
        "ami_split_mismatches": sum(r.split_mismatches for r in results.values()),
        "max_rss_growth_mb": round(max(r.rss_growth_mb for r in results.values()), 2),
        "slowest_input_ms": round(max(r.slowest_ms for r in results.values()), 2),
        "inputs_per_target": {n: results[n].inputs for n in names},
        "targets": {
            n: {
                "inputs": r.inputs,
                "unexpected_exceptions": r.unexpected,
                "slowest_input_ms": round(r.slowest_ms, 2),
                "slowest_input_index": r.slowest_index,
                "accepted": r.accepted,
                "refused": r.refused,
                "rss_growth_mb": round(r.rss_growth_mb, 2),
                "seconds": round(r.seconds, 1),
                "inputs_per_s": round(r.inputs / r.seconds) if r.seconds else 0,
                **({"split_mismatches": r.split_mismatches} if n == "ami" else {}),
            }
            for n, r in results.items()
        },
        "examples": examples[:MAX_EXAMPLES],
        "seed_problems": seed_problems,
        "crashes_dir": str(crashes),
        "seed": args.seed,
        "quick": args.quick,
        "jobs": args.jobs,
        "seconds": round(seconds, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if not any(crashes.iterdir()) and not args.crashes:
        crashes.rmdir()
        out["crashes_dir"] = None
    print(json.dumps(out, ensure_ascii=False))
    return out


if __name__ == "__main__":
    main()
