"""A busy day of the test site's centre for the Reports page: calls arrive all day (more at 10:00 and 15:00),
agents answer (put some on hold, transfer a few to support), callers give up or ask to be
called back, some are served by the IVR alone, agents take lunch; the server is down
from 13:05 to 13:25 (a gap). Driven through the real projector and journal (as tests/reports/test_day.py
is), into a scratch database; its report rows and call history are then copied into the site's CRM, with a
grading run of the day (grade movements).

The router decides who is offered a call; this only plays the callers and the agents: answer after a few
rings, talk, wrap up, give up after their patience."""

from __future__ import annotations

import heapq
import itertools
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from acd import decisions as d
from acd import events as ev
from acd.config import parse_config
from crmstore.store import open_store
from ctiserver.crm_history.writer import CrmHistoryWriter
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder
from ctiserver.reports.writer import ReportsWriter

DAY = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday, in the site's zone (UTC)
OPEN_H, CLOSE_H = 8, 18
GAP = (13 * 3600 + 5 * 60, 13 * 3600 + 25 * 60)  # seconds after midnight: the server was down
LUNCH = {"1003": (12 * 3600, 12 * 3600 + 2700), "1004": (12 * 3600 + 1800, 12 * 3600 + 4500)}
QUEUE_SHARE = (("support", 0.5), ("sales", 0.3), ("vip", 0.1), ("complaints", 0.1))
EXTRA_AGENTS = (("1003", "王芳 Wang Fang"), ("1004", "Bob Lee"), ("1005", "陈静 Chen Jing"))


def with_more_agents(acd_yaml: str) -> str:
    """The site's queues with three more agents (no console accounts: they only answer in the past)."""
    extra = "".join(f'  - {{id: "{i}", name: {n}, skills: {{sales: 5, support: 5, complaints: 5, english: 5}},\n'
                    f"     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/{i}}}\n"
                    for i, n in EXTRA_AGENTS)
    return acd_yaml + extra


def _rate_per_hour(hour: float) -> float:
    """Calls an hour: a morning and an afternoon peak."""
    return 16 + 40 * max(0.0, 1 - abs(hour - 10.5) / 2.5) + 28 * max(0.0, 1 - abs(hour - 15) / 2)


class _Day:
    def __init__(self, recorder: Recorder, clock: list[float], rng: random.Random) -> None:
        self.r = recorder
        self.clock = clock
        self.rng = rng
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.waiting: set[str] = set()  # in a queue, not answered
        self.ringing: dict[str, str] = {}  # call -> agent
        self.transferred: set[str] = set()
        self.callbacks: set[str] = set()  # waiting for a call back: their patience no longer runs out

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), action))

    def record(self, body: object) -> list[d.Decision]:
        out = self.r.record(body)
        for x in out:
            if isinstance(x, d.Offer):
                self.offered(x)
        return out

    def now(self) -> float:
        return self.clock[0]

    def offered(self, offer: d.Offer) -> None:
        cid, agent = offer.call_id, offer.agent_id
        self.ringing[cid] = agent
        if self.rng.random() < 0.04:  # away from the desk: the phone rings out, the agent is not responding
            self.at(self.now() + 15, lambda: self.ring_out(cid, agent))
            return
        self.at(self.now() + self.rng.uniform(3, 9), lambda: self.answer(cid, agent))

    def ring_out(self, cid: str, agent: str) -> None:
        if self.ringing.get(cid) != agent:
            return
        del self.ringing[cid]
        self.record(ev.OfferFailed(cid, agent, "no-answer"))
        self.at(self.now() + 90, lambda: self.record(ev.AgentReady(agent)))

    def answer(self, cid: str, agent: str) -> None:
        if self.ringing.get(cid) != agent:
            return  # the caller gave up while it rang
        del self.ringing[cid]
        self.waiting.discard(cid)
        self.record(ev.OfferAnswered(cid, agent))
        talk = min(self.rng.lognormvariate(5.25, 0.6), 1500)  # about 190 s, a few over 10 minutes
        if self.rng.random() < 0.15:  # "let me check that for you"
            self.at(self.now() + talk * 0.3, lambda: self.record(ev.HoldStarted(cid)))
            self.at(self.now() + talk * 0.6, lambda: self.record(ev.HoldEnded(cid)))
        self.at(self.now() + talk, lambda: self.hang_up(cid, agent))

    def hang_up(self, cid: str, agent: str) -> None:
        wrap_up = self.now() + self.rng.uniform(5, 25)
        if cid not in self.transferred and self.rng.random() < 0.06:  # "let me put you through to support"
            self.transferred.add(cid)
            self.waiting.add(cid)
            self.record(ev.TransferToQueue(cid, agent, "support"))
            self.at(self.now() + self.rng.expovariate(1 / 120), lambda: self.give_up(cid))
            self.at(wrap_up, lambda: self.record(ev.WrapUpDone(agent)))
            return
        self.record(ev.AgentCallEnded(agent, cid, self.rng.choice(("caller", "agent"))))
        self.record(f.CallEnded(cid, 16, "", "caller"))
        if self.rng.random() < 0.35:
            self.at(self.now() + 20, lambda: self.record(f.SurveyAnswered(cid, self.rng.choice((3, 4, 4, 5, 5)))))
        self.at(wrap_up, lambda: self.record(ev.WrapUpDone(agent)))

    def arrive(self, cid: str, queue: str) -> None:
        caller = f"1380013{self.rng.randrange(400):04d}"  # some call again the same day
        self.r.record(f.CallArrived(cid, "pbx1", f"PJSIP/pstn-{cid}", caller, "", "5551000"))
        if self.rng.random() < 0.25:
            self.r.record(f.IvrStarted(cid, "main", False))
            if self.rng.random() < 0.4:  # served by the IVR alone
                self.at(self.now() + self.rng.uniform(30, 90), lambda: self.r.record(f.CallEnded(cid, 16, "", "caller")))
                return
        self.waiting.add(cid)
        self.record(ev.CallEnqueued(cid, queue))
        patience = self.rng.expovariate(1 / 70)
        self.at(self.now() + patience, lambda: self.give_up(cid))

    def give_up(self, cid: str) -> None:
        if cid not in self.waiting or cid in self.callbacks:
            return
        if cid not in self.ringing and self.rng.random() < 0.25:  # "call me back" rather than hanging up
            self.callbacks.add(cid)
            self.record(ev.CallbackRequested(cid))
            return
        self.waiting.discard(cid)
        self.ringing.pop(cid, None)
        self.record(ev.CallerHungUp(cid))
        self.record(f.CallEnded(cid, 16, "", "caller"))

    def pause(self, agent: str, reason: str) -> None:
        self.record(ev.AgentPaused(agent, reason))

    def run(self, until: float) -> None:
        while self.heap and self.heap[0][0] <= until:
            t, _, action = heapq.heappop(self.heap)
            self.clock[0] = t
            action()
        self.clock[0] = until


