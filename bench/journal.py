"""The journal: durable facts per second, recovery after a day, and what a kill -9 costs. ONE JSON object.

    .venv/bin/python bench/journal.py [--quick] [--seed N] [--keep DIR]

All on SQLite in a temp dir (--keep: in DIR, kept), loopback only. Progress goes to stderr.

* journal_facts_per_s: facts of a planned day (below) appended through `Journal.append` as fast as the
  producer can, returning to the event loop every 100 facts, with the writer task running; the clock
  stops when the last one is durable. 500,000 facts (--quick 100,000).
* journal_facts_per_s_with_projections: the whole planned day through `Recorder.record`, wired as
  ctiserver.app wires it (router, statistics, call records, queue_log file, CRM interaction rows written
  in the journal's batches), until the last fact is durable; the time the checkpoints took is left out
  and reported apart (checkpoint_s_max: the longest one, which the event loop waits for).
* recovery_s: `CtiServer.start()` on the recorded day's database until the gateway port answers, the PBX
  unreachable. recover_s: `recover()` alone (median of 3); recovery_process_s: `ctiserver run` from exec
  to serving. The day is 100,000 calls (--quick 10,000 at the same rate, a tenth of a day); it takes the
  Recorder's default checkpoints: every 20,000 facts all day, and every 60 s of the day's clock (the
  router's 1-s ticker) in its last two minutes only, since a day of those (1,440) is more than the bench
  can afford and a restart reads only the last one.
* calls_lost, agents_double_booked, rows_missing_end: `ctiserver run` as a child process against the PBX
  simulator (pbxsim.site). Agents talking and in wrap-up, callers waiting (full: 5, 3, 20; --quick:
  3, 2, 5); kill -9 and restart at three moments: steady; the wrap-ups just saved (the next offers
  ringing); two callers just hung up (a third hangs up while the server is down). Then every caller is
  served and hangs up, every wrap-up is saved, the server stops gracefully and the interactions table is
  read. The simulator's channels are sampled every 20 ms all along: an agent's phone with two live
  channels is double-booked; a waiting caller never bridged with an agent is lost.

A planned day: 50 agents, 5 queues; calls arrive evenly; each goes through three IVR steps, waits, is
offered (the router's Offer names the agent's leg), rings, is answered, talks, ends, and its wrap-up is
saved, with the times the plan gives (the journal's clock is the plan's). The plan is made against a pure
Projector, so the recorded day makes the same decisions (checked: the same number of offers). Talk times
are short because 50 agents carry 100,000 calls (about 80 % busy); the facts per call do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import itertools
import json
import logging
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig, parse_config
from crmstore.store import CrmStore, open_store
from ctiserver.app import CtiServer, PbxSettings, ServerSettings
from ctiserver.crm_history.writer import CrmHistoryWriter
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal, open_journal_store
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder
from ctiserver.projections.recovery import recover
from ctiserver.queue_log.writer import QueueLogWriter
from pbxsim.site import listening

AGENTS, QUEUES = 50, 5
DAY_S = 86_400.0
DID = "5551000"


@dataclass(frozen=True)
class Size:
    rate_facts: int  # facts appended for journal_facts_per_s
    day_calls: int
    day_span_s: float
    waiting: int
    talking: int
    wrapping: int
    kills: int


QUICK = Size(rate_facts=100_000, day_calls=10_000, day_span_s=DAY_S / 10, waiting=5, talking=3, wrapping=2, kills=3)
FULL = Size(rate_facts=500_000, day_calls=100_000, day_span_s=DAY_S, waiting=20, talking=5, wrapping=3, kills=3)
YIELD_EVERY = 100  # facts between two returns to the event loop, as AMI events come in reads


def log(msg: str) -> None:
    print(f"[journal] {msg}", file=sys.stderr, flush=True)


def acd_yaml(agents: int = AGENTS, queues: int = QUEUES) -> str:
    # Wrap-up ends when the agent saves it (WrapUpDone), as in a centre that asks for a disposition.
    lines = [f"skills: [{', '.join(f's{q}' for q in range(queues))}]", "pause_reasons: [break, lunch]", "queues:"]
    for q in range(queues):
        lines.append(f"  - {{name: q{q}, skills: {{s{q}: 1}}, wrap_up_s: 3600, ring_timeout_s: 20}}")
    lines.append("agents:")
    every = ", ".join(f"q{q}" for q in range(queues))
    for a in range(agents):
        skills = ", ".join(f"s{q}: {1 + (a + q) % 5}" for q in range(queues))
        lines.append(f"  - {{id: '{3000 + a}', name: Agent {a}, skills: {{{skills}}}, queues: [{every}], "
                     f"endpoint: PJSIP/{3000 + a}}}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- a planned day

Planned = tuple[float, object]  # (at, body)


def plan_day(config: AcdConfig, acd_text: str, calls: int, span_s: float, start_at: float,
             seed: int) -> tuple[list[Planned], int]:
    """Consistent facts of `calls` calls arriving evenly over `span_s` from `start_at`, planned against a
    pure Projector (the router decides who takes which call, as it will when the facts are replayed).
    Returns the facts and the number of offers the router made. Calls still going at the end stay open."""
    rng = random.Random(seed)
    projector = Projector(config)
    out: list[Planned] = []
    heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
    order = itertools.count()
    offers = 0
    end_at = start_at + span_s
    per_agent_s = 0.8 * len(config.agents) * span_s / calls  # handle time for ~80 % occupancy

    def at_(when: float, action: str, *args: Any) -> None:
        heapq.heappush(heap, (when, next(order), action, args))

    def on_decisions(fact: f.Fact | None, decisions: list[d.Decision]) -> None:
        nonlocal offers
        refused = [x for x in decisions if isinstance(x, d.Refusal)]
        if refused:
            raise RuntimeError(f"the planned day is inconsistent: {refused}")
        for x in decisions:
            if isinstance(x, d.Offer):
                offers += 1
                at_(now + 0.2, "ringing", x.call_id, x.agent_id, x.leg_id, x.endpoint)

    projector.listeners.append(on_decisions)

    def record(body: object) -> None:
        out.append((now, body))
        projector.apply(f.Fact(len(out), now, body))

    now = start_at
    record(f.AcdConfigLoaded("queues.yaml", acd_text))
    record(f.ServerStarted("bench", None))
    for a in config.agents:
        record(ev.AgentLoggedIn(a.id))
    arrivals = sorted(rng.uniform(start_at + 1.0, end_at) for _ in range(calls))
    for n, t in enumerate(arrivals):
        at_(t, "arrive", n)
    while heap:
        when, _, action, args = heapq.heappop(heap)
        if when >= end_at:
            break
        now = when
        if action == "arrive":
            (n,) = args
            call_id = f"{int(start_at)}.{n}"
            caller = f"138{rng.randrange(10**8):08d}"
            record(f.CallArrived(call_id, "pbx1", f"PJSIP/pstn-{n:08x}", caller, f"Caller {n}", DID))
            record(f.IvrStarted(call_id, "main", False))
            at_(now + 2.5, "ivr", call_id, 0, caller)
        elif action == "ivr":
            call_id, step, caller = args
            node, event, value = (("welcome", "node", ""), ("menu", "key", str(1 + len(out) % 5)),
                                  ("menu", "node", "queue"))[step]
            record(f.IvrStep(call_id, node, event, value))
            if step < 2:
                at_(now + rng.uniform(2.0, 6.0), "ivr", call_id, step + 1, caller)
            else:
                at_(now + 1.0, "enqueue", call_id, caller)
        elif action == "enqueue":
            call_id, caller = args
            record(ev.CallEnqueued(call_id, f"q{rng.randrange(len(config.queues))}", 0, caller))
        elif action == "ringing":
            call_id, agent, leg, endpoint = args
            record(ev.OfferRinging(call_id, agent))
            at_(now + rng.uniform(1.0, 5.0), "answer", call_id, agent, leg, endpoint)
        elif action == "answer":
            call_id, agent, leg, endpoint = args
            record(ev.OfferAnswered(call_id, agent))
            record(f.CallConnected(call_id, f"{endpoint}-{leg[-8:]}", leg))
            at_(now + rng.expovariate(1.0 / (0.7 * per_agent_s)), "hangup", call_id, agent)
        elif action == "hangup":
            call_id, agent = args
            record(ev.AgentCallEnded(agent, call_id, "caller"))
            record(f.CallEnded(call_id, 16, "Normal Clearing", "caller"))
            at_(now + rng.uniform(0.1, 0.3) * per_agent_s, "wrapup", call_id, agent)
        elif action == "wrapup":
            call_id, agent = args
            record(f.WrapUpSaved(call_id, agent, rng.choice(("resolved", "info", "escalated")),
                                 "customer asked about the invoice", saved_by=f"agent{agent}"))
            record(ev.WrapUpDone(agent))
    return out, offers


class DayClock:
    """The journal's clock while a planned day is recorded: the planned fact's time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def fresh_store(path: Path) -> CrmStore:
    store = await open_store(sqlite_url(path))
    await open_journal_store(store)
    return store


