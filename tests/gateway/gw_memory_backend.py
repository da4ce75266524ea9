"""TEMPORARY TEST DOUBLE: an in-memory Backend for gateway tests until the real app is wired.

It stands in for the ACD, call control and the CRM so the gateway's protocol tests, the browser
tests and the bench can run on their own. The lead replaces it with the real app + PBX simulator
(see harness.py: the tests only use a `Site`). Nothing in ctiserver/ may import this module.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ctiserver.gateway.auth import Principal
from ctiserver.gateway.backend import (
    AgentSnapshot,
    AgentView,
    CallView,
    ConsoleConfig,
    MonitorSnapshot,
    OfferView,
    Refused,
    SpyMode,
    TransferTarget,
    WrapUpFailed,
    WrapUpForm,
)
from ctiserver.gateway.server import Gateway

QUEUES = ("sales", "support", "vip")


@dataclass
class _Call:
    view: CallView
    offer_id: str | None = None
    ringing: bool = True


@dataclass
class InMemoryTestBackend:
    gateway: Gateway | None = None
    agents: dict[str, AgentView] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)
    waiting: dict[str, dict[str, object]] = field(default_factory=dict)
    saved_wrapups: dict[str, WrapUpForm] = field(default_factory=dict)
    spies: list[tuple[str, str, str, str]] = field(default_factory=list)
    moves: list[tuple[str, str | None, bool]] = field(default_factory=list)
    fail_next_wrapup: bool = False
    customers: list[dict[str, object]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway

    # -------------------------------------------------------------- Backend

    def console_config(self, who: Principal) -> ConsoleConfig:
        return ConsoleConfig(queues=QUEUES, wrap_up_s=30.0)

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        agent = self.agents.get(agent_id) or AgentView(agent_id, "logged_out", time.time())
        calls = tuple(c.view for c in self.calls.values() if c.view.agent_id == agent_id)
        offers = tuple(self._offer(c) for c in self.calls.values()
                       if c.view.agent_id == agent_id and c.ringing and c.offer_id)
        return AgentSnapshot(agent, calls, offers)

    async def monitor_snapshot(self) -> MonitorSnapshot:
        wallboard: dict[str, dict[str, object]] = {
            q: {"waiting": 0, "oldest_since": None, "sl": 100.0, "abandon_rate": 0.0, "asa_s": 0.0,
                         "aht_s": 0.0, "answered": 0, "agents_by_state": {}} for q in QUEUES}
        return MonitorSnapshot(wallboard=wallboard)

    async def agent_login(self, who: Principal, extension: str, queues: tuple[str, ...]) -> None:
        unknown = [q for q in queues if q not in QUEUES]
        if unknown:
            raise Refused("not_found", f"no queue {unknown[0]}")
        await self._set_agent(who.agent_id or "", "available", extension=extension, queues=queues,
                              name=who.display_name)

    async def agent_logout(self, who: Principal) -> None:
        await self._set_agent(who.agent_id or "", "logged_out", extension=None, queues=())

    async def agent_ready(self, who: Principal) -> None:
        agent = self._agent(who)
        if agent.state not in ("paused", "available", "wrap_up", "not_responding"):
            raise Refused("invalid_state", f"cannot become available while {agent.state}")
        await self._set_agent(agent.agent_id, "available")

    async def agent_pause(self, who: Principal, reason: str) -> None:
        agent = self._agent(who)
        if agent.state in ("reserved", "on_call", "on_hold"):
            raise Refused("invalid_state", "pause is possible after the call")
        await self._set_agent(agent.agent_id, "paused", reason=reason)

    async def hold(self, who: Principal, call_id: str) -> None:
        await self._call_to(who, call_id, "held", "on_hold", expect=("talking",))

    async def unhold(self, who: Principal, call_id: str) -> None:
        await self._call_to(who, call_id, "talking", "on_call", expect=("held",))

    async def blind_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        call = self._own_call(who, call_id, ("talking", "held"))
        await self._end(call, who)
        if target.kind == "agent" and target.value in self.agents:
            await self.offer_call(target.value, call.view.caller, call.view.caller_name, call.view.queue)

    async def attended_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        call = self._own_call(who, call_id, ("talking", "held"))
        call.view = replace(call.view, state="consulting", consult_target=f"{target.kind}:{target.value}")
        await self.gw.push_call_state(call.view)

    async def complete_transfer(self, who: Principal, call_id: str) -> None:
        call = self._own_call(who, call_id, ("consulting",))
        await self._end(call, who)

    async def cancel_transfer(self, who: Principal, call_id: str) -> None:
        call = self._own_call(who, call_id, ("consulting",))
        call.view = replace(call.view, state="talking", consult_target=None)
        await self.gw.push_call_state(call.view)

    async def hangup(self, who: Principal, call_id: str) -> None:
        call = self._own_call(who, call_id, ("ringing", "talking", "held", "consulting"))
        await self._end(call, who)

    async def save_wrapup(self, who: Principal, call_id: str, form: WrapUpForm) -> None:
        if self.fail_next_wrapup:
            self.fail_next_wrapup = False
            raise WrapUpFailed("database is locked: nothing was saved, try again")
        self.saved_wrapups[call_id] = form
        agent = self._agent(who)
        if agent.state == "wrap_up":
            await self._set_agent(agent.agent_id, "available")

    async def search_customers(self, who: Principal, query: str, limit: int) -> Sequence[object]:
        q = query.lower()
        return [c for c in self.customers if q in str(c["name"]).lower() or q in str(c.get("phone", ""))][:limit]

    async def click_to_call(self, who: Principal, customer_id: int | None, number: str | None) -> str:
        agent = self._agent(who)
        if agent.state in ("reserved", "on_call", "on_hold", "logged_out"):
            raise Refused("invalid_state", f"cannot dial while {agent.state}")
        if customer_id is not None:
            found = [c for c in self.customers if c["id"] == customer_id]
            if not found:
                raise Refused("not_found", "no such customer")
            number = str(found[0].get("phone", ""))
        call_id = f"out-{next(self._ids)}"
        now = time.time()
        view = CallView(call_id, agent.agent_id, "ringing", now, caller=number or "", direction="outbound")
        self.calls[call_id] = _Call(view, ringing=False)
        await self.gw.push_call_state(view)
        return call_id

    async def spy(self, who: Principal, extension: str, agent_id: str, mode: SpyMode) -> None:
        if agent_id not in self.agents:
            raise Refused("not_found", f"no agent {agent_id}")
        self.spies.append((who.username, extension, agent_id, mode))

    async def force_pause(self, who: Principal, agent_id: str, reason: str) -> None:
        if agent_id not in self.agents:
            raise Refused("not_found", f"no agent {agent_id}")
        await self._set_agent(agent_id, "paused", reason=reason)

    async def force_logout(self, who: Principal, agent_id: str) -> None:
        if agent_id not in self.agents:
            raise Refused("not_found", f"no agent {agent_id}")
        await self._set_agent(agent_id, "logged_out", extension=None, queues=())

    async def move_call(self, who: Principal, call_id: str, queue: str | None, to_head: bool) -> None:
        row = self.waiting.get(call_id)
        if row is None:
            raise Refused("not_found", "no such waiting call")
        self.moves.append((call_id, queue, to_head))
        if queue is not None:
            row["queue"] = queue
        row["priority"] = 1000 if to_head else row.get("priority", 0)
        await self.gw.push_call_list_delta(call_id, dict(row))

    # -------------------------------------------------------------- test drivers (what the PBX would do)

    async def add_waiting_call(self, queue: str, caller: str) -> str:
        call_id = f"wait-{next(self._ids)}"
        self.waiting[call_id] = {"state": "waiting", "queue": queue, "caller": caller, "since": time.time(),
                                 "priority": 0}
        await self.gw.push_call_list_delta(call_id, dict(self.waiting[call_id]))
        await self._wallboard(queue)
        return call_id

    async def offer_call(self, agent_id: str, caller: str, caller_name: str = "", queue: str = "sales",
                         pop: object = None, ivr_path: tuple[str, ...] = (), ivr_said: tuple[str, ...] = ()
                         ) -> OfferView:
        n = next(self._ids)
        now = time.time()
        view = CallView(f"call-{n}", agent_id, "ringing", now, caller=caller, caller_name=caller_name, queue=queue)
        offer = OfferView(offer_id=f"offer-{n}", call_id=view.call_id, agent_id=agent_id, queue=queue,
                          caller=caller, caller_name=caller_name, offered_at=now, ring_timeout_s=20.0,
                          ivr_path=ivr_path, ivr_said=ivr_said, pop=pop)
        self.calls[view.call_id] = _Call(view, offer.offer_id)
        await self._set_agent(agent_id, "reserved")
        await self.gw.push_offer(agent_id, offer)
        await self.gw.push_call_state(view)
        await self._wallboard(queue)
        return offer

    async def answer(self, call_id: str) -> None:
        """The agent picked up the phone."""
        call = self.calls[call_id]
        now = time.time()
        call.ringing = False
        call.view = replace(call.view, state="talking", since=now, talk_since=now)
        await self.gw.push_call_state(call.view)
        await self._set_agent(call.view.agent_id, "on_call")
        await self._wallboard(call.view.queue, answered=1)

    def _offer(self, call: _Call) -> OfferView:
        v = call.view
        return OfferView(offer_id=call.offer_id or "", call_id=v.call_id, agent_id=v.agent_id, queue=v.queue,
                         caller=v.caller, caller_name=v.caller_name, offered_at=v.since, ring_timeout_s=20.0)

    # -------------------------------------------------------------- helpers

    def _agent(self, who: Principal) -> AgentView:
        agent = self.agents.get(who.agent_id or "")
        if agent is None or agent.state == "logged_out":
            raise Refused("invalid_state", "log in with your extension first")
        return agent

    def _own_call(self, who: Principal, call_id: str, states: tuple[str, ...]) -> _Call:
        call = self.calls.get(call_id)
        if call is None or call.view.agent_id != who.agent_id:
            raise Refused("not_your_call", "that call is not yours")
        if call.view.state not in states:
            raise Refused("invalid_state", f"the call is {call.view.state}")
        return call

    async def _call_to(self, who: Principal, call_id: str, state: str, agent_state: str,
                       expect: tuple[str, ...]) -> None:
        call = self._own_call(who, call_id, expect)
        call.view = replace(call.view, state=state)
        await self.gw.push_call_state(call.view)
        await self._set_agent(call.view.agent_id, agent_state)

    async def _end(self, call: _Call, who: Principal) -> None:
        call.view = replace(call.view, state="ended", since=time.time())
        del self.calls[call.view.call_id]
        await self.gw.push_call_state(call.view)
        if call.ringing and call.offer_id:
            await self.gw.push_offer_cancelled(call.view.agent_id, call.offer_id, "hung_up")
        now = time.time()
        await self._set_agent(call.view.agent_id, "wrap_up", wrap_up_until=now + 30.0)

    async def _set_agent(self, agent_id: str, state: str, **changes: object) -> None:
        old = self.agents.get(agent_id) or AgentView(agent_id, "logged_out", time.time())
        fields: dict[str, object] = {"state": state, "since": time.time(), "reason": None, "wrap_up_until": None}
        fields.update(changes)
        new = replace(old, **fields)  # type: ignore[arg-type]
        self.agents[agent_id] = new
        await self.gw.push_agent_state(new)
        for queue in new.queues or old.queues:
            await self._wallboard(queue)

    async def _wallboard(self, queue: str, answered: int = 0) -> None:
        by_state: dict[str, int] = {}
        for agent in self.agents.values():
            if queue in agent.queues:
                by_state[agent.state] = by_state.get(agent.state, 0) + 1
        waiting = [w for w in self.waiting.values() if w["queue"] == queue]
        await self.gw.push_wallboard_delta(queue, {
            "waiting": len(waiting),
            "oldest_since": min((float(str(w["since"])) for w in waiting), default=None),
            "agents_by_state": by_state,
            "sl": 92.5, "abandon_rate": 3.1, "asa_s": 8.0, "aht_s": 185.0,
        })
