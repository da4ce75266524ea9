"""For random journals, the interval aggregates agree with the figures recomputed from the raw record: the
queue_log lines (ENTERQUEUE, CONNECT, ABANDON), the agents' state changes, the call history rows; and a
projector restored from a checkpoint at any point closes the same intervals as the one that never
stopped. Pure: facts through the real projector, no database."""

from __future__ import annotations

import itertools
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from acd import decisions as d
from acd import events as ev
from acd.config import parse_config
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector
from ctiserver.reports.intervals import SUMS, Cell

QUEUES = """\
skills: [support, sales]
pause_reasons: [break]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 20, short_abandon_s: 3, announce_every_s: 0,
     max_wait_s: 400, on_max_wait: voicemail}
  - {name: sales, skills: {sales: 1}, wrap_up_s: 10, announce_every_s: 0}
agents:
  - {id: a, name: A, skills: {support: 1}, queues: [support], endpoint: PJSIP/a}
  - {id: b, name: B, skills: {support: 1, sales: 1}, queues: [support, sales], endpoint: PJSIP/b}
  - {id: c, name: C, skills: {sales: 1}, queues: [sales], endpoint: PJSIP/c}
"""
CONFIG = parse_config(QUEUES, "<prop>")
AGENTS = ("a", "b", "c")
T0 = 1_800_000_000.0

Op = tuple[str, int, int]
OPS = st.tuples(
    st.sampled_from(["enqueue", "answer", "fail", "caller_hangs_up", "agent_hangs_up", "hold", "unhold",
                     "to_queue", "to_agent", "wrap", "pause", "ready", "login", "logout", "checkpoint"]),
    st.integers(0, 9), st.integers(0, 600))


class Day:
    def __init__(self) -> None:
        self.p = Projector(CONFIG)
        self.seq = itertools.count(1)
        self.now = T0
        self.calls = 0
        self.changes: list[d.AgentStateChanged] = []
        self.lines: list[str] = []
        self.shadow: Projector | None = None
        self.closed: list[Any] = []
        self.shadow_closed: list[Any] = []

    def __call__(self, body: object) -> list[d.Decision]:
        fact = f.Fact(next(self.seq), self.now, body)
        out = self.p.apply(fact)
        if self.shadow is not None:
            self.shadow.apply(fact)
        return out

    def live_calls(self) -> list[str]:
        return sorted(self.p.router.call_ids())

    def step(self, op: str, n: int, dt: int) -> None:
        self.now += dt / 10
        calls = self.live_calls()
        call = calls[n % len(calls)] if calls else None
        agent = AGENTS[n % len(AGENTS)]
        view = self.p.router.call_view(call) if call else None
        if op == "enqueue":
            self.calls += 1
            cid = f"k{self.calls}"
            self(f.CallArrived(cid, "pbx1", f"PJSIP/pstn-{cid}", "13800138000", "", "5551000"))
            self(ev.CallEnqueued(cid, ("support", "sales")[n % 2]))
        elif op in ("answer", "fail") and view is not None and view.agent_id and view.state in ("offered", "ringing"):
            self(ev.OfferAnswered(call, view.agent_id) if op == "answer"  # type: ignore[arg-type]
                 else ev.OfferFailed(call, view.agent_id, "no-answer"))  # type: ignore[arg-type]
        elif op == "caller_hangs_up" and call is not None:
            self(ev.CallerHungUp(call))
            self(f.CallEnded(call, 16, "", "caller"))
        elif op == "agent_hangs_up" and view is not None and view.agent_id and view.state in ("connected", "held"):
            self(ev.AgentCallEnded(view.agent_id, call, "agent"))  # type: ignore[arg-type]
            self(f.CallEnded(call, 16, "", "agent"))  # type: ignore[arg-type]
        elif op in ("hold", "unhold") and call is not None:
            self(ev.HoldStarted(call) if op == "hold" else ev.HoldEnded(call))
        elif op == "to_queue" and view is not None and view.agent_id and view.state == "connected":
            self(ev.TransferToQueue(call, view.agent_id, ("support", "sales")[n % 2]))  # type: ignore[arg-type]
        elif op == "to_agent" and view is not None and view.agent_id and view.state == "connected":
            self(ev.TransferToAgent(call, view.agent_id, agent))  # type: ignore[arg-type]
        elif op == "wrap":
            self(ev.WrapUpDone(agent))
        elif op == "pause":
            self(ev.AgentPaused(agent, "break"))
        elif op == "ready":
            self(ev.AgentReady(agent))
        elif op == "login":
            self(ev.AgentLoggedIn(agent))
        elif op == "logout":
            self(ev.AgentLoggedOut(agent))
        elif op == "checkpoint" and self.shadow is None:
            self.shadow, problems = Projector.load(self.p.dump(("<prop>", QUEUES)))
            assert problems == []
        self(f.Heartbeat())
        self.closed.extend(self.p.intervals.take_closed())
        if self.shadow is not None:
            self.shadow_closed.extend(self.shadow.intervals.take_closed())


