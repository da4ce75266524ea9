"""The alerts' timer: every `every_s` the figures of the moment (the projector's statistics, the router's
agents, the call records) go through the evaluator, and the alerts it raises or clears are recorded as
facts. The consoles push them from the bus; the projector keeps the ones in force (a restart keeps them).

The queues are judged at every look; the agents a share at a time (each at least every `AGENT_SWEEP_S`),
those with an alert in force at every look: an agent's target is minutes long, a few seconds late is
nothing, and the look stays short on the event loop at 5,000 agents (bench/metrics.py alert_check_ms)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from ..journal.facts import AlertCleared, AlertRaised
from ..journal.journal import JournalClosed
from ..projections.recorder import Recorder
from .evaluator import AlertEvaluator
from .targets import agent_figures

log = logging.getLogger(__name__)

AGENT_SWEEP_S = 5.0  # every agent's call, pause or wrap-up is looked at this often at least


class AlertService:
    def __init__(self, recorder: Recorder, clock: Callable[[], float], every_s: float = 1.0) -> None:
        self.recorder = recorder
        self.clock = clock
        self.every_s = every_s
        self.evaluator = AlertEvaluator()
        self._next_agent = 0

    def check(self) -> list[AlertRaised | AlertCleared]:
        """One look at the figures; returns (and records) what was raised or cleared."""
        projector = self.recorder.projector
        now = self.clock()
        agents = self._agents_to_look_at()
        changes = self.evaluator.evaluate(
            now, projector.config, projector.stats.live.snapshot(now),
            agent_figures(projector.config, projector.router, projector.records, now, agents), projector.alerts,
            agents)
        for change in changes:
            self.recorder.record(change)
        return changes

    def _agents_to_look_at(self) -> set[str]:
        """The next share of the agents, so that each is looked at every `AGENT_SWEEP_S` (a look at 5,000
        agents at once would hold the event loop for tens of ms every second), and every agent with an
        alert in force, so that it clears within one period."""
        projector = self.recorder.projector
        ids = projector.router.agent_ids()
        chosen = {alert.agent_id for _, alert in projector.alerts.values() if alert.agent_id}
        if not ids:
            return chosen
        share = min(len(ids), max(1, math.ceil(len(ids) * self.every_s / AGENT_SWEEP_S)))
        start = self._next_agent % len(ids)
        chosen.update(ids[start:start + share])
        chosen.update(ids[:max(0, start + share - len(ids))])
        self._next_agent = (start + share) % len(ids)
        return chosen

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                self.check()
            except JournalClosed:
                return  # the server is stopping
            except Exception:  # one bad look must not stop the next ones
                log.exception("alert check failed")
