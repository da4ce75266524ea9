"""Soak: the server, the PBX simulator and a floor of simulated agents under steady load. ONE JSON object.

    .venv/bin/python bench/soak.py [--quick] [--seconds S] [--agents N] [--rate R] [--seed N] [--keep DIR]

Full size: 200 agents, 20 calls/s, 3,600 s; --quick: 50 agents, 5 calls/s, 150 s (same keys). Loopback only,
SQLite CRM in a temp dir (--keep: in DIR, kept, with the server's log). Progress goes to stderr.

Two processes, as on a real site: `ctiserver run` (pbxsim.site.ProcessSite), so the RSS and CPU time read from
/proc are the server's own; and this one, which holds the PBX simulator, the callers and every console.

* Callers arrive at `rate` (Poisson), go through the greeting and the menu (keys 1 or 2: two queues), wait and
  talk 2.5-6 s; one in ten is impatient (0.1-1.5 s) and hangs up wherever it is (IVR, queue, ringing phone).
* Agents: a desk phone each (rings 1-5 PBX seconds, hangs up itself after 4-8 s: the agent ends some calls) and a
  websocket console that logs in, agent_login's, saves most wrap-ups (the queues' wrap_up_s is 1.5 s), takes the
  odd short break, and drops its connection at random (a clean close or a cut socket) to come back with its
  token (resume). Most absences are shorter than consoles.lost_after_s, one in five longer: the server pauses
  that agent (console_lost) and makes them available again when the console is back. Supervisors watch the
  monitor and drop and resume too.
* Times are real seconds; the simulator runs its own clock 20 times faster (time_scale 0.05), so every time
  given to it (answer_after, talk_time, patience) is divided by the time scale.

Figures:
* rss_warm_mb: the server's VmRSS once its bounded memories are full (the last 20,000 settled calls for
  late wrap-ups, 10,000 ended calls in the router, 5,000 screen pops: at 20 calls/s after 1,100 s; at least
  10 % and at most half of the run); rss_end_mb at the end of the load;
  rss_growth_pct = (end - warm) / warm * 100; rss_peak_mb: the largest sample; rss_hwm_mb: VmHWM (start-up
  included); rss_series: [s, MB, calls placed], a sample every minute (--quick: every 7.5 s).
  rss_anon_warm_mb / rss_anon_end_mb: the anonymous part (the server's own memory, where a leak would show);
  rss_file_end_mb: file pages mapped and resident (libraries).
* server_cpu_s / server_cpu_pct: the server's user+system time during the load; bench_cpu_pct: this process's.
* calls_placed / calls_answered / calls_abandoned (the caller hung up before reaching an agent); wait_mean_s and
  wait_p99_s: from the caller's entry in the queue (hold music starts) to the agent's answer, answered calls.
* Then no new calls; every console comes back; everything drains. stuck_agents: agents not available at the
  end, or whose console shows another state than the server, or whose phone still has a live channel.
  stuck_calls: calls the server still lists as live, and callers the simulator still has (waiting forever).
  monitor_rows_stale: rows of the long-lived supervisors' grids that differ from a fresh login's snapshot.
* The server stops gracefully (SIGTERM: the journal is flushed) and the CRM is read. journal_rows_missing:
  calls that ended on the PBX with no interactions row holding an end; rows_missing_end: rows with no end.
* kept_up: the load ran as planned (calls placed on time, this process's loop lag p99 under 250 ms). On two
  shared cores the simulator and 200 consoles compete with the server; when it is false the figures say how
  far the run got (calls_placed against calls_planned, lags).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctiserver.crm_history.records import KEEP_RECENT
from pbxsim.channels import Channel
from pbxsim.people import CallerBehaviour
from pbxsim.site import ProcessSite, SiteConfig

DID = "5551000"
PASSWORD = "soak-pass-1"
TIME_SCALE = 0.05
QUEUES = ("sales", "support")
WRAP_UP_S = 1.5
RING_TIMEOUT_S = 8.0  # the server's Originate timeout: the PBX counts it on its own clock
HOLD_MUSIC = "cti/hold-music"  # what the server plays to a caller in line


@dataclass(frozen=True)
class Size:
    agents: int
    rate: float  # calls per second
    seconds: float
    supervisors: int
    lost_after_s: float  # consoles.lost_after_s
    drop_every_s: float  # mean time between two drops of one console


FULL = Size(agents=200, rate=20.0, seconds=3600.0, supervisors=4, lost_after_s=10.0, drop_every_s=600.0)
QUICK = Size(agents=50, rate=5.0, seconds=150.0, supervisors=2, lost_after_s=5.0, drop_every_s=60.0)


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def agent_ids(n: int) -> list[str]:
    return [str(3000 + i) for i in range(n)]


def queues_yaml(agents: list[str]) -> str:
    lines = [f"skills: [{', '.join(QUEUES)}]", "pause_reasons: [break]", "queues:"]
    for q in QUEUES:
        lines.append(f"  - {{name: {q}, skills: {{{q}: 1}}, wrap_up_s: {WRAP_UP_S}, "
                     f"ring_timeout_s: {RING_TIMEOUT_S}, announce_every_s: 5}}")
    lines.append("agents:")
    for n, a in enumerate(agents):
        skills = ", ".join(f"{q}: {1 + (n + k) % 5}" for k, q in enumerate(QUEUES))
        lines.append(f"  - {{id: '{a}', name: Agent {a}, skills: {{{skills}}}, queues: [{', '.join(QUEUES)}]}}")
    return "\n".join(lines) + "\n"


FLOW = """flow: main
language: en-US
fallback: {queue: support}
start: greeting
nodes:
  greeting: {type: play, prompts: [demo/welcome], barge_in: true, next: menu}
  menu:
    type: menu
    prompts: [demo/main-menu]
    no_input: [demo/no-input]
    no_match: [demo/no-match]
    retries: 1
    on_fail: support
    var: topic
    options:
      - {key: "1", next: sales}
      - {key: "2", next: support}
  sales: {type: queue, queue: sales}
  support: {type: queue, queue: support}
