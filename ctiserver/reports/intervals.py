"""Interval aggregates: the centre's figures per 15 minutes x queue x agent, folded from the journal's facts
and the ACD's decisions as they happen, so a report over a day, a month or a year reads a few thousand
rows, never all its calls. Pure.

Attribution is by the time things happen (the way LiveStats counts, so the wallboard and a report of the
same hours agree): a call is *offered* to a queue in the interval it enters it, *answered* or *abandoned*
in the interval that happens, *handled* (talk, hold, wrap-up: AHT) in the interval its agent's wrap-up
ends; agents' time in each state is cut at the interval boundaries. docs/reports.md defines every figure.

A cell is one row: `queue` and `agent` and `flow` say what it is about:
* (queue, "", "")    the queue's calls;
* (queue, agent, "") what the agent did with the queue's calls;
* ("", agent, "")    the agent's time in each state (paused time by reason in `pauses`);
* ("", "", flow)     the IVR flow's calls and those it kept (containment).

An interval is closed (final) by the first fact at or after its end; `take_closed()` hands the closed cells
to the writer. The open interval is part of the projector's checkpoint.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from acd import decisions as d
from acd.config import AcdConfig

from ..crm_history.records import CallRecords
from ..journal import facts as f

INTERVAL_S = 900  # 15 minutes; every real time zone's offset is a multiple of it, so local boundaries too
GAP_S = 10.0  # a server start later than this after the previous one's last fact: a gap in the figures

WAIT_BUCKETS = (5, 10, 20, 30, 60, 120, 300)  # seconds: "within 5 s", "5-10 s" ... "over 300 s"
TALK_BUCKETS = (30, 60, 120, 300, 600, 1200)
_COUNTED_FACTS = frozenset({f.IvrStarted, f.CallEnded, f.SurveyAnswered, f.ServerStarted})
_STATE_COLUMNS = {"available": "available_s", "reserved": "reserved_s", "on_call": "on_call_s",
                  "on_hold": "on_hold_s", "wrap_up": "wrap_up_s", "paused": "paused_s",
                  "not_responding": "not_responding_s"}


@dataclass(slots=True)
class Cell:
    """The figures of one interval x (queue, agent, flow), in the order they are stored
    (crmstore.reports.METRICS). Sums and counts (and one maximum), so cells add up into hours, days and
    months. The distributions are flat fields, as stored: a cell is one object, not four (thousands are made
    per interval, and every object that lives on is work for the garbage collector)."""

    # calls of a queue (and per agent: what they answered, handled, transferred)
    offered: int = 0  # entered the queue (a transfer to a queue enters it again)
    answered: int = 0
    answered_in_sl: int = 0  # within the queue's service level time
    abandoned: int = 0  # short abandons included; short_abandoned says how many were short
    short_abandoned: int = 0
    timed_out: int = 0  # left by the queue's deadline or a move
    lost: int = 0  # ended by the system while waiting (a PBX restart, an end nobody saw): nobody's abandon
    left_queue: int = 0  # taken out by the flow (voicemail key, ...)
    callbacks_requested: int = 0
    callbacks_answered: int = 0
    wait_answered_s: float = 0.0
    wait_abandoned_s: float = 0.0
    wait_max_s: float = 0.0
    offers: int = 0  # offers made to agents (an agent's cell: to this agent)
    ring_no_answer: int = 0
    handled: int = 0  # agent parts over (wrap-up ended)
    talk_s: float = 0.0
    hold_s: float = 0.0
    wrapup_s: float = 0.0
    transferred: int = 0  # agent parts ended by a transfer
    surveys: int = 0
    survey_sum: int = 0
    # an agent's time (queue "")
    login_s: float = 0.0
    available_s: float = 0.0
    reserved_s: float = 0.0
    on_call_s: float = 0.0
    on_hold_s: float = 0.0
    wrap_up_s: float = 0.0
    paused_s: float = 0.0
    not_responding_s: float = 0.0
    # an IVR flow's calls
    ivr_calls: int = 0
    ivr_contained: int = 0
    # answered calls by wait (WAIT_BUCKETS: within 5 s, 5-10 s ... over 300 s)
    aw_0: int = 0
    aw_1: int = 0
    aw_2: int = 0
    aw_3: int = 0
    aw_4: int = 0
    aw_5: int = 0
    aw_6: int = 0
    aw_7: int = 0
    # abandoned calls by wait (WAIT_BUCKETS)
    ab_0: int = 0
    ab_1: int = 0
    ab_2: int = 0
    ab_3: int = 0
    ab_4: int = 0
    ab_5: int = 0
    ab_6: int = 0
    ab_7: int = 0
    # handled calls by talk + hold time (TALK_BUCKETS)
    tk_0: int = 0
    tk_1: int = 0
    tk_2: int = 0
    tk_3: int = 0
    tk_4: int = 0
    tk_5: int = 0
    tk_6: int = 0

    @property
    def aw(self) -> list[int]:
        return list(_AW_OF(self))

    @property
    def ab(self) -> list[int]:
        return list(_AB_OF(self))

    @property
    def tk(self) -> list[int]:
        return list(_TK_OF(self))

    def values(self) -> tuple[float, ...]:
        """Every figure, in the stored order (COLUMNS)."""
        return _ALL_OF(self)  # type: ignore[no-any-return]

    def add(self, other: Cell) -> None:
        mine, theirs = _ALL_OF(self), _ALL_OF(other)
        for name, a, b in zip(COLUMNS, mine, theirs, strict=True):
            setattr(self, name, a + b)
        self.wait_max_s = max(mine[_MAX], theirs[_MAX])

    @classmethod
    def total(cls, cells: Sequence[Cell]) -> Cell:
        """The cells added up (in their order, as add() would), as one new cell."""
        rows = [_ALL_OF(c) for c in cells]
        if len(rows) < 2:
            return cls.of(rows[0]) if rows else cls()
        values = [sum(column) for column in zip(*rows, strict=True)]
        values[_MAX] = max(row[_MAX] for row in rows)
        return cls.of(values)

    def columns(self) -> dict[str, float]:
        """Flat, for the database: the stored figures by name (COLUMNS)."""
        return dict(zip(COLUMNS, _ALL_OF(self), strict=True))

    @classmethod
    def from_columns(cls, row: Mapping[str, Any]) -> Cell:
        return cls.of([row[name] for name in COLUMNS])

    @classmethod
    def of(cls, values: Sequence[float]) -> Cell:
        """From every figure in the stored order (COLUMNS)."""
        return cls(*values)  # type: ignore[arg-type]

    @classmethod
    def of_some(cls, names: Sequence[str], values: Sequence[float]) -> Cell:
        """From some figures by name; the others are 0."""
        return cls(**dict(zip(names, values, strict=True)))  # type: ignore[arg-type]


COLUMNS = tuple(fd.name for fd in fields(Cell))
_BUCKETED = ("aw_", "ab_", "tk_")
SCALARS = tuple(name for name in COLUMNS if name[:3] not in _BUCKETED)
SUMS = tuple(name for name in SCALARS if name != "wait_max_s")
_MAX = COLUMNS.index("wait_max_s")
_ALL_OF = attrgetter(*COLUMNS)
_AW = tuple(f"aw_{i}" for i in range(len(WAIT_BUCKETS) + 1))
_AB = tuple(f"ab_{i}" for i in range(len(WAIT_BUCKETS) + 1))
_TK = tuple(f"tk_{i}" for i in range(len(TALK_BUCKETS) + 1))
_AW_OF, _AB_OF, _TK_OF = attrgetter(*_AW), attrgetter(*_AB), attrgetter(*_TK)

Key = tuple[str, str, str]  # (queue, agent, flow)


def bucket(value: float, bounds: tuple[int, ...]) -> int:
    """The first bucket whose bound is at least `value` (len(bounds): over the last)."""
    return bisect_left(bounds, value)


def interval_of(at: float) -> int:
    return int(at // INTERVAL_S) * INTERVAL_S


@dataclass(slots=True)
class Closed:
    """A closed interval's cells and paused seconds by (agent, reason)."""

    start: int
    cells: dict[Key, Cell]
    pauses: dict[tuple[str, str], float]