async def stop_writer(journal: Journal, writer: asyncio.Task[None]) -> None:
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    await journal.close()


# ------------------------------------------------------------------------ facts per second, journal only

async def journal_rate(tmp: Path, bodies: list[object], yield_every: int) -> dict[str, Any]:
    """Journal.append as fast as the producer can, yielding to the loop every `yield_every` facts as an
    event loop full of AMI events would; until the last fact is durable."""
    store = await fresh_store(tmp / "rate.db")
    journal = Journal(store)
    writer = asyncio.create_task(journal.run(), name="journal")
    gc.collect()
    t0 = time.perf_counter()
    for n, body in enumerate(bodies, 1):
        journal.append(body)
        if n % yield_every == 0:
            await asyncio.sleep(0)
    appended = time.perf_counter() - t0
    await journal.durable(journal.last_seq)
    elapsed = time.perf_counter() - t0
    batches = journal.batches
    await stop_writer(journal, writer)
    await store.close()
    return {"facts": len(bodies), "elapsed_s": elapsed, "append_s": appended, "batches": batches}


# --------------------------------------------------------------- a day through the Recorder, as the server

@dataclass
class Day:
    db: Path
    queue_log: Path
    facts: int
    offers: int
    elapsed_s: float
    checkpoints: int
    checkpoint_dump_s: list[float]


