"""Pushes to the supervisors' agent grid: the monitoring in progress and the agents' figures of the day.

Both are projections. Who listens to, whispers to or barges into which agent is read from the journaled
`supervisor.action` facts (a `spy:<mode>` starts one, the same supervisor's `spy_stop` ends it), so every
supervisor sees it and a reloaded monitor finds it in the snapshot. The figures (calls today, AHT,
occupancy) come from the live statistics; occupancy moves while an agent stays in one state, so they are
read again every few seconds and only what changed is pushed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..bus import EventBus
from ..consoles.views import ConsoleViews
from ..gateway.server import Gateway
from ..journal import facts as f

log = logging.getLogger(__name__)

SPY_PREFIX = "spy:"
SPY_STOP = "spy_stop"


class MonitoringBoard:
    """Who monitors whom, from the supervisor facts: agent -> {supervisor: {mode, since}}. Pure."""

    def __init__(self) -> None:
        self.by_agent: dict[str, dict[str, dict[str, object]]] = {}
        self._agent_of: dict[str, str] = {}  # supervisor -> the agent they monitor

    def apply(self, action: f.SupervisorAction, at: float) -> list[str]:
        """The agents whose monitoring changed."""
        if action.action.startswith(SPY_PREFIX):
            changed = self._stop(action.user)
            mode = action.action[len(SPY_PREFIX):]
            self.by_agent.setdefault(action.target, {})[action.user] = {"mode": mode, "since": at}
            self._agent_of[action.user] = action.target
            return [*changed, action.target]
        if action.action == SPY_STOP:
            return self._stop(action.user)
        return []

    def _stop(self, supervisor: str) -> list[str]:
        agent = self._agent_of.pop(supervisor, None)
        if agent is None:
            return []
        watchers = self.by_agent.get(agent, {})
        watchers.pop(supervisor, None)
        if not watchers:
            self.by_agent.pop(agent, None)
        return [agent]

    def of(self, agent_id: str) -> dict[str, dict[str, object]]:
        return dict(self.by_agent.get(agent_id, {}))


class SupervisionNotifier:
    def __init__(self, views: ConsoleViews, gateway: Callable[[], Gateway], bus: EventBus,
                 clock: Callable[[], float], every_s: float = 5.0) -> None:
        self.views = views
        self.gateway = gateway  # read at each push: tests swap the gateway
        self.clock = clock
        self.every_s = every_s
        self.board = MonitoringBoard()
        self._figures: dict[str, dict[str, object]] = {}
        bus.subscribe(f.SupervisorAction, self._on_action)
        bus.subscribe(f.AcdConfigLoaded, self._on_config)

    def _on_action(self, action: f.SupervisorAction) -> None:
        for agent_id in self.board.apply(action, self.clock()):
            row = {"monitored_by": self.board.of(agent_id) or None}
            # Straight into the mirror: its flush sends it with the next delta (no await on the bus).
            self.gateway().monitor.apply("agents", agent_id, row)

    def _on_config(self, loaded: f.AcdConfigLoaded) -> None:
        """A new queues file (an administrator's change): agents it adds get their row, those it drops lose it."""
        mirror = self.gateway().monitor
        configured = set(self.views.router.agent_ids())
        for agent_id in configured - set(mirror.rows["agents"]):
            mirror.apply("agents", agent_id, self.views.agent_row(agent_id))
        for agent_id in set(mirror.rows["agents"]) - configured:
            mirror.apply("agents", agent_id, None)
            self._figures.pop(agent_id, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                self.refresh_figures()
            except Exception:  # a bad row must not stop the grid
                log.exception("agent figures refresh failed")

    def refresh_figures(self) -> None:
        now = self.clock()
        mirror = self.gateway().monitor
        for agent_id in self.views.router.agent_ids():
            if agent_id not in mirror.rows["agents"]:
                continue  # its whole row comes with its first state (or a new queues file)
            figures = self.views.agent_figures(agent_id, now)
            if self._figures.get(agent_id) != figures:
                self._figures[agent_id] = figures
                mirror.apply("agents", agent_id, figures)
