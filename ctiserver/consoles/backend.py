"""The consoles' backend (ctiserver.gateway.backend.Backend): agent and supervisor commands, carried out by
recording facts (the ACD decides) and through the queueing slice and call control, plus the snapshots a
console gets when it connects. Who has which call is the router's; the one state kept here is execution
state of its own commands: which supervisor listens to whom (one spy each, ended when their phone hangs up).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from acd import events as ev
from acd.config import SYSTEM_PAUSE_REASONS, AcdConfig
from acd.states import AgentState
from crmstore.errors import CrmError
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import CrmStore

from ..ami.errors import AmiError
from ..ami.protocol import UnsafeValue
from ..bus import EventBus
from ..callmodel import events as ce
from ..calls import legs
from ..calls.service import CallsService, Pbx
from ..control import InvalidValue, SpyMode
from ..gateway.auth import Principal
from ..gateway.backend import (
    AgentSnapshot,
    CallView,
    ConsoleConfig,
    MonitorSnapshot,
    OfferView,
    Refused,
    TransferTarget,
    WrapUpFailed,
    WrapUpForm,
)
from ..gateway.backend import SpyMode as ConsoleSpyMode
from ..journal import facts as f
from ..journal.journal import JournalClosed
from ..outbound.callbacks import CallbackService, describe
from ..outbound.callbacks import Refused as CallbackRefused
from ..outbound.dialling import OutboundDialler
from ..projections.callbacks import Callback
from ..projections.recorder import Recorder
from ..queueing.service import QueueingService
from ..queueing.service import Refused as AcdRefused
from .crm_work import CrmConsole
from .devices import DeviceRefused, Phones
from .phones import PHONE_STATES, PhonePresence
from .presence import ConsolePresence
from .softphone import account as softphone_account
from .softphone import endpoint_of
from .today import agent_today
from .views import ConsoleViews

_EXTENSION = re.compile(r"[0-9]{2,15}")
_DIALABLE = re.compile(r"\+?[0-9]{2,20}")  # what an agent may type as an outside number
_SPY_RING_S = 8.0  # the supervisor's phone rings this long: under the gateway's 10 s command timeout
_SPY = {"listen": SpyMode.LISTEN, "whisper": SpyMode.WHISPER, "barge": SpyMode.BARGE}
_SAVE_TIMEOUT_S = 3.0  # a wrap-up is "saved" only once durable; beyond this the agent is told so
_TALKING = ("connected", "held")


def _stopping() -> Refused:
    return Refused("stopping", "the server is stopping; try again in a moment")


@dataclass(slots=True)
class _Spy:
    """A supervisor's ChanSpy call: the Originate's ChannelId names it from the first ring to the Hangup."""

    supervisor: str
    agent_id: str
    call_id: str
    pbx: Pbx
    channel_id: str
    answered: bool = False
    gone: bool = False  # its Hangup came while the Originate was still waiting for an answer


class CampaignCalls(Protocol):
    """The dialer, as the console's wrap-up sees it: which campaign attempt a call was, and the disposition."""

    async def handled(self, agent_id: str, call_id: str) -> object | None: ...

    async def dispose(self, agent_id: str, call_id: str, disposition: str,
                      call_back_at: datetime | None) -> str: ...