class TimedRecorder(Recorder):
    """The server's Recorder; the time each checkpoint takes on the event loop is noted."""

    dumps: list[float]

    def checkpoint(self) -> None:
        t = time.perf_counter()
        super().checkpoint()
        self.dumps.append(time.perf_counter() - t)


async def record_day(tmp: Path, planned: list[Planned], config: AcdConfig, acd_text: str,
                     clock_checkpoints_s: float, yield_every: int) -> Day:
    """The planned day through a real Recorder wired as ctiserver.app wires it (CRM rows and the queue_log
    file as projections). Checkpoints: every 20,000 facts all day; the 60-s rule (driven by the router's
    1-s ticker on the day's clock) in the last `clock_checkpoints_s` of the day only, because a day of
    them (1,440) is more than this bench can afford, and recovery reads only the last one."""
    db, queue_log = tmp / "day.db", tmp / "queue_log"
    store = await fresh_store(db)
    clock = DayClock(planned[0][0])
    journal = Journal(store, clock)
    projector = Projector(config)
    history = CrmHistoryWriter(projector.records, journal, "CN")
    projector.listeners.append(history)
    offers = 0

    def count_offers(fact: f.Fact | None, decisions: list[d.Decision]) -> None:
        nonlocal offers
        offers += sum(1 for x in decisions if isinstance(x, d.Offer))

    projector.listeners.append(count_offers)
    writer_file = QueueLogWriter(queue_log, projector.queue_log)
    writer_file.open()
    journal.before_commit.append(writer_file.flush)
    recorder = TimedRecorder(journal, projector, lambda: ("queues.yaml", acd_text))
    recorder.dumps = []
    writer = asyncio.create_task(journal.run(), name="journal")
    ticks_from = planned[-1][0] - clock_checkpoints_s
    next_tick = ticks_from
    gc.collect()
    t0 = time.perf_counter()
    for n, (at, body) in enumerate(planned, 1):
        clock.now = at
        if at >= next_tick:
            recorder.tick(at)
            next_tick = at + 1.0
        recorder.record(body)
        if n % yield_every == 0:
            await asyncio.sleep(0)
    await journal.durable(journal.last_seq)
    elapsed = time.perf_counter() - t0
    # The end of the day is a crash: what is durable stays, nothing more is written.
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    writer_file.close()
    await store.close()
    return Day(db, queue_log, len(planned), offers, elapsed, len(recorder.dumps), recorder.dumps)


