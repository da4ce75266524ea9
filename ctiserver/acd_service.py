"""The ACD's edge: feeds the pure router (acd/) from the call model and the consoles, and carries out its
decisions through call control.

The caller waits inside our FastAGI session (`wait_in_queue`): hold music in short pieces, position
announcements between them, and the callback key. The agent's leg is originated with a ChannelId we choose
(capture 05 D) into `[cti-agent-ready]` and bridged to the caller when it answers (capture 05 B). Bridging
pulls the caller out of the AGI application: the running command returns and the session ends, which is
how the waiting loop learns it is over.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from acd import decisions as d
from acd import events as ev
from acd.router import Router
from acd.stats import LiveStats

from .agi.session import AgiChannel, ChannelHungUp
from .bus import EventBus
from .callmodel.model import CallModel
from .events import CallHeld, CallResumed, LegHungUp, LegRinging

log = logging.getLogger(__name__)

HOLD_MUSIC = "cti/hold-music"  # a short piece of music, played again and again between announcements
CALLBACK_KEY = "*"


class Refused(Exception):
    """An agent command that makes no sense now; the router left everything as it was."""


class _OutcomeKind(Protocol):
    @property
    def value(self) -> str: ...  # "answered", "no_answer", "busy", "failed"


class OfferOutcome(Protocol):
    @property
    def success(self) -> bool: ...

    @property
    def outcome(self) -> _OutcomeKind: ...

    @property
    def channel(self) -> str: ...


class AgentLegControl(Protocol):
    """The part of ctiserver.control.CallControl the ACD needs."""

    async def originate_agent_leg(
        self, endpoint: str, *, channel_id: str, caller_id_name: str, caller_id_num: str,
        ring_timeout_s: float,
    ) -> OfferOutcome: ...

    async def bridge(self, channel1: str, channel2: str) -> object: ...

    async def hangup(self, channel: str, cause: int | None = None) -> object: ...

    async def set_var(self, channel: str, name: str, value: str) -> object: ...

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> object: ...


@dataclass(frozen=True, slots=True)
class Site:
    """One PBX as the ACD sees it: its call model and its call control. Agents' phones are assumed to be
    reachable from the PBX that carries the caller."""

    name: str
    model: CallModel
    control: AgentLegControl


@dataclass(frozen=True, slots=True)
class OfferStarted:
    """Published when the router reserves an agent: the moment the screen pop is pushed."""

    call_id: str
    agent_id: str
    queue: str
    caller_num: str
    at: float


@dataclass(frozen=True, slots=True)
class WaitResult:
    outcome: str  # "connected", "callback", "voicemail", "hangup", "transfer"
    target: str | None = None


@dataclass(slots=True)
class _Waiting:
    call_id: str
    channel: str
    notices: asyncio.Queue[d.Decision | str] = field(default_factory=asyncio.Queue)


@dataclass(slots=True)
class _OfferLeg:
    call_id: str
    agent_id: str
    channel_id: str
    task: asyncio.Task[None] | None = None
    channel: str = ""
    answered: bool = False


class AcdService:
    def __init__(
        self,
        router: Router,
        site_of: Callable[[str], Site],
        bus: EventBus,
        *,
        clock: Callable[[], float] | None = None,
        queue_log: Callable[[str], None] | None = None,
        after_call: Callable[[str], bool] | None = None,
    ) -> None:
        self.router = router
        self._site_of = site_of
        self.bus = bus
        self.stats = LiveStats(router.config)
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._queue_log = queue_log
        self._after_call = after_call  # does this call go to the post-call step (survey) when it ends?
        self._waiting: dict[str, _Waiting] = {}
        self._offers: dict[str, _OfferLeg] = {}  # call_id -> the leg ringing/answered for it
        self._legs: dict[str, _OfferLeg] = {}  # our ChannelId -> leg
        self._connected: dict[str, str] = {}  # call_id -> agent_id
        self._enqueued: dict[str, ev.CallEnqueued] = {}  # how each waiting call entered (for moves)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        bus.subscribe(LegHungUp, self._on_leg_hung_up)
        bus.subscribe(LegRinging, self._on_leg_ringing)
        bus.subscribe(CallHeld, self._on_held)
        bus.subscribe(CallResumed, self._on_resumed)

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="acd-ticker")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._ticker] if self._ticker else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self) -> None:
        while True:
            due = self.router.next_due()
            now = self._clock()
            delay = 1.0 if due is None else max(0.0, min(1.0, due - now))
            self._wakeup.clear()
            try:
                # Not wait_for: on 3.11 it swallows a cancel that races with the wake-up being set, and
                # stop() then waits for this loop forever (seen in tests/e2e).
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._execute(self.router.tick(self._clock()))

    # ------------------------------------------------------------------ feeding the router

    def handle(self, event: ev.Event) -> list[d.Decision]:
        decisions = self.router.handle(event, self._clock())
        self._execute(decisions)
        self._wakeup.set()  # timers may have changed
        return decisions

    def command(self, event: ev.Event) -> list[d.Decision]:
        """An agent or supervisor command: raises Refused with the router's reason."""
        decisions = self.handle(event)
        for dec in decisions:
            if isinstance(dec, d.Refusal) and dec.event is event:
                raise Refused(dec.reason)
        return decisions

    def _execute(self, decisions: list[d.Decision]) -> None:
        if not decisions:
            return
        self.stats.observe(decisions)
        for dec in decisions:
            if isinstance(dec, d.Offer):
                self._start_offer(dec)
            elif isinstance(dec, d.CancelOffer):
                self._cancel_offer(dec)
            elif isinstance(dec, (d.Announce, d.TimeoutAction)):
                waiting = self._waiting.get(dec.call_id)
                if waiting is not None:
                    waiting.notices.put_nowait(dec)
            elif isinstance(dec, d.QueueLogEntry) and self._queue_log is not None:
                self._queue_log(dec.line())
            self.bus.publish(dec)

    # ------------------------------------------------------------------ the caller's wait

    async def wait_in_queue(self, channel: AgiChannel, enqueued: ev.CallEnqueued) -> WaitResult:
        """Run the caller's wait in the queue inside their FastAGI session until it ends."""
        call_id = enqueued.call_id
        waiting = _Waiting(call_id, channel.env.channel)
        self._waiting[call_id] = waiting
        self.bus.publish_all(self._site_of(call_id).model.mark_queued(call_id, True, self._clock()))
        self._enqueued[call_id] = enqueued
        self.handle(enqueued)
        try:
            return await self._wait_loop(channel, waiting)
        except ChannelHungUp:
            # Bridged to an agent (the bridge pulls the caller out of AGI), or the caller hung up.
            if call_id in self._connected or (call_id in self._offers and self._offers[call_id].answered):
                return WaitResult("connected")
            return WaitResult("hangup")
        finally:
            self._waiting.pop(call_id, None)
            self._enqueued.pop(call_id, None)

    async def _wait_loop(self, channel: AgiChannel, waiting: _Waiting) -> WaitResult:
        while True:
            while not waiting.notices.empty():
                notice = waiting.notices.get_nowait()
                result = await self._on_notice(channel, waiting, notice)
                if result is not None:
                    return result
            reply = await channel.command("STREAM FILE", HOLD_MUSIC, CALLBACK_KEY)
            if reply.digit == CALLBACK_KEY:
                self.handle(ev.CallbackRequested(waiting.call_id))
                await channel.command("STREAM FILE", "cti/callback-confirmed", "")
                return WaitResult("callback")
            if reply.value == -1 or waiting.call_id in self._connected:
                raise ChannelHungUp("left the AGI (bridged or hung up)")

    async def _on_notice(self, channel: AgiChannel, waiting: _Waiting, notice: object) -> WaitResult | None:
        if isinstance(notice, d.Announce):
            if notice.position == 1:
                await channel.command("STREAM FILE", "queue-youarenext", CALLBACK_KEY)
            else:
                await channel.command("STREAM FILE", "queue-thereare", CALLBACK_KEY)
                await channel.command("SAY NUMBER", notice.position - 1, CALLBACK_KEY)
                await channel.command("STREAM FILE", "queue-callswaiting", CALLBACK_KEY)
            minutes = max(1, round(notice.estimated_wait_s / 60))
            await channel.command("STREAM FILE", "queue-holdtime", CALLBACK_KEY)
            await channel.command("SAY NUMBER", minutes, CALLBACK_KEY)
            await channel.command("STREAM FILE", "queue-minutes", CALLBACK_KEY)
        elif isinstance(notice, d.TimeoutAction):
            if notice.action == "voicemail":
                return WaitResult("voicemail", notice.queue)
            if notice.action == "callback":
                await channel.command("STREAM FILE", "cti/callback-confirmed", "")
                return WaitResult("callback")
        return None

    # ------------------------------------------------------------------ offers

    def _start_offer(self, offer: d.Offer) -> None:
        channel_id = f"cti-offer-{next(self._ids)}-{offer.agent_id}"
        leg = _OfferLeg(offer.call_id, offer.agent_id, channel_id)
        self._offers[offer.call_id] = leg
        self._legs[channel_id] = leg
        self._site_of(offer.call_id).model.expect_leg(channel_id, offer.call_id)
        self.bus.publish(OfferStarted(offer.call_id, offer.agent_id, offer.queue, offer.caller_num, self._clock()))
        leg.task = self._spawn(self._run_offer(offer, leg), f"offer-{offer.call_id}")

    async def _run_offer(self, offer: d.Offer, leg: _OfferLeg) -> None:
        site = self._site_of(offer.call_id)
        call = site.model.calls.get(offer.call_id)
        caller = call.caller_leg if call else None
        name = caller.caller_name if caller else ""
        try:
            outcome = await site.control.originate_agent_leg(
                offer.endpoint, channel_id=leg.channel_id, caller_id_name=name,
                caller_id_num=offer.caller_num, ring_timeout_s=offer.ring_timeout_s,
            )
        except Exception as e:  # noqa: BLE001 - link down, timeout, refused value: the router must hear of it
            log.warning("originate for %s to agent %s failed: %s", offer.call_id, offer.agent_id, e)
            self._offer_failed(leg, "failed")
            return
        if not outcome.success:
            kind = outcome.outcome.value
            self._offer_failed(leg, "busy" if kind == "busy" else "no-answer" if kind == "no_answer" else "failed")
            return
        leg.channel = outcome.channel or leg.channel
        if offer.callback_number is not None:
            await self._connect_callback(offer, leg, site)
            return
        caller_channel = caller.name if caller and caller.alive else None
        if caller_channel is None:
            await self._safe_hangup(site, leg.channel)
            self._offer_failed(leg, "failed")
            return
        try:
            await site.control.set_var(caller_channel, "IVR_DONE", "1")
            if self._after_call is not None and self._after_call(offer.call_id):
                await site.control.set_var(caller_channel, "CTI_AFTER_CALL", "1")
            leg.answered = True
            await site.control.bridge(caller_channel, leg.channel)
            # The caller no longer waits: the phase follows the bridge, not the queue flag.
            self.bus.publish_all(site.model.mark_queued(offer.call_id, False, self._clock()))
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.warning("bridge %s <-> %s failed: %s", caller_channel, leg.channel, e)
            leg.answered = False
            await self._safe_hangup(site, leg.channel)
            self._offer_failed(leg, "failed")
            return
        self._connected[offer.call_id] = offer.agent_id
        self.handle(ev.OfferAnswered(offer.call_id, offer.agent_id))

    async def _connect_callback(self, offer: d.Offer, leg: _OfferLeg, site: Site) -> None:
        """A virtual caller's turn: the agent answered; now dial the customer from the agent's leg."""
        assert offer.callback_number is not None
        self._connected[offer.call_id] = offer.agent_id
        self.handle(ev.OfferAnswered(offer.call_id, offer.agent_id))
        try:
            await site.control.redirect(leg.channel, "cti-outbound", offer.callback_number)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.warning("callback dial for %s failed: %s", offer.call_id, e)

    def _offer_failed(self, leg: _OfferLeg, reason: ev.OfferFailure) -> None:
        self._forget_leg(leg)
        if self.router.call_view(leg.call_id) is not None:
            self.handle(ev.OfferFailed(leg.call_id, leg.agent_id, reason))

    def _forget_leg(self, leg: _OfferLeg) -> None:
        if self._offers.get(leg.call_id) is leg:
            del self._offers[leg.call_id]
        self._legs.pop(leg.channel_id, None)

    def _cancel_offer(self, cancel: d.CancelOffer) -> None:
        leg = self._offers.get(cancel.call_id)
        if leg is None or leg.agent_id != cancel.agent_id:
            return
        self._forget_leg(leg)
        site = self._site_of(cancel.call_id)
        channel = leg.channel or self._channel_name(site, leg.channel_id)
        if leg.task is not None:
            leg.task.cancel()
        if channel:
            self._spawn(self._safe_hangup(site, channel), f"cancel-{cancel.call_id}")

    @staticmethod
    def _channel_name(site: Site, uniqueid: str) -> str:
        ch = site.model.channels.get(uniqueid)
        return ch.name if ch else ""

    async def _safe_hangup(self, site: Site, channel: str) -> None:
        try:
            await site.control.hangup(channel)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.info("hangup of %s: %s", channel, e)

    # ------------------------------------------------------------------ facts from the call model

    def _on_leg_ringing(self, e: LegRinging) -> None:
        leg = self._legs.get(e.uniqueid)
        if leg is not None:
            leg.channel = e.channel
            self.handle(ev.OfferRinging(leg.call_id, leg.agent_id))

    def _on_leg_hung_up(self, e: LegHungUp) -> None:
        if e.is_caller:
            if self.router.call_view(e.call_id) is not None:
                self.handle(ev.CallerHungUp(e.call_id))
            return
        agent_id = self._connected.get(e.call_id)
        leg = self._offers.get(e.call_id)
        if agent_id is not None and leg is not None and e.uniqueid == leg.channel_id:
            del self._connected[e.call_id]
            self._forget_leg(leg)
            self.handle(ev.AgentCallEnded(agent_id, e.call_id))

    def _on_held(self, e: CallHeld) -> None:
        if e.call_id in self._connected:
            self.handle(ev.HoldStarted(e.call_id))

    def _on_resumed(self, e: CallResumed) -> None:
        if e.call_id in self._connected:
            self.handle(ev.HoldEnded(e.call_id))

    # ------------------------------------------------------------------ queries for consoles

    def agent_of_call(self, call_id: str) -> str | None:
        return self._connected.get(call_id)

    def agent_leg_uniqueid(self, call_id: str) -> str | None:
        leg = self._offers.get(call_id)
        return leg.channel_id if leg else None

    def move_call(self, call_id: str, queue: str | None, to_head: bool) -> None:
        """A supervisor moves a waiting caller to another queue, or to the head of its own."""
        entered = self._enqueued.get(call_id)
        view = self.router.call_view(call_id)
        if entered is None or view is None or view.state != "waiting":
            raise Refused(f"call {call_id} is not waiting in a queue")
        target = queue or view.queue
        if not self.router.config.has_queue(target):
            raise Refused(f"no queue {target!r}")
        # Leaving and entering again with a priority above every rule puts the caller first in line.
        bump = 1_000_000 if to_head else 0
        moved = ev.CallEnqueued(call_id, target, entered.priority + bump, entered.caller_num,
                                entered.sticky_agent_id, entered.vip, entered.grade)
        self.handle(ev.CallLeftQueue(call_id, "moved"))
        self._enqueued[call_id] = moved
        self.handle(moved)

    def agent_leg(self, call_id: str) -> str | None:
        leg = self._offers.get(call_id)
        if leg is None:
            return None
        return leg.channel or self._channel_name(self._site_of(call_id), leg.channel_id) or None

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
