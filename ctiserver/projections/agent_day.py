"""Each agent's figures of the day (the centre's day, like the queues' live statistics): calls answered,
handle time (from the answer to the end of the wrap-up) and occupancy (busy over busy plus available
time). Folded from the ACD's agent state changes; counters start again at midnight."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from acd import decisions as d

_BUSY = frozenset({"reserved", "on_call", "on_hold", "wrap_up"})


@dataclass(slots=True)
class AgentDay:
    answered: int = 0
    handled: int = 0  # answered calls whose wrap-up ended today
    handle_s: float = 0.0
    busy_s: float = 0.0
    available_s: float = 0.0
    state: str = "logged_out"
    since: float = 0.0  # the current state's start (or the day's, if it began before)
    answered_at: float | None = None  # the call in hand, for its handle time


@dataclass(frozen=True, slots=True)
class AgentFigures:
    answered: int
    aht_s: float | None
    occupancy_pct: float | None
    busy_s: float


class AgentDays:
    def __init__(self) -> None:
        self.agents: dict[str, AgentDay] = {}

    def apply(self, decisions: Iterable[d.Decision]) -> None:
        for x in decisions:
            if isinstance(x, d.AgentStateChanged):
                self._changed(x)

    def _changed(self, x: d.AgentStateChanged) -> None:
        day = self.agents.setdefault(x.agent_id, AgentDay(state=x.old, since=x.at - x.time_in_old_s))
        spent = max(0.0, x.at - max(day.since, x.at - x.time_in_old_s))
        if x.old in _BUSY:
            day.busy_s += spent
        elif x.old == "available":
            day.available_s += spent
        if x.old == "reserved" and x.new == "on_call":
            day.answered += 1
            day.answered_at = x.at
        if x.old == "wrap_up" and x.new != "wrap_up" and day.answered_at is not None:
            day.handled += 1
            day.handle_s += x.at - day.answered_at
            day.answered_at = None
        day.state, day.since = x.new, x.at

    def reset(self, day_start: float) -> None:
        """Midnight: the counts start again; the state in force counts from the start of the day."""
        for agent_id, old in list(self.agents.items()):
            self.agents[agent_id] = AgentDay(state=old.state, since=max(old.since, day_start),
                                             answered_at=old.answered_at)

    def figures(self, agent_id: str, now: float) -> AgentFigures:
        day = self.agents.get(agent_id, AgentDay())
        busy, available = day.busy_s, day.available_s
        if day.state in _BUSY:
            busy += max(0.0, now - day.since)
        elif day.state == "available":
            available += max(0.0, now - day.since)
        aht = day.handle_s / day.handled if day.handled else None
        occupancy = 100.0 * busy / (busy + available) if busy + available > 0 else None
        return AgentFigures(day.answered, aht, occupancy, busy)

    def dump(self) -> dict[str, Any]:
        return {a: asdict(x) for a, x in self.agents.items()}

    @classmethod
    def load(cls, data: dict[str, Any]) -> AgentDays:
        out = cls()
        out.agents = {a: AgentDay(**x) for a, x in data.items()}
        return out
