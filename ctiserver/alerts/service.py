"""The alerts' timer: every `every_s` the figures of the moment (the projector's statistics, the router's
agents, the call records) go through the evaluator, and the alerts it raises or clears are recorded as
facts. The consoles push them from the bus; the projector keeps the ones in force (a restart keeps them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..journal.facts import AlertCleared, AlertRaised
from ..journal.journal import JournalClosed
from ..projections.recorder import Recorder
from .evaluator import AlertEvaluator
from .targets import agent_figures

log = logging.getLogger(__name__)


class AlertService:
    def __init__(self, recorder: Recorder, clock: Callable[[], float], every_s: float = 1.0) -> None:
        self.recorder = recorder
        self.clock = clock
        self.every_s = every_s
        self.evaluator = AlertEvaluator()

    def check(self) -> list[AlertRaised | AlertCleared]:
        """One look at the figures; returns (and records) what was raised or cleared."""
        projector = self.recorder.projector
        now = self.clock()
        changes = self.evaluator.evaluate(
            now, projector.config, projector.stats.live.snapshot(now),
            agent_figures(projector.config, projector.router, projector.records, now), projector.alerts)
        for change in changes:
            self.recorder.record(change)
        return changes

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                self.check()
            except JournalClosed:
                return  # the server is stopping
            except Exception:  # one bad look must not stop the next ones
                log.exception("alert check failed")