"""


# ------------------------------------------------------------------------------------------ the server

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of a process, in kB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------------------- the consoles

class Console:
    """A websocket console: requests answered by id, pushes handed to `on_push`; reconnects with its token."""

    def __init__(self, url: str, username: str) -> None:
        self.url = url
        self.username = username
        self.ws: Any = None
        self.token: str | None = None
        self.stream: str | None = None
        self.last_seq = 0
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.resumes = self.snapshots = self.logins = self.lost = 0

    @property
    def connected(self) -> bool:
        return self.ws is not None

    def on_push(self, msg: dict[str, Any]) -> None:
        return None

    async def connect(self, deadline_s: float = 60.0) -> None:
        """auth (first time, or when the token no longer works) or resume; retried until `deadline_s`."""
        from websockets.asyncio.client import connect

        deadline = time.monotonic() + deadline_s
        while True:
            try:
                ws = await connect(self.url, open_timeout=10, close_timeout=1, max_size=2**22, compression=None)
            except (OSError, TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.username}: cannot connect: {e}") from None
                await asyncio.sleep(0.5)
                continue
            try:
                await asyncio.wait_for(ws.recv(), 10)  # hello
                while True:
                    msg_id = next(self.ids)
                    if self.token:
                        body = {"type": "resume", "token": self.token, "last_seq": self.last_seq}
                        if self.stream:
                            body["stream"] = self.stream
                    else:
                        body = {"type": "auth", "username": self.username, "password": PASSWORD}
                    await ws.send(json.dumps({"v": 1, "id": msg_id, **body}))
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if reply["type"] == "auth_ok":
                        self.token = reply["token"]
                        if body["type"] == "resume":
                            self.resumes += 1
                        else:
                            self.logins += 1
                        break
                    if reply.get("code") in ("token_invalid", "token_expired"):
                        self.token, self.stream = None, None
                        continue
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.username}: {reply}")
                    await asyncio.sleep(float(reply.get("retry_after_s", 1)))
            except Exception:
                with contextlib.suppress(Exception):
                    await ws.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            self.ws = ws
            self.reader = asyncio.create_task(self._read(ws), name=f"console {self.username}")
            return

    async def _read(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in ws:
                msg: dict[str, Any] = json.loads(raw)
                seq = msg.get("seq")
                if seq is not None:
                    if msg["type"] == "snapshot":
                        self.stream = msg["stream"]
                        self.snapshots += 1
                    self.last_seq = seq
                re_ = msg.get("re")
                if re_ is not None and re_ in self.pending:
                    fut = self.pending.pop(re_)
                    if not fut.done():
                        fut.set_result(msg)
                self.on_push(msg)
        except ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                self.lost += 1
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_result({"type": "error", "code": "connection_lost"})
            self.pending.clear()

    async def request(self, kind: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        ws = self.ws
        if ws is None:
            return {"type": "error", "code": "not_connected"}
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        try:
            await ws.send(json.dumps({"v": 1, "type": kind, "id": msg_id, **fields}))
            return await asyncio.wait_for(fut, timeout)
        except (ConnectionClosed, OSError, TimeoutError) as e:  # closed meanwhile, or no answer in time
            self.pending.pop(msg_id, None)
            return {"type": "error", "code": type(e).__name__}

    async def drop(self, cut: bool) -> None:
        """The console goes away: a cut socket (a laptop lid closed, the network gone) or a closed tab."""
        ws, self.ws = self.ws, None
        if ws is None:
            return
        if cut:
            ws.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 2)

    async def close(self) -> None:
        await self.drop(cut=False)


class Desk(Console):
    """An agent at a desk: the console's view of their own state, and what they do with it."""

    def __init__(self, url: str, agent_id: str, rng: random.Random, stats: Counter[str]) -> None:
        super().__init__(url, f"agent{agent_id}")
        self.agent_id = agent_id
        self.rng = rng
        self.stats = stats
        self.state = ""
        self.reason = ""
        self.call_id = ""  # the agent's latest call (call_state pushes)
        self.on_break = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.working = True  # saves wrap-ups and takes breaks while the load runs

    def on_push(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "snapshot":
            agent = msg.get("agent") or {}
            self._agent_state(agent.get("state", ""), agent.get("reason") or "")
            for call in msg.get("calls") or ():
                self.call_id = call["call_id"]
        elif kind == "agent_state":
            self._agent_state(msg["agent"]["state"], msg["agent"].get("reason") or "")
        elif kind == "call_state":
            self.call_id = msg["call"]["call_id"]
        elif kind == "offer":
            self.stats["offers_seen"] += 1

    def _agent_state(self, state: str, reason: str) -> None:
        before, self.state, self.reason = self.state, state, reason
        if state == "wrap_up" and before != "wrap_up" and self.working and self.call_id \
                and self.rng.random() < 0.7:
            self._spawn(self._save_wrapup(self.call_id, self.rng.uniform(0.2, 1.0)))
        elif state == "not_responding" and before != "not_responding":
            self.stats["not_responding"] += 1
            self._spawn(self._ready_after(self.rng.uniform(1.0, 3.0)))

    async def _ready_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.state == "not_responding":
            await self.request("ready")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _save_wrapup(self, call_id: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        reply = await self.request("wrapup", call_id=call_id, disposition=self.rng.choice(("resolved", "sale")),
                                   notes="soak")
        self.stats["wrapups_saved" if reply["type"] == "wrapup_saved" else "wrapups_not_saved"] += 1

    async def log_in(self) -> None:
        await self.connect()
        reply = await self.request("agent_login", extension=self.agent_id, queues=list(QUEUES))
        if reply["type"] != "result":
            raise RuntimeError(f"agent_login {self.agent_id}: {reply}")
        for _ in range(50):
            if self.state:
                break
            await asyncio.sleep(0.05)
        if self.state == "paused":
            await self.request("ready")

    async def breaks(self, every_s: float) -> None:
        """Now and then a short break, taken when available."""
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / every_s))
            if not self.connected or self.state != "available":
                continue
            # Marked before asking: the drain cancels this task, and a pause the server took while the
            # reply was on its way would otherwise leave the agent on break for good.
            self.on_break = True
            reply = await self.request("pause", reason="break")
            if reply["type"] != "result":
                self.on_break = False
                continue
            self.stats["breaks"] += 1
            await asyncio.sleep(self.rng.uniform(3.0, 8.0))
            await self.back_from_break()

    async def back_from_break(self) -> None:
        while self.on_break:
            if self.connected:
                reply = await self.request("ready")
                if reply["type"] == "result" or (self.state != "paused" and self.state):
                    self.on_break = False
                    return
            await asyncio.sleep(0.5)


