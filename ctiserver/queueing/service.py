"""Queueing: the ACD's edge. It records what happens to callers and agents as facts (the router decides),
and carries out the router's decisions on the PBX.

The caller waits inside our FastAGI session (`wait_in_queue`): hold music in short pieces, position
announcements between them, the callback key. The agent's leg is originated with the ChannelId the router
chose (capture 05 D) into `[cti-agent-ready]` and bridged to the caller when it answers (capture 05 B).
Bridging pulls the caller out of the AGI application: the running command returns and the session ends,
which is how the waiting loop learns it is over.

Who has which call, and which offers are open, is the router's alone: this service keeps only the work in
flight (the AGI wait loops, the originate tasks, the outside numbers of attended transfers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from acd import decisions as d
from acd import events as ev
from acd.router import Router

from ..agi.session import AgiChannel, ChannelHungUp
from ..ami.errors import AmiError, LinkDown
from ..bus import EventBus
from ..callmodel import events as ce
from ..calls import legs
from ..calls.legs import offer_owner
from ..calls.service import CallsService, Pbx, PbxResynced
from ..journal import facts as f
from ..projections.recorder import Recorder

log = logging.getLogger(__name__)

HOLD_MUSIC = "cti/hold-music"  # a short piece of music, played again and again between announcements
MOH_CLASS = "default"  # Asterisk's music-on-hold class: what a caller hears when our prompt is missing
# Every prompt a waiting caller may hear, and what for: looked for on the PBX at start (ctiserver.ivr.prompts).
QUEUE_PROMPTS = {HOLD_MUSIC: "hold music", "cti/callback-confirmed": "callback confirmed",
                 "queue-youarenext": "announcement", "queue-thereare": "announcement",
                 "queue-callswaiting": "announcement", "queue-holdtime": "announcement",
                 "queue-minutes": "announcement"}
CALLBACK_KEY = "*"
# An offer answered in the console late in its ring time still gives the auto-answer phone this long to pick up.
_ANSWERED_RING_S = 5.0
_TALKING = ("connected", "held")
_IN_LINE = ("waiting", "callback", "offered", "ringing")


@dataclass(frozen=True, slots=True)
class ConsultationChanged:
    """A consultation (attended transfer) started or ended: consoles show the agent "consulting"."""

    call_id: str
    agent_id: str
    active: bool


class Refused(Exception):
    """A command that makes no sense now; nothing changed."""


@dataclass(frozen=True, slots=True)
class WaitResult:
    outcome: str  # "connected", "callback", "voicemail", "hangup"
    target: str | None = None


@dataclass(slots=True)
class _Waiting:
    call_id: str
    channel: str
    notices: asyncio.Queue[d.Decision] = field(default_factory=asyncio.Queue)


Target = tuple[Literal["agent", "queue", "number"], str]


class CallbackOffers(Protocol):
    """Who carries out an offer of a callback (ctiserver.outbound.callbacks.CallbackService)."""

    async def run_offer(self, pbx: Pbx, offer: d.Offer, side: Any) -> None: ...


class QueueingService:
    def __init__(
        self,
        recorder: Recorder,
        calls: CallsService,
        bus: EventBus,
        clock: Callable[[], float],
        *,
        after_call: Callable[[str], bool] = lambda call_id: False,
        answers_at_console: Callable[[str, str], bool] = lambda agent_id, endpoint: False,
        callbacks: CallbackOffers | None = None,
    ) -> None:
        self.recorder = recorder
        self.calls = calls
        self.bus = bus
        self.clock = clock
        self._after_call = after_call  # does this call go to the post-call step (survey) when it ends?
        self._answers_at_console = answers_at_console  # (agent, device): ring the phone only on Answer?
        self.callbacks = callbacks  # dials a callback's customer and agent (ctiserver.outbound); None: redirect
        self._unanswered: dict[str, asyncio.Event] = {}  # leg id -> set by the console's Answer
        self._waiting: dict[str, _Waiting] = {}
        self._offers: dict[str, asyncio.Task[None]] = {}  # leg id -> the originate in flight
        self._bridging: set[str] = set()  # calls whose caller is being bridged to an agent right now
        self._outside: dict[str, tuple[str, str]] = {}  # call -> (leg id, number) of an attended transfer out
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wakeup = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._outside_ids = 0
        self.prompts_missing: set[str] = set()
        bus.subscribe(d.Offer, self._on_offer)
        bus.subscribe(d.CancelOffer, self._on_cancel_offer)
        bus.subscribe(d.Handover, self._on_handover)
        bus.subscribe(d.Announce, self._notice)
        bus.subscribe(d.TimeoutAction, self._notice)
        bus.subscribe(d.CallStateChanged, self._on_call_state)
        bus.subscribe(ce.LegRinging, self._on_leg_ringing)
        bus.subscribe(ce.LegHungUp, self._on_leg_hung_up)
        bus.subscribe(ce.CallHeld, self._on_held)
        bus.subscribe(ce.CallResumed, self._on_resumed)
        bus.subscribe(PbxResynced, self._on_resynced)

    @property
    def router(self) -> Router:
        return self.recorder.projector.router

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="acd-ticker")

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._offers.values(), *([self._ticker] if self._ticker else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self) -> None:
        while True:
            due = self.router.next_due()
            now = self.clock()
            delay = 1.0 if due is None else max(0.0, min(1.0, due - now))
            self._wakeup.clear()
            try:
                # Not wait_for: on 3.11 it swallows a cancel that races with the wake-up being set, and
                # stop() then waits for this loop forever (seen in tests/e2e).
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self.recorder.tick(self.clock())

    # ------------------------------------------------------------------ recording facts

    def record(self, event: ev.Event) -> list[d.Decision]:
        decisions = self.recorder.record(event)
        self._wakeup.set()  # timers may have changed
        return decisions

    def command(self, event: ev.Event) -> list[d.Decision]:
        """An agent or supervisor command: raises Refused with the router's reason."""
        decisions = self.record(event)
        for dec in decisions:
            if isinstance(dec, d.Refusal) and dec.event is event:
                raise Refused(dec.reason)
        return decisions

    # ------------------------------------------------------------------ the caller's wait

    async def wait_in_queue(self, channel: AgiChannel, enqueued: ev.CallEnqueued) -> WaitResult:
        """Run the caller's wait in the queue inside their FastAGI session until it ends. A caller the
        router already holds (taken back after a restart, sent back by a transfer) keeps its place."""
        call_id = enqueued.call_id
        waiting = _Waiting(call_id, channel.env.channel)
        self._waiting[call_id] = waiting
        try:
            view = self.router.call_view(call_id)
            if view is None:
                try:
                    self.command(enqueued)
                except Refused as e:
                    log.error("caller %s not queued: %s", call_id, e)
                    return WaitResult("refused")
            elif view.state == "waiting":
                self.calls.mark_waiting(call_id)
            return await self._wait_loop(channel, waiting)
        except ChannelHungUp:
            # Bridged to an agent (the bridge pulls the caller out of AGI), or the caller hung up.
            view = self.router.call_view(call_id)
            if call_id in self._bridging or (view is not None and view.state in _TALKING):
                return WaitResult("connected")
            self._caller_left(call_id)
            return WaitResult("hangup")
        finally:
            if self._waiting.get(call_id) is waiting:
                del self._waiting[call_id]

    def _caller_left(self, call_id: str) -> None:
        """The FastAGI session saw the waiting caller hang up. It is its own socket: when the AMI link is
        down this is the only way the end is seen, at its true time. When the link is up the AMI events say
        it with more (who asked first, a PBX shutting down) a moment later: they are the ones recorded."""
        pbx = self.calls.pbx_of(call_id)
        if pbx is None or pbx.link.is_up:
            return
        view = self.router.call_view(call_id)
        if view is not None and not view.virtual and view.state in _IN_LINE:
            self.record(ev.CallerHungUp(call_id))
        rec = self.recorder.projector.records.get(call_id)
        if rec is not None and rec.live:
            self.recorder.record(f.CallEnded(call_id, 0, "", "caller", True, None, "link_down"))

    async def _wait_loop(self, channel: AgiChannel, waiting: _Waiting) -> WaitResult:
        while True:
            while not waiting.notices.empty():
                result = await self._on_notice(channel, waiting, waiting.notices.get_nowait())
                if result is not None:
                    return result
            reply = await self._play(channel, HOLD_MUSIC, CALLBACK_KEY)
            if reply.digit == CALLBACK_KEY:
                self.record(ev.CallbackRequested(waiting.call_id))
                await self._play(channel, "cti/callback-confirmed", "")
                return WaitResult("callback")
            view = self.router.call_view(waiting.call_id)
            if waiting.call_id in self._bridging or view is None or view.state in _TALKING:
                raise ChannelHungUp("left the AGI (bridged or hung up)")

    async def _play(self, channel: AgiChannel, prompt: str, keys: str) -> Any:
        """STREAM FILE that never costs the caller: `result=-1` is also what a missing file gives while
        the channel is up (capture 14), so a -1 is checked with CHANNEL STATUS (a dead channel raises
        ChannelHungUp there) and a missing prompt falls back to Asterisk's music on hold."""
        reply = await channel.command("STREAM FILE", prompt, keys)
        if reply.value != -1:
            return reply
        await channel.command("CHANNEL STATUS")
        if prompt not in self.prompts_missing:
            self.prompts_missing.add(prompt)
            log.error("prompt %r cannot be played (missing on the PBX?): callers hear music on hold instead",
                      prompt)
            self.recorder.record(f.PromptMissing(prompt, "queue"))
        if prompt != HOLD_MUSIC:
            return reply
        await channel.command("SET MUSIC", "ON", MOH_CLASS)
        try:
            return await channel.command("WAIT FOR DIGIT", 10_000)
        finally:
            await channel.command("SET MUSIC", "OFF")

    async def _on_notice(self, channel: AgiChannel, waiting: _Waiting, notice: d.Decision) -> WaitResult | None:
        if isinstance(notice, d.Announce):
            if notice.position == 1:
                await self._play(channel, "queue-youarenext", CALLBACK_KEY)
            else:
                await self._play(channel, "queue-thereare", CALLBACK_KEY)
                await channel.command("SAY NUMBER", notice.position - 1, CALLBACK_KEY)
                await self._play(channel, "queue-callswaiting", CALLBACK_KEY)
            minutes = max(1, round(notice.estimated_wait_s / 60))
            await self._play(channel, "queue-holdtime", CALLBACK_KEY)
            await channel.command("SAY NUMBER", minutes, CALLBACK_KEY)
            await self._play(channel, "queue-minutes", CALLBACK_KEY)
        elif isinstance(notice, d.TimeoutAction):
            if notice.action == "voicemail":
                return WaitResult("voicemail", notice.queue)
            if notice.action == "callback":
                await self._play(channel, "cti/callback-confirmed", "")
                return WaitResult("callback")
        return None

    def _notice(self, notice: d.Announce | d.TimeoutAction) -> None:
        waiting = self._waiting.get(notice.call_id)
        if waiting is not None:
            waiting.notices.put_nowait(notice)

    # ------------------------------------------------------------------ offers

    def _on_offer(self, offer: d.Offer) -> None:
        self._spawn_offer(offer.leg_id, self._run_offer(offer))

    def _spawn_offer(self, leg_id: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"offer-{leg_id}")
        self._offers[leg_id] = task
        task.add_done_callback(lambda t: self._offers.pop(leg_id, None) if self._offers.get(leg_id) is t else None)

    async def _run_offer(self, offer: d.Offer) -> None:
        pbx = self.calls.pbx_of(offer.call_id)
        if pbx is None or not pbx.link.is_up:
            self._offer_failed(offer, "cancelled")
            return
        if offer.callback_number is not None and offer.kind != "consult" and self.callbacks is not None:
            await self.callbacks.run_offer(pbx, offer, self)
            return
        ring_timeout_s = offer.ring_timeout_s
        if self._answers_at_console(offer.agent_id, offer.endpoint):
            waited = await self._wait_for_answer(offer)
            if waited is None:
                self._offer_failed(offer, "no-answer")  # the ring timeout runs from the offer, as on a phone
                return
            ring_timeout_s = max(offer.ring_timeout_s - waited, _ANSWERED_RING_S)
        rec = self.recorder.projector.records.get(offer.call_id)
        name = ""
        if offer.kind == "consult":
            name = f"Transfer {offer.call_id}"
        elif rec is not None:
            name = rec.customer_name or rec.caller_name
        try:
            outcome = await pbx.control.originate_agent_leg(
                offer.endpoint, channel_id=offer.leg_id, caller_id_name=name,
                caller_id_num=offer.caller_num, ring_timeout_s=ring_timeout_s,
            )
        except LinkDown as e:
            log.warning("offer of %s to %s withdrawn: %s", offer.call_id, offer.agent_id, e)
            self._offer_failed(offer, "cancelled")
            return
        except Exception as e:  # noqa: BLE001 - timeout, refused value: the router must hear of it
            log.warning("originate for %s to agent %s failed: %s", offer.call_id, offer.agent_id, e)
            self._offer_failed(offer, "failed" if pbx.link.is_up else "cancelled")
            return
        if not outcome.success:
            kind = outcome.outcome.value
            self._offer_failed(offer, "busy" if kind == "busy" else "no-answer" if kind == "no_answer" else "failed")
            return
        if offer.kind == "consult":
            await self._connect_consult(pbx, offer)
        elif offer.callback_number is not None:
            await self._connect_callback(pbx, offer)
        else:
            await self._connect_caller(pbx, offer)

    async def _wait_for_answer(self, offer: d.Offer) -> float | None:
        """The offer rings in the console only: wait for its Answer. How long it waited, or None when
        the ring time ran out first."""
        answered = self._unanswered[offer.leg_id] = asyncio.Event()
        started = self.clock()
        try:
            await asyncio.wait_for(answered.wait(), offer.ring_timeout_s)
        except TimeoutError:
            return None
        finally:
            self._unanswered.pop(offer.leg_id, None)
        return self.clock() - started

    def answer_offer(self, agent_id: str, leg_id: str) -> None:
        """The agent clicked Answer on an offer that waits for it: the phone is dialled now."""
        answered = self._unanswered.get(leg_id)
        if answered is None or offer_owner(leg_id) != agent_id or answered.is_set():
            raise Refused("this offer does not wait for an answer in the console")
        answered.set()

    def _still_offered(self, offer: d.Offer) -> bool:
        view = self.router.agent_view(offer.agent_id, self.clock())
        return view.state == "reserved" and view.leg_id == offer.leg_id

    async def _connect_caller(self, pbx: Pbx, offer: d.Offer) -> None:
        caller = self.calls.caller_channel(offer.call_id)
        leg = self.calls.channel_name(offer.call_id, offer.leg_id) or ""
        if caller is None or not leg or not self._still_offered(offer):
            if leg:
                await self._safe_hangup(pbx, leg)
            if self._still_offered(offer):
                self._offer_failed(offer, "cancelled")
            return
        self._bridging.add(offer.call_id)
        try:
            await pbx.control.set_var(caller, "IVR_DONE", "1")
            if self._after_call(offer.call_id):
                await pbx.control.set_var(caller, "CTI_AFTER_CALL", "1")
            await pbx.control.bridge(caller, leg)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the caller goes back in line
            log.warning("bridge %s <-> %s failed: %s", caller, leg, e)
            self._bridging.discard(offer.call_id)
            await self._safe_hangup(pbx, leg)
            self._offer_failed(offer, "cancelled" if not pbx.link.is_up else "failed")
            return
        self.record(ev.OfferAnswered(offer.call_id, offer.agent_id))
        self._bridging.discard(offer.call_id)

    async def _connect_callback(self, pbx: Pbx, offer: d.Offer) -> None:
        """A virtual caller's turn: the agent answered; now dial the customer from the agent's leg."""
        assert offer.callback_number is not None
        self.record(ev.OfferAnswered(offer.call_id, offer.agent_id))
        leg = self.calls.channel_name(offer.call_id, offer.leg_id)
        try:
            await pbx.control.redirect(leg or offer.leg_id, "cti-outbound", offer.callback_number)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.warning("callback dial for %s failed: %s", offer.call_id, e)

    async def _connect_consult(self, pbx: Pbx, offer: d.Offer) -> None:
        """The consulted agent answered: bridge them with the first agent (the caller is on hold)."""
        view = self.router.call_view(offer.call_id)
        first = self.calls.channel_name(offer.call_id, view.leg_id) if view is not None else None
        leg = self.calls.channel_name(offer.call_id, offer.leg_id)
        if first is None or leg is None or view is None or view.consult_agent_id != offer.agent_id:
            if leg is not None:
                await self._safe_hangup(pbx, leg)
            if view is not None and view.consult_agent_id == offer.agent_id:
                self._offer_failed(offer, "cancelled")
            return
        try:
            await pbx.control.bridge(first, leg)
        except Exception as e:  # noqa: BLE001 - the consultation did not start; the caller stays held
            log.warning("consultation bridge %s <-> %s failed: %s", first, leg, e)
            await self._safe_hangup(pbx, leg)
            self._offer_failed(offer, "failed")
            return
        self.record(ev.OfferAnswered(offer.call_id, offer.agent_id))

    def offer_failed(self, offer: d.Offer, reason: ev.OfferFailure) -> None:
        """The offer did not reach the agent (a callback's dial): the router hears it, if it still stands."""
        self._offer_failed(offer, reason)

    def _offer_failed(self, offer: d.Offer, reason: ev.OfferFailure) -> None:
        view = self.router.agent_view(offer.agent_id, self.clock())
        if view.state == "reserved" and view.leg_id == offer.leg_id:
            self.record(ev.OfferFailed(offer.call_id, offer.agent_id, reason))

    def _on_cancel_offer(self, cancel: d.CancelOffer) -> None:
        for leg_id, task in list(self._offers.items()):
            if offer_owner(leg_id) == cancel.agent_id:
                task.cancel()
                pbx = self.calls.pbx_of(cancel.call_id)
                if pbx is not None:
                    self._spawn(self._hang_up_leg(pbx, cancel.call_id, leg_id))

    async def _hang_up_leg(self, pbx: Pbx, call_id: str, leg_id: str, wait_s: float = 2.0) -> None:
        # The Originate may be on its way: its channel shows on AMI a moment later; wait for it.
        deadline = self.clock() + wait_s
        while (channel := self.calls.channel_name(call_id, leg_id)) is None and self.clock() < deadline:
            await asyncio.sleep(0.05)
        if channel is not None:
            await self._safe_hangup(pbx, channel)

    def _on_handover(self, h: d.Handover) -> None:
        """An attended transfer completed: the caller goes to the consulted agent, the first one's leg
        is let go."""
        pbx = self.calls.pbx_of(h.call_id)
        if pbx is not None:
            self._spawn(self._hand_over(pbx, h))

    async def _hand_over(self, pbx: Pbx, h: d.Handover) -> None:
        caller = self.calls.caller_channel(h.call_id)
        leg = self.calls.channel_name(h.call_id, h.leg_id)
        first = self._first_leg_of(h.call_id, h.from_agent)
        if caller is not None and leg is not None:
            try:
                await pbx.control.bridge(caller, leg)
            except Exception as e:  # noqa: BLE001 - logged; the call model shows what became of it
                log.warning("handing %s to %s failed: %s", h.call_id, h.to_agent, e)
        if first is not None:
            await self._safe_hangup(pbx, first)

    def _first_leg_of(self, call_id: str, agent_id: str) -> str | None:
        view = self.router.agent_view(agent_id, self.clock())
        return self.calls.channel_name(call_id, view.leg_id) if view.leg_id else None

    def _on_call_state(self, e: d.CallStateChanged) -> None:
        # A caller back in line whose FastAGI wait loop is gone (a transfer nobody answered, a consulted
        # agent who did not pick up after the first agent hung up): bring them back to waiting.
        if e.new == "waiting" and e.old in ("offered", "ringing") and e.call_id not in self._waiting:
            pbx = self.calls.pbx_of(e.call_id)
            caller = self.calls.caller_channel(e.call_id)
            if pbx is not None and caller is not None:
                self._spawn(self._back_to_waiting(pbx, caller, e.queue))

    async def _back_to_waiting(self, pbx: Pbx, caller: str, queue: str) -> None:
        try:
            await pbx.control.set_var(caller, "CTI_QUEUE", queue)
            await pbx.control.redirect(caller, "cti-wait", "s")
        except Exception as e:  # noqa: BLE001 - the caller is still on hold music; logged
            log.warning("could not bring %s back to waiting: %s", caller, e)

    # ------------------------------------------------------------------ facts from the call model

    def _agent_on_leg(self, uniqueid: str) -> tuple[str, Any] | None:
        agent_id = offer_owner(uniqueid)
        if agent_id is None or not self.router.config.has_agent(agent_id):
            return None
        view = self.router.agent_view(agent_id, self.clock())
        return (agent_id, view) if view.leg_id == uniqueid else None

    def _on_leg_ringing(self, e: ce.LegRinging) -> None:
        owner = self._agent_on_leg(e.uniqueid)
        if owner is not None and owner[1].state == "reserved" and owner[1].call_id == e.call_id:
            self.record(ev.OfferRinging(e.call_id, owner[0]))

    def _on_leg_hung_up(self, e: ce.LegHungUp) -> None:
        side = e.hung_up_by if e.observed else "unknown"
        if e.is_caller:
            view = self.router.call_view(e.call_id)
            if view is None or view.virtual and view.state not in _TALKING:
                return
            if view.state in _TALKING and view.agent_id is not None:
                held = view.state == "held"
                self.record(ev.AgentCallEnded(view.agent_id, e.call_id, side, e.not_before))  # type: ignore[arg-type]
                if view.leg_id and (held or self._placed_in_hold(e.call_id, view.leg_id)):
                    # The agent's leg has its place in [cti-hold], where it waits in a loop: held, or bridged
                    # back from there by AMI Bridge (un-hold, the end of a consultation), which leaves a
                    # channel its dialplan place, so it goes on there when the caller's bridge ends (seen
                    # on Asterisk 22.10.1). Nothing ends it but us.
                    self._spawn(self._hang_up_leg_of(e.call_id, view.leg_id))
            elif e.reason == "pbx_restart":
                self.record(ev.CallLeftQueue(e.call_id, "lost: PBX restart"))
            elif not e.observed:
                self.record(ev.CallLeftQueue(e.call_id, "lost: ended while the link was down"))
            else:
                self.record(ev.CallerHungUp(e.call_id))
            return
        owner = self._agent_on_leg(e.uniqueid)
        view = self.router.call_view(e.call_id)
        outside = self._outside.get(e.call_id)
        consulted = view is not None and (
            (owner is not None and view.consult_agent_id == owner[0])
            or (outside is not None and outside[0] == e.uniqueid))
        if owner is not None and owner[1].state in ("on_call", "on_hold") and owner[1].call_id == e.call_id:
            self.record(ev.AgentCallEnded(owner[0], e.call_id, side, e.not_before))  # type: ignore[arg-type]
        if consulted and view is not None and view.agent_id is not None:
            self._outside.pop(e.call_id, None)
            self._spawn(self._consultation_gone(e.call_id, view.agent_id))

    async def _consultation_gone(self, call_id: str, agent_id: str) -> None:
        """The consulted party hung up: the first agent's leg is back in [cti-hold] (the consultation's
        bridge is gone), the caller on hold music. Put them together again; the console hears it."""
        try:
            pbx, caller, first = self._talking_legs(call_id, agent_id)
            await pbx.control.unhold(caller, first)
        except Exception as e:  # noqa: BLE001 - the caller or the agent went meanwhile: nothing to join
            log.info("consultation for %s over, caller not given back to %s: %s", call_id, agent_id, e)
        self.bus.publish(ConsultationChanged(call_id, agent_id, False))

    def _placed_in_hold(self, call_id: str, leg_id: str) -> bool:
        pbx = self.calls.pbx_of(call_id)
        return pbx is not None and self.calls.channel_context(call_id, leg_id) == pbx.control.hold_context

    async def _hang_up_leg_of(self, call_id: str, leg_id: str) -> None:
        pbx = self.calls.pbx_of(call_id)
        leg = self.calls.channel_name(call_id, leg_id)
        if pbx is not None and leg is not None:
            await self._safe_hangup(pbx, leg)

    def _on_held(self, e: ce.CallHeld) -> None:
        view = self.router.call_view(e.call_id)
        if view is not None and view.state == "connected":
            self.record(ev.HoldStarted(e.call_id))

    def _on_resumed(self, e: ce.CallResumed) -> None:
        view = self.router.call_view(e.call_id)
        if view is not None and view.state == "held":
            self.record(ev.HoldEnded(e.call_id))

    def _on_resynced(self, e: PbxResynced) -> None:
        """After a restart or a dropped link, make the router agree with the PBX: offers nobody is
        carrying out any more are withdrawn (no fault of the agent), calls gone meanwhile end (inferred),
        and callers still waiting are marked so."""
        pbx = self.calls.pbxes[e.pbx]
        now = self.clock()
        for call_id in self.router.call_ids():
            if self.calls.pbx_of(call_id) is not pbx:
                continue
            view = self.router.call_view(call_id)
            if view is None:
                continue
            for agent_id in (view.agent_id, view.consult_agent_id):
                if agent_id is None:
                    continue
                agent = self.router.agent_view(agent_id, now)
                if agent.state == "reserved" and agent.call_id == call_id and agent.leg_id not in self._offers:
                    channel = self.calls.channel_name(call_id, agent.leg_id)
                    if channel is not None:
                        self._spawn(self._safe_hangup(pbx, channel))
                    self.record(ev.OfferFailed(call_id, agent_id, "cancelled"))
                elif agent.state in ("on_call", "on_hold") and agent.call_id == call_id and \
                        self.calls.channel_name(call_id, agent.leg_id) is None:
                    self.record(ev.AgentCallEnded(agent_id, call_id, "unknown", e.gone_since))
            view = self.router.call_view(call_id)
            if view is None or view.virtual:
                continue
            if self.calls.caller_channel(call_id) is None:
                if view.state in _TALKING and view.agent_id is not None:
                    self.record(ev.AgentCallEnded(view.agent_id, call_id, "unknown", e.gone_since))
                elif view.state in _IN_LINE:
                    self.record(ev.CallLeftQueue(call_id, "ended while unwatched"))
            elif view.state == "waiting":
                self.calls.mark_waiting(call_id)
        # An agent leg no offer owns: made just before a kill -9 whose last batch took the offer with it,
        # so the router never heard of it. Answered, it would wait an hour in cti-agent-ready on the
        # agent's phone while the agent's next offer rings on top of it.
        for ch in list(pbx.model.channels.values()):
            agent_id = offer_owner(ch.uniqueid)
            if agent_id is None or not ch.alive or ch.uniqueid in self._offers:
                continue
            if not self.router.config.has_agent(agent_id) or \
                    self.router.agent_view(agent_id, now).leg_id != ch.uniqueid:
                log.warning("hanging up %s: an offer to agent %s nobody carries out", ch.name, agent_id)
                self._spawn(self._safe_hangup(pbx, ch.name))

    # ------------------------------------------------------------------ transfers (console commands)

    async def transfer(self, call_id: str, agent_id: str, target: Target) -> None:
        """Blind transfer. The caller is moved on the PBX first (a failure there changes nothing), then
        the router takes the transfer (it re-checks: a colleague taken meanwhile refuses it, and the
        caller is bridged back), and only then is the first agent's leg let go, so the caller is never
        left in a bridge that dissolves."""
        pbx, caller, first = self._talking_legs(call_id, agent_id)
        kind, value = target
        event: ev.Event
        if kind == "queue":
            event = ev.TransferToQueue(call_id, agent_id, value)
            if not self.router.config.has_queue(value):
                raise Refused(f"no queue {value!r}")
        elif kind == "agent":
            event = ev.TransferToAgent(call_id, agent_id, value)
            self._check_free(value, agent_id)
        else:
            event = ev.TransferOut(call_id, agent_id, value)
        if kind == "queue":
            await pbx.control.set_var(caller, "CTI_QUEUE", value)
            await pbx.control.redirect(caller, "cti-wait", "s")
        elif kind == "agent":
            await pbx.control.redirect(caller, "cti-hold", "caller")
        else:
            await pbx.control.redirect(caller, "cti-outbound", value.lstrip("+"))
        try:
            self.command(event)
        except Refused:
            await pbx.control.unhold(caller, first)
            raise
        await self._safe_hangup(pbx, first)

    def _check_free(self, target: str, agent_id: str) -> None:
        if not self.router.config.has_agent(target):
            raise Refused(f"no agent {target!r}")
        if target == agent_id:
            raise Refused("an agent cannot transfer a call to themselves")
        state = self.router.agent_view(target, self.clock()).state
        if state != "available":
            raise Refused(f"agent {target} is not available ({state})")

    async def consult(self, call_id: str, agent_id: str, target: Target) -> None:
        """Attended transfer, first step: the caller on hold, then the target rung and, when they answer,
        bridged with the first agent. An agent target is reserved by the router; an outside number is
        dialled from here. The hold comes first: bridging the first agent's leg elsewhere while the
        caller is still with them would leave the caller alone in a dissolving bridge."""
        pbx, caller, first = self._talking_legs(call_id, agent_id)
        if self.consulting(call_id) is not None:
            raise Refused("a consultation is already going on")
        kind, value = target
        if kind == "queue":
            raise Refused("an attended transfer goes to an agent or a number")
        if kind == "agent":
            self._check_free(value, agent_id)
        view = self.router.call_view(call_id)
        if view is not None and view.state == "connected":
            await pbx.control.hold(caller, first)
        if kind == "agent":
            try:
                self.command(ev.ConsultStarted(call_id, agent_id, value))
            except Refused:
                await pbx.control.unhold(caller, first)
                raise
        else:
            self._outside_ids += 1
            leg_id = f"{legs.CONSULT}{self._outside_ids}-{agent_id}"
            self._outside[call_id] = (leg_id, value)
            self._spawn(self._dial_outside(pbx, call_id, first, leg_id, value))
        self.bus.publish(ConsultationChanged(call_id, agent_id, True))

    async def _dial_outside(self, pbx: Pbx, call_id: str, first: str, leg_id: str, number: str) -> None:
        try:
            outcome = await pbx.control.originate_agent_leg(
                f"Local/{number.lstrip('+')}@cti-outbound", channel_id=leg_id, caller_id_name="",
                caller_id_num="", ring_timeout_s=30.0)
            leg = self.calls.channel_name(call_id, leg_id) if outcome.success else None
            if leg is None:
                log.info("consultation with %s for %s was not answered", number, call_id)
                self._outside.pop(call_id, None)
                return
            await pbx.control.bridge(first, leg)
        except Exception as e:  # noqa: BLE001 - the caller stays on hold with the first agent
            log.warning("consultation with %s for %s failed: %s", number, call_id, e)
            self._outside.pop(call_id, None)

    async def consult_complete(self, call_id: str, agent_id: str) -> None:
        pbx, caller, first = self._talking_legs(call_id, agent_id)
        outside = self._outside.get(call_id)
        if outside is not None:
            leg = self.calls.channel_name(call_id, outside[0])
            if leg is None:
                raise Refused("the outside party has not answered")
            self.command(ev.TransferOut(call_id, agent_id, outside[1]))
            del self._outside[call_id]
            await pbx.control.bridge(caller, leg)
            await self._safe_hangup(pbx, first)
            return
        self.command(ev.ConsultEnded(call_id, agent_id, True))  # the Handover decision bridges them

    async def consult_cancel(self, call_id: str, agent_id: str) -> None:
        """The first agent goes back to the caller, then the consulted party is let go: the caller is never
        left without somebody, whatever Asterisk does with the legs of the consultation's bridge meanwhile
        (the first agent's leg waits in [cti-hold] again when that bridge ends)."""
        pbx, caller, first = self._talking_legs(call_id, agent_id)
        outside = self._outside.pop(call_id, None)
        if outside is not None:
            leg_id = outside[0]
        else:
            view = self.router.call_view(call_id)
            consulted = view.consult_agent_id if view is not None else None
            if consulted is None:
                raise Refused("no consultation to cancel")
            leg_id = self.router.agent_view(consulted, self.clock()).leg_id
            self.command(ev.ConsultEnded(call_id, agent_id, False))
        await pbx.control.unhold(caller, first)
        leg = self.calls.channel_name(call_id, leg_id)
        if leg is not None:
            await self._safe_hangup(pbx, leg)
        self.bus.publish(ConsultationChanged(call_id, agent_id, False))

    def consulting(self, call_id: str) -> str | None:
        """The consultation going on for a call: "agent:<id>" or "number:<n>"."""
        if call_id in self._outside:
            return f"number:{self._outside[call_id][1]}"
        view = self.router.call_view(call_id)
        return f"agent:{view.consult_agent_id}" if view is not None and view.consult_agent_id else None

    def _talking_legs(self, call_id: str, agent_id: str) -> tuple[Pbx, str, str]:
        view = self.router.call_view(call_id)
        if view is None or view.state not in _TALKING or view.agent_id != agent_id:
            raise Refused("the call is not connected to you")
        pbx = self.calls.pbx_of(call_id)
        caller = self.calls.caller_channel(call_id)
        first = self.calls.channel_name(call_id, view.leg_id)
        if pbx is None or caller is None or first is None:
            raise Refused("the call is not connected to an agent")
        if not pbx.link.is_up:
            raise Refused("the PBX link is down")
        return pbx, caller, first

    def agent_leg(self, call_id: str) -> str | None:
        """The channel of the agent's leg of a call (connected or ringing)."""
        view = self.router.call_view(call_id)
        return self.calls.channel_name(call_id, view.leg_id) if view is not None and view.leg_id else None

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _safe_hangup(pbx: Pbx, channel: str) -> None:
        try:
            await pbx.control.hangup(channel)
        except AmiError as e:
            log.info("hangup of %s: %s", channel, e)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.info("hangup of %s: %s", channel, e)