# ------------------------------------------------------------------------------------------------ recovery

FLOW = "flow: main\nlanguage: en-US\nfallback: {queue: q0}\nstart: q\nnodes:\n  q: {type: queue, queue: q0}\n"


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on (yet): for the server, or for a PBX that is unreachable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def time_recover(day: Day, config: AcdConfig) -> tuple[float, int, int]:
    """open_store + recover(): (seconds, facts replayed, checkpoint's seq)."""
    t = time.perf_counter()
    store = await open_store(sqlite_url(day.db))
    got = await recover(store, config)
    elapsed = time.perf_counter() - t
    await store.close()
    if got.dropped:
        raise RuntimeError(f"recovery dropped facts: {got.dropped}")
    return elapsed, got.replayed, got.checkpoint_seq


async def time_server_start(tmp: Path, day: Day, config: AcdConfig, acd_text: str) -> float:
    """CtiServer.start() on the day's database until the gateway port answers; the PBX is unreachable."""
    flows = tmp / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    server = CtiServer(ServerSettings(
        pbxes=(PbxSettings("pbx1", "127.0.0.1", free_port(), "cti", "ctisecret"),), acd=config,
        acd_text=acd_text, database_url=sqlite_url(day.db), flows_dir=flows, accounts=(), agi_port=0,
        http_port=0, recordings_dir=tmp / "recordings", queue_log=day.queue_log))
    t = time.perf_counter()
    await server.start()
    while not await listening(server.http_port):
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t
    if server.recovery.dropped:
        raise RuntimeError(f"the server dropped facts: {server.recovery.dropped}")
    await server.stop()
    return elapsed


def write_cti_yaml(tmp: Path, db: Path, acd_text: str, http_port: int, agi_port: int) -> Path:
    (tmp / "flows").mkdir(exist_ok=True)
    (tmp / "flows" / "main.yaml").write_text(FLOW)
    (tmp / "queues.yaml").write_text(acd_text)
    cfg = {
        "pbx": [{"name": "pbx1", "host": "127.0.0.1", "port": free_port(), "username": "cti",
                 "secret": "ctisecret"}],
        "agi": {"host": "127.0.0.1", "port": agi_port, "allow": ["127.0.0.1"]},
        "http": {"host": "127.0.0.1", "port": http_port},
        "crm": {"url": sqlite_url(db), "default_country": "CN"},
        "ivr": {"flows_dir": str(tmp / "flows"), "default_flow": "main", "recordings_dir": str(tmp / "rec")},
        "acd": {"queues_file": "queues.yaml"},  # the queue_log is beside cti.yaml: the day's
        "accounts": [],
        "security": {"token_secret": "bench-token-secret-0123456789"},
    }
    path = tmp / "cti.yaml"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    return path


async def time_process_start(tmp: Path, day: Day, acd_text: str) -> float:
    """`ctiserver run` from exec until its gateway port answers (interpreter and imports included)."""
    http_port, agi_port = free_port(), free_port()
    config = write_cti_yaml(tmp, day.db, acd_text, http_port, agi_port)
    out = (tmp / "server.log").open("ab")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ctiserver.cli", "run", "--config", str(config)],  # noqa: ASYNC220
                            stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        while not await listening(http_port):
            if proc.poll() is not None:
                raise RuntimeError(f"ctiserver exited with {proc.returncode}: "
                                   f"{(tmp / 'server.log').read_text()[-2000:]}")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t
    finally:
        proc.terminate()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        out.close()
    return elapsed


# ------------------------------------------------------------------------------------ kill -9 and restart

