"""ACD routing benchmark: prints ONE JSON object.

Decision latency is the wall time of one `Router.handle(event, now)` call (one event in, its
decisions out) in a steady state of 5,000 agents, 200 skills, 50 queues and about 2,000
waiting calls: agents hang up, finish wrap-up and pick the best waiting call across their
queues, answer, and new callers arrive; escalation steps and position announcements fire
from the router's timers on the way. `--quick` runs the same measurement at a fifth of the size.

`extra_skills` (new keys, the same figures) repeats the run with callers who need an extra skill on
top of their queue's, as a language line of a shared queue does: two language skills held by a
quarter and a tenth of the agents, asked by a fifth of the callers. The top-level figures are those
of callers without extra skills, measured exactly as before.

offer_p50_ms / offer_p99_ms (queue entry to agent ringing through the PBX simulator) come
from `measure_offer_latency`, which the I/O service will provide.

    .venv/bin/python bench/acd_routing.py [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acd import decisions as d
from acd import events as ev
from acd.config import (
    POLICIES,
    AcdConfig,
    AgentConfig,
    EscalationStep,
    QueueConfig,
)
from acd.router import Router

# step_ms: simulated time per cycle, chosen so callers wait 60-100 s and escalations fire.
FULL = {"agents": 5000, "skills": 200, "queues": 50, "waiting": 2000, "cycles": 25000, "step_ms": 50}
QUICK = {"agents": 1000, "skills": 40, "queues": 10, "waiting": 400, "cycles": 8000, "step_ms": 200}
# The extra-skills run: (skill, share of agents holding it, share of callers asking for it).
LANGUAGES = (("lang_ko", 0.25, 0.15), ("lang_ja", 0.10, 0.05))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_config(size: dict[str, int], rng: random.Random, languages: bool = False) -> AcdConfig:
    skills = tuple(f"s{i}" for i in range(size["skills"]))
    queues = []
    for i in range(size["queues"]):
        required = {s: rng.randint(3, 6) for s in rng.sample(skills, rng.randint(1, 2))}
        relaxed = {s: max(1, level - 2) for s, level in required.items()}
        steps = [EscalationStep(30.0, min_levels=relaxed)]
        if i > 0:  # overflow only to a lower-numbered queue: no cycles
            steps.append(EscalationStep(60.0, also_offer_to=(f"q{rng.randrange(i)}",)))
        queues.append(QueueConfig(name=f"q{i}", skills=required, policy=POLICIES[i % len(POLICIES)],  # type: ignore[arg-type]
                                  escalation=tuple(steps), wrap_up_s=5.0, announce_every_s=30.0))
    agents = []
    for i in range(size["agents"]):
        member = rng.sample(queues, 3)
        levels: dict[str, int] = {s: rng.randint(1, 10) for s in rng.sample(skills, 3)}
        for q in member:
            for s, level in q.skills.items():
                levels[s] = max(levels.get(s, 0), rng.randint(level - 2, 10))
        if languages:  # only in the extra-skills run: the plain run draws the same numbers as always
            for skill, held, _ in LANGUAGES:
                if rng.random() < held:
                    levels[skill] = rng.randint(1, 10)
        agents.append(AgentConfig(f"a{i}", f"Agent {i}", levels, tuple(q.name for q in member), f"PJSIP/{i}"))
    if languages:
        skills += tuple(skill for skill, _, _ in LANGUAGES)
    return AcdConfig(skills, ("break", "lunch"), tuple(queues), tuple(agents), priority_aging_per_s=0.5,
                     source="bench")


class Bench:
    def __init__(self, size: dict[str, int], seed: int, languages: bool = False) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.languages = languages
        self.step_s = size["step_ms"] / 1000
        self.config = build_config(size, self.rng, languages)
        self.router = Router(self.config)
        self.now = 0.0
        self.calls = 0
        self.on_call: dict[str, str] = {}  # agent -> call
        self.wrapping: list[str] = []
        self.offered: dict[str, str] = {}  # call -> agent
        self.queue_names = [q.name for q in self.config.queues]
        self.latencies: dict[str, list[int]] = {}
        self._talking: list[str] = []
        self._talking_stale = True
        self._misses = 0
        self.decisions = 0
        self.offers = 0
        self.warm = True

    def send(self, event: ev.Event, measure: bool) -> list[d.Decision]:
        t0 = time.perf_counter_ns()
        out = self.router.handle(event, self.now)
        elapsed = time.perf_counter_ns() - t0
        if measure and self.warm:
            self.latencies.setdefault(type(event).__name__, []).append(elapsed)
            self.decisions += len(out)
        for x in out:
            if isinstance(x, d.Offer):
                self.offered[x.call_id] = x.agent_id
                self.offers += measure and self.warm
        return out

    def new_call(self, measure: bool) -> None:
        self.calls += 1
        r = self.rng.random()
        skills: tuple[str, ...] = ()
        if self.languages:
            pick, edge = self.rng.random(), 0.0
            for skill, _, asked in LANGUAGES:
                edge += asked
                if pick < edge:
                    skills = (skill,)
                    break
        self.send(ev.CallEnqueued(f"c{self.calls}", self.rng.choice(self.queue_names), priority=self.rng.randint(0, 3),
                                  caller_num="01012345678", vip=r < 0.05, grade="A" if r > 0.9 else None,
                                  skills=skills), measure)

    def answer_offers(self, measure: bool) -> None:
        for call_id, agent_id in list(self.offered.items()):
            self.send(ev.OfferRinging(call_id, agent_id), measure)
            self.send(ev.OfferAnswered(call_id, agent_id), measure)
            self.on_call[agent_id] = call_id
        self.offered.clear()

    def setup(self) -> None:
        for agent in self.config.agents:
            self.send(ev.AgentLoggedIn(agent.id), False)
        # Everyone busy, then the waiting line builds up. Some agents only qualify after the
        # 30 s relaxation step, so let that much time pass before counting the idle ones.
        target = self.size["waiting"]
        while len(self.on_call) < len(self.config.agents) and self.waiting() < target:
            self.new_call(False)
            self.answer_offers(False)
        self.now = 31.0
        self.send(ev.Tick(), False)
        self.answer_offers(False)
        for agent in self.config.agents:
            if agent.id not in self.on_call:
                self.send(ev.AgentPaused(agent.id, "break"), False)  # nobody's calls reached them
        while self.waiting() < target:  # callers arrive over time, as they do, so timers spread out
            self.now += self.step_s
            self.new_call(False)
            self.answer_offers(False)
        self.warm = False
        for _ in range(2 * target):  # run in unmeasured until arrivals and timers are in steady state
            self.cycle()
        self.latencies.clear()
        self.decisions = self.offers = 0
        self.warm = True

    def waiting(self) -> int:
        return len(self.router.call_ids()) - len(self.on_call)

    def cycle(self) -> None:
        """One agent hangs up, one finishes wrap-up and takes the best call, one caller arrives."""
        self.advance(self.now + self.step_s)
        agent_id = self.rng.choice(self.talking)
        call_id = self.on_call.pop(agent_id)
        self.send(ev.AgentCallEnded(agent_id, call_id), True)
        self.wrapping.append(agent_id)
        if len(self.wrapping) > 20:  # most finish wrap-up themselves, in arrival order
            self.send(ev.WrapUpDone(self.wrapping.pop(0)), True)
        self.answer_offers(True)
        self.new_call(True)
        self.answer_offers(True)

    def advance(self, until: float) -> None:
        """What the service does: sleep until `next_due()`, tick, repeat (timers run in their own step)."""
        while (due := self.router.next_due()) is not None and due <= until:
            self.now = due
            self.send(ev.Tick(), True)
            self.answer_offers(True)
        self.now = until

    @property
    def talking(self) -> list[str]:
        # Rebuilt lazily: a random pick among agents on a call without an O(n) list per cycle.
        if self._talking_stale:
            self._talking = list(self.on_call)
            self._talking_stale = False
        while True:
            pick = self._talking[self.rng.randrange(len(self._talking))]
            if pick in self.on_call:
                return [pick]
            self._misses += 1
            if self._misses > 1000:
                self._misses = 0
                self._talking_stale = True
                return self.talking

    def run(self) -> dict[str, Any]:
        rss_before = rss_mb()
        t0 = time.perf_counter()
        self.setup()
        setup_s = time.perf_counter() - t0
        waiting_at_start = len(self.router.call_ids()) - len(self.on_call)
        gc.collect()
        gc.freeze()  # long-lived config and indexes out of the collector's way, as the service should do
        rss_loaded = rss_mb()
        t0 = time.perf_counter()
        for _ in range(self.size["cycles"]):
            self.cycle()
        wall = time.perf_counter() - t0
        everything = sorted(x for values in self.latencies.values() for x in values)
        busy_ns = sum(everything)

        def pct(values: list[int], p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))] / 1e6, 4)

        by_event = {name: {"n": len(v), "p50_ms": pct(sorted(v), 0.5), "p99_ms": pct(sorted(v), 0.99)}
                    for name, v in sorted(self.latencies.items())}
        return {
            "decision_p50_ms": pct(everything, 0.50),
            "decision_p99_ms": pct(everything, 0.99),
            "decision_max_ms": pct(everything, 1.0),
            "decisions_per_s": round(len(everything) / (busy_ns / 1e9)),
            "decision_objects_per_s": round(self.decisions / (busy_ns / 1e9)),
            "offers_per_s": round(self.offers / (busy_ns / 1e9)),
            "events_measured": len(everything),
            "by_event": by_event,
            "agents": self.size["agents"], "skills": self.size["skills"], "queues": self.size["queues"],
            "waiting_calls_at_start": waiting_at_start,
            "waiting_calls_at_end": len(self.router.call_ids()) - len(self.on_call),
            "setup_s": round(setup_s, 2),
            "loop_wall_s": round(wall, 2),
            "rss_mb": round(rss_mb(), 1),
            "router_rss_mb": round(rss_loaded - rss_before, 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def measure_offer_latency(quick: bool) -> dict[str, Any]:
    """Queue entry to agent ringing through the PBX simulator (pbxsim): for the lead.

    Expected keys: offer_p50_ms, offer_p99_ms, and calls_per_s with 500 simulated agents.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from acd_offer_e2e import measure

    return measure(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    result = Bench(size, args.seed).run()
    result["quick"] = args.quick
    extra = Bench(size, args.seed, languages=True).run()
    result["extra_skills"] = {
        "callers_share": round(sum(asked for _, _, asked in LANGUAGES), 2),
        **{k: extra[k] for k in ("decision_p50_ms", "decision_p99_ms", "decision_max_ms", "decisions_per_s",
                                 "decision_objects_per_s", "offers_per_s", "events_measured", "by_event",
                                 "waiting_calls_at_start", "waiting_calls_at_end", "setup_s", "loop_wall_s")},
    }
    try:
        result.update(measure_offer_latency(args.quick))
    except NotImplementedError as exc:
        result.update({"offer_p50_ms": None, "offer_p99_ms": None, "offer_note": f"not measured yet: {exc}"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