class ConsoleBackend:
    def __init__(
        self,
        *,
        recorder: Recorder,
        queueing: QueueingService,
        calls: CallsService,
        crm: CrmStore,
        views: ConsoleViews,
        clock: Callable[[], float],
        bus: EventBus,
        phones: Phones | None = None,
        presence: ConsolePresence | None = None,
        outbound: OutboundDialler | None = None,
        callbacks: CallbackService | None = None,
    ) -> None:
        self.recorder = recorder
        self.queueing = queueing
        self.calls = calls
        self.crm = crm
        self.views = views
        self.clock = clock
        self.phones = phones or Phones()
        self.presence = presence
        self.outbound = outbound  # tracked click-to-call; None: the untracked dial below
        self.callbacks = callbacks
        self.campaign_calls: CampaignCalls | None = None  # the dialer, when campaigns run
        self.phone_presence = PhonePresence(queueing, bus, clock, self._browser_endpoint)
        views.phone_shown = self.phone_presence.phones.shown
        views.phone_detail = self.phone_presence.phones.shown_detail
        self._dialled: dict[str, str] = {}  # click-to-call leg -> agent: untracked outbound calls
        self._spies: dict[str, _Spy] = {}  # supervisor (username) -> their spy call
        self._spy_calls = 0
        bus.subscribe(ce.LegHungUp, self._on_leg_hung_up)
        self.crm_work = CrmConsole(self, bus)

    @property
    def config(self) -> AcdConfig:
        return self.recorder.projector.config

    # ------------------------------------------------------------------ snapshots

    def console_config(self, who: Principal) -> ConsoleConfig:
        cfg = self.config
        wrap = max((q.wrap_up_s for q in cfg.queues), default=30.0)
        return ConsoleConfig(queues=tuple(q.name for q in cfg.queues), pause_reasons=cfg.pause_reasons,
                             wrap_up_s=wrap)

    def _record(self, body: object) -> None:
        try:
            self.recorder.record(body)
        except JournalClosed:  # a command that races the server's stop: refused, not a traceback
            raise _stopping() from None

    def owns(self, agent_id: str, call_id: str) -> bool:
        if self._dialled.get(call_id) == agent_id:
            return True
        # A follow-up call's leg names its agent: after a restart (nothing in memory) the agent still saves
        # what came of it; the CRM work checks the journaled call against the agent.
        fu = legs.follow_up_call(call_id)
        if fu is not None and fu[2] == agent_id:
            return True
        if not self.config.has_agent(agent_id):
            return False
        view = self.views.router.agent_view(agent_id, self.clock())
        if view.call_id == call_id:
            return True
        return self.views.records.took_part(call_id, agent_id)

    def session_ended(self, who: Principal) -> None:
        self._record(f.ConsoleSessionEnded(who.session_id, who.username, who.expires_at))

    def user_logged_out(self, username: str) -> None:
        self._record(f.ConsoleUserLoggedOut(username))

    def console_presence(self, agent_id: str, connected: bool) -> None:
        if self.presence is not None:
            self.presence.console_presence(agent_id, connected)

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        self._known_agent(agent_id)
        view = self.views.router.agent_view(agent_id, self.clock())
        calls: list[CallView] = []
        offers: list[OfferView] = []
        if view.call_id is not None:
            call = self.views.router.call_view(view.call_id)
            if view.state == "reserved" and call is not None and call.consult_agent_id != agent_id:
                queue = call.queue
                timeout = self.config.queue(queue).ring_timeout_s if self.config.has_queue(queue) else 15.0
                offers.append(self.views.offer(view.call_id, agent_id, view.leg_id, queue, timeout))
            elif view.state in ("on_call", "on_hold"):
                state = "held" if call is not None and call.state == "held" else "talking"
                calls.append(self.views.call(view.call_id, agent_id, state))
        return AgentSnapshot(self.views.agent(agent_id), tuple(calls), tuple(offers))

    async def monitor_snapshot(self) -> MonitorSnapshot:
        rows = {c: row for c in self.views.live_call_ids() if (row := self.views.call_row(c)) is not None}
        return MonitorSnapshot(
            wallboard=self.views.wallboard_rows(),
            agents={a: self.views.agent_row(a) for a in self.views.router.agent_ids()},
            calls=rows,
            alerts=self.views.active_alerts(),
        )

    # ------------------------------------------------------------------ agent state

    def _acd(self, event: ev.Event) -> None:
        try:
            self.queueing.command(event)
        except AcdRefused as e:
            raise Refused("invalid_state", str(e)) from None
        except JournalClosed:
            raise _stopping() from None

    def _known_agent(self, agent_id: str | None) -> str:
        if not agent_id or not self.config.has_agent(agent_id):
            raise Refused("not_found", f"no agent {agent_id!r} in the ACD configuration")
        return agent_id

    async def agent_login(self, who: Principal, extension: str, queues: tuple[str, ...]) -> None:
        agent_id = self._known_agent(who.agent_id)
        agent = self.config.agent(agent_id)
        # An agent with a device of their own (queues.yaml) rings there whatever they type.
        if self.phones.needs_extension(agent) and not _EXTENSION.fullmatch(extension):
            raise Refused("invalid_extension", "the extension must be 2 to 15 digits")
        try:
            device = self.phones.agent_device(agent, extension)
            endpoint = self.phones.softphone_endpoint(agent, extension)
        except DeviceRefused as e:
            raise Refused("invalid_extension", str(e)) from None
        self._acd(ev.AgentLoggedIn(agent_id, device, queues or None))
        self.phone_presence.agent_logged_in(agent_id, endpoint)

    def _browser_endpoint(self, device: str) -> str | None:
        return endpoint_of(device) if self.phones.settings.softphone is not None else None

    async def phone_account(self, who: Principal, extension: str) -> dict[str, object] | None:
        """The SIP account of the agent's browser phone for ``extension``, or None when their phone is a desk
        phone. Only ever sent to this agent's own console."""
        agent_id = self._known_agent(who.agent_id)
        agent = self.config.agent(agent_id)
        if self.phones.needs_extension(agent) and not _EXTENSION.fullmatch(extension):
            raise Refused("invalid_extension", "the extension must be 2 to 15 digits")
        try:
            endpoint = self.phones.softphone_endpoint(agent, extension)
        except DeviceRefused as e:
            raise Refused("invalid_extension", str(e)) from None
        settings = self.phones.settings.softphone
        if endpoint is None or settings is None:
            return None
        # With the site's template the extension is typed: another agent's is not handed out (their password).
        holder = self.phone_presence.phones.holder(endpoint)
        if holder is not None and holder != agent_id:
            raise Refused("not_yours", f"phone {endpoint} is agent {holder}'s")
        view = self.views.router.agent_view(agent_id, self.clock())
        current = self.phone_presence.phones.endpoint.get(agent_id)
        if view.state != "logged_out" and current is not None and current != endpoint:
            raise Refused("invalid_state", f"logged in on phone {current}: log out first")
        self.phone_presence.expect(agent_id, endpoint)
        return softphone_account(settings, endpoint, auto_answer=self.phones.auto_answer(agent))

    async def phone_state(self, who: Principal, extension: str, state: str, detail: str) -> None:
        agent_id = self._known_agent(who.agent_id)
        if state not in PHONE_STATES:
            raise Refused("invalid_value", f"phone state must be one of {list(PHONE_STATES)}")
        try:
            self.phone_presence.phone_state(agent_id, extension, state, detail)
        except ValueError as e:
            raise Refused("not_yours", str(e)) from None

    async def agent_logout(self, who: Principal) -> None:
        self._acd(ev.AgentLoggedOut(self._known_agent(who.agent_id)))

    async def agent_ready(self, who: Principal) -> None:
        agent_id = self._known_agent(who.agent_id)
        view = self.views.router.agent_view(agent_id, self.clock())
        phones = self.phone_presence.phones
        if view.state != AgentState.WRAP_UP.value and phones.uses_browser(agent_id) and not phones.registered(agent_id):
            # available with a phone that cannot ring would lose the next caller's time
            raise Refused("invalid_state", "your browser phone is not registered")
        self._acd(ev.WrapUpDone(agent_id) if view.state == AgentState.WRAP_UP.value else ev.AgentReady(agent_id))

    def _chosen_reason(self, reason: str) -> str:
        # The server's own reasons (console_lost) are the server's to give: resuming on reconnect relies on it.
        if reason in SYSTEM_PAUSE_REASONS and reason not in self.config.pause_reasons:
            raise Refused("invalid_value", f"{reason!r} is not a pause reason to choose")
        return reason

    async def agent_pause(self, who: Principal, reason: str) -> None:
        self._acd(ev.AgentPaused(self._known_agent(who.agent_id), self._chosen_reason(reason)))

    # ------------------------------------------------------------------ call control

    def _talking(self, call_id: str, who: Principal) -> str:
        """The agent whose call this is, connected now; refuses what isn't there."""
        view = self.views.router.call_view(call_id)
        if view is None or view.state not in _TALKING:
            raise Refused("invalid_state", "the call is not connected to an agent")
        if who.role == "agent" and view.agent_id != who.agent_id:
            raise Refused("not_your_call", "this call belongs to another agent")
        assert view.agent_id is not None
        return view.agent_id

    async def _do(self, coro: Awaitable[object]) -> None:
        try:
            await coro
        except (UnsafeValue, InvalidValue) as e:
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            raise Refused("pbx_error", str(e)) from None
        except AcdRefused as e:
            raise Refused("invalid_state", str(e)) from None
        except JournalClosed:
            raise _stopping() from None

    async def answer_offer(self, who: Principal, offer_id: str) -> None:
        agent_id = who.agent_id or ""
        view = self.views.router.agent_view(agent_id, self.clock()) \
            if self.config.has_agent(agent_id) else None
        if view is None or view.state != AgentState.RESERVED.value or view.leg_id != offer_id:
            owner = legs.offer_owner(offer_id)
            if owner is not None and owner != agent_id:
                raise Refused("not_yours", "this offer is for another agent", "offer_id")
            raise Refused("not_found", "no such offer is ringing for you", "offer_id")
        try:
            self.queueing.answer_offer(agent_id, offer_id)
        except AcdRefused as e:
            raise Refused("invalid_state", str(e)) from None

    async def hold(self, who: Principal, call_id: str) -> None:
        agent_id = self._talking(call_id, who)
        pbx, caller, leg = self._legs(call_id, agent_id)
        await self._do(pbx.control.hold(caller, leg))

    async def unhold(self, who: Principal, call_id: str) -> None:
        agent_id = self._talking(call_id, who)
        pbx, caller, leg = self._legs(call_id, agent_id)
        await self._do(pbx.control.unhold(caller, leg))

    def _legs(self, call_id: str, agent_id: str):  # type: ignore[no-untyped-def]
        pbx = self.calls.pbx_of(call_id)
        caller = self.calls.caller_channel(call_id)
        leg = self.queueing.agent_leg(call_id)
        if pbx is None or caller is None or leg is None:
            raise Refused("invalid_state", "the call is not connected to an agent")
        return pbx, caller, leg

    def _target(self, target: TransferTarget) -> tuple[str, str]:
        if target.kind == "number":
            if not _DIALABLE.fullmatch(target.value):
                raise Refused("invalid_value", "a number is digits, with an optional leading +")
        elif target.kind == "agent":
            self._known_agent(target.value)
        elif not self.config.has_queue(target.value):
            raise Refused("not_found", f"no queue {target.value!r}")
        return target.kind, target.value

    async def blind_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        agent_id = self._talking(call_id, who)
        kind, value = self._target(target)
        await self._do(self.queueing.transfer(call_id, agent_id, (kind, value)))  # type: ignore[arg-type]

    async def attended_transfer(self, who: Principal, call_id: str, target: TransferTarget) -> None:
        agent_id = self._talking(call_id, who)
        kind, value = self._target(target)
        if kind == "queue":
            raise Refused("invalid_target", "an attended transfer goes to an agent or a number")
        await self._do(self.queueing.consult(call_id, agent_id, (kind, value)))  # type: ignore[arg-type]

    async def complete_transfer(self, who: Principal, call_id: str) -> None:
        agent_id = self._talking(call_id, who)
        await self._do(self.queueing.consult_complete(call_id, agent_id))

    async def cancel_transfer(self, who: Principal, call_id: str) -> None:
        agent_id = self._talking(call_id, who)
        await self._do(self.queueing.consult_cancel(call_id, agent_id))

    async def hangup(self, who: Principal, call_id: str) -> None:
        if legs.dialled_by_agent(call_id):
            await self._hangup_outbound(call_id)
            return
        agent_id = self._talking(call_id, who)
        pbx, _caller, leg = self._legs(call_id, agent_id)
        await self._do(self.calls.hang_up(pbx, leg))

    # ------------------------------------------------------------------ wrap-up, CRM

    def _viewer(self, who: Principal) -> Viewer:
        return Viewer(who.username, CrmRole(str(who.role)))

    async def save_wrapup(self, who: Principal, call_id: str, form: WrapUpForm) -> None:
        rec = self.views.records.get(call_id)
        agent_id = who.agent_id or ""
        campaign = self.campaign_calls
        if campaign is not None and agent_id and await campaign.handled(agent_id, call_id) is not None:
            # A campaign call: the disposition is the campaign's, and settles the attempt first (a refusal
            # leaves the wrap-up open).
            follow = form.follow_up
            due = follow.due_at if follow is not None and follow.kind == "callback" else None
            try:
                await campaign.dispose(agent_id, call_id, form.disposition,
                                       None if due is None else due if due.tzinfo else due.replace(tzinfo=UTC))
            except (CrmError, ValueError) as e:
                raise Refused("invalid_value", str(e), "disposition") from None
            form = WrapUpForm(form.disposition, form.notes, None)  # the call back is the campaign's retry
        elif who.role == "agent" and not self.owns(agent_id, call_id):
            raise Refused("not_your_call", "this call belongs to another agent")
        elif rec is None and not self.owns(agent_id, call_id):
            raise Refused("not_found", f"no call {call_id}")
        elif (cb := self._callback_of(call_id)) is not None:
            form = await self._callback_wrapup(who, cb, form)
        follow = form.follow_up
        fact = f.WrapUpSaved(
            call_id, agent_id, form.disposition, form.notes,
            follow.kind if follow else "", follow.due_at.timestamp() if follow else None,
            follow.note if follow else "", who.username,
        )
        self._record(fact)
        seq = self.recorder.journal.last_seq
        try:
            await self.recorder.journal.durable(seq, timeout=_SAVE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the database does not take it: the agent must know
            why = self.recorder.journal.last_error or "the database does not answer"
            raise WrapUpFailed(f"not saved yet ({why}); it is kept and written as soon as the database "
                               f"answers, or save again") from None
        if who.agent_id:
            view = self.views.router.agent_view(who.agent_id, self.clock())
            if view.state == AgentState.WRAP_UP.value and view.call_id == call_id:
                try:
                    self.queueing.record(ev.WrapUpDone(who.agent_id))
                except JournalClosed:
                    raise _stopping() from None
                # "Saved" once the return to ready is durable too (one more batch): a crash right after the
                # answer must not bring the agent back into a wrap-up they closed.
                with contextlib.suppress(Exception):
                    await self.recorder.journal.durable(self.recorder.journal.last_seq, timeout=_SAVE_TIMEOUT_S)

    def _callback_of(self, call_id: str) -> Callback | None:
        """The callback a call was: open (the book's by-call index), or just made (its call id names it:
        <callback id>-<n>)."""
        if self.callbacks is None:
            return None
        book = self.callbacks.book_
        cb = book.of_call(call_id)
        if cb is None and call_id.startswith("cb-"):
            cb = book.get(call_id.rsplit("-", 1)[0])
        return cb

    async def _callback_wrapup(self, who: Principal, cb: Callback, form: WrapUpForm) -> WrapUpForm:
        """The wrap-up of a callback the agent just made: "do_not_call" puts its number on the one list (source:
        the callback); a call back at a time books the next callback to the number, in the same queue. What is
        left of the form is the call's wrap-up."""
        follow = form.follow_up
        if form.disposition == "do_not_call":
            try:
                await self.crm.add_do_not_call(cb.number, f"asked on callback {cb.callback_id}",
                                               f"callback:{cb.callback_id}", self._viewer(who))
            except (CrmError, ValueError) as e:
                raise Refused("invalid_value", str(e), "disposition") from None
            return form
        if follow is None or follow.kind != "callback":
            return form
        due = follow.due_at if follow.due_at.tzinfo else follow.due_at.replace(tzinfo=UTC)
        if due.timestamp() <= self.clock():
            raise Refused("invalid_value", f"the time to call back {due.isoformat()} has passed", "follow_up.due_at")
        assert self.callbacks is not None
        try:
            self.callbacks.book(cb.number, source="agent", queue=cb.queue, name=cb.name,
                                topic=follow.note or cb.topic, due_at=due.timestamp(), requested_by=who.username)
        except CallbackRefused as e:
            raise Refused("invalid_value", str(e), "follow_up") from None
        except JournalClosed:
            raise _stopping() from None
        return WrapUpForm(form.disposition, form.notes, None)  # the call back is a callback, not a CRM task

    async def save_wrapup_draft(self, who: Principal, call_id: str, disposition: str, notes: str) -> float | None:
        agent_id = self._known_agent(who.agent_id)
        view = self.views.router.agent_view(agent_id, self.clock())
        if view.state != AgentState.WRAP_UP.value or view.call_id != call_id:
            raise Refused("wrapup_over", f"the wrap-up of call {call_id} is over; save it (a draft is kept)")
        self._record(f.WrapUpDraft(call_id, agent_id, disposition, notes))
        if not view.wrap_held:  # the form is open: the queue's wrap_up_s no longer ends this wrap-up
            try:
                self.queueing.record(ev.WrapUpHeld(agent_id, call_id))
            except JournalClosed:
                raise _stopping() from None
        return self.views.agent(agent_id).wrap_up_max_at

    async def agent_today(self, who: Principal) -> Mapping[str, object]:
        return await agent_today(self.views, self.crm, self._known_agent(who.agent_id), self.clock())

    async def search_customers(self, who: Principal, query: str, limit: int) -> Sequence[object]:
        return await self.crm_work.search(who, query, limit)

    async def crm_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        return await self.crm_work.command(who, command, args)

    async def click_to_call(self, who: Principal, customer_id: int | None, number: str | None, *,
                            leg: str = legs.OUTBOUND, ring_timeout_s: float = 30.0) -> str:
        agent_id = self._known_agent(who.agent_id)
        view = self.views.router.agent_view(agent_id, self.clock())
        if not view.endpoint:
            raise Refused("invalid_state", "log in with a phone first")
        if number is None and customer_id is not None:
            card = await self.crm.get_customer(customer_id, self._viewer(who))
            number = card.phones[0] if card.phones else None
        if not number or not _DIALABLE.fullmatch(number):
            raise Refused("invalid_value", "no dialable number")
        if self.outbound is not None and leg == legs.OUTBOUND:
            return await self._tracked_call(who, agent_id, view.endpoint, view.state, number, customer_id)
        pbx = next(iter(self.calls.pbxes.values()))
        channel_id = f"{leg}{int(time.time() * 1000)}-{agent_id}"
        self._dialled[channel_id] = agent_id
        try:
            result = await pbx.control.originate_outbound(view.endpoint, number.lstrip("+"),
                                                          caller_id_num=number.lstrip("+"),
                                                          channel_id=channel_id, ring_timeout_s=ring_timeout_s)
        except (UnsafeValue, InvalidValue) as e:
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            raise Refused("pbx_error", str(e)) from None
        if not result.success:
            raise Refused("no_answer", f"the agent's phone did not answer ({result.outcome.value})")
        call_id = result.uniqueid or channel_id
        self._dialled[call_id] = agent_id
        if len(self._dialled) > 1000:
            del self._dialled[next(iter(self._dialled))]
        return call_id

    async def _tracked_call(self, who: Principal, agent_id: str, endpoint: str, state: str, number: str,
                            customer_id: int | None) -> str:
        """A click-to-call the ACD, the CRM and the journal follow (ctiserver.outbound): the agent is busy from
        the first ring, the console shows each step, the CRM gets an outbound row matched by number."""
        assert self.outbound is not None
        if state not in (AgentState.AVAILABLE.value, AgentState.PAUSED.value, AgentState.NOT_RESPONDING.value):
            raise Refused("invalid_state", f"you cannot dial while {state.replace('_', ' ')}")
        if await self.crm.on_do_not_call(number):
            raise Refused("do_not_call", "this number is on the do-not-call list", "number")
        name = ""
        identity = await self.crm.identify_by_phone(number)
        if identity is not None:
            customer_id = customer_id if customer_id is not None else identity.customer_id
            name = identity.name
        # The wrap-up rule after it: the agent's first queue of this session.
        queue = next(iter(self.views.router.agent_view(agent_id, self.clock()).queues), "")
        call_id = f"{legs.OUTBOUND}{int(time.time() * 1000)}-{agent_id}"
        try:
            return self.outbound.dial(call_id, agent_id, endpoint, number, customer_id=customer_id,
                                      customer_name=name, queue=queue)
        except JournalClosed:
            raise _stopping() from None

    async def _hangup_outbound(self, call_id: str) -> None:
        """A click-to-call is not an ACD call: its id is the agent leg's ChannelId (the gateway has
        checked it is this agent's: it answered the dial command with it)."""
        if self.outbound is not None and self.outbound.cancel(call_id):
            return
        for pbx in self.calls.pbxes.values():
            leg = pbx.model.channels.get(call_id)
            if leg is not None and leg.alive:
                await self._do(pbx.control.hangup(leg.name))
                return
        raise Refused("not_found", f"no live call {call_id}")

    # ------------------------------------------------------------------ supervisors

    async def spy(self, who: Principal, extension: str, agent_id: str, mode: ConsoleSpyMode) -> None:
        """Ring the supervisor's phone into a ChanSpy on the agent's leg. One spy per supervisor: a second
        request (another agent, or another mode) ends the first call before ringing again."""
        view = self.views.router.agent_view(self._known_agent(agent_id), self.clock())
        leg = self.queueing.agent_leg(view.call_id) if view.call_id and view.state in ("on_call", "on_hold") else None
        pbx = self.calls.pbx_of(view.call_id) if view.call_id else None
        if leg is None or pbx is None or view.call_id is None:
            raise Refused("invalid_state", f"agent {agent_id} is not on a call")
        if not _EXTENSION.fullmatch(extension or ""):
            raise Refused("invalid_extension", "the supervisor's extension must be digits")
        try:
            device = self.phones.supervisor_device(extension)
        except DeviceRefused as e:
            raise Refused("invalid_extension", str(e)) from None
        old = self._spies.get(who.username)
        if old is not None:
            self._spy_over(old, "replaced")
            await self._hang_up_spy(old)
        self._spy_calls += 1
        spy = _Spy(who.username, agent_id, view.call_id, pbx,
                   f"{legs.SPY}{int(time.time() * 1000)}-{self._spy_calls}")
        self._spies[who.username] = spy
        self._record(f.SupervisorAction(who.username, f"spy:{mode}", agent_id, view.call_id))
        try:
            result = await pbx.control.spy(device, leg, _SPY[mode], ring_timeout_s=_SPY_RING_S,
                                           channel_id=spy.channel_id)
        except (UnsafeValue, InvalidValue) as e:
            self._spy_over(spy, "refused")
            raise Refused("invalid_value", str(e)) from None
        except AmiError as e:
            self._spy_over(spy, "pbx_error")
            await self._hang_up_spy(spy)  # a late answer must not leave a ChanSpy nobody follows
            raise Refused("pbx_error", str(e)) from None
        if not result.success:  # the supervisor hears nothing: saying "done" would be a lie
            self._spy_over(spy, "not answered")
            raise Refused("no_answer", f"your phone {extension} did not answer ({result.outcome.value})")
        spy.answered = True
        if self._spies.get(who.username) is not spy:
            await self._hang_up_spy(spy)  # stopped (or replaced) while it rang
        elif spy.gone:
            self._spy_over(spy, "hung up")

    async def spy_stop(self, who: Principal) -> bool:
        """End this supervisor's spy call; False when there is none."""
        spy = self._spies.get(who.username)
        if spy is None:
            return False
        self._spy_over(spy, "stopped")
        await self._hang_up_spy(spy)
        return True

    def listening(self, supervisor: str) -> tuple[str, str] | None:
        """(agent, call) the supervisor listens to, None when not."""
        spy = self._spies.get(supervisor)
        return (spy.agent_id, spy.call_id) if spy is not None else None

    def _on_leg_hung_up(self, e: ce.LegHungUp) -> None:
        """The spy's channel ended: the supervisor hung up, or ChanSpy left with the spied call (option E)."""
        spy = next((s for s in self._spies.values() if s.channel_id == e.uniqueid), None)
        if spy is None:
            return
        spy.gone = True
        if spy.answered:
            self._spy_over(spy, "hung up")

    def _spy_over(self, spy: _Spy, why: str) -> bool:
        """Forget the spy (once) and journal its end."""
        if self._spies.get(spy.supervisor) is not spy:
            return False
        del self._spies[spy.supervisor]
        self.recorder.record(f.SupervisorAction(spy.supervisor, "spy_stop", spy.agent_id, f"{spy.call_id}:{why}"))
        return True

    async def _hang_up_spy(self, spy: _Spy) -> None:
        chan = spy.pbx.model.channels.get(spy.channel_id)
        if chan is None or not chan.alive:
            return
        with contextlib.suppress(AmiError, UnsafeValue, InvalidValue):  # gone meanwhile: that is the goal
            await spy.pbx.control.hangup(chan.name)

    async def force_pause(self, who: Principal, agent_id: str, reason: str) -> None:
        self._chosen_reason(reason)
        self._record(f.SupervisorAction(who.username, "force_pause", agent_id, reason))
        self._acd(ev.AgentPaused(self._known_agent(agent_id), reason))

    async def force_logout(self, who: Principal, agent_id: str) -> None:
        self._record(f.SupervisorAction(who.username, "force_logout", agent_id))
        self._acd(ev.AgentLoggedOut(self._known_agent(agent_id)))

    async def callback_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        """A supervisor books, cancels or lists callbacks (docs/callbacks.md)."""
        if self.callbacks is None:
            raise Refused("unavailable", "callbacks are not served here")
        if command == "callbacks":
            return {"callbacks": [describe(cb) for cb in self.recorder.projector.callbacks.open()]}
        if command == "callback_cancel":
            cancelled = self.callbacks.cancel(str(args["callback_id"]), f"cancelled by {who.username}")
            if cancelled:
                self._record(f.SupervisorAction(who.username, "callback_cancel", str(args["callback_id"])))
            return {"cancelled": cancelled}
        number = str(args["number"])
        due_at = None
        if args.get("due_at"):
            due = datetime.fromisoformat(str(args["due_at"]))
            due_at = (due if due.tzinfo else due.replace(tzinfo=UTC)).timestamp()
        if await self.crm.on_do_not_call(number):
            raise Refused("do_not_call", f"{number} is on the do-not-call list", "number")
        try:
            callback_id = self.callbacks.book(number, source="supervisor", queue=str(args.get("queue") or ""),
                                              name=str(args.get("name", "")), topic=str(args.get("topic", "")),
                                              due_at=due_at, requested_by=who.username)
        except CallbackRefused as e:
            raise Refused("invalid_value", str(e), "queue") from None
        except JournalClosed:
            raise _stopping() from None
        return {"callback_id": callback_id}

    async def move_call(self, who: Principal, call_id: str, queue: str | None, to_head: bool) -> None:
        self._record(f.SupervisorAction(who.username, "move_call", call_id, f"{queue or ''}:{to_head}"))
        self._acd(ev.CallMoved(call_id, queue, to_head))
