"""Live per-queue statistics, computed only from the router's decisions.

`LiveStats.observe(decisions)` folds `CallStateChanged` / `AgentStateChanged` into counters;
`snapshot(now)` returns one frozen `QueueSnapshot` per queue for the supervisor monitor.

Definitions (documented in docs/acd.md):
* service level = answered within the target / the calls the queue's formula counts
  (`service_level.formula`: answered + abandoned - short abandons by default; see acd.config.ServiceLevel);
* ASA = mean wait of answered calls; AHT = (talk + hold + wrap-up) / completed calls;
* occupancy = busy (reserved, on call, on hold, wrap-up) / (busy + available) time of the
  queue's logged-in agents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from acd.config import AcdConfig
from acd.decisions import AgentStateChanged, CallStateChanged, Decision

_BUSY = frozenset({"reserved", "on_call", "on_hold", "wrap_up"})
_IN_QUEUE = frozenset({"waiting", "callback", "offered", "ringing"})


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    queue: str
    calls_waiting: int
    longest_wait_s: float
    answered: int
    abandoned: int  # short abandons excluded
    short_abandoned: int
    timed_out: int
    service_level_pct: float | None  # by the queue's formula; None until a call counts
    asa_s: float | None
    aht_s: float | None
    agents_by_state: dict[str, int]
    occupancy_pct: float | None
    offered: int = 0  # callers who entered the queue (a transfer into it too)
    answered_in_target: int = 0


@dataclass(slots=True)
class _QueueCounters:
    waiting: dict[str, float] = field(default_factory=dict)  # call -> entered; insertion order = age
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    wait_sum: float = 0.0
    abandoned: int = 0
    short_abandoned: int = 0
    timed_out: int = 0
    completed: int = 0
    talk_sum: float = 0.0
    wrap_sum: float = 0.0
    agents: dict[str, str] = field(default_factory=dict)  # logged-in agent -> state
    busy_s: float = 0.0
    idle_s: float = 0.0


@dataclass(slots=True)
class _AgentCounters:
    """One agent's day: answered calls, parts handled, and the time spent talking, in wrap-up, busy, idle."""

    answered: int = 0
    handled: int = 0  # call parts over (talk ended)
    talk_s: float = 0.0  # on call and on hold
    wrap_s: float = 0.0
    busy_s: float = 0.0
    idle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentDay:
    """An agent's figures today: the supervisor's grid and the agent's own idle screen."""

    agent_id: str
    answered: int
    aht_s: float | None  # (talk + hold + wrap-up) / parts handled
    occupancy_pct: float | None  # busy / (busy + available), the state in progress included


_TALK = frozenset({"on_call", "on_hold"})


def vars_of(counters: _QueueCounters | _AgentCounters) -> dict[str, object]:
    return {f.name: getattr(counters, f.name) for f in fields(counters)}


