"""The one door through which facts enter: journaled, then applied to the projector, in that order.

Services never feed the ACD router or a projection directly: they `record` a fact and read the decisions
it caused. Checkpoints of the projector are taken here, every `checkpoint_facts` facts or
`checkpoint_s` seconds, and stored once the facts before them are durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from acd import decisions as d

from ..journal.journal import Journal
from .projector import Projector

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        journal: Journal,
        projector: Projector,
        acd_text: Callable[[], tuple[str, str]],
        *,
        checkpoint_facts: int = 20_000,
        checkpoint_s: float = 60.0,
    ) -> None:
        self.journal = journal
        self.projector = projector
        self._acd_text = acd_text
        self.checkpoint_facts = checkpoint_facts
        self.checkpoint_s = checkpoint_s
        self._last_checkpoint_seq = projector.last_seq
        self._last_checkpoint_at = journal.clock()

    def record(self, body: object) -> list[d.Decision]:
        """Journal one fact and apply it; returns the ACD decisions it caused (a Refusal among them when
        an ACD input made no sense in the current state: it is journaled all the same, as it happened)."""
        fact = self.journal.append(body)
        decisions = self.projector.apply(fact)
        if fact.seq - self._last_checkpoint_seq >= self.checkpoint_facts:
            self.checkpoint()
        return decisions

    def tick(self, now: float) -> list[d.Decision]:
        decisions = self.projector.tick(now)
        if now - self._last_checkpoint_at >= self.checkpoint_s and self.journal.last_seq > self._last_checkpoint_seq:
            self.checkpoint()
        return decisions

    def checkpoint(self) -> None:
        self.journal.checkpoint(self.projector.dump(self._acd_text()))
        self._last_checkpoint_seq = self.journal.last_seq
        self._last_checkpoint_at = self.journal.clock()