KILL_PASSWORD = "agent-pass-1"
# A caller the CTI lost waits this long (virtual seconds) in [cti-fallback] before the operator is dialled:
# longer than the bench, so only the restarted server can serve them.
SLOW_FALLBACK = {"CTI_FALLBACK_WAIT": "100000"}


def kill_queues_yaml(agents: list[str]) -> str:
    rows = "".join(f'  - {{id: "{a}", name: Agent {a}, skills: {{support: 1}}, queues: [support]}}\n' for a in agents)
    return ("skills: [support]\npause_reasons: [break]\nqueues:\n"
            "  - {name: support, skills: {support: 1}, wrap_up_s: 3600, ring_timeout_s: 20, announce_every_s: 0}\n"
            "agents:\n" + rows)


class Console:
    """A console on the gateway's websocket: requests and their replies; pushes are kept for `Monitor`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pushes: list[dict[str, Any]] = []

    @classmethod
    async def login(cls, url: str, username: str) -> Console:
        from websockets.asyncio.client import connect

        console = cls(await connect(url, open_timeout=5, close_timeout=1))
        await console.next(5)  # hello
        reply = await console.request("auth", username=username, password=KILL_PASSWORD)
        if reply["type"] != "auth_ok":
            raise RuntimeError(f"login {username}: {reply}")
        return console

    async def next(self, timeout: float) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return msg

    async def request(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send(json.dumps({"v": 1, "type": kind, "id": msg_id, **fields}))
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.next(max(0.01, deadline - time.monotonic()))
            if msg.get("re") == msg_id:
                return msg
            self.pushes.append(msg)

    async def collect(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.pushes.append(await self.next(left))
            except TimeoutError:
                return

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class Monitor:
    """The supervisor's grid and wallboard, from the snapshot and the deltas."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.agents: dict[str, dict[str, Any]] = {}
        self.wallboard: dict[str, dict[str, Any]] = {}

    async def settle(self, seconds: float = 0.05) -> None:
        await self.console.collect(seconds)
        for m in self.console.pushes:
            if m["type"] == "snapshot":
                self.agents, self.wallboard = dict(m["agents"]), dict(m["wallboard"])
            for table, kind, key in ((self.agents, "agent_grid_delta", "agents"),
                                     (self.wallboard, "wallboard_delta", "queues")):
                if m["type"] == kind:
                    for k, row in m[key].items():
                        if row is None:
                            table.pop(k, None)
                        else:
                            table.setdefault(k, {}).update(row)
        self.console.pushes.clear()

    def state(self, agent_id: str) -> tuple[str, str]:
        row = self.agents.get(agent_id, {})
        return str(row.get("state", "")), str(row.get("call_id", ""))

    def waiting(self) -> int:
        return int(self.wallboard.get("support", {}).get("waiting", 0))


class Watch:
    """The simulator's truth every 20 ms: how many live channels each agent's phone has, and which agents
    each caller was bridged with."""

    def __init__(self, sim: Any, agents: list[str]) -> None:
        self.sim = sim
        self.prefixes = {f"PJSIP/{a}-": a for a in agents}
        self.most: dict[str, int] = dict.fromkeys(agents, 0)
        self.served_by: dict[str, set[str]] = {}  # caller channel name -> agents it was bridged with
        self.samples = 0

    def agent_of(self, name: str) -> str | None:
        return self.prefixes.get(name[: name.index("-") + 1]) if "-" in name else None

    def sample(self) -> None:
        phones: dict[str, list[Any]] = {}
        for c in self.sim.world.channels.values():
            if c.dead or c.hungup:
                continue
            agent = self.agent_of(c.name)
            if agent is not None:
                phones.setdefault(agent, []).append(c)
            elif c.bridge is not None:
                for peer in c.bridge.channels:
                    by = self.agent_of(peer.name)
                    if by is not None and not peer.dead:
                        self.served_by.setdefault(c.name, set()).add(by)
        for agent, chans in phones.items():
            if len(chans) > 1 and self.most[agent] < 2:
                log(f"agent {agent} has {len(chans)} live channels: " + "; ".join(
                    f"{c.name} {c.uniqueid} state {c.state} app {c.app} bridge {c.bridge and c.bridge.uniqueid}"
                    for c in chans))
            self.most[agent] = max(self.most[agent], len(chans))
        self.samples += 1

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.02)