def total(closed: list[Any], key: tuple[str, str, str]) -> Cell:
    out = Cell()
    for interval in closed:
        if key in interval.cells:
            out.add(interval.cells[key])
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=5, max_size=120))
def test_aggregates_agree_with_the_raw_record(ops: list[Op]) -> None:
    day = Day()
    day.p.listeners.append(lambda fact, out: (day.changes.extend(x for x in out if isinstance(x, d.AgentStateChanged)),
                                              day.lines.extend(x.line() for x in out if isinstance(x, d.QueueLogEntry))))
    for op in ops:
        day.step(*op)
    # close everything: a fact well after the last interval's end
    day.now = (int(day.now // 900) + 2) * 900
    day(f.Heartbeat())
    day.closed.extend(day.p.intervals.take_closed())
    closed = day.closed

    for queue in ("support", "sales"):
        cell = total(closed, (queue, "", ""))
        mine = [line.split("|") for line in day.lines if line.split("|")[2] == queue]
        assert cell.offered == sum(1 for x in mine if x[4] == "ENTERQUEUE")
        assert cell.answered == sum(1 for x in mine if x[4] == "CONNECT")
        assert cell.abandoned == sum(1 for x in mine if x[4] == "ABANDON" and x[8:] != ["lost"])
        assert cell.ring_no_answer == sum(1 for x in mine if x[4] == "RINGNOANSWER")
        assert cell.answered_in_sl <= cell.answered and cell.short_abandoned <= cell.abandoned
        assert sum(cell.aw) == cell.answered and sum(cell.ab) == cell.abandoned and sum(cell.tk) == cell.handled
        # the cells of the queue's agents add up to the queue's (answers and handled calls)
        agents = Cell()
        for a in AGENTS:
            agents.add(total(closed, (queue, a, "")))
        assert (agents.answered, agents.handled, agents.transferred) == (cell.answered, cell.handled,
                                                                        cell.transferred)
        assert abs(agents.talk_s - cell.talk_s) < 1e-6 and abs(agents.wrapup_s - cell.wrapup_s) < 1e-6

    for a in AGENTS:
        # an agent's time: all of it between their first login and the close, state by state
        time = total(closed, ("", a, ""))
        parts = (time.available_s + time.reserved_s + time.on_call_s + time.on_hold_s + time.wrap_up_s
                 + time.paused_s + time.not_responding_s)
        assert abs(parts - time.login_s) < 1e-6
        spent = sum(x.time_in_old_s for x in day.changes if x.agent_id == a and x.old != "logged_out")
        last = [x for x in day.changes if x.agent_id == a]
        if last and last[-1].new != "logged_out":
            spent += day.now - last[-1].at
        first = next((x for x in day.changes if x.agent_id == a), None)
        if first is not None:
            assert abs(time.login_s - spent) < 1e-6, (a, time.login_s, spent)
        for interval in closed:
            c = interval.cells.get(("", a, ""))
            assert c is None or c.login_s <= 900 + 1e-6

    # a projector restored from a checkpoint closes the same intervals from then on
    if day.shadow is not None:
        day.shadow_closed.extend(day.shadow.intervals.take_closed())
        restored = {c.start: c for c in day.shadow_closed}
        assert restored, "the restored projector closed intervals too"
        for interval in closed:
            if interval.start in restored:
                theirs = restored[interval.start]
                assert {k: v.columns() for k, v in theirs.cells.items()} == \
                       {k: v.columns() for k, v in interval.cells.items()}, interval.start


def test_cell_sums_cover_every_stored_figure() -> None:
    from crmstore.reports import METRICS

    assert list(Cell().columns()) == list(METRICS)
    assert set(SUMS) | {"wait_max_s"} == {m for m in METRICS if not m[:3] in ("aw_", "ab_", "tk_")}
