"""Pop latency through the websocket gateway, and what a supervisor's monitor costs on the wire.

The server process runs the real Gateway (ctiserver.gateway.server) on loopback with a minimal
backend; a second process holds the consoles (N agents + M supervisors, real websocket
clients), so the two cores are split between server and clients as on a real site. Calls arrive
at a fixed rate; the real ACD router (acd.router.Router, 1,000 agents over 10 queues) picks the
agent, and the call is offered with a realistic screen pop, rings,
is answered, talks, wraps up, and the agent becomes available again, with the agent state,
call state, call list and wallboard pushes the app would make.

pop latency = from just before the router handles the caller's queue entry (the ACD's offer
decision) to the offer frame being read by the agent's websocket, on CLOCK_MONOTONIC (shared by
processes). In the server the pop's CRM data is fetched while the caller waits, so it is ready then.

Prints one JSON object: pop_p50_ms, pop_p99_ms, pop_max_ms, supervisor_bytes_per_min, ...
    python bench/pop_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import multiprocessing.connection
import random
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acd import decisions as acd_d
from acd import events as acd_ev
from acd.config import parse_config
from acd.router import Router
from ctiserver.gateway.auth import Account, Accounts, Principal, Role, hash_password
from ctiserver.gateway.backend import (
    AgentSnapshot,
    AgentView,
    CallView,
    ConsoleConfig,
    MonitorSnapshot,
    OfferView,
)
from ctiserver.gateway.server import Gateway, GatewayConfig

QUEUES = tuple(f"q{i:02d}" for i in range(10))


@dataclass(frozen=True, slots=True)
class Sizes:
    agents: int
    supervisors: int
    calls_per_s: float
    seconds: float
    talk_s: float


FULL = Sizes(agents=1000, supervisors=100, calls_per_s=50, seconds=60, talk_s=12)
QUICK = Sizes(agents=1000, supervisors=100, calls_per_s=50, seconds=12, talk_s=6)


def now_ns() -> int:
    return time.monotonic_ns()


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def sample_pop(n: int) -> dict[str, object]:
    """A pop the size of a real one: customer card, flags, 5 interactions, a ticket, a follow-up."""
    return {
        "caller": f"+86138{n:08d}",
        "customer": {"id": n, "name": f"客户{n} Customer", "company": "某某贸易有限公司", "email": "c@example.com",
                     "phones": [f"+86138{n:08d}"], "accounts": [f"AC-{n}"], "tags": ["gold", "wholesale"],
                     "notes": "prefers mornings; 需要发票", "preferred_language": "zh",
                     "contact_time": "weekdays 9-12", "contact_channel": "phone", "is_lead": False, "grade": "A",
                     "created_at": "2023-05-01T10:00:00"},
        "flags": [{"flag": "vip", "reason": "top revenue", "set_at": "2024-01-02T00:00:00", "set_by": "crm"}],
        "grade": "A", "grade_change": None,
        "interactions": [{"id": i, "call_id": f"c-{i}", "started_at": "2024-05-01T09:30:00", "direction": "inbound",
                          "outcome": "answered", "queue": "q01", "agent": "a0001", "disposition": "resolved",
                          "notes": "asked about the invoice for last month's order", "talk_s": 120.0}
                         for i in range(5)],
        "open_tickets": [{"id": 3, "category": "complaint", "subject": "late delivery", "status": "open",
                          "opened_at": "2024-05-01T09:00:00", "due_at": "2024-05-06T09:00:00"}],
        "due_follow_ups": [{"id": 5, "kind": "callback", "owner": "a0001", "due_at": "2024-05-02T10:00:00",
                            "status": "open", "note": "refund"}],
        "churn": [], "actions": [{"kind": "ticket", "text": "complaint open 5 days", "priority": 1}],
        "last_agent": "a0001",
    }


class BenchBackend:
    """Commands are not exercised here; the bench measures the push path."""

    def console_config(self, who: Principal) -> ConsoleConfig:
        return ConsoleConfig(queues=QUEUES)

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        return AgentSnapshot(AgentView(agent_id, "available", time.time()))

    def console_presence(self, agent_id: str, connected: bool) -> None:
        return None  # the gateway tells it of every agent connection; presence is not measured here

    async def monitor_snapshot(self) -> MonitorSnapshot:
        return MonitorSnapshot(wallboard={q: {"waiting": 0, "sl": 100.0} for q in QUEUES})


# ------------------------------------------------------------------ console process


async def consoles(ws_url: str, agent_tokens: Sequence[str], supervisor_tokens: Sequence[str],
                   control: mp.connection.Connection) -> None:
    from websockets.asyncio.client import connect

    received: dict[str, int] = {}
    sup_bytes = [0] * len(supervisor_tokens)
    counting = asyncio.Event()

    async def agent_loop(token: str, ready: asyncio.Event) -> None:
        async with connect(ws_url, max_size=2**20, open_timeout=30, compression=None) as ws:
            await ws.recv()  # hello
            await ws.send(json.dumps({"type": "resume", "token": token, "last_seq": 0}))
            await ws.recv()  # auth_ok
            await ws.recv()  # snapshot
            ready.set()
            while True:  # cancelled at the end: no per-message timeout to keep the client cheap
                raw = await ws.recv(decode=False)
                t = now_ns()
                if b'"type":"offer"' in raw[:40]:
                    msg = json.loads(raw)
                    received[msg["offer"]["offer_id"]] = t

    async def supervisor_loop(i: int, token: str, ready: asyncio.Event) -> None:
        async with connect(ws_url, max_size=2**22, open_timeout=30, compression=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "resume", "token": token, "last_seq": 0}))
            await ws.recv()
            await ws.recv()
            ready.set()
            while True:
                raw = await ws.recv(decode=False)
                if counting.is_set():
                    sup_bytes[i] += len(raw)

    tasks = []
    async with asyncio.TaskGroup() as tg:
        for batch_start in range(0, len(agent_tokens) + len(supervisor_tokens), 100):
            batch = []
            for j in range(batch_start, min(batch_start + 100, len(agent_tokens) + len(supervisor_tokens))):
                ready = asyncio.Event()
                if j < len(agent_tokens):
                    tasks.append(tg.create_task(agent_loop(agent_tokens[j], ready)))
                else:
                    k = j - len(agent_tokens)
                    tasks.append(tg.create_task(supervisor_loop(k, supervisor_tokens[k], ready)))
                batch.append(ready.wait())
            await asyncio.wait_for(asyncio.gather(*batch), 60)
        loop = asyncio.get_running_loop()
        # The consoles stand for 1,100 browsers: keep this process's collector from pausing all
        # of them at once (a gen-2 pass over every connection's objects) inside the measurement.
        gc.collect()
        gc.freeze()
        control.send("ready")
        assert await loop.run_in_executor(None, control.recv) == "count"
        counting.set()
        started = now_ns()
        assert await loop.run_in_executor(None, control.recv) == "stop"
        counting.clear()
        window_s = (now_ns() - started) / 1e9
        await asyncio.sleep(0.5)  # late offers still count as received
        for task in tasks:
            task.cancel()
    control.send({"received": received, "sup_bytes": sup_bytes, "window_s": window_s})


def console_process(ws_url: str, agent_tokens: list[str], supervisor_tokens: list[str],
                    control: mp.connection.Connection) -> None:
    raise_fd_limit()
    asyncio.run(consoles(ws_url, agent_tokens, supervisor_tokens, control))


# ------------------------------------------------------------------ server process (this one)


def acd_router(agent_ids: Sequence[str]) -> Router:
    """The real ACD router deciding every offer: agents spread over the queues, all skilled enough."""
    lines = ["skills: [s]", "pause_reasons: [break]", "queues:"]
    lines += [f"  - {{name: {q}, skills: {{s: 1}}, wrap_up_s: 2, ring_timeout_s: 20}}" for q in QUEUES]
    lines.append("agents:")
    for i, a in enumerate(agent_ids):
        lines.append(f"  - {{id: '{a}', name: A{i}, skills: {{s: 5}}, queues: [{QUEUES[i % len(QUEUES)]}],"
                     f" endpoint: PJSIP/{1000 + i}}}")
    return Router(parse_config("\n".join(lines) + "\n", "<bench>"))


async def run(sizes: Sizes) -> dict[str, object]:
    raise_fd_limit()
    shared_hash = hash_password("bench", n=2**10)
    agents = [Account(f"a{i:04d}", Role.AGENT, shared_hash, agent_id=f"a{i:04d}") for i in range(sizes.agents)]
    supervisors = [Account(f"s{i:03d}", Role.SUPERVISOR, shared_hash, extension=f"2{i:03d}")
                   for i in range(sizes.supervisors)]
    gateway = Gateway(BenchBackend(), Accounts(agents + supervisors),  # type: ignore[arg-type]
                      GatewayConfig(port=0, rate_per_s=50, rate_burst=100))
    async with gateway:
        now = time.time()
        agent_tokens = [gateway.signer.issue(a, now)[0] for a in agents]
        sup_tokens = [gateway.signer.issue(s, now)[0] for s in supervisors]
        # Agents and supervisors in two processes, as they sit on different desks: a supervisor's
        # burst of deltas must not queue in front of an agent's pop inside the measuring harness.
        agent_ctl, agent_child = mp.Pipe()
        sup_ctl, sup_child = mp.Pipe()
        spawn = mp.get_context("spawn")
        procs = [spawn.Process(target=console_process, args=(gateway.ws_url, agent_tokens, [], agent_child),
                               daemon=True),
                 spawn.Process(target=console_process, args=(gateway.ws_url, [], sup_tokens, sup_child),
                               daemon=True)]
        for proc in procs:
            proc.start()
        loop = asyncio.get_running_loop()
        for ctl in (agent_ctl, sup_ctl):
            msg = await asyncio.wait_for(loop.run_in_executor(None, ctl.recv), 120)
            assert msg == "ready", msg
        connected = gateway.connection_count()

        for account in agents:  # everyone logged in and available
            await gateway.push_agent_state(AgentView(account.agent_id or "", "available", time.time(),
                                                     extension="1000", queues=(random.choice(QUEUES),)))
        gateway.flush_monitor()
        await asyncio.sleep(1.0)

        router = acd_router([a.agent_id or "" for a in agents])
        clock = loop.time
        for account in agents:
            router.handle(acd_ev.AgentLoggedIn(account.agent_id or ""), clock())
        pushed: dict[str, int] = {}
        waiting: dict[str, int] = dict.fromkeys(QUEUES, 0)
        lifecycles: set[asyncio.Task[None]] = set()

        def offer_of(decisions: list[acd_d.Decision]) -> acd_d.Offer | None:
            return next((x for x in decisions if isinstance(x, acd_d.Offer)), None)

        async def lifecycle(n: int) -> None:
            queue = QUEUES[n % len(QUEUES)]
            call_id = f"call-{n}"
            caller = f"+86138{n:08d}"
            # The clock starts before the ACD decides: queue entry -> Offer -> pop on the agent's socket.
            t0 = now_ns()
            decision = offer_of(router.handle(acd_ev.CallEnqueued(call_id, queue, 0, caller), clock()))
            if decision is None:
                return
            agent_id = decision.agent_id
            offer = OfferView(offer_id=f"offer-{n}", call_id=call_id, agent_id=agent_id, queue=queue,
                              caller=caller, offered_at=time.time(), ring_timeout_s=20,
                              ivr_path=("welcome", "menu", queue), ivr_said=("我想查询订单",), pop=sample_pop(n))
            pushed[offer.offer_id] = t0
            await gateway.push_offer(agent_id, offer)
            waiting[queue] += 1
            await gateway.push_call_list_delta(call_id, {"state": "ringing", "queue": queue, "caller": caller,
                                                         "since": time.time()})
            t = time.time()
            await gateway.push_agent_state(AgentView(agent_id, "reserved", t, queues=(queue,)))
            await gateway.push_call_state(CallView(call_id, agent_id, "ringing", t, caller=caller, queue=queue))
            router.handle(acd_ev.OfferRinging(call_id, agent_id), clock())
            waiting[queue] -= 1
            await gateway.push_wallboard_delta(queue, {"waiting": waiting[queue]})
            await asyncio.sleep(1.0)
            router.handle(acd_ev.OfferAnswered(call_id, agent_id), clock())
            t = time.time()
            await gateway.push_call_state(CallView(call_id, agent_id, "talking", t, caller=caller, queue=queue,
                                                   talk_since=t))
            await gateway.push_agent_state(AgentView(agent_id, "on_call", t, queues=(queue,)))
            await asyncio.sleep(sizes.talk_s * random.uniform(0.5, 1.5))
            router.handle(acd_ev.AgentCallEnded(agent_id, call_id), clock())
            t = time.time()
            await gateway.push_call_state(CallView(call_id, agent_id, "ended", t, caller=caller, queue=queue))
            await gateway.push_agent_state(AgentView(agent_id, "wrap_up", t, queues=(queue,), wrap_up_until=t + 2))
            await gateway.push_wallboard_delta(queue, {"answered_today": n, "aht_s": round(random.uniform(150, 200), 1),
                                                       "asa_s": round(random.uniform(5, 9), 1),
                                                       "sl": round(random.uniform(80, 95), 1)})
            await asyncio.sleep(2.0)
            router.tick(clock())  # the wrap-up timer ends
            await gateway.push_agent_state(AgentView(agent_id, "available", time.time(), queues=(queue,)))

        # What a long-running server does after start-up (the app should too): move the objects
        # that live for the whole run out of the collector's way, so no gen-2 pass stalls a pop.
        gc.collect()
        gc.freeze()
        for ctl in (agent_ctl, sup_ctl):
            ctl.send("count")
        interval = 1.0 / sizes.calls_per_s
        start = loop.time()
        n = 0
        while loop.time() - start < sizes.seconds:
            due = start + n * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(lifecycle(n))
            lifecycles.add(task)
            task.add_done_callback(lifecycles.discard)
            n += 1
        await asyncio.sleep(0.3)
        for ctl in (agent_ctl, sup_ctl):
            ctl.send("stop")
        agent_result = await asyncio.wait_for(loop.run_in_executor(None, agent_ctl.recv), 60)
        sup_result = await asyncio.wait_for(loop.run_in_executor(None, sup_ctl.recv), 60)
        for task in list(lifecycles):
            task.cancel()
        for proc in procs:
            proc.join(10)

    received: dict[str, int] = agent_result["received"]
    latencies = sorted((received[k] - t0) / 1e6 for k, t0 in pushed.items() if k in received)
    sup_bytes: list[int] = sup_result["sup_bytes"]
    window_s: float = sup_result["window_s"]
    per_sup_per_min = statistics.mean(sup_bytes) * 60.0 / window_s if sup_bytes else 0.0

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else -1.0

    return {
        "pop_p50_ms": pct(0.50),
        "pop_p99_ms": pct(0.99),
        "pop_max_ms": round(latencies[-1], 3) if latencies else -1.0,
        "supervisor_bytes_per_min": round(per_sup_per_min),
        "offers_pushed": len(pushed),
        "offers_received": len(latencies),
        "agents": sizes.agents,
        "supervisors": sizes.supervisors,
        "connected": connected,
        "calls_per_s": sizes.calls_per_s,
        "seconds": sizes.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, same keys (under a minute)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(QUICK if args.quick else FULL))))


if __name__ == "__main__":
    main()