@dataclass
class KillSite:
    site: Any
    agents: list[str]
    monitor: Monitor | None = None
    consoles: dict[str, Console] | None = None
    saved: set[tuple[str, str]] = field(default_factory=set)  # (agent, call) wrap-ups saved since the start
    saved_before_kill: set[tuple[str, str]] = field(default_factory=set)
    saved_again: int = 0  # wrap-ups an agent saved again after a restart (its return to ready was lost)

    async def connect(self) -> None:
        """Consoles after a (re)start: a new session for each (the agents stay logged in to the ACD)."""
        self.monitor = Monitor(await Console.login(self.site.ws_url, "boss"))
        self.consoles = {a: await Console.login(self.site.ws_url, f"agent{a}") for a in self.agents}

    async def disconnect(self) -> None:
        for c in [*(self.consoles or {}).values(), *([self.monitor.console] if self.monitor else [])]:
            await c.close()
        self.monitor, self.consoles = None, None

    async def kill_and_restart(self, while_down: Callable[[], object] | None = None) -> float:
        self.site.kill()
        await self.disconnect()
        # What the agents see after the restart is what they act on: a wrap-up shown open is saved again
        # (the last batch interval before a kill -9 may not be durable: the agent's return to ready).
        self.saved_before_kill |= self.saved
        self.saved = set()
        if while_down is not None:
            while_down()
        await asyncio.sleep(0.2)
        t = time.perf_counter()
        await self.site.start_server()
        elapsed = time.perf_counter() - t
        await self.connect()
        return elapsed

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        assert self.monitor is not None
        deadline = time.monotonic() + timeout
        while True:
            await self.monitor.settle(0.05)
            if predicate():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}: {self.monitor.agents}")

    def in_state(self, state: str) -> list[str]:
        assert self.monitor is not None
        return [a for a in self.agents if self.monitor.state(a)[0] == state]

    async def save_wrapups(self, agents: list[str]) -> int:
        """Each agent in wrap-up saves it; returns how many saves were refused."""
        assert self.monitor is not None and self.consoles is not None
        refused = 0
        for a in agents:
            state, call_id = self.monitor.state(a)
            if state == "wrap_up" and call_id and (a, call_id) not in self.saved:
                self.saved.add((a, call_id))
                self.saved_again += (a, call_id) in self.saved_before_kill
                reply = await self.consoles[a].request("wrapup", call_id=call_id, disposition="resolved",
                                                       notes=f"bench {a}")
                refused += reply["type"] != "wrapup_saved"
        return refused


def hang_up_agent_call(sim: Any, agent: str) -> bool:
    """The caller talking with `agent` hangs up."""
    prefix = f"PJSIP/{agent}-"
    for run in sim.callers:
        chan = run.chan
        if chan.dead or chan.hungup or chan.bridge is None:
            continue
        if any(p.name.startswith(prefix) for p in chan.bridge.channels):
            run.hang_up()
            return True
    return False


