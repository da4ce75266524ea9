"""AMI ingest benchmark: events/s parsed and applied to the call model, from memory and over loopback TCP.

Input: the events of capture 09 (50-call burst, 1,302 events), repeated with Uniqueids, Linkedids and Local
channel numbers rewritten per repetition so the calls never collide in the model.

    .venv/bin/python bench/ami_ingest.py [--quick] [--apply callmodel|none] [--runs N] [--no-ignore]

Prints one JSON object. Keys: events_per_s_memory (bytes in memory -> AmiParser -> CallModel.apply),
events_per_s_link_memory (the same bytes through AmiConnection.data_received, the link's real read path,
no socket), events_per_s_parse_only, events_per_s_loopback (a sender process writes the bytes over TCP on
127.0.0.1 into a real AmiLink whose event handler applies them). Medians of --runs runs, wall clock; the
events_per_cpu_s_* keys divide by this process's CPU time instead (less disturbed by other load).

Every figure counts every event in the input (1,302 per burst). Like the server (ctiserver.app passes
ignore_events=UNUSED_EVENTS to its AmiLink), the parser skips the event types the call model never reads
(a third of a burst: DeviceStateChange, Cdr, HangupRequest ...) after their first line; --no-ignore parses
every event in full. events_per_s_memory_no_ignore is the memory figure without that skip.

The apply step is pluggable (``--apply``): ``callmodel`` uses ctiserver.callmodel's CallModel().apply when
it imports, ``none`` measures parsing and dispatch only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.ami.link import AmiConnection, AmiLink
from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import RECEIVED, capture

Apply = Callable[[Message, float], object]
CHUNK = 65536  # one socket read

_UID = re.compile(rb"(\d{10})\.(\d+)")
_LOCAL = re.compile(rb"burst-([0-9a-f]{8})")


def burst_events() -> list[bytes]:
    """The 1,302 events of capture 09, each a complete frame (CRLF CRLF)."""
    return [
        r.payload
        for r in capture("09")
        if r.stream == "AMI1" and r.direction == RECEIVED and r.payload.startswith(b"Event: ")
    ]


def _shift_uniqueid(by: int) -> Callable[[re.Match[bytes]], bytes]:
    return lambda m: b"%d.%s" % (int(m.group(1)) + by, m.group(2))


def _shift_local(by: int) -> Callable[[re.Match[bytes]], bytes]:
    return lambda m: b"burst-%08x" % (int(m.group(1), 16) + by)


def build_payload(reps: int) -> tuple[bytes, int]:
    unit = b"".join(burst_events())
    per = unit.count(b"\r\n\r\n")
    parts = []
    for k in range(reps):
        part = _UID.sub(_shift_uniqueid(k * 10), unit)
        part = _LOCAL.sub(_shift_local(k * 64), part)
        parts.append(part)
    return b"".join(parts), per * reps


def make_apply(kind: str) -> tuple[Apply, str, frozenset[str]]:
    """The apply step, its name, and the event types it never reads (the parser may skip them)."""
    if kind == "callmodel":
        try:
            from ctiserver.callmodel.model import UNUSED_EVENTS, CallModel
        except ImportError:
            kind = "none"
        else:
            return CallModel().apply, "ctiserver.callmodel.CallModel.apply", UNUSED_EVENTS
    return (lambda msg, now: None), "none (parse + dispatch only)", frozenset()


def run_memory(
    payload: bytes, expected: int, apply: Apply | None, ignore: frozenset[str]
) -> tuple[float, float]:
    """(events per wall-clock second, events per CPU second of this process)."""
    parser = AmiParser(expect_greeting=False, ignore=ignore)
    n = 0
    now = time.time()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(payload), CHUNK):
        frames = parser.feed(payload[i : i + CHUNK])
        if apply is not None:
            for f in frames:
                apply(f, now)  # type: ignore[arg-type]
        n += len(frames)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    n += parser.ignored
    assert n == expected, (n, expected)
    return n / dt, n / cpu


def dispatched(payload: bytes, ignore: frozenset[str]) -> int:
    """How many events the parser hands on (the others it skips as ignored)."""
    return len(AmiParser(expect_greeting=False, ignore=ignore).feed(payload))


def run_link_memory(
    payload: bytes, expected: int, apply: Apply, ignore: frozenset[str]
) -> tuple[float, float]:
    count = 0
    now = time.time()

    def on_event(msg: Message) -> None:
        nonlocal count
        count += 1
        apply(msg, now)

    loop = asyncio.new_event_loop()
    try:
        link = AmiLink("bench", "127.0.0.1", 0, "cti", "x", on_event=on_event, ignore_events=ignore)
        conn = AmiConnection(link, loop, link.max_frame, ignore)
        conn.data_received(b"Asterisk Call Manager/11.0.0\r\n")
        c0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(0, len(payload), CHUNK):
            conn.data_received(payload[i : i + CHUNK])
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        loop.close()
    assert count == dispatched(payload, ignore), count
    return expected / dt, expected / cpu


# ------------------------------------------------------------------------------------ loopback


def serve(reps: int) -> None:
    """Sender process: one AMI client, login accepted, then the whole burst as fast as TCP takes it."""
    payload, _ = build_payload(reps)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += conn.recv(4096)
    aid = re.search(rb"ActionID: ([^\r\n]*)", buf)
    conn.sendall(
        b"Response: Success\r\nActionID: "
        + (aid.group(1) if aid else b"")
        + b"\r\nMessage: Authentication accepted\r\n\r\n"
    )
    conn.sendall(payload)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    conn.close()


async def run_loopback(
    reps: int, expected: int, apply: Apply, ignore: frozenset[str], handed_on: int
) -> tuple[float, float]:
    """The clock starts at the first event handed on and stops at the last (``handed_on`` of them)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(reps), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    count = 0
    now = time.time()
    t0 = t1 = c0 = c1 = 0.0

    def on_event(msg: Message) -> None:
        nonlocal count, t0, t1, c0, c1
        if count == 0:
            t0 = time.perf_counter()
            c0 = time.process_time()
        count += 1
        apply(msg, now)
        if count == handed_on:
            t1 = time.perf_counter()
            c1 = time.process_time()
            done.set_result(None)

    link = AmiLink(
        "bench", "127.0.0.1", port, "cti", "x", on_event=on_event, ping_interval=3600, action_timeout=60,
        ignore_events=ignore,
    )
    try:
        link.start()
        await asyncio.wait_for(done, 300)
    finally:
        await link.close()
        await proc.wait()
    # The first event handed on starts the clock: it is not counted, nor its share of the skipped ones.
    measured = (handed_on - 1) * expected / handed_on
    return measured / (t1 - t0), measured / (c1 - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--apply", choices=["callmodel", "none"], default="callmodel")
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--no-ignore", action="store_true", help="parse every event in full")
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    reps = 20 if args.quick else 100
    runs = args.runs or (3 if args.quick else 5)
    payload, expected = build_payload(reps)

    _, apply_name, ignore = make_apply(args.apply)
    if args.no_ignore:
        ignore = frozenset()
    handed_on = dispatched(payload, ignore)
    parse_only: list[tuple[float, float]] = []
    memory: list[tuple[float, float]] = []
    memory_no_ignore: list[tuple[float, float]] = []
    link_memory: list[tuple[float, float]] = []
    loopback: list[tuple[float, float]] = []
    # Interleaved rather than one kind after the other, so that a burst of load from elsewhere on the
    # machine spreads over every figure instead of sinking one.
    for _ in range(runs):
        parse_only.append(run_memory(payload, expected, None, ignore))
        memory.append(run_memory(payload, expected, make_apply(args.apply)[0], ignore))
        memory_no_ignore.append(run_memory(payload, expected, make_apply(args.apply)[0], frozenset()))
        link_memory.append(run_link_memory(payload, expected, make_apply(args.apply)[0], ignore))
        loopback.append(
            asyncio.run(run_loopback(reps, expected, make_apply(args.apply)[0], ignore, handed_on))
        )

    def med(xs: list[tuple[float, float]], i: int) -> int:
        return round(statistics.median(x[i] for x in xs))

    print(
        json.dumps(
            {
                # Wall clock: what a burst sees on this machine as loaded as it is now.
                "events_per_s_memory": med(memory, 0),
                "events_per_s_loopback": med(loopback, 0),
                "events_per_s_link_memory": med(link_memory, 0),
                "events_per_s_parse_only": med(parse_only, 0),
                "events_per_s_memory_no_ignore": med(memory_no_ignore, 0),
                # CPU seconds of this process: the one-core figure, less disturbed by other load.
                "events_per_cpu_s_memory": med(memory, 1),
                "events_per_cpu_s_loopback": med(loopback, 1),
                "events_per_cpu_s_link_memory": med(link_memory, 1),
                "events_per_cpu_s_parse_only": med(parse_only, 1),
                "events_per_cpu_s_memory_no_ignore": med(memory_no_ignore, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "apply": apply_name,
                "ignored_event_types": len(ignore),
                "events_handed_on_per_run": handed_on,
                "events_per_run": expected,
                "bytes_per_run": len(payload),
                "runs": runs,
                "quick": args.quick,
                "samples_wall": {
                    "memory": [round(x[0]) for x in memory],
                    "loopback": [round(x[0]) for x in loopback],
                    "memory_cpu": [round(x[1]) for x in memory],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