@dataclass(slots=True)
class _Agent:
    state: str
    since: float
    reason: str = ""
    talk_s: float = 0.0  # of the call in hand, until its wrap-up ends
    hold_s: float = 0.0
    cell: Cell | None = None  # their time's cell in the open interval, once it has one


class Intervals:
    def __init__(self, config: AcdConfig) -> None:
        self.config = config
        self.start: int | None = None  # the open interval
        self.cells: dict[Key, Cell] = {}
        self.pauses: dict[tuple[str, str], float] = {}
        self.closed: list[Closed] = []
        self.gaps: list[tuple[float, float]] = []  # (last alive, back) of server downtimes, to be written
        self._agents: dict[str, _Agent] = {}
        self._answered: set[str] = set()  # calls answered in their current queue stint
        self._callbacks: set[str] = set()
        self._flows: dict[str, str] = {}  # call -> its IVR flow, while it lives
        # The open interval's cells of flow "" by queue, then agent: the same objects as in `cells`, found
        # without building a key per decision.
        self._by_queue: dict[str, dict[str, Cell]] = {}
        self._end = float("-inf")  # of the open interval: a fact at or after it closes it

    # ------------------------------------------------------------------ feeding

    def apply(self, fact: f.Fact | None, decisions: Iterable[d.Decision], records: CallRecords) -> None:
        if fact is not None:
            if fact.at >= self._end:
                self._advance(fact.at)
            if type(fact.body) in _COUNTED_FACTS:
                self._fact(fact.body, fact.at, records)
        for x in decisions:  # the most frequent kinds first
            if isinstance(x, d.QueueLogEntry):
                if x.verb == "RINGNOANSWER":
                    if x.at >= self._end:
                        self._advance(x.at)
                    self._cell(x.queue, "").ring_no_answer += 1
                    self._cell(x.queue, x.agent_id).ring_no_answer += 1
            elif isinstance(x, d.CallStateChanged):
                if x.at >= self._end:
                    self._advance(x.at)
                self._call(x)
            elif isinstance(x, d.AgentStateChanged):
                if x.at >= self._end:
                    self._advance(x.at)
                self._agent(x)
            elif isinstance(x, d.Offer):
                self._cell(x.queue, "").offers += 1
                self._cell(x.queue, x.agent_id).offers += 1

    def take_closed(self) -> list[Closed]:
        out, self.closed = self.closed, []
        return out

    def _advance(self, at: float) -> None:
        """Close every interval that ended by `at`: agents' time is cut at the boundary."""
        if self.start is None:
            self.start = interval_of(at)
            self._end = self.start + INTERVAL_S
            return
        while at >= self.start + INTERVAL_S:
            end = self.start + INTERVAL_S
            for agent_id, a in self._agents.items():
                self._time(agent_id, a, end)
                a.cell = None
            self.closed.append(Closed(self.start, self.cells, self.pauses))
            self.cells, self.pauses, self._by_queue = {}, {}, {}
            self.start = end
        self._end = self.start + INTERVAL_S

    def _cell(self, queue: str, agent: str) -> Cell:
        """The open interval's cell of (queue, agent, "")."""
        mine = self._by_queue.get(queue)
        if mine is None:
            mine = self._by_queue[queue] = {}
        cell = mine.get(agent)
        if cell is None:
            cell = mine[agent] = self._keyed((queue, agent, ""))
        return cell

    def _keyed(self, key: Key) -> Cell:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        return cell

    # ------------------------------------------------------------------ calls

    def _call(self, x: d.CallStateChanged) -> None:
        q = self._cell(x.queue, "")
        new, old = x.new, x.old
        if new == "waiting" and old == "new":
            q.offered += 1
        elif new == "callback" and old != "callback":
            q.callbacks_requested += 1
            self._callbacks.add(x.call_id)
        elif new == "connected" and old in ("offered", "ringing") and x.call_id not in self._answered:
            self._answered.add(x.call_id)
            waited = x.waited_s
            within = waited <= self._within(x.queue)
            q.answered += 1
            q.answered_in_sl += within
            q.wait_answered_s += waited
            q.wait_max_s = max(q.wait_max_s, waited)
            name = _AW[bisect_left(WAIT_BUCKETS, waited)]
            setattr(q, name, getattr(q, name) + 1)
            if x.call_id in self._callbacks:
                q.callbacks_answered += 1
            if x.agent_id:
                mine = self._cell(x.queue, x.agent_id)
                mine.answered += 1
                mine.answered_in_sl += within
                mine.wait_answered_s += waited
        elif new == "ended":
            answered = x.call_id in self._answered
            self._answered.discard(x.call_id)
            self._callbacks.discard(x.call_id)
            if answered or old in ("connected", "held"):
                return
            reason = x.reason
            if reason == "abandoned":
                waited = x.waited_s
                q.abandoned += 1
                q.short_abandoned += waited < self._short(x.queue)
                q.wait_abandoned_s += waited
                q.wait_max_s = max(q.wait_max_s, waited)
                name = _AB[bisect_left(WAIT_BUCKETS, waited)]
                setattr(q, name, getattr(q, name) + 1)
            elif reason.startswith("lost"):
                q.lost += 1
            elif reason.startswith(("timeout", "moved")):
                q.timed_out += 1
            else:
                q.left_queue += 1

    def _within(self, queue: str) -> float:
        return self.config.queue(queue).service_level.within_s if self.config.has_queue(queue) else 0.0

    def _short(self, queue: str) -> float:
        return self.config.queue(queue).short_abandon_s if self.config.has_queue(queue) else 0.0

    # ------------------------------------------------------------------ agents

    def _agent(self, x: d.AgentStateChanged) -> None:
        agent_id, old, new = x.agent_id, x.old, x.new
        a = self._agents.get(agent_id)
        if a is None:
            a = self._agents[agent_id] = _Agent(old, x.at)
        self._time(agent_id, a, x.at)
        if old == "on_call":
            a.talk_s += x.time_in_old_s
        elif old == "on_hold":
            a.hold_s += x.time_in_old_s
        if new == "wrap_up" and old in ("on_call", "on_hold") and x.reason.startswith("transferred"):
            queue = x.queue or ""
            self._cell(queue, "").transferred += 1
            self._cell(queue, agent_id).transferred += 1
        if old == "wrap_up":
            queue = x.queue or ""
            talk_bucket = _TK[bisect_left(TALK_BUCKETS, a.talk_s + a.hold_s)]
            for cell in (self._cell(queue, ""), self._cell(queue, agent_id)):
                cell.handled += 1
                cell.talk_s += a.talk_s
                cell.hold_s += a.hold_s
                cell.wrapup_s += x.time_in_old_s
                setattr(cell, talk_bucket, getattr(cell, talk_bucket) + 1)
            a.talk_s = a.hold_s = 0.0
        elif new in ("available", "paused", "logged_out") and old in ("on_call", "on_hold"):
            a.talk_s = a.hold_s = 0.0  # a consultation let go: not a handled call of theirs
        a.state, a.reason = new, x.reason if new == "paused" else ""
        if new == "logged_out":
            del self._agents[agent_id]

    def _time(self, agent_id: str, a: _Agent, until: float) -> None:
        spent = until - a.since
        if spent > 0 and a.state != "logged_out":
            cell = a.cell
            if cell is None:
                cell = a.cell = self._cell("", agent_id)
            cell.login_s += spent
            column = _STATE_COLUMNS.get(a.state)
            if column is not None:
                setattr(cell, column, getattr(cell, column) + spent)
            if a.state == "paused":
                key = (agent_id, a.reason)
                self.pauses[key] = self.pauses.get(key, 0.0) + spent
        a.since = max(a.since, until)

    # ------------------------------------------------------------------ facts

    def _fact(self, body: object, at: float, records: CallRecords) -> None:
        if isinstance(body, f.IvrStarted):
            if body.call_id not in self._flows:
                self._flows[body.call_id] = body.flow
                self._keyed(("", "", body.flow)).ivr_calls += 1
        elif isinstance(body, f.CallEnded):
            flow = self._flows.pop(body.call_id, None)
            rec = records.get(body.call_id)
            if flow is not None and rec is not None and rec.outcome == "ivr_only":
                self._keyed(("", "", flow)).ivr_contained += 1
        elif isinstance(body, f.SurveyAnswered):
            rec = records.get(body.call_id)
            if rec is not None:
                agents = [p.agent_id for p in rec.parts if p.answered_at is not None]
                cells = [self._cell(rec.queue, "")] + ([self._cell(rec.queue, agents[-1])] if agents else [])
                for cell in cells:
                    cell.surveys += 1
                    cell.survey_sum += body.score
        elif isinstance(body, f.ServerStarted) and body.last_alive is not None and at - body.last_alive > GAP_S:
            self.gaps.append((body.last_alive, at))

    # ------------------------------------------------------------------ checkpoints

    def dump(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "cells": [[list(k), c.columns()] for k, c in self.cells.items()],
            "pauses": [[a, r, s] for (a, r), s in self.pauses.items()],
            "agents": {a: [x.state, x.since, x.reason, x.talk_s, x.hold_s] for a, x in self._agents.items()},
            "answered": sorted(self._answered), "callbacks": sorted(self._callbacks),
            "flows": self._flows,
        }

    @classmethod
    def load(cls, config: AcdConfig, data: dict[str, Any]) -> Intervals:
        out = cls(config)
        out.start = data["start"]
        if out.start is not None:
            out._end = out.start + INTERVAL_S
        for k, c in data["cells"]:
            cell = Cell.from_columns(c)
            out.cells[(k[0], k[1], k[2])] = cell
            if not k[2]:
                out._by_queue.setdefault(k[0], {})[k[1]] = cell
        out.pauses = {(a, r): s for a, r, s in data["pauses"]}
        out._agents = {a: _Agent(*x) for a, x in data["agents"].items()}
        out._answered = set(data["answered"])
        out._callbacks = set(data["callbacks"])
        out._flows = dict(data["flows"])
        return out