def _play(recorder: Recorder, clock: list[float], agents: list[str], seed: int) -> None:
    rng = random.Random(seed)
    day = _Day(recorder, clock, rng)
    t0 = DAY.timestamp()
    clock[0] = t0 + OPEN_H * 3600 - 300
    for agent in agents:
        day.record(ev.AgentLoggedIn(agent))
    for agent, (start, stop) in LUNCH.items():
        day.at(t0 + start, lambda a=agent: day.pause(a, "lunch"))
        day.at(t0 + stop, lambda a=agent: day.record(ev.AgentReady(a)))
    t, n = t0 + OPEN_H * 3600, 0
    while t < t0 + CLOSE_H * 3600:
        t += rng.expovariate(_rate_per_hour((t - t0) / 3600) / 3600)
        if t0 + GAP[0] - 600 <= t < t0 + GAP[1]:
            continue  # nobody calls a server that is about to stop (the gap stays clean)
        n += 1
        queue = rng.choices([q for q, _ in QUEUE_SHARE], [w for _, w in QUEUE_SHARE])[0]
        day.at(t, lambda cid=f"d{n}", q=queue: day.arrive(cid, q))
    day.run(t0 + GAP[0])
    recorder.record(f.Heartbeat())
    day.run(t0 + GAP[1])
    recorder.record(f.ServerStarted("test", t0 + GAP[0]))
    day.run(t0 + CLOSE_H * 3600 + 1800)
    for agent in agents:
        day.record(ev.AgentLoggedOut(agent))
    clock[0] = t0 + CLOSE_H * 3600 + 3600
    recorder.record(f.Heartbeat())


async def _build(scratch: Path, acd_yaml: str, seed: int) -> None:
    config = parse_config(acd_yaml, "<report day>")
    store = await open_store(f"sqlite:///{scratch}")
    try:
        clock = [DAY.timestamp()]
        projector = Projector(config, tz=UTC)
        journal = Journal(store, lambda: clock[0])
        recorder = Recorder(journal, projector, lambda: ("<report day>", acd_yaml), checkpoint_facts=10**9)
        projector.listeners.append(CrmHistoryWriter(projector.records, journal, "CN"))  # first-contact reads it
        projector.listeners.append(ReportsWriter(projector.intervals, journal, UTC))
        _play(recorder, clock, [a.id for a in config.agents], seed)
        await journal.flush()
    finally:
        await store.close()


GRADE_MOVES = (("A", "B", 3), ("B", "A", 1), ("B", "C", 2), ("C", "B", 4), ("", "A", 2), ("", "C", 5))


async def store_report_day(db: Path, acd_yaml: str, seed: int = 7) -> None:
    """The day's report rows (cells, pauses, gaps) and a grading run of the day, into the CRM `db`."""
    scratch = db.with_name("report-day.db")
    await _build(scratch, acd_yaml, seed)
    _copy(scratch, db)


def _copy(scratch: Path, db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute("ATTACH DATABASE ? AS day", (str(scratch),))
        with con:
            for table in ("report_cells", "report_pauses", "report_gaps", "report_folded"):
                con.execute(f"INSERT INTO main.{table} SELECT * FROM day.{table}")
            columns = [c[1] for c in con.execute("PRAGMA day.table_info(interactions)") if c[1] not in ("id", "customer_id")]
            names = ", ".join(columns)
            con.execute(f"INSERT INTO main.interactions ({names}) SELECT {names} FROM day.interactions")
            customers = [row[0] for row in con.execute("SELECT id FROM customers ORDER BY id")]
            when = DAY.timestamp() + 2 * 3600  # the nightly grading run, at 02:00
            rows, k = [], 0
            for old, new, n in GRADE_MOVES:
                for _ in range(n):
                    rows.append((customers[k % len(customers)], old or None, new, 100_000, "2025-11-16",
                                 "2026-11-16", when, 0))
                    k += 1
            con.executemany("INSERT INTO grade_history (customer_id, old_grade, new_grade, revenue_cents,"
                            " period_start, period_end, changed_at, fast) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("DETACH DATABASE day")
    finally:
        con.close()
