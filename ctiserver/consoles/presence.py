"""Agents' presence, read from their consoles' websockets: an agent none of whose consoles has been connected
for `lost_after_s` is paused ("console_lost"), so calls stop going to a desk nobody watches; the first console
back makes them available again, if that pause is still the one in force.

Presence is the gateway's connections, server side: a browser timer in a background tab is throttled and a
laptop asleep sends nothing, while the websocket's own keepalive (ping_interval/ping_timeout) drops a console
whose network is gone. A pause is an ACD input like any other, journaled through the queueing slice; on a call
or in wrap-up the router defers it to the end of the wrap-up, and the call is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from acd import decisions as d
from acd import events as ev
from acd.config import CONSOLE_LOST
from acd.router import Router

from ..bus import EventBus
from ..queueing.service import QueueingService, Refused

log = logging.getLogger(__name__)

# States in which calls can still reach the agent (or are theirs now): a lost console pauses those.
_WORKING = frozenset({"available", "reserved", "on_call", "on_hold", "wrap_up"})


class Absences:
    """Which agents have no console, and since when. Pure: times are passed in."""

    def __init__(self, lost_after_s: float) -> None:
        self.lost_after_s = lost_after_s
        self.connected: set[str] = set()
        self._deadline: dict[str, float] = {}  # agent -> when the absence becomes "console lost"

    def console_back(self, agent_id: str) -> None:
        self.connected.add(agent_id)
        self._deadline.pop(agent_id, None)

    def console_gone(self, agent_id: str, now: float) -> None:
        self.connected.discard(agent_id)
        self._deadline[agent_id] = now + self.lost_after_s

    def next_due(self) -> float | None:
        return min(self._deadline.values(), default=None)

    def due(self, now: float) -> list[str]:
        """Agents whose grace ran out (each reported once per absence)."""
        out = sorted(a for a, at in self._deadline.items() if at <= now)
        for agent_id in out:
            del self._deadline[agent_id]
        return out


class ConsolePresence:
    def __init__(self, queueing: QueueingService, bus: EventBus, clock: Callable[[], float],
                 lost_after_s: float) -> None:
        self.queueing = queueing
        self.clock = clock
        self.absences = Absences(lost_after_s)
        self.enabled = lost_after_s > 0
        self._wake = asyncio.Event()
        bus.subscribe(d.AgentStateChanged, self._on_agent_state)

    @property
    def router(self) -> Router:
        return self.queueing.router

    def start(self, agent_ids: Iterable[str]) -> None:
        """After a (re)start no console is connected yet: every agent the ACD has logged in gets the grace to
        come back, as if their console had just closed."""
        now = self.clock()
        for agent_id in agent_ids:
            if agent_id not in self.absences.connected and self.router.agent_view(agent_id, now).state != "logged_out":
                self.absences.console_gone(agent_id, now)
        self._wake.set()

    # ------------------------------------------------------------------ from the gateway

    def console_presence(self, agent_id: str, connected: bool) -> None:
        if connected:
            self.absences.console_back(agent_id)
            self._resume(agent_id)
        else:
            self.absences.console_gone(agent_id, self.clock())
            self._wake.set()

    # ------------------------------------------------------------------ the grace timer

    async def run(self) -> None:
        while True:
            due = self.absences.next_due()
            delay = None if due is None else max(0.0, due - self.clock())
            self._wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self.enabled:
                for agent_id in self.absences.due(self.clock()):
                    self._pause(agent_id)
            else:
                self.absences.due(float("inf"))

    def _pause(self, agent_id: str) -> None:
        view = self.router.agent_view(agent_id, self.clock())
        # Paused already (lunch), or a pause waiting for the end of the call: that one stands.
        if view.state not in _WORKING or view.pending_pause is not None:
            return
        log.warning("agent %s has had no console for %g s: paused (%s)%s", agent_id, self.absences.lost_after_s,
                    CONSOLE_LOST, " after the call" if view.state != "available" else "")
        self._command(ev.AgentPaused(agent_id, CONSOLE_LOST))

    def _resume(self, agent_id: str) -> None:
        if not self.router.config.has_agent(agent_id):
            return
        view = self.router.agent_view(agent_id, self.clock())
        if view.state == "paused" and view.pause_reason == CONSOLE_LOST:
            log.info("agent %s has a console again: available", agent_id)
            self._command(ev.AgentReady(agent_id))

    def _on_agent_state(self, e: d.AgentStateChanged) -> None:
        # A console_lost pause deferred during a call lands when the wrap-up ends; if a console came back
        # meanwhile, the agent is available again at once. Not from inside the router's decision (this
        # handler runs while a fact is being applied): on the next turn of the loop.
        if e.new == "paused" and e.reason == CONSOLE_LOST and e.agent_id in self.absences.connected:
            asyncio.get_running_loop().call_soon(self._resume, e.agent_id)

    def _command(self, event: ev.Event) -> None:
        try:
            self.queueing.command(event)
        except Refused as e:  # the state moved on meanwhile: nothing to do
            log.info("presence: %s refused: %s", type(event).__name__, e)
