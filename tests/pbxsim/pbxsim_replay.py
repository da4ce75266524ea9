"""Replay the CTI side of a capture against the simulator and compare what comes back.

The AMI driver sends each ``>>>`` action once the simulator has sent as many frames on that stream as
Asterisk had (and after the capture's gap, scaled); the FastAGI side is a real server on loopback that
sends the capture's commands one by one. The comparison is per owner (the channel a frame is about, or
the action it answers): same event names, same header names in the same order, and the same values for
the headers that carry structure. Frames whose position is documented as nondeterministic (Cdr,
DeviceStateChange, OriginateResponse, security events) are matched as a multiset per owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import Record, capture
from pbxsim.simulator import Simulator

DIALPLAN = Path(__file__).resolve().parents[2] / "pbxsim" / "dialplans" / "captures.conf"
FLOATING = {"Cdr", "DeviceStateChange", "OriginateResponse", "SuccessfulAuth", "InvalidPassword",
            "RequestNotAllowed", "RequestBadFormat"}
OWNER_KEYS = ("Channel", "DestChannel", "LocalOneChannel", "SpyerChannel", "TransfererChannel",
              "OrigTransfererChannel", "ParkeeChannel")
# Values that must match exactly; ids are compared through their first-appearance rank.
VALUE_KEYS = ("Event", "Response", "Channel", "DestChannel", "ChannelState", "Context", "Exten", "Priority",
              "Cause", "Reason", "DialStatus", "Application", "Variable", "EventList", "ListItems",
              "LocalOneChannel", "LocalTwoChannel", "Digit", "Direction", "ResultCode", "Class", "State")
ID_KEYS = ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "LocalOneUniqueid", "LocalOneLinkedid",
           "LocalTwoUniqueid", "LocalTwoLinkedid")


@dataclass
class StreamLog:
    frames: list[Message] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


def ami_frames(records: list[Record], stream: str) -> list[Message]:
    parser = AmiParser(expect_greeting=True)
    out: list[Message] = []
    for r in records:
        if r.stream == stream and r.direction == "<<<":
            out += [f for f in parser.feed(r.payload) if isinstance(f, Message)]
    return out


async def _agi_server(records: list[Record], scale: float, got: dict[str, list[bytes]]) -> asyncio.Server:
    streams = [s for s in dict.fromkeys(r.stream for r in records if r.stream.startswith("AGI"))]
    queue = list(streams)

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = queue.pop(0)
        recs = [r for r in records if r.stream == name or (r.stream == "NOTE" and name in r.note)]
        mine: list[bytes] = []
        got[name] = mine
        last_t = None
        abort = False
        try:
            for r in recs:
                if r.stream == "NOTE":
                    if "closed the socket" in r.note or "dies now" in r.note:
                        abort = "dies now" in r.note
                        if last_t is not None:
                            await asyncio.sleep(max(0.0, r.t - last_t) * scale)
                        break
                    continue
                if r.direction == "<<<":
                    if r.payload.startswith(b"agi_"):
                        block = await reader.readuntil(b"\n\n")
                        mine.append(block)
                    else:
                        mine.append(await asyncio.wait_for(reader.readline(), 10))
                else:
                    if last_t is not None:
                        await asyncio.sleep(max(0.0, r.t - last_t) * scale)
                    writer.write(r.payload)
                    await writer.drain()
                last_t = r.t
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            if abort:
                writer.transport.abort()
            else:
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def replay(name: str, *, time_scale: float = 0.05, agi_up: bool = True,
                 dialplan_paths: list[Path] | None = None, ami_users: dict[str, str] | None = None,
                 local_channels_before: int = 0, cdr_events: bool = True,
                 ) -> tuple[dict[str, list[Message]], dict[str, list[Message]], list[Record], dict[str, list[bytes]]]:
    records = capture(name)
    got_agi: dict[str, list[bytes]] = {}
    agi = await _agi_server(records, time_scale, got_agi)
    agi_port = agi.sockets[0].getsockname()[1]
    if not agi_up:
        agi.close()
        await agi.wait_closed()
    sim = Simulator(dialplan_paths=dialplan_paths or [DIALPLAN], time_scale=time_scale, agi_host="127.0.0.1",
                    agi_port=agi_port, ami_users=ami_users or {"cti": "ctisecret"}, capture_mode=True,
                    fixed_challenge="166739859")  # capture 01's challenge, so its MD5 key is valid
    sim.world.cdr_events = cdr_events
    sim.world.local_counter = local_channels_before  # Local channels the capture's Asterisk made before it
    port = await sim.start()
    logs: dict[str, StreamLog] = defaultdict(StreamLog)
    conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    readers: list[asyncio.Task[None]] = []

    async def read_loop(stream: str, reader: asyncio.StreamReader) -> None:
        parser = AmiParser(expect_greeting=False)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for f in parser.feed(data):
                if isinstance(f, Message):
                    logs[stream].frames.append(f)
                    logs[stream].arrived.set()

    expected = {s: ami_frames(records, s) for s in dict.fromkeys(r.stream for r in records if r.stream.startswith("AMI"))}
    received_before: Counter[str] = Counter()
    last_t: float | None = None
    try:
        for r in records:
            if not r.stream.startswith("AMI"):
                continue
            if r.direction == "<<<":
                received_before[r.stream] += len([f for f in AmiParser(expect_greeting=False).feed(r.payload)
                                                  if isinstance(f, Message)]) if not r.payload.startswith(b"Asterisk") else 0
                continue
            if r.stream not in conns:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await reader.readline()
                conns[r.stream] = (reader, writer)
                readers.append(asyncio.ensure_future(read_loop(r.stream, reader)))
            if last_t is not None:
                await asyncio.sleep(max(0.0, r.t - last_t) * time_scale)
            last_t = r.t
            want = _strict_count(expected[r.stream][: received_before[r.stream]])
            log = logs[r.stream]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    while _strict_count(log.frames) < want:
                        log.arrived.clear()
                        await log.arrived.wait()
            with contextlib.suppress(ConnectionError):
                conns[r.stream][1].write(r.payload)
                await conns[r.stream][1].drain()
        # let the tail of the capture play out
        total = records[-1].t - (last_t or 0)
        await asyncio.sleep(min(total, 20) * time_scale + 0.3)
        for stream, frames in expected.items():
            want = _strict_count(frames)
            log = logs[stream]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    while _strict_count(log.frames) < want:
                        log.arrived.clear()
                        await log.arrived.wait()
        await asyncio.sleep(0.1)
    finally:
        for t in readers:
            t.cancel()
        for _, w in conns.values():
            w.close()
        await asyncio.gather(*readers, return_exceptions=True)
        await sim.stop()
        agi.close()
        with contextlib.suppress(Exception):
            await agi.wait_closed()
    return expected, {s: logs[s].frames for s in expected}, records, got_agi


def _strict_count(frames: list[Message]) -> int:
    return sum(1 for f in frames if f.get("Event") not in FLOATING)


def owner(f: Message) -> str:
    if "Response" in f:
        return "action:" + (f.get("ActionID") or "")
    for k in OWNER_KEYS:
        if k in f:
            return f[k]
    if "BridgeUniqueid" in f:
        return "bridge"
    if "ActionID" in f:
        return "action:" + f["ActionID"]
    return "global"


def id_owners(frames: list[Message]) -> dict[str, str]:
    """Uniqueid -> the channel name it belongs to, so ids compare by meaning, not by value or rank."""
    owners: dict[str, str] = {}
    for f in frames:
        for prefix in ("", "Dest", "LocalOne", "LocalTwo"):
            name, uid = f.get(prefix + "Channel"), f.get(prefix + "Uniqueid")
            if name and uid and uid != "<unknown>":
                owners.setdefault(uid, name)
    return owners


def signature(f: Message, ids: dict[str, str]) -> tuple[object, ...]:
    names = tuple(k for k, _ in f.headers())
    values = tuple((k, f[k]) for k in VALUE_KEYS if k in f)
    idv = tuple((k, ids.get(f[k], "?" if f[k] != "<unknown>" else "<unknown>")) for k in ID_KEYS if k in f)
    return (f.get("Event") or "response", names, values, idv)


def compare(expected: list[Message], got: list[Message], *, racy_vars: frozenset[str] = frozenset()) -> list[str]:
    """Differences between two frame lists, per owner; empty when they match. VarSet frames of `racy_vars`
    are matched as a multiset per owner (another thread of Asterisk sets them: their place varies)."""
    problems: list[str] = []
    for label, frames_a, frames_b in (("strict", expected, got),):
        ids_a = id_owners(frames_a)
        ids_b = id_owners(frames_b)
        per_a: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        per_b: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        float_a: dict[str, Counter[tuple[object, ...]]] = defaultdict(Counter)
        float_b: dict[str, Counter[tuple[object, ...]]] = defaultdict(Counter)
        for frames, ids, per, flo in ((frames_a, ids_a, per_a, float_a), (frames_b, ids_b, per_b, float_b)):
            for f in frames:
                sig = signature(f, ids)
                if f.get("Event") in FLOATING or (f.get("Event") == "VarSet" and f.get("Variable") in racy_vars):
                    flo[owner(f)][sig[:2]] += 1
                else:
                    per[owner(f)].append(sig)
        for key in sorted(set(per_a) | set(per_b)):
            a, b = per_a.get(key, []), per_b.get(key, [])
            if a != b:
                n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                problems.append(f"{label} {key}: first difference at #{n}: expected "
                                f"{a[n] if n < len(a) else None} got {b[n] if n < len(b) else None} "
                                f"(len {len(a)} vs {len(b)})")
        for key in sorted(set(float_a) | set(float_b)):
            if float_a.get(key, Counter()) != float_b.get(key, Counter()):
                fa, fb = float_a.get(key, Counter()), float_b.get(key, Counter())
                problems.append(f"floating {key}: missing {dict(fa - fb)} extra {dict(fb - fa)}")
    return problems


def agi_shape(lines: list[bytes]) -> list[str]:
    """AGI replies reduced to their shape: code, result present, (timeout), endpos present, HANGUP."""
    out = []
    for raw in lines:
        text = raw.decode("utf-8", "replace")
        if text.startswith("agi_"):
            out.append("ENV:" + ",".join(line.split(":", 1)[0] for line in text.split("\n") if line))
            continue
        text = text.rstrip("\n")
        if text == "HANGUP" or text.startswith("5"):
            out.append(text)
            continue
        head = text.split(" ")[0]
        result = text.split("result=", 1)[1].split(" ")[0] if "result=" in text else ""
        flags = [w for w in ("(timeout)", "endpos=", "(") if w in text]
        out.append(f"{head} result={'<n>' if result.lstrip('-').isdigit() and result not in ('0', '1', '-1', '-2') else result} {flags}")
    return out