class LiveStats:
    def __init__(self, config: AcdConfig) -> None:
        self._config = config
        self._queues = {q.name: _QueueCounters() for q in config.queues}
        self._answered_at: dict[str, float] = {}
        self._agent_since: dict[str, tuple[str, float, tuple[str, ...]]] = {}
        self._counting_from = float("-inf")  # start of the day the counters are for
        self._agents: dict[str, _AgentCounters] = {}

    def observe(self, decisions: Iterable[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, CallStateChanged):
                self._call(decision)
            elif isinstance(decision, AgentStateChanged):
                self._agent(decision)

    def _call(self, c: CallStateChanged) -> None:
        q = self._queues[c.queue]
        if c.new in _IN_QUEUE:
            # A new caller, or one back in line after a transfer to an agent who did not answer.
            if c.old == "new" or (c.new == "waiting" and c.call_id not in q.waiting):
                if c.old == "new":
                    q.offered += 1
                q.waiting[c.call_id] = c.at - c.waited_s
            return
        q.waiting.pop(c.call_id, None)
        if c.new == "connected":
            if c.call_id in self._answered_at:
                return  # answered again after a transfer or a consultation: one answered call
            q.answered += 1
            q.wait_sum += c.waited_s
            if c.waited_s <= self._config.queue(c.queue).service_level.within_s:
                q.answered_in_target += 1
            self._answered_at[c.call_id] = c.at
        elif c.new == "ended":
            answered = self._answered_at.pop(c.call_id, None)
            if answered is not None:
                q.completed += 1
                q.talk_sum += c.at - answered
            elif c.reason == "abandoned":
                if c.waited_s < self._config.queue(c.queue).short_abandon_s:
                    q.short_abandoned += 1
                else:
                    q.abandoned += 1
            elif c.reason.startswith(("timeout", "moved")):
                q.timed_out += 1

    def _agent(self, a: AgentStateChanged) -> None:
        spent = min(a.time_in_old_s, a.at - self._counting_from)
        for name in a.queues:
            q = self._queues.get(name)
            if q is None:
                continue
            if a.old in _BUSY:
                q.busy_s += spent
            elif a.old == "available":
                q.idle_s += spent
            if a.new == "logged_out":
                q.agents.pop(a.agent_id, None)
            else:
                q.agents[a.agent_id] = a.new
        if a.old == "wrap_up" and a.queue is not None and a.queue in self._queues:
            self._queues[a.queue].wrap_sum += spent
        self._agent_day(a, spent)
        if a.new == "logged_out":
            self._agent_since.pop(a.agent_id, None)
        else:
            self._agent_since[a.agent_id] = (a.new, a.at, a.queues)

    def _agent_day(self, a: AgentStateChanged, spent: float) -> None:
        day = self._agents.get(a.agent_id)
        if day is None:
            day = self._agents[a.agent_id] = _AgentCounters()
        if a.old in _BUSY:
            day.busy_s += spent
        elif a.old == "available":
            day.idle_s += spent
        if a.old in _TALK:
            day.talk_s += spent
            if a.new not in _TALK:
                day.handled += 1
        elif a.old == "wrap_up":
            day.wrap_s += spent
        if a.old == "reserved" and a.new == "on_call":
            day.answered += 1

    def agent_day(self, agent_id: str, now: float) -> AgentDay:
        """The agent's figures since the start of the day, the state in progress counted up to `now`."""
        day = self._agents.get(agent_id, _AgentCounters())
        busy, idle = day.busy_s, day.idle_s
        current = self._agent_since.get(agent_id)
        if current is not None:
            state, since, _ = current
            if state in _BUSY:
                busy += max(0.0, now - since)
            elif state == "available":
                idle += max(0.0, now - since)
        return AgentDay(agent_id, day.answered,
                        (day.talk_s + day.wrap_s) / day.handled if day.handled else None,
                        100.0 * busy / (busy + idle) if busy + idle > 0 else None)

    def reset_counters(self, day_start: float) -> None:
        """A new day from `day_start`: the counts start again; who waits and the agents' states carry
        over, and time in a state counts from the start of the day."""
        for name, q in list(self._queues.items()):
            fresh = _QueueCounters()
            fresh.waiting, fresh.agents = q.waiting, q.agents
            self._queues[name] = fresh
        self._counting_from = day_start
        self._agents = {}
        self._agent_since = {a: (st, max(since, day_start), qs) for a, (st, since, qs) in self._agent_since.items()}

    def dump(self) -> dict[str, object]:
        """The counters as plain data, for a checkpoint (restore with `load`)."""
        return {
            "queues": {name: {f: (dict(v) if isinstance(v, dict) else v) for f, v in vars_of(q).items()}
                       for name, q in self._queues.items()},
            "answered_at": dict(self._answered_at),
            "agent_since": {a: [st, since, list(qs)] for a, (st, since, qs) in self._agent_since.items()},
            "counting_from": self._counting_from if self._counting_from > float("-inf") else None,
            "agents": {a: vars_of(day) for a, day in self._agents.items()},
        }

    def load(self, data: dict[str, object]) -> None:
        queues = data.get("queues", {})
        assert isinstance(queues, dict)
        for name, counters in queues.items():
            if name in self._queues:  # a queue removed from the configuration since: its counters go
                self._queues[name] = _QueueCounters(**counters)
        self._answered_at = dict(data.get("answered_at", {}))  # type: ignore[call-overload]
        since = data.get("agent_since", {})
        assert isinstance(since, dict)
        self._agent_since = {a: (st, t, tuple(qs)) for a, (st, t, qs) in since.items()}
        agents = data.get("agents", {})  # checkpoints from before the agents' day figures have none
        assert isinstance(agents, dict)
        self._agents = {a: _AgentCounters(**day) for a, day in agents.items()}
        start = data.get("counting_from")
        self._counting_from = float("-inf") if start is None else float(start)  # type: ignore[arg-type]

    def agents_by_state(self) -> dict[str, int]:
        """The agents of the configuration by state, each counted once (a queue's snapshot counts an agent
        in every queue they serve); agents never logged in are logged_out."""
        out: dict[str, int] = {}
        for state, _, _ in self._agent_since.values():
            out[state] = out.get(state, 0) + 1
        logged_out = len(self._config.agents) - sum(out.values())
        if logged_out > 0:
            out["logged_out"] = logged_out
        return out

    def snapshot(self, now: float) -> dict[str, QueueSnapshot]:
        ongoing_busy = dict.fromkeys(self._queues, 0.0)
        ongoing_idle = dict.fromkeys(self._queues, 0.0)
        for state, since, queues in self._agent_since.values():
            target = ongoing_busy if state in _BUSY else ongoing_idle if state == "available" else None
            if target is not None:
                for name in queues:
                    target[name] += now - since
        return {name: self._snapshot(name, q, now, ongoing_busy[name], ongoing_idle[name])
                for name, q in self._queues.items()}

    def _snapshot(self, name: str, q: _QueueCounters, now: float, busy: float, idle: float) -> QueueSnapshot:
        oldest = next(iter(q.waiting.values()), None)
        sl = self._config.queue(name).service_level
        by_state: dict[str, int] = {}
        for state in q.agents.values():
            by_state[state] = by_state.get(state, 0) + 1
        busy += q.busy_s
        staffed = busy + idle + q.idle_s
        return QueueSnapshot(
            queue=name,
            calls_waiting=len(q.waiting),
            longest_wait_s=now - oldest if oldest is not None else 0.0,
            answered=q.answered,
            abandoned=q.abandoned,
            short_abandoned=q.short_abandoned,
            timed_out=q.timed_out,
            service_level_pct=sl.pct(q.answered_in_target, q.answered, q.abandoned, q.short_abandoned),
            asa_s=q.wait_sum / q.answered if q.answered else None,
            aht_s=(q.talk_sum + q.wrap_sum) / q.completed if q.completed else None,
            agents_by_state=by_state,
            occupancy_pct=100.0 * busy / staffed if staffed > 0 else None,
            offered=q.offered, answered_in_target=q.answered_in_target,
        )
