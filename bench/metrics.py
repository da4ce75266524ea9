"""What a Prometheus scrape of /metrics costs on a busy centre. Prints ONE JSON object.

    .venv/bin/python bench/metrics.py [--quick] [--seed N]

The centre is built the way the server builds it: facts go through `Recorder.record` (the real journal on
SQLite in a temp dir, the real projector: ACD router, statistics, call records), the router's decisions go
to the bus where `CentreMetrics` observes its histograms, as ctiserver.app wires it. 5,000 agents logged in
over 50 queues (--quick: 1,000 over 10); most take a call (offered, ringing, answered), some end it and stay
in wrap-up, some calls are still ringing, the other agents pause; then callers queue with nobody free and a
few of them hang up. The journal is committed once, so its figures are real.

* metrics_scrape_ms: the median of `scrapes` scrapes, each `CentreMetrics.render()` (the collector reading
  the projector, then prometheus_client's generate_latest): what the gateway runs on the event loop for
  GET /metrics. Target: under 50 ms at 5,000 agents. scrape_ms_min / scrape_ms_max beside it.
* exposition_bytes, samples: the size of one scrape.
* alert_check_ms: the median of as many looks of the alert timer (`AlertService.check`: every queue and a
  fifth of the agents judged against their targets, every target set), what it holds the event loop for
  every second; alerts_in_force: those it raised (the abandon rates are past their 5%).
* agents, queues, calls_waiting (queued or ringing), calls_connected, agents_by_state: the situation
  scraped (waiting and the agents read back from the scrape itself); build_s: how long building it took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig, AgentConfig, AgentTargets, AlertTiming, QueueConfig, QueueTargets
from crmstore.store import open_store
from ctiserver.alerts.service import AlertService
from ctiserver.bus import EventBus
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.metrics.centre import CentreMetrics
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder

FULL = {"agents": 5000, "queues": 50, "connected": 3000, "wrap_up": 300, "ringing": 200, "waiting": 2000,
        "abandoned": 300, "scrapes": 15}
QUICK = {"agents": 1000, "queues": 10, "connected": 600, "wrap_up": 60, "ringing": 40, "waiting": 400,
         "abandoned": 60, "scrapes": 9}


def build_config(size: dict[str, int], rng: random.Random) -> AcdConfig:
    # Every target set, for every queue and every agent: the alert check does all its work.
    targets = QueueTargets(abandon_rate_pct=5.0, longest_wait_s=600.0, asa_s=60.0)
    queues = [QueueConfig(name=f"q{i}", skills={f"s{i}": 1}, wrap_up_s=3600.0, announce_every_s=0.0,
                          ring_timeout_s=3600.0, short_abandon_s=0.0, targets=targets)
              for i in range(size["queues"])]
    site = AgentTargets(long_call_s=1800.0, long_wrap_up_s=600.0, long_pause_s=3600.0)
    agents = []
    for i in range(size["agents"]):
        member = rng.sample(queues, 3)
        agents.append(AgentConfig(f"a{i}", f"Agent {i}", {f"s{q.name[1:]}": 5 for q in member},
                                  tuple(q.name for q in member), f"PJSIP/{1000 + i}", targets=site))
    return AcdConfig(tuple(f"s{i}" for i in range(size["queues"])), ("break", "lunch"),
                     tuple(queues), tuple(agents), 1.0, "<bench>", agent_targets=site,
                     alerts=AlertTiming(raise_after_s=0.0, clear_after_s=0.0))


class Centre:
    def __init__(self, recorder: Recorder, rng: random.Random) -> None:
        self.recorder = recorder
        self.rng = rng
        self.calls = 0

    def record(self, body: object) -> list[d.Decision]:
        return self.recorder.record(body)

    def caller(self, queue: str) -> tuple[str, d.Offer | None]:
        """A caller arrives and queues; the offer the router made at once, if any."""
        self.calls += 1
        call_id = f"c{self.calls}"
        self.record(f.CallArrived(call_id, "pbx1", f"PJSIP/pstn-{self.calls:08x}", f"+86138{self.calls:08d}", "",
                                  "4000"))
        offers = [x for x in self.record(ev.CallEnqueued(call_id, queue, caller_num=f"+86138{self.calls:08d}"))
                  if isinstance(x, d.Offer)]
        return call_id, offers[0] if offers else None


def build(size: dict[str, int], config: AcdConfig, centre: Centre) -> tuple[int, int]:
    rng = centre.rng
    queues = [q.name for q in config.queues]
    for agent in config.agents:
        centre.record(ev.AgentLoggedIn(agent.id))
    talking: list[tuple[str, str]] = []
    offered = 0
    while offered < size["connected"] + size["ringing"]:
        call_id, offer = centre.caller(rng.choice(queues))
        if offer is None:
            continue  # nobody free for that queue: the caller waits (counted with the others)
        offered += 1
        centre.record(ev.OfferRinging(call_id, offer.agent_id))
        if offered <= size["connected"]:
            centre.record(ev.OfferAnswered(call_id, offer.agent_id))
            centre.record(f.CallConnected(call_id, f"PJSIP/{offer.agent_id}-1", offer.leg_id))
            talking.append((offer.agent_id, call_id))
    for agent_id, call_id in talking[: size["wrap_up"]]:
        centre.record(ev.AgentCallEnded(agent_id, call_id, "caller"))
        centre.record(f.CallEnded(call_id, 16, "Normal Clearing", "caller"))
    router = centre.recorder.projector.router
    now = centre.recorder.journal.clock()
    for agent in config.agents:
        if router.agent_view(agent.id, now).state == "available":
            centre.record(ev.AgentPaused(agent.id, rng.choice(("break", "lunch"))))
    waiting = [centre.caller(rng.choice(queues))[0] for _ in range(size["waiting"] + size["abandoned"])]
    for call_id in rng.sample(waiting, size["abandoned"]):
        centre.record(ev.CallerHungUp(call_id))
        centre.record(f.CallEnded(call_id, 16, "Normal Clearing", "caller"))
    return len(talking) - size["wrap_up"], size["waiting"]


def figures(text: str) -> dict[str, Any]:
    waiting = connected = samples = 0
    by_state: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples += 1
            if sample.name == "cti_queue_calls_waiting":
                waiting += int(sample.value)
            elif sample.name == "cti_agents":
                by_state[sample.labels["state"]] = int(sample.value)
            elif sample.name == "cti_queue_agents" and sample.labels["state"] == "on_call":
                connected += int(sample.value)  # per queue: an agent serves 3 queues
    return {"calls_waiting": waiting, "agents_on_call_by_queue": connected, "agents_by_state": by_state,
            "samples": samples}


async def run(size: dict[str, int], seed: int, tmp: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.perf_counter()
    config = build_config(size, rng)
    store = await open_store(f"sqlite:///{tmp / 'crm.db'}")
    try:
        journal = Journal(store)
        projector = Projector(config)
        bus = EventBus()
        metrics = CentreMetrics(lambda: projector, journal, lambda: {"pbx1": True}, bus)

        def publish(fact: f.Fact | None, decisions: list[d.Decision]) -> None:  # as ctiserver.app does
            if fact is not None:
                bus.publish(fact.body)
            bus.publish_all(decisions)

        projector.listeners.append(publish)
        recorder = Recorder(journal, projector, lambda: ("<bench>", ""), checkpoint_facts=10**9,
                            checkpoint_s=10**9)
        connected, waiting = build(size, config, Centre(recorder, rng))
        metrics.pop_latency.observe(0.002)  # the pops: pushed by the consoles' notifier, none here
        await journal.flush()
        build_s = time.perf_counter() - started
        timings = []
        text = b""
        for _ in range(size["scrapes"]):
            t0 = time.perf_counter()
            text, _ = metrics.render()
            timings.append((time.perf_counter() - t0) * 1000)
        seen = figures(text.decode())
        alerts = AlertService(recorder, journal.clock)
        alerts.check()  # the abandon rates are past 5%: those alerts are raised (recorded) once, here
        checks = []
        for _ in range(size["scrapes"]):
            t0 = time.perf_counter()
            alerts.check()
            checks.append((time.perf_counter() - t0) * 1000)
        # Waiting on the wallboard's terms: queued, and offered but not yet answered.
        assert seen["calls_waiting"] >= waiting + size["ringing"], (seen["calls_waiting"], waiting)
        return {
            "metrics_scrape_ms": round(statistics.median(timings), 2),
            "scrape_ms_min": round(min(timings), 2),
            "scrape_ms_max": round(max(timings), 2),
            "scrapes": size["scrapes"],
            "alert_check_ms": round(statistics.median(checks), 2),
            "alerts_in_force": len(projector.alerts),
            "exposition_bytes": len(text),
            "samples": seen["samples"],
            "agents": size["agents"],
            "queues": size["queues"],
            "calls_waiting": seen["calls_waiting"],
            "calls_connected": connected,
            "agents_by_state": seen["agents_by_state"],
            "facts": journal.last_seq,
            "build_s": round(build_s, 1),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same keys, under a minute")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        result = asyncio.run(run(QUICK if args.quick else FULL, args.seed, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
