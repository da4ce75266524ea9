"""Pushes to the consoles: projections of the ACD's decisions and the call facts, sent in order.

Nothing here is a store: every push is built from the owners (ctiserver.consoles.views) at the moment of
the event. Bus handlers are synchronous; pushes keep their order through one queue and one task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from acd import decisions as d

from ..bus import EventBus
from ..gateway.backend import AlertView
from ..gateway.server import Gateway
from ..journal import facts as f
from ..queueing.service import ConsultationChanged
from .phones import PhoneStateChanged
from .views import ConsoleViews

log = logging.getLogger(__name__)

_ON_CALL = ("on_call", "on_hold")
_TALKING = {"connected": "talking", "held": "held"}
_OUTBOUND = {"connected": "talking"}  # the other steps keep their names (ctiserver.outbound.states)


class ConsoleNotifier:
    def __init__(self, views: ConsoleViews, gateway: Gateway, bus: EventBus,
                 pop_pushed: Callable[[float], None] = lambda seconds: None) -> None:
        self.views = views
        self.gateway = gateway
        self.pop_pushed = pop_pushed  # told how long each pop took from the offer to the agent's consoles
        self._pushes: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue()
        self._last_wallboard: dict[str, dict[str, object]] = {}
        self._prompts_alerted: set[str] = set()
        bus.subscribe(d.Offer, self._on_offer)
        bus.subscribe(d.AgentStateChanged, self._on_agent_state)
        bus.subscribe(f.OutboundDialling, self._on_outbound)
        bus.subscribe(f.OutboundProgress, self._on_outbound)
        bus.subscribe(d.PauseDeferred, self._on_pause_deferred)
        bus.subscribe(d.WrapUpExtended, self._on_wrap_up_extended)
        bus.subscribe(f.WrapUpSaved, self._on_wrapup_saved)
        bus.subscribe(d.CallStateChanged, self._on_call_state)
        bus.subscribe(d.Handover, self._on_handover)
        bus.subscribe(f.CallArrived, self._on_call_fact)
        bus.subscribe(f.CallEnded, self._on_call_ended)
        bus.subscribe(f.DialerStep, self._on_dialer_step)
        bus.subscribe(ConsultationChanged, self._on_consultation)
        bus.subscribe(f.PromptMissing, self._on_prompt_missing)
        bus.subscribe(f.AlertRaised, self._on_alert)
        bus.subscribe(f.AlertCleared, self._on_alert)
        bus.subscribe(PhoneStateChanged, self._on_phone_state)

    def _push(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._pushes.put_nowait(make)

    async def run(self) -> None:
        while True:
            make = await self._pushes.get()
            try:
                await make()
            except Exception:
                log.exception("push to the consoles failed")

    async def run_wallboard(self) -> None:
        """Push what changed on the wallboard once a second: deltas, never whole snapshots."""
        while True:
            await asyncio.sleep(1.0)
            for queue, row in self.views.wallboard_rows().items():
                last = self._last_wallboard.get(queue, {})
                changed = {k: v for k, v in row.items() if last.get(k) != v}
                if changed:
                    self._last_wallboard[queue] = row
                    await self.gateway.push_wallboard_delta(queue, changed)

    # ------------------------------------------------------------------ agents

    def _on_offer(self, e: d.Offer) -> None:
        # The offer is published in the same step the router decides it: from here to the push is the pop's
        # latency on the server's side.
        decided = time.monotonic()
        offer = self.views.offer(e.call_id, e.agent_id, e.leg_id, e.queue, e.ring_timeout_s, e.kind)
        gw = self.gateway

        async def pop() -> None:
            await gw.push_offer(e.agent_id, offer)
            self.pop_pushed(time.monotonic() - decided)
        self._push(pop)
        self._call_row(e.call_id)

    def _on_agent_state(self, e: d.AgentStateChanged) -> None:
        view = self.views.agent(e.agent_id)
        row = self.views.agent_row(e.agent_id)
        gw = self.gateway
        self._push(lambda: gw.push_agent_state(view))
        self._push(lambda: gw.push_agent_grid_delta(e.agent_id, row))
        if e.old == "reserved" and e.new not in _ON_CALL:
            # The offer ended without an answer (cancelled, not answered, withdrawn): named by its leg.
            self._push(lambda: gw.push_offer_cancelled(e.agent_id, e.leg_id, e.reason))
        if e.call_id and e.old in _ON_CALL and e.new not in _ON_CALL:
            # The agent's part is over (hung up, or the caller was transferred on): their console closes
            # the call now, not when the caller's side ends.
            ended = self.views.call(e.call_id, e.agent_id, "ended")
            self._push(lambda: gw.push_call_state(ended))
        elif e.call_id and e.old == "wrap_up":
            self._draft_kept(e)
        elif e.call_id and e.new == "on_call" and e.old == "reserved":
            talking = self.views.call(e.call_id, e.agent_id, "talking")
            self._push(lambda: gw.push_call_state(talking))

    def _on_phone_state(self, e: PhoneStateChanged) -> None:
        # Supervisors see each agent's browser phone in the grid; the agent's console knows its own phone's
        # state, but not what the PBX says of it (pbx_unreachable...): it gets that with its agent state.
        gw = self.gateway
        row = {"phone": e.state, "phone_detail": e.detail}
        self._push(lambda: gw.push_agent_grid_delta(e.agent_id, row))
        if self.views.config.has_agent(e.agent_id):
            view = self.views.agent(e.agent_id)
            self._push(lambda: gw.push_agent_state(view))

    def _on_pause_deferred(self, e: d.PauseDeferred) -> None:
        # The pause waits for the end of the call or wrap-up: the console and the grid show it now.
        view = self.views.agent(e.agent_id)
        gw = self.gateway
        self._push(lambda: gw.push_agent_state(view))

    def _on_wrap_up_extended(self, e: d.WrapUpExtended) -> None:
        # The form is open: the console shows the queue's maximum from now on.
        view = self.views.agent(e.agent_id)
        gw = self.gateway
        self._push(lambda: gw.push_agent_state(view))

    def _draft_kept(self, e: d.AgentStateChanged) -> None:
        """The wrap-up ended unsaved with notes in its form: supervisors see the draft kept on the call."""
        draft = self.views.projector.drafts.kept.get(e.call_id or "")
        if draft is None or draft.kept_at != e.at or draft.agent_id != e.agent_id:
            return
        alert = self.views.draft_alert(draft)
        gw = self.gateway
        self._push(lambda: gw.push_alert(alert))

    def _on_wrapup_saved(self, e: f.WrapUpSaved) -> None:
        # A draft saved at last: its alert clears, and the agent's list of drafts shrinks.
        alert = self.views.draft_cleared(e.call_id, e.agent_id)
        view = self.views.agent(e.agent_id) if self.views.config.has_agent(e.agent_id) else None
        gw = self.gateway
        self._push(lambda: gw.push_alert(alert))
        if view is not None:
            self._push(lambda: gw.push_agent_state(view))

    # ------------------------------------------------------------------ calls

    def _on_call_state(self, e: d.CallStateChanged) -> None:
        self._call_row(e.call_id)
        state = _TALKING.get(e.new)
        if state is not None and e.agent_id and e.old in ("connected", "held"):
            view = self.views.call(e.call_id, e.agent_id, state)
            gw = self.gateway
            self._push(lambda: gw.push_call_state(view))

    def _on_outbound(self, e: f.OutboundDialling | f.OutboundProgress) -> None:
        """Each step of an agent's outbound call, to their console and the supervisors' call list (its end
        goes out with the agent's move to wrap-up, above)."""
        state = "dialling_agent" if isinstance(e, f.OutboundDialling) else _OUTBOUND.get(e.state, e.state)
        view = self.views.call(e.call_id, e.agent_id, state)
        gw = self.gateway
        self._push(lambda: gw.push_call_state(view))

    def _on_handover(self, e: d.Handover) -> None:
        view = self.views.call(e.call_id, e.to_agent, "talking")
        gw = self.gateway
        self._push(lambda: gw.push_call_state(view))

    def _on_consultation(self, e: ConsultationChanged) -> None:
        view = self.views.call(e.call_id, e.agent_id, "held" if e.active else "talking")
        gw = self.gateway
        self._push(lambda: gw.push_call_state(view))

    def _on_call_fact(self, e: f.CallArrived) -> None:
        self._call_row(e.call_id)

    def _on_dialer_step(self, e: f.DialerStep) -> None:
        if e.step == "connected":  # a campaign line bridged to its agent
            self._call_row(e.call_id)

    def _on_call_ended(self, e: f.CallEnded) -> None:
        gw, call_id = self.gateway, e.call_id
        self._push(lambda: gw.push_call_list_delta(call_id, None))

    # ------------------------------------------------------------------ supervisors

    def _on_prompt_missing(self, e: f.PromptMissing) -> None:
        # Once per prompt: the IVR and the queues may both meet it, and every caller after the first does.
        if e.prompt in self._prompts_alerted:
            return
        self._prompts_alerted.add(e.prompt)
        alert = AlertView(f"prompt:{e.prompt}", "", "prompt_missing", 0.0, 0.0, "warning", self.views.clock(),
                          f"prompt {e.prompt} cannot be played ({e.where}): install it on the PBX", e.prompt)
        gw = self.gateway
        self._push(lambda: gw.push_alert(alert))

    def _on_alert(self, e: f.AlertRaised | f.AlertCleared) -> None:
        alert = self.views.alert(e)
        gw = self.gateway
        self._push(lambda: gw.push_alert(alert))

    def _call_row(self, call_id: str) -> None:
        row = self.views.call_row(call_id)
        gw = self.gateway
        self._push(lambda: gw.push_call_list_delta(call_id, row))