class Monitor(Console):
    """A supervisor's grid, wallboard and call list, from the snapshot and the deltas."""

    def __init__(self, url: str, username: str) -> None:
        super().__init__(url, username)
        self.agents: dict[str, dict[str, Any]] = {}
        self.wallboard: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}

    def on_push(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "snapshot":
            self.agents = {k: dict(v) for k, v in (msg.get("agents") or {}).items()}
            self.wallboard = {k: dict(v) for k, v in (msg.get("wallboard") or {}).items()}
            self.calls = {k: dict(v) for k, v in (msg.get("call_list") or {}).items()}
            return
        for table, delta, key in ((self.agents, "agent_grid_delta", "agents"),
                                  (self.wallboard, "wallboard_delta", "queues"),
                                  (self.calls, "call_list_delta", "calls")):
            if kind == delta:
                for k, row in msg[key].items():
                    if row is None:
                        table.pop(k, None)
                    else:
                        table.setdefault(k, {}).update(row)


async def drops(console: Console, rng: random.Random, every_s: float, grace_s: float, stats: Counter[str]) -> None:
    """The console drops at random and comes back: most absences inside the grace, one in five beyond it."""
    while True:
        await asyncio.sleep(rng.expovariate(1.0 / every_s))
        if not console.connected:
            continue
        long_one = rng.random() < 0.2
        away = rng.uniform(1.3, 2.0) * grace_s if long_one else rng.uniform(0.1, 0.6) * grace_s
        cut = rng.random() < 0.5
        await console.drop(cut)
        stats["drops_long" if long_one else "drops_short"] += 1
        await asyncio.sleep(away)
        await console.connect()


# --------------------------------------------------------------------------------------- the callers

@dataclass(slots=True)
class CallTrack:
    """What happened to one caller, from the simulator's side (real monotonic seconds)."""

    name: str
    uniqueid: str
    linkedid: str
    arrived: float
    queued: float | None = None
    answered: float | None = None
    agent: str = ""
    gone: float | None = None


class CallWatch:
    """An observer on the caller's channel (beside the emulated person): when it queues, is answered, ends."""

    def __init__(self, track: CallTrack) -> None:
        self.track = track

    def prompt_started(self, chan: Channel, name: str, interruptible: bool) -> None:
        if name == HOLD_MUSIC and self.track.queued is None:  # the server's wait: the caller is in line
            self.track.queued = time.monotonic()

    def input_wanted(self, chan: Channel, max_digits: int) -> None:
        return None

    def record_started(self, chan: Channel) -> None:
        return None

    def waiting_started(self, chan: Channel) -> None:
        return None

    def connected(self, chan: Channel, peer: Channel) -> None:
        if self.track.answered is None and peer.name.startswith("PJSIP/") and not peer.name.startswith("PJSIP/pstn"):
            self.track.answered = time.monotonic()
            self.track.agent = peer.name[len("PJSIP/"):].rsplit("-", 1)[0]

    def channel_gone(self, chan: Channel) -> None:
        if self.track.gone is None:
            self.track.gone = time.monotonic()


@dataclass
class Load:
    """The callers: placed at `rate` (Poisson) until stopped."""

    site: ProcessSite
    rate: float
    rng: random.Random
    tracks: list[CallTrack] = field(default_factory=list)
    planned: int = 0
    late_s_max: float = 0.0
    started: float = 0.0

    def v(self, real_s: float) -> float:
        return real_s / self.site.sim.time_scale

    def place(self, n: int) -> None:
        rng = self.rng
        key = rng.choice("12")
        impatient = rng.random() < 0.1
        behaviour = CallerBehaviour(
            keys=(key, key),  # the greeting may take the first key (barge-in)
            patience=self.v(rng.uniform(0.1, 1.5) if impatient else 120.0),
            hangup_after_connect=self.v(rng.uniform(2.5, 6.0)),
        )
        chan = self.site.sim.place_call(DID, f"1380{n:07d}", f"Caller {n}", behaviour)
        track = CallTrack(chan.name, chan.uniqueid, chan.linkedid, time.monotonic())
        chan.observers.append(CallWatch(track))
        self.tracks.append(track)

    async def run(self, seconds: float) -> None:
        self.started = t0 = time.monotonic()
        due = t0
        n = 0
        while True:
            due += self.rng.expovariate(self.rate)
            if due - t0 >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.late_s_max = max(self.late_s_max, -delay)
            self.planned += 1
            self.place(n)
            n += 1
            if n % 500 == 0:  # the simulator's list of emulated people would hold every call of the run
                self.site.sim.callers[:] = [r for r in self.site.sim.callers if not r.chan.dead]


class LoopLag:
    """How late this process's event loop wakes up: a sleep of 50 ms, measured."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.lags.append(time.monotonic() - t - 0.05)


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


# ------------------------------------------------------------------------------------------- the run

async def run(size: Size, seed: int, tmp: Path, quick: bool = False) -> dict[str, Any]:
    from ctiserver.gateway.auth import hash_password

    rng = random.Random(seed)
    agents = agent_ids(size.agents)
    (tmp / "flows").mkdir(parents=True, exist_ok=True)
    (tmp / "flows" / "main.yaml").write_text(FLOW)
    secret = hash_password(PASSWORD, n=2**10)
    accounts: list[dict[str, Any]] = [{"username": f"agent{a}", "role": "agent", "agent_id": a,
                                       "password_hash": secret} for a in agents]
    supervisors = [f"boss{i}" for i in range(size.supervisors + 1)]  # the last one logs in at the end only
    accounts += [{"username": s, "role": "supervisor", "password_hash": secret} for s in supervisors]
    extra = {"consoles": {"lost_after_s": size.lost_after_s}}
    site = ProcessSite(tmp, SiteConfig(queues_yaml(agents), tmp / "flows", accounts, extra=extra),
                       time_scale=TIME_SCALE)
    stats: Counter[str] = Counter()
    desks = {a: Desk(site.ws_url, a, random.Random(rng.random()), stats) for a in agents}
    monitors = [Monitor(site.ws_url, s) for s in supervisors[:-1]]
    load = Load(site, size.rate, random.Random(rng.random()))
    lag = LoopLag()
    behaviours: list[asyncio.Task[None]] = []
    background: list[asyncio.Task[None]] = []
    series: list[list[float]] = []
    result: dict[str, Any] = {}

    await site.start()
    assert site.proc is not None
    pid = site.proc.pid
    log(f"server pid {pid}; {size.agents} agents, {size.rate:g} calls/s, {size.seconds:g} s, "
        f"grace {size.lost_after_s:g} s")
    try:
        for a in agents:
            # The phone answers within the offer's ring timeout, which the PBX counts on its own clock.
            site.sim.add_agent_phone(a, answer_after=rng.uniform(1.0, 5.0),
                                     talk_time=load.v(rng.uniform(4.0, 8.0)))
        for i in range(0, len(agents), 10):
            await asyncio.gather(*(desks[a].log_in() for a in agents[i:i + 10]))
        for m in monitors:
            await m.connect()
        not_ready = [a for a, d in desks.items() if d.state != "available"]
        if not_ready:
            raise RuntimeError(f"agents not available after login: {not_ready[:10]}")
        log("agents logged in and available")
        background.append(asyncio.create_task(lag.run(), name="lag"))
        for a, desk in desks.items():
            behaviours.append(asyncio.create_task(drops(desk, random.Random(rng.random()), size.drop_every_s,
                                                        size.lost_after_s, stats), name=f"drops {a}"))
            behaviours.append(asyncio.create_task(desk.breaks(size.drop_every_s), name=f"breaks {a}"))
        for m in monitors:
            behaviours.append(asyncio.create_task(drops(m, random.Random(rng.random()), size.drop_every_s,
                                                        size.lost_after_s, stats), name=f"drops {m.username}"))

        gc.collect()
        cpu0, own0 = proc_cpu_s(pid), own_cpu_s()
        t0 = time.monotonic()
        placing = asyncio.create_task(load.run(size.seconds), name="callers")
        sample_every = min(60.0, max(5.0, size.seconds / 20))
        # Warm: once the server's bounded memories are full (the last KEEP_RECENT settled calls, the last
        # 10,000 ended calls of the router, 5,000 pops): before that RSS grows by design, not by a leak.
        warm_at = min(0.5 * size.seconds, max(0.1 * size.seconds, 1.1 * KEEP_RECENT / size.rate))
        warm_kb: int | None = None
        warm_anon_kb = 0
        next_sample = t0
        while not placing.done():
            now = time.monotonic()
            if now >= next_sample or (warm_kb is None and now - t0 >= warm_at):
                status = proc_status(pid)
                rss = status.get("VmRSS", 0)
                if warm_kb is None and now - t0 >= warm_at:
                    warm_kb, warm_anon_kb = rss, status.get("RssAnon", 0)
                series.append([round(now - t0), round(rss / 1024, 1), len(load.tracks)])
                live = sum(1 for c in site.sim.world.channels.values() if not c.dead)
                waiting = sum(int(r.get("waiting", 0)) for r in (monitors[0].wallboard.values() if monitors else ()))
                log(f"t={now - t0:.0f}s rss={rss / 1024:.1f}MB placed={len(load.tracks)} live_channels={live} "
                    f"waiting={waiting} server_cpu={proc_cpu_s(pid) - cpu0:.0f}s own_cpu={own_cpu_s() - own0:.0f}s "
                    f"lag_p99={pct(lag.lags[-200:], 0.99) * 1000:.0f}ms {dict(stats)}")
                if now >= next_sample:
                    next_sample += sample_every
            await asyncio.wait({placing}, timeout=max(0.05, min(next_sample, t0 + warm_at if warm_kb is None
                                                                else next_sample) - time.monotonic()))
        await placing
        load_s = time.monotonic() - t0
        end_status = proc_status(pid)
        end_kb = end_status.get("VmRSS", 0)
        series.append([round(load_s), round(end_kb / 1024, 1), len(load.tracks)])
        server_cpu = proc_cpu_s(pid) - cpu0
        own_cpu = own_cpu_s() - own0
        log(f"load over after {load_s:.0f} s: {len(load.tracks)} calls placed; draining")

        # ---- drain: no new calls, every console back, every caller gone, every agent settled
        for task in behaviours:
            task.cancel()
        await asyncio.gather(*behaviours, return_exceptions=True)
        for desk in desks.values():
            desk.working = False
            if not desk.connected:
                await desk.connect()
        for m in monitors:
            if not m.connected:
                await m.connect()
        await asyncio.gather(*(d.back_from_break() for d in desks.values()))
        drain_deadline = time.monotonic() + 150.0
        while time.monotonic() < drain_deadline:
            if not site.sim.world.channels and all(d.state == "available" for d in desks.values()):
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(2.0)  # the last pushes, and a grace for anything late
        drained_s = time.monotonic() - t0 - load_s

        # ---- the checks, against a fresh supervisor's snapshot and the simulator's channels
        fresh = Monitor(site.ws_url, supervisors[-1])
        await fresh.connect()
        for _ in range(100):
            if fresh.agents:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        live_chans = [c for c in site.sim.world.channels.values() if not c.dead]
        phones_busy = {c.name[len("PJSIP/"):].rsplit("-", 1)[0] for c in live_chans if c.name.startswith("PJSIP/")}
        stuck: dict[str, str] = {}
        for a, desk in desks.items():
            server_state = str(fresh.agents.get(a, {}).get("state", "missing"))
            if server_state != "available":
                stuck[a] = f"server says {server_state} ({fresh.agents.get(a, {}).get('reason', '')})"
            elif desk.state != server_state:
                stuck[a] = f"console shows {desk.state}, server {server_state}"
            elif a in phones_busy:
                stuck[a] = "phone still has a live channel"
        for a, why in list(stuck.items())[:10]:
            log(f"stuck agent {a}: {why}")
        live_callers = {c.uniqueid for c in live_chans if c.name.startswith("PJSIP/pstn-")}
        stuck_call_ids = set(fresh.calls) | live_callers
        for c in list(stuck_call_ids)[:10]:
            log(f"stuck call {c}: server {fresh.calls.get(c)}; live on the PBX: {c in live_callers}")
        stale = sum(1 for m in monitors for a in agents
                    if m.agents.get(a, {}).get("state") != fresh.agents.get(a, {}).get("state"))
        waiting_end = sum(int(r.get("waiting", 0)) for r in fresh.wallboard.values())
        rss_drained_kb = proc_status(pid).get("VmRSS", 0)
        peak_kb = proc_status(pid).get("VmHWM", 0)
        await fresh.close()
        for console in [*desks.values(), *monitors]:
            await console.close()
        for desk in desks.values():
            for task in list(desk.tasks):
                task.cancel()
        exit_code = await site.stop_server(timeout=60.0)
    finally:
        for task in [*behaviours, *background]:
            task.cancel()
        await asyncio.gather(*behaviours, *background, return_exceptions=True)
        await site.close()

    # ---- the CRM after a graceful stop
    con = sqlite3.connect(site.db)
    rows = con.execute("SELECT call_id, root_call_id, ended_at FROM interactions").fetchall()
    con.close()
    ended_ids = {r[0] for r in rows if r[2] is not None} | {r[1] for r in rows if r[2] is not None and r[1]}
    ended_on_pbx = [t for t in load.tracks if t.gone is not None]
    missing = [t for t in ended_on_pbx if t.uniqueid not in ended_ids and t.linkedid not in ended_ids]
    for t in missing[:10]:
        log(f"no ended row for {t.name} {t.uniqueid}: queued={t.queued is not None} answered by {t.agent or '-'}")
    answered = [t for t in load.tracks if t.answered is not None]
    waits = [t.answered - t.queued for t in answered if t.answered is not None and t.queued is not None]
    warm = warm_kb or end_kb
    result = {
        "quick": quick,
        "agents": size.agents,
        "rate_per_s": size.rate,
        "seconds": size.seconds,
        "load_s": round(load_s, 1),
        "kept_up": bool(len(load.tracks) == load.planned and load.late_s_max < 1.0
                        and pct(lag.lags, 0.99) < 0.25),
        "rss_warm_mb": round(warm / 1024, 1),
        "rss_end_mb": round(end_kb / 1024, 1),
        "rss_growth_pct": round((end_kb - warm) / warm * 100, 2) if warm else 0.0,
        "rss_anon_warm_mb": round(warm_anon_kb / 1024, 1),
        "rss_anon_end_mb": round(end_status.get("RssAnon", 0) / 1024, 1),
        "rss_file_end_mb": round(end_status.get("RssFile", 0) / 1024, 1),
        "rss_peak_mb": max((row[1] for row in series), default=0.0),
        "rss_hwm_mb": round(peak_kb / 1024, 1),
        "rss_drained_mb": round(rss_drained_kb / 1024, 1),
        "rss_series": series,
        "stuck_agents": len(stuck),
        "stuck_calls": len(stuck_call_ids),
        "journal_rows_missing": len(missing),
        "rows_missing_end": sum(1 for r in rows if r[2] is None),
        "monitor_rows_stale": stale,
        "waiting_at_end": waiting_end,
        "calls_planned": load.planned,
        "calls_placed": len(load.tracks),
        "calls_answered": len(answered),
        "calls_abandoned": sum(1 for t in load.tracks if t.answered is None and t.gone is not None),
        "calls_ended": len(ended_on_pbx),
        "interaction_rows": len(rows),
        "wait_mean_s": round(statistics.mean(waits), 3) if waits else 0.0,
        "wait_p99_s": round(pct(waits, 0.99), 3),
        "wait_max_s": round(max(waits), 3) if waits else 0.0,
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_pct": round(100 * server_cpu / load_s, 1),
        "bench_cpu_pct": round(100 * own_cpu / load_s, 1),
        "bench_loop_lag_p99_ms": round(pct(lag.lags, 0.99) * 1000, 1),
        "bench_loop_lag_max_ms": round(max(lag.lags, default=0.0) * 1000, 1),
        "call_placed_late_max_s": round(load.late_s_max, 3),
        "drain_s": round(drained_s, 1),
        "console_drops_short": stats["drops_short"],
        "console_drops_long": stats["drops_long"],
        "console_resumes": sum(c.resumes for c in [*desks.values(), *monitors]),
        "console_snapshots": sum(c.snapshots for c in [*desks.values(), *monitors]),
        "offers_seen": stats["offers_seen"],
        "wrapups_saved": stats["wrapups_saved"],
        "wrapups_not_saved": stats["wrapups_not_saved"],
        "breaks": stats["breaks"],
        "not_responding": stats["not_responding"],
        "server_exit_code": exit_code,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes, smaller floor, same keys")
    parser.add_argument("--seconds", type=float, help="length of the load")
    parser.add_argument("--agents", type=int)
    parser.add_argument("--rate", type=float, help="calls per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (CRM, server log)")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    size = Size(agents=args.agents or base.agents, rate=args.rate or base.rate,
                seconds=args.seconds or base.seconds, supervisors=base.supervisors,
                lost_after_s=base.lost_after_s,
                drop_every_s=min(base.drop_every_s, args.seconds or base.drop_every_s))
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # writes to sockets a cut console left behind
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run(size, args.seed, tmp, args.quick))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