async def kill_scenario(tmp: Path, size: Size) -> dict[str, Any]:
    from ctiserver.gateway.auth import hash_password
    from pbxsim.people import CallerBehaviour
    from pbxsim.site import ProcessSite, SiteConfig

    root = tmp / "kill"
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "main.yaml").write_text(FLOW.replace("q0", "support"))
    agents = [f"20{n:02d}" for n in range(1, size.talking + size.wrapping + 1)]
    talking, wrapping = agents[:size.talking], agents[size.talking:]
    secret = hash_password(KILL_PASSWORD, n=2**10)
    accounts = [{"username": f"agent{a}", "role": "agent", "agent_id": a, "password_hash": secret} for a in agents]
    accounts.append({"username": "boss", "role": "supervisor", "password_hash": secret})
    # Checkpoints every 50 facts: each restart loads one and replays the facts after it, as after a long day.
    site = ProcessSite(root, SiteConfig(kill_queues_yaml(agents), root / "flows", accounts,
                                        extra={"journal": {"checkpoint_facts": 50}}), sim_globals=SLOW_FALLBACK)
    watch = Watch(site.sim, agents)
    ks = KillSite(site, agents)
    restarts: list[float] = []
    refused = 0
    await site.start()
    watcher = asyncio.create_task(watch.run(), name="watch")
    try:
        for a in agents:
            site.sim.add_agent_phone(a, answer_after=0.5)
        await ks.connect()
        assert ks.consoles is not None
        for a in agents:
            reply = await ks.consoles[a].request("agent_login", extension=a, queues=["support"])
            if reply["type"] != "result":
                raise RuntimeError(f"agent_login {a}: {reply}")
        # Every agent takes a caller; the wrapping ones' callers hang up.
        patient = CallerBehaviour(patience=100_000)
        for i in range(len(agents)):
            site.sim.place_call(DID, f"1380013{i:04d}", f"Talking {i}", patient)
        await ks.until(lambda: len(ks.in_state("on_call")) == len(agents), "every agent talking")
        for a in wrapping:
            hang_up_agent_call(site.sim, a)
        await ks.until(lambda: set(ks.in_state("wrap_up")) == set(wrapping), "wrap-ups")
        # Callers wait; once served they talk a little (20 virtual s) and hang up.
        served_then_gone = CallerBehaviour(patience=100_000, hangup_after_connect=20.0)
        waiting = [site.sim.place_call(DID, f"1390013{i:04d}", f"Waiting {i}", served_then_gone).name
                   for i in range(size.waiting)]
        assert ks.monitor is not None
        await ks.until(lambda: ks.monitor is not None and ks.monitor.waiting() == size.waiting,
                       f"{size.waiting} callers waiting")

        # 1. A steady moment: callers waiting, agents talking and in wrap-up.
        restarts.append(await ks.kill_and_restart())
        await ks.until(lambda: ks.monitor is not None and ks.monitor.waiting() == size.waiting,
                       "the waiting callers seen again", 40)
        if size.kills >= 2:
            # 2. Offers in flight: the wrap-ups are saved, the freed agents' phones ring for the next callers.
            refused += await ks.save_wrapups(wrapping)
            restarts.append(await ks.kill_and_restart())
        if size.kills >= 3:
            # 3. Calls ending: two talking callers hang up just before the kill, one more while it is down.
            await ks.until(lambda: all(ks.monitor is not None and ks.monitor.state(a)[0] == "on_call"
                                       for a in talking), "the talking agents seen again")
            for a in talking[:2]:
                hang_up_agent_call(site.sim, a)
            await asyncio.sleep(0.005)
            restarts.append(await ks.kill_and_restart(lambda: hang_up_agent_call(site.sim, talking[2])))

        # Drain: the first calls end, every wrap-up is saved, every waiting caller is served and hangs up.
        for a in talking:
            hang_up_agent_call(site.sim, a)
        deadline = time.monotonic() + 60
        drained = False
        while not drained and time.monotonic() < deadline:
            assert ks.monitor is not None
            await ks.monitor.settle(0.05)
            refused += await ks.save_wrapups(agents)
            drained = all(r.chan.dead for r in site.sim.callers) and \
                all(ks.monitor.state(a)[0] == "available" for a in agents)
        if not drained:
            log(f"not drained in 60 s: agents {ks.monitor.agents if ks.monitor else '?'}")
        stopped = await site.stop_server()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await ks.disconnect()
        await site.close()

    con = sqlite3.connect(site.db)
    rows = con.execute("SELECT call_id, root_call_id, ended_at FROM interactions").fetchall()
    con.close()
    ids = {r[0] for r in rows} | {r[1] for r in rows}
    placed = list(site.sim.callers)
    callers = {r.chan.linkedid for r in placed} | {r.chan.uniqueid for r in placed}
    lost = [name for name in waiting if not watch.served_by.get(name)]
    return {
        "calls_lost": len(lost),
        "agents_double_booked": sum(1 for n in watch.most.values() if n > 1),
        "rows_missing_end": sum(1 for r in rows if r[2] is None),
        "calls_without_row": sum(1 for r in placed if r.chan.linkedid not in ids and r.chan.uniqueid not in ids),
        "phantom_rows": sum(1 for r in rows if r[0] not in callers and r[1] not in callers),
        "callers_served_twice": sum(1 for name in waiting if len(watch.served_by.get(name, ())) > 1),
        "kill_rounds": len(restarts),
        "kill_restart_s_max": round(max(restarts), 3),
        "kill_drained": drained,
        "kill_wrapups_saved_again": ks.saved_again,
        "kill_wrapups_refused": refused,
        "kill_exit_code": stopped,
        "kill_watch_samples": watch.samples,
    }


