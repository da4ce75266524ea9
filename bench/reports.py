"""Reports benchmark: prints ONE JSON object.

A synthetic year of a contact centre stored as report aggregates (`crmstore/reports.py`): 10,000,000 calls,
500 agents, 50 queues (each agent in 5 queues): 15-minute rows for the day reported on, day rows for every
day and month rows for every month, as the server writes them. Then, timed (median of several runs):

* report_day_ms: `inbound-summary` of one day by hour (15-minute rows of the queues);
  report_day_agents_ms: `agent-comparison` of that day (every agent's rows);
* report_year_ms: the slower of `inbound-summary` of the year by month and `agent-comparison` of the
  year (month rows); targets: day under 100 ms, year under 1,000 ms on SQLite;
  each report also as *_cpu_ms: the process's CPU time (the database's thread included), which the
  load of a shared machine moves far less than the wall clock (load_average_1m says how loaded it was);
* aggregate_cost_us_per_call: the interval aggregator's own CPU time per call, over the facts and
  decisions of calls run through the real projector (router, records) and replayed into the aggregator
  alone, closed intervals taken after each fact as the server's writer does; target under 50 us;
* metrics_scrape_ms: a /metrics scrape with 5,000 agents (--quick: 1,000), bench/metrics.py's centre.

`--quick` (under a minute, same keys) stores a year of 1,000,000 calls for 100 agents and 10 queues.

Measured on the shared 2-core machine (docs/reports.md, Speed), medians, wall ms (CPU ms):
  --quick, 3 runs at load 4: report_day_ms 15.8 (5.7), report_year_ms 33.5 (21.8), aggregate 16.6 us;
  full, at load 6.6: report_day_ms 92.1 (32.4), report_year_ms 326 (108), aggregate 17.2 us, 58 s;
  full, at load 14: report_day_ms 159 (31), report_year_ms 574 (165), aggregate 30.2 us, 2 min 10 s.
  Before (a0b1e7a), full at load 10: report_day_ms 210 (117), report_year_ms 3,733 (1,653).
On PostgreSQL the CPU figures leave out the server's own work (--quick at load 14: day 52 ms, year 164 ms).

    .venv/bin/python bench/reports.py [--quick] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acd import decisions as d
from acd import events as ev
from acd.config import parse_config
from crmstore import reports as store_ops
from crmstore.plan import ExecuteMany, Plan
from crmstore.store import CrmStore, open_store
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector
from ctiserver.reports.engine import Query, run_report
from ctiserver.reports.intervals import Intervals

FULL = {"calls": 10_000_000, "agents": 500, "queues": 50, "queues_per_agent": 5, "aggregated_calls": 20_000}
QUICK = {"calls": 1_000_000, "agents": 100, "queues": 10, "queues_per_agent": 5, "aggregated_calls": 5_000}
YEAR = 2026
TZ = UTC


def acd_yaml(size: dict[str, int]) -> str:
    queues = [f"q{i}" for i in range(size["queues"])]
    lines = ["skills: [s]", "pause_reasons: [break]", "queues:"]
    lines += [f"  - {{name: {q}, skills: {{s: 1}}, wrap_up_s: 5, announce_every_s: 0}}" for q in queues]
    lines.append("agents:")
    for a in range(size["agents"]):
        mine = [queues[(a + k) % len(queues)] for k in range(size["queues_per_agent"])]
        lines.append(f'  - {{id: "a{a}", name: A{a}, skills: {{s: 1}}, queues: [{", ".join(mine)}], '
                     f"endpoint: PJSIP/a{a}}}")
    return "\n".join(lines) + "\n"


def cell(rng: random.Random, calls: float, agent_time: bool = False) -> list[float]:
    """Plausible figures for `calls` calls (or an agent's time), one value per stored column."""
    values: dict[str, float] = dict.fromkeys(store_ops.METRICS, 0)
    n = max(0, round(calls * rng.uniform(0.8, 1.2)))
    answered = round(n * 0.9)
    values.update(offered=n, answered=answered, answered_in_sl=round(answered * 0.8), abandoned=n - answered,
                  short_abandoned=(n - answered) // 4, wait_answered_s=answered * 18.0,
                  wait_abandoned_s=(n - answered) * 40.0, wait_max_s=180.0, offers=answered + 2,
                  handled=answered, talk_s=answered * 180.0, hold_s=answered * 10.0, wrapup_s=answered * 20.0,
                  transferred=answered // 20, surveys=answered // 10, survey_sum=answered // 10 * 4,
                  aw_0=answered // 2, aw_3=answered - answered // 2, tk_3=answered)
    if agent_time:
        values.update(login_s=28_800.0, available_s=6_000.0, on_call_s=18_000.0, wrap_up_s=3_000.0,
                      paused_s=1_800.0)
    return [values[m] for m in store_ops.METRICS]


def insert(rows: list[tuple[Any, ...]]) -> Plan[None]:
    columns = ("grain", "start", "queue", "agent", "flow", *store_ops.METRICS)
    yield ExecuteMany(f"INSERT INTO report_cells ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                      rows)


async def store_year(store: CrmStore, size: dict[str, int], rng: random.Random) -> tuple[int, datetime]:
    """Day rows for the year, month rows, and 15-minute rows for one day in the middle. Returns the row
    count and the day reported on."""
    queues = [f"q{i}" for i in range(size["queues"])]
    agents = [f"a{i}" for i in range(size["agents"])]
    memberships = [(agents[a], queues[(a + k) % len(queues)]) for a in range(len(agents))
                   for k in range(size["queues_per_agent"])]
    per_day = size["calls"] / 365
    rows = 0
    day0 = datetime(YEAR, 1, 1, tzinfo=TZ)
    batch: list[tuple[Any, ...]] = []

    async def flush() -> None:
        nonlocal batch
        if batch:
            await store.write_plan(insert(batch))
            batch = []

    def day_rows(grain: str, start: int, calls: float) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = [(grain, start, q, "", "", *cell(rng, calls / len(queues))) for q in queues]
        out += [(grain, start, q, a, "", *cell(rng, calls / len(memberships))) for a, q in memberships]
        out += [(grain, start, "", a, "", *cell(rng, 0, agent_time=True)) for a in agents]
        return out

    for n in range(365):
        start = int((day0 + timedelta(days=n)).timestamp())
        batch += day_rows("day", start, per_day)
        rows += len(queues) + len(memberships) + len(agents)
        if len(batch) > 50_000:
            await flush()
    for month in range(1, 13):
        start = int(datetime(YEAR, month, 1, tzinfo=TZ).timestamp())
        batch += day_rows("month", start, per_day * 30.4)
        rows += len(queues) + len(memberships) + len(agents)
    the_day = datetime(YEAR, 6, 15, tzinfo=TZ)
    for k in range(96):
        start = int(the_day.timestamp()) + 900 * k
        active = rng.sample(memberships, min(len(memberships), max(1, len(memberships) // 10)))
        batch += [("15m", start, q, "", "", *cell(rng, per_day / 96 / len(queues))) for q in queues]
        batch += [("15m", start, q, a, "", *cell(rng, per_day / 96 / len(active))) for a, q in active]
        batch += [("15m", start, "", a, "", *cell(rng, 0, agent_time=True)) for a in agents[: len(agents) * 3 // 10]]
        rows += len(queues) + len(active) + len(agents) * 3 // 10
    await flush()
    return rows, the_day


async def timed(run: Callable[[], Awaitable[Any]], repeat: int = 5) -> tuple[float, float]:
    """Medians in ms of the wall clock and of the process's CPU time (the database's thread included)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        await run()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return round(statistics.median(wall), 1), round(statistics.median(cpu), 1)


def aggregate_cost(size: dict[str, int], rng: random.Random) -> dict[str, float]:
    """Calls through the real projector; the captured facts and decisions replayed into the aggregator."""
    config = parse_config(acd_yaml({**size, "agents": 50, "queues": 5}), "<bench>")
    projector = Projector(config)
    captured: list[tuple[f.Fact | None, list[d.Decision]]] = []
    projector.listeners.append(lambda fact, out: captured.append((fact, out)))
    seq = itertools.count(1)
    now = 1_800_000_000.0

    def record(body: object) -> list[d.Decision]:
        return projector.apply(f.Fact(next(seq), now, body))

    for a in config.agents:
        record(ev.AgentLoggedIn(a.id))
    calls = size["aggregated_calls"]
    t = time.perf_counter()
    for n in range(calls):
        now += rng.uniform(0.5, 2.5)
        cid = f"c{n}"
        record(f.CallArrived(cid, "pbx1", f"PJSIP/pstn-{n}", "13800138000", "", "5551000"))
        offers = [x for x in record(ev.CallEnqueued(cid, f"q{n % 5}")) if isinstance(x, d.Offer)]
        for offer in offers:
            now += 0.5
            record(ev.OfferAnswered(cid, offer.agent_id))
            now += rng.uniform(20, 60)
            record(ev.AgentCallEnded(offer.agent_id, cid, "caller"))
            record(f.CallEnded(cid, 16, "", "caller"))
        if not offers:
            now += 1.0
            record(ev.CallerHungUp(cid))
            record(f.CallEnded(cid, 16, "", "caller"))
    projector_s = time.perf_counter() - t
    # The aggregator's own CPU time (on a shared machine the wall clock measures the neighbours too); closed
    # intervals are taken after each fact, as the server's writer does, so they do not pile up in memory.
    samples, intervals = [], 0
    for _ in range(3):
        fresh = Intervals(config)
        intervals = 0
        t = time.process_time()
        for fact, out in captured:
            fresh.apply(fact, out, projector.records)
            intervals += len(fresh.take_closed())
        samples.append(time.process_time() - t)
    return {"aggregate_cost_us_per_call": round(statistics.median(samples) / calls * 1e6, 2),
            "projector_cost_us_per_call": round(projector_s / calls * 1e6, 2),
            "aggregated_calls": calls, "aggregated_intervals": intervals}


async def metrics_scrape(quick: bool, seed: int, tmp: Path) -> float:
    """bench/metrics.py's centre (5,000 agents; --quick: its smaller one), scraped as /metrics is."""
    import metrics  # bench/metrics.py, beside this file

    (tmp / "metrics").mkdir()
    size = metrics.QUICK if quick else metrics.FULL
    return float((await metrics.run(size, seed, tmp / "metrics"))["metrics_scrape_ms"])


async def main_async(quick: bool, db: str | None, seed: int) -> dict[str, Any]:
    size = QUICK if quick else FULL
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    url = db or f"sqlite:///{tmp / 'crm.db'}"
    store = await open_store(url)
    config = parse_config(acd_yaml(size), "<bench>")
    try:
        t = time.perf_counter()
        rows, day = await store_year(store, size, rng)
        setup_s = time.perf_counter() - t
        day_end = day + timedelta(days=1)
        year = (datetime(YEAR, 1, 1, tzinfo=TZ), datetime(YEAR + 1, 1, 1, tzinfo=TZ))
        day_summary = Query("inbound-summary", day, day_end, "hour")
        day_agents = Query("agent-comparison", day, day_end, "total")
        year_summary = Query("inbound-summary", *year, "month")
        year_agents = Query("agent-comparison", *year, "total")
        check = await run_report(store, year_agents, config)
        assert len(check.rows) == size["agents"], len(check.rows)
        result: dict[str, Any] = {}
        for name, query in (("report_day", day_summary), ("report_day_agents", day_agents),
                            ("report_year_summary", year_summary), ("report_year_agents", year_agents)):
            result[f"{name}_ms"], result[f"{name}_cpu_ms"] = await timed(partial(run_report, store, query, config))
    finally:
        await store.close()
    for figure in ("ms", "cpu_ms"):
        result[f"report_year_{figure}"] = max(result[f"report_year_summary_{figure}"],
                                              result[f"report_year_agents_{figure}"])
    result.update(aggregate_cost(size, rng))
    result["metrics_scrape_ms"] = await metrics_scrape(quick, seed, tmp)
    result.update({"calls_per_year": size["calls"], "agents": size["agents"], "queues": size["queues"],
                   "stored_rows": rows, "setup_s": round(setup_s, 1), "database": url.split(":", 1)[0],
                   "quick": quick, "load_average_1m": round(os.getloadavg()[0], 1)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", help="a database URL (default: a new SQLite file)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.quick, args.db, args.seed))))


if __name__ == "__main__":
    main()
