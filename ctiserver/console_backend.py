"""The consoles' backend (ctiserver.gateway.backend.Backend): agent and supervisor commands carried out
through the ACD, call control and the CRM, plus the snapshots a console gets when it connects."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from acd import decisions as d
from acd import events as ev
from acd.states import AgentState
from crmstore.errors import CrmWriteError
from crmstore.model import CallFacts, FollowUpKind, FollowUpRequest, Outcome, WrapUp
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer

from .acd_service import Refused as AcdRefused
from .ami.errors import AmiError
from .ami.protocol import UnsafeValue
from .calls import CallContext, utcnow
from .control import InvalidValue, SpyMode
from .gateway.auth import Principal
from .gateway.backend import (
    AgentSnapshot,
    AgentView,
    CallView,
    ConsoleConfig,
    MonitorSnapshot,
    OfferView,
    Refused,
    TransferTarget,
    WrapUpFailed,
    WrapUpForm,
)
from .gateway.backend import (
    SpyMode as ConsoleSpyMode,
)

if TYPE_CHECKING:
    from .app import CtiServer

_EXTENSION = re.compile(r"[0-9]{2,15}")
_DIALABLE = re.compile(r"\+?[0-9]{2,20}")  # what an agent may type as an outside number
_FOLLOW_UP_KINDS = {"callback": FollowUpKind.CALLBACK, "visit": FollowUpKind.VISIT,
                    "satisfaction_call": FollowUpKind.SATISFACTION_CALL}
_CONSULT_LEG_WAIT_S = 2.0
_OUTBOUND_ID = "cti-out-"  # ChannelId prefix of click-to-call legs
_SPY_RING_S = 8.0  # the supervisor's phone rings this long: under the gateway's 10 s command timeout
_SPY = {"listen": SpyMode.LISTEN, "whisper": SpyMode.WHISPER, "barge": SpyMode.BARGE}


def wall(mono: float) -> float:
    """A loop-clock instant as unix seconds (the consoles count time in state from it)."""
    return time.time() - (asyncio.get_running_loop().time() - mono)


class ConsoleBackend:
    def __init__(self, server: CtiServer) -> None:
        self.s = server

    # ------------------------------------------------------------------ snapshots

    def console_config(self, who: Principal) -> ConsoleConfig:
        cfg = self.s.acd_config
        wrap = max((q.wrap_up_s for q in cfg.queues), default=30.0)
        return ConsoleConfig(queues=tuple(q.name for q in cfg.queues), pause_reasons=cfg.pause_reasons,
                             wrap_up_s=wrap)

    def agent_view(self, agent_id: str) -> AgentView:

        now = asyncio.get_running_loop().time()
        v = self.s.acd.router.agent_view(agent_id, now)
        name = self.s.acd_config.agent(agent_id).name if self.s.acd_config.has_agent(agent_id) else agent_id
        ext = v.endpoint.rsplit("/", 1)[-1] if v.endpoint else None
        wrap_until = None
        if v.state == AgentState.WRAP_UP.value and v.call_id:
            call = self.s.acd.router.call_view(v.call_id)
            q = self.s.acd_config.queue(call.queue) if call else None
            if q is not None:
                wrap_until = wall(v.since) + q.wrap_up_s
        since = max(v.since, self.s.started_mono)
        return AgentView(agent_id, v.state, wall(since), v.pause_reason or v.pending_pause, ext,
                         v.queues, name, wrap_until)

    def call_view(self, ctx: CallContext, state: str) -> CallView:
        since = ctx.answered_at or ctx.queued_at or ctx.started_at
        consult = self.s.consults.get(ctx.call_id)
        if consult is not None and state in ("talking", "held"):
            state = "consulting"  # Atxfer puts the caller on hold: to the agent it is a consultation
        return CallView(
            call_id=ctx.call_id, agent_id=ctx.agent_id or "", state=state, since=since.timestamp(),
            caller=ctx.caller_num, caller_name=ctx.customer_name or ctx.caller_name, queue=ctx.queue,
            talk_since=ctx.answered_at.timestamp() if ctx.answered_at else None,
            consult_target=consult if state == "consulting" else None,
        )

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        self._known_agent(agent_id)
        view = self.agent_view(agent_id)
        calls: list[CallView] = []
        offers: list[OfferView] = []
        for ctx in self.s.calls.live.values():
            if ctx.agent_id != agent_id:
                continue
            if ctx.answered_at is not None:
                calls.append(self.call_view(ctx, "held" if ctx.held_since else "talking"))
            elif (offer := self.s.open_offers.get(ctx.call_id)) is not None:
                offers.append(offer)
        return AgentSnapshot(view, tuple(calls), tuple(offers))

    async def monitor_snapshot(self) -> MonitorSnapshot:
        return MonitorSnapshot(
            wallboard=self.s.wallboard_rows(),
            agents={a: self.s.agent_row(a) for a in self.s.acd.router.agent_ids()},
            calls={c.call_id: self.s.call_row(c) for c in self.s.calls.live.values()},
        )

    # ------------------------------------------------------------------ agent state

    def _acd(self, event: ev.Event) -> list[d.Decision]:
        try:
            return self.s.acd.command(event)
        except AcdRefused as e:
            raise Refused("invalid_state", str(e)) from None

    async def _pause(self, agent_id: str, reason: str) -> None:
        decisions = self._acd(ev.AgentPaused(agent_id, reason))
        if not any(isinstance(x, d.AgentStateChanged) for x in decisions):
            # Paused during a call or wrap-up: the pause waits for the end of it and the state does not
            # change yet, but the agent's console and the grid must show the pending pause now.
            await self.s.gateway.push_agent_state(self.agent_view(agent_id))

    def _known_agent(self, agent_id: str | None) -> str:
        if not agent_id or not self.s.acd_config.has_agent(agent_id):
            raise Refused("not_found", f"no agent {agent_id!r} in the ACD configuration")
        return agent_id

    async def agent_login(self, who: Principal, extension: str, queues: tuple[str, ...]) -> None:
        agent_id = self._known_agent(who.agent_id)
        if not _EXTENSION.fullmatch(extension):
            raise Refused("invalid_extension", "the extension must be 2 to 15 digits")
        self._acd(ev.AgentLoggedIn(agent_id, f"PJSIP/{extension}", queues or None))

    async def agent_logout(self, who: Principal) -> None:
        self._acd(ev.AgentLoggedOut(self._known_agent(who.agent_id)))

    async def agent_ready(self, who: Principal) -> None:
        agent_id = self._known_agent(who.agent_id)
        view = self.s.acd.router.agent_view(agent_id, self.s.now())
        self._acd(ev.WrapUpDone(agent_id) if view.state == AgentState.WRAP_UP.value else ev.AgentReady(agent_id))

    async def agent_pause(self, who: Principal, reason: str) -> None:
        await self._pause(self._known_agent(who.agent_id), reason)

    # ------------------------------------------------------------------ call control

    def _call(self, call_id: str, who: Principal | None = None) -> tuple[CallContext, str, str]:
        """The call's context, the caller's channel and the agent's leg; refuses what isn't there."""
        ctx = self.s.calls.get(call_id)
        if ctx is None or ctx.ended_at is not None:
            raise Refused("not_found", f"no live call {call_id}")
        if who is not None and who.role == "agent" and ctx.agent_id != who.agent_id:
            raise Refused("not_your_call", "this call belongs to another agent")
        pbx = self.s.pbxes[ctx.pbx]
        call = pbx.model.calls.get(call_id)
        caller = call.caller_leg if call else None
        agent_leg = self.s.acd.agent_leg(call_id)
        if caller is None or not caller.alive or not agent_leg:
            raise Refused("invalid_state", "the call is not connected to an agent")
        return ctx, caller.name, agent_leg

    async def _do(self, coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except (UnsafeValue, InvalidValue) as e:
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            raise Refused("pbx_error", str(e)) from None

    async def hold(self, who: Principal, call_id: str) -> None:
        ctx, caller, agent = self._call(call_id, who)
        await self._do(self.s.pbxes[ctx.pbx].control.hold(caller, agent))

    async def unhold(self, who: Principal, call_id: str) -> None:
        ctx, caller, agent = self._call(call_id, who)
        await self._do(self.s.pbxes[ctx.pbx].control.unhold(caller, agent))

    def _destination(self, target: TransferTarget) -> tuple[str, str]:
        """(context, exten) to send a caller to."""
        if target.kind == "number":
            if not _DIALABLE.fullmatch(target.value):
                raise Refused("invalid_value", "a number is digits, with an optional leading +")
            return ("cti-outbound", target.value.lstrip("+"))
        if target.kind == "agent":
            view = self.s.acd.router.agent_view(self._known_agent(target.value), self.s.now())
            if not view.endpoint:
                raise Refused("invalid_state", f"agent {target.value} is not logged in")
            return ("cti-dial", view.endpoint.rsplit("/", 1)[-1])
        if not self.s.acd_config.has_queue(target.value):
            raise Refused("not_found", f"no queue {target.value!r}")
        return ("cti-wait", "s")

    async def blind_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        ctx, caller, _agent = self._call(call_id, who)
        context, exten = self._destination(target)
        control = self.s.pbxes[ctx.pbx].control
        if target.kind == "queue":
            await self._do(control.set_var(caller, "CTI_QUEUE", target.value))
        await self._do(control.redirect(caller, context, exten))

    async def attended_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        ctx, _caller, agent = self._call(call_id, who)
        context, exten = self._destination(target)
        if target.kind == "queue":
            raise Refused("invalid_target", "an attended transfer goes to an agent or a number")
        await self._do(self.s.pbxes[ctx.pbx].control.attended_transfer(agent, exten, context))
        # The call model has no consultation phase: the PBX took the Atxfer, so the agent is consulting.
        self.s.consults[call_id] = f"{target.kind}:{target.value}"
        await self.s.gateway.push_call_state(self.call_view(ctx, "consulting"))

    async def complete_transfer(self, who: Principal, call_id: str) -> None:
        # Atxfer completes when the transferer hangs up (capture 06 C: BridgeMerge, AttendedTransfer).
        ctx, _caller, agent = self._call(call_id, who)
        await self._do(self.s.pbxes[ctx.pbx].control.hangup(agent))

    async def cancel_transfer(self, who: Principal, call_id: str) -> None:
        ctx, _caller, _agent = self._call(call_id, who)
        # The Atxfer's dialling leg shows on AMI a moment after the action's response: an agent who
        # cancels at once must not be told there is nothing to cancel.
        deadline = self.s.now() + _CONSULT_LEG_WAIT_S
        while (target := self._consult_leg(ctx)) is None and self.s.now() < deadline:
            await asyncio.sleep(0.02)
        if target is None:
            raise Refused("invalid_state", "no consultation call to cancel")
        await self._do(self.s.pbxes[ctx.pbx].control.hangup(target))
        self.s.consults.pop(call_id, None)
        await self.s.gateway.push_call_state(self.call_view(ctx, "held" if ctx.held_since else "talking"))

    def _consult_leg(self, ctx: CallContext) -> str | None:
        call = self.s.pbxes[ctx.pbx].model.calls.get(ctx.call_id)
        agent_uid = self.s.acd.agent_leg_uniqueid(ctx.call_id)
        target = None
        if call is not None:
            for leg in call.legs.values():
                if leg.alive and leg.uniqueid not in (call.caller, call.origin, agent_uid):
                    target = leg.name
        return target

    async def hangup(self, who: Principal, call_id: str) -> None:
        if call_id.startswith(_OUTBOUND_ID):
            await self._hangup_outbound(call_id)
            return
        ctx, _caller, agent = self._call(call_id, who)
        await self._do(self.s.pbxes[ctx.pbx].control.hangup(agent))

    # ------------------------------------------------------------------ wrap-up, CRM

    def _viewer(self, who: Principal) -> Viewer:
        return Viewer(who.username, CrmRole(str(who.role)))

    async def save_wrapup(self, who: Principal, call_id: str, form: WrapUpForm) -> None:
        ctx = self.s.calls.get(call_id)
        if ctx is None:
            raise Refused("not_found", f"no call {call_id}")
        if who.role == "agent" and ctx.agent_id != who.agent_id:
            raise Refused("not_your_call", "this call belongs to another agent")
        follow_up = None
        if form.follow_up is not None:
            follow_up = FollowUpRequest(_FOLLOW_UP_KINDS[form.follow_up.kind], form.follow_up.due_at,
                                        owner=who.agent_id or who.username, note=form.follow_up.note)
        facts = self.s.call_facts(ctx)
        ended = ctx.ended_at or utcnow()
        wrap_s = max(0.0, (utcnow() - ended).total_seconds())
        try:
            await self.s.crm.save_wrapup(
                WrapUp(facts, form.disposition, form.notes, wrap_s, follow_up), self._viewer(who)
            )
        except CrmWriteError as e:
            raise WrapUpFailed(str(e)) from None
        ctx.logged = True
        if who.agent_id:
            view = self.s.acd.router.agent_view(who.agent_id, self.s.now())
            if view.state == AgentState.WRAP_UP.value:
                self.s.acd.handle(ev.WrapUpDone(who.agent_id))

    async def search_customers(self, who: Principal, query: str, limit: int) -> Sequence[object]:
        return await self.s.crm.search(query, self._viewer(who), limit=limit)

    async def click_to_call(self, who: Principal, customer_id: int | None, number: str | None) -> str:
        agent_id = self._known_agent(who.agent_id)
        view = self.s.acd.router.agent_view(agent_id, self.s.now())
        if not view.endpoint:
            raise Refused("invalid_state", "log in with a phone first")
        if number is None and customer_id is not None:
            card = await self.s.crm.get_customer(customer_id, self._viewer(who))
            number = card.phones[0] if card.phones else None
        if not number or not _DIALABLE.fullmatch(number):
            raise Refused("invalid_value", "no dialable number")
        pbx = next(iter(self.s.pbxes.values()))
        channel_id = f"{_OUTBOUND_ID}{int(time.time() * 1000)}-{agent_id}"
        try:
            result = await pbx.control.originate_outbound(view.endpoint, number.lstrip("+"),
                                                          caller_id_num=number.lstrip("+"),
                                                          channel_id=channel_id)
        except (UnsafeValue, InvalidValue) as e:
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            raise Refused("pbx_error", str(e)) from None
        if not result.success:
            raise Refused("no_answer", f"the agent's phone did not answer ({result.outcome.value})")
        return result.uniqueid or channel_id

    async def _hangup_outbound(self, call_id: str) -> None:
        """A click-to-call is not an ACD call: its id is the agent leg's ChannelId (the gateway has
        checked it is this agent's: it answered the dial command with it)."""
        for pbx in self.s.pbxes.values():
            leg = pbx.model.channels.get(call_id)
            if leg is not None and leg.alive:
                await self._do(pbx.control.hangup(leg.name))
                return
        raise Refused("not_found", f"no live call {call_id}")

    # ------------------------------------------------------------------ supervisors

    async def spy(self, who: Principal, extension: str, agent_id: str, mode: ConsoleSpyMode) -> None:
        view = self.s.acd.router.agent_view(self._known_agent(agent_id), self.s.now())
        if not view.call_id:
            raise Refused("invalid_state", f"agent {agent_id} is not on a call")
        ctx = self.s.calls.get(view.call_id)
        leg = self.s.acd.agent_leg(view.call_id)
        if ctx is None or not leg:
            raise Refused("invalid_state", f"agent {agent_id} is not on a call")
        if not _EXTENSION.fullmatch(extension or ""):
            raise Refused("invalid_extension", "the supervisor's extension must be digits")
        try:
            result = await self.s.pbxes[ctx.pbx].control.spy(f"PJSIP/{extension}", leg, _SPY[mode],
                                                             ring_timeout_s=_SPY_RING_S)
        except (UnsafeValue, InvalidValue) as e:
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            raise Refused("pbx_error", str(e)) from None
        if not result.success:  # the supervisor hears nothing: saying "done" would be a lie
            raise Refused("no_answer", f"your phone {extension} did not answer ({result.outcome.value})")

    async def force_pause(self, who: Principal, agent_id: str, reason: str) -> None:
        await self._pause(self._known_agent(agent_id), reason)

    async def force_logout(self, who: Principal, agent_id: str) -> None:
        self._acd(ev.AgentLoggedOut(self._known_agent(agent_id)))

    async def move_call(self, who: Principal, call_id: str, queue: str | None, to_head: bool) -> None:
        try:
            self.s.acd.move_call(call_id, queue, to_head)
        except AcdRefused as e:
            raise Refused("invalid_state", str(e)) from None


__all__ = ["CallFacts", "ConsoleBackend", "Outcome"]