# -------------------------------------------------------------------------------------------------- main


async def run(size: Size, seed: int, tmp: Path) -> dict[str, Any]:
    acd_text = acd_yaml()
    config = parse_config(acd_text, "queues.yaml")
    start_at = time.time() - size.day_span_s - 3600.0
    t = time.perf_counter()
    planned, offers = plan_day(config, acd_text, size.day_calls, size.day_span_s, start_at, seed)
    log(f"planned {size.day_calls} calls, {len(planned)} facts in {time.perf_counter() - t:.1f} s")
    gc.collect()
    gc.freeze()  # the plan is the bench's, not the server's: the collector must not walk it in the checkpoints

    bodies = [body for _, body in itertools.islice(itertools.cycle(planned), size.rate_facts)]
    rate = await journal_rate(tmp, bodies, YIELD_EVERY)
    log(f"journal only: {rate}")
    del bodies

    day = await record_day(tmp, planned, config, acd_text, clock_checkpoints_s=120.0, yield_every=YIELD_EVERY)
    if day.offers != offers:
        raise RuntimeError(f"the replayed day made {day.offers} offers, the plan {offers}: not deterministic")
    log(f"day recorded: {day.facts} facts in {day.elapsed_s:.1f} s, {day.checkpoints} checkpoints, "
        f"dumps {[round(x, 2) for x in day.checkpoint_dump_s]}")
    del planned
    gc.unfreeze()
    gc.collect()

    recovers = [await time_recover(day, config) for _ in range(3)]
    log(f"recover(): {recovers}")
    start_s = await time_server_start(tmp, day, config, acd_text)
    log(f"CtiServer.start() to serving: {start_s:.3f} s")
    process_s = await time_process_start(tmp, day, acd_text)
    log(f"ctiserver run to serving: {process_s:.3f} s")
    con = sqlite3.connect(day.db)
    checkpoint_bytes = con.execute("SELECT LENGTH(state) FROM journal_checkpoints ORDER BY seq DESC LIMIT 1"
                                   ).fetchone()[0]
    con.close()
    recovery_db_bytes = db_bytes(day.db)
    shutil.rmtree(tmp / "flows", ignore_errors=True)
    for leftover in tmp.glob("day.db*"):
        leftover.unlink()

    t = time.perf_counter()
    kill = await kill_scenario(tmp, size)
    log(f"kill -9 scenario in {time.perf_counter() - t:.1f} s: {kill}")

    # The day's checkpoints block the loop while they are dumped (see checkpoint_s_max): the rate with
    # projections is per second of the rest, which is what the facts themselves cost.
    projecting_s = day.elapsed_s - sum(day.checkpoint_dump_s)
    return {
        "quick": size is QUICK,
        "journal_facts_per_s": round(rate["facts"] / rate["elapsed_s"]),
        "journal_append_us": round(1e6 * rate["append_s"] / rate["facts"], 2),
        "journal_facts": rate["facts"],
        "journal_batches": rate["batches"],
        "journal_facts_per_s_with_projections": round(day.facts / projecting_s),
        "day_calls": size.day_calls,
        "day_facts": day.facts,
        "day_checkpoints": day.checkpoints,
        "checkpoint_s_max": round(max(day.checkpoint_dump_s), 3),
        "checkpoint_bytes": checkpoint_bytes,
        "recovery_s": round(start_s, 3),
        "recover_s": round(statistics.median(r[0] for r in recovers), 3),
        "recovery_process_s": round(process_s, 3),
        "recovery_replayed_facts": recovers[0][1],
        "recovery_db_bytes": recovery_db_bytes,
        **kill,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same keys, under a minute")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (databases, logs)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # sends to consoles a kill -9 cut off
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-journal-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run(size, args.seed, tmp))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
