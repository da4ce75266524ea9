"""Callbacks as tasks: booked (IVR, supervisor, web API) or made by the ACD (a caller keeping their place),
queued when their time comes, offered to an agent like a call, dialled (agent first or customer first, per
queue), bridged; the outcome journaled and retried by the rule (docs/callbacks.md).

The book of callbacks is the projector's (`ctiserver.projections.callbacks`): this service reads it and
records facts, nothing else. Its own state is the work in flight: the timer that queues due callbacks and
the legs of the dials going on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import decisions as d
from acd import events as ev

from ..ami.errors import AmiError
from ..ami.protocol import UnsafeValue
from ..bus import EventBus
from ..callmodel import events as ce
from ..calls import legs
from ..calls.service import CallsService, Pbx
from ..control import InvalidValue, OriginateResult
from ..journal import facts as f
from ..projections.callbacks import CallbackBook, RetryRule
from ..projections.recorder import Recorder
from . import states as s
from .dialling import CUSTOMER_CONTEXT, hang_up_leg, live_channel

log = logging.getLogger(__name__)

SOURCES = ("ivr", "queue", "supervisor", "web", "agent")  # agent: a call back asked for at a callback's wrap-up


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    queue: str = ""  # where booked callbacks wait when none is named; "": the first queue
    retry: RetryRule = field(default_factory=RetryRule)
    customer_ring_s: float = 30.0
    context: str = CUSTOMER_CONTEXT
    caller_id_num: str = ""  # what the customer sees; "" leaves it to the trunk
    idle_check_s: float = 1.0  # the timer looks at the book at least this often


class OfferSide(Protocol):
    """What a callback's dial needs of the queueing slice (QueueingService satisfies it)."""

    def record(self, event: ev.Event) -> list[d.Decision]: ...

    def offer_failed(self, offer: d.Offer, reason: ev.OfferFailure) -> None: ...


class Refused(ValueError):
    """A callback that cannot be booked (unknown queue, bad number): nothing recorded."""


@dataclass(slots=True)
class _Legs:
    gone: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class CallbackService:
    def __init__(self, recorder: Recorder, calls: CallsService, bus: EventBus, clock: Callable[[], float],
                 settings: CallbackSettings | None = None,
                 do_not_call: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self.recorder = recorder
        self.do_not_call = do_not_call  # checked again when the time comes: the list may have grown
        self.calls = calls
        self.clock = clock
        self.settings = settings or CallbackSettings()
        self._wake = asyncio.Event()
        self._watched: dict[str, _Legs] = {}  # leg uniqueid -> the dial waiting on it
        self._drops: set[asyncio.Task[None]] = set()  # legs of withdrawn offers being hung up
        bus.subscribe(ce.LegHungUp, self._on_leg_hung_up)

    @property
    def book_(self) -> CallbackBook:
        return self.recorder.projector.callbacks

    # ------------------------------------------------------------------ booking

    def default_queue(self) -> str:
        config = self.recorder.projector.config
        if self.settings.queue and config.has_queue(self.settings.queue):
            return self.settings.queue
        return config.queues[0].name if config.queues else ""

    def book(self, number: str, *, source: str, queue: str = "", name: str = "", topic: str = "",
             due_at: float | None = None, requested_by: str = "", call_id: str = "") -> str:
        """Journal a callback; returns its id. The caller checked the number (web API: validated)."""
        queue = queue or self.default_queue()
        if not self.recorder.projector.config.has_queue(queue):
            raise Refused(f"no queue {queue!r}")
        if source not in SOURCES:
            raise Refused(f"unknown source {source!r}")
        callback_id = self.book_.next_id()
        self.recorder.record(f.CallbackBooked(callback_id, number, queue, source, name, topic, due_at, call_id,
                                              requested_by))
        self._wake.set()
        return callback_id

    def cancel(self, callback_id: str, reason: str) -> bool:
        cb = self.book_.get(callback_id)
        if cb is None or cb.state not in ("pending", "queued"):
            return False
        if cb.state == "queued" and cb.call_id:
            view = self.recorder.projector.router.call_view(cb.call_id)
            if view is not None and view.state in ("callback", "waiting"):
                self.recorder.record(ev.CallLeftQueue(cb.call_id, "callback cancelled"))
        self.recorder.record(f.CallbackClosed(callback_id, "cancelled", reason))
        return True

    # ------------------------------------------------------------------ the timer

    async def run(self) -> None:
        """Queue every callback whose time has come, as a virtual caller of its queue."""
        while True:
            await self._queue_due()
            due = self.book_.next_due()
            wait = self.settings.idle_check_s if due is None else max(0.0, min(due - self.clock(),
                                                                                 self.settings.idle_check_s))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _queue_due(self) -> None:
        config = self.recorder.projector.config
        for cb in self.book_.due(self.clock()):
            why = "no number" if not cb.number else f"no queue {cb.queue}" if not config.has_queue(cb.queue) \
                else ""
            if not why and self.do_not_call is not None:
                try:
                    why = "on the do-not-call list" if await self.do_not_call(cb.number) else ""
                except Exception as e:  # noqa: BLE001 - the CRM does not answer: not now, the next round
                    log.warning("callback %s waits: do-not-call list not readable: %s", cb.callback_id, e)
                    continue
            if cb.state != "pending":
                continue  # changed while the list was read
            if why:
                self.recorder.record(f.CallbackClosed(cb.callback_id, "cancelled", why))
                continue
            call_id = CallbackBook.call_id_for(cb)
            self.recorder.record(ev.CallEnqueued(call_id, cb.queue, caller_num=cb.number, callback_number=cb.number))

    # ------------------------------------------------------------------ a callback's turn

    async def run_offer(self, pbx: Pbx, offer: d.Offer, side: OfferSide) -> None:
        """The ACD offered a callback (a virtual caller) to an agent: dial both, in the queue's order."""
        config = self.recorder.projector.config
        order = config.queue(offer.queue).callback_dial if config.has_queue(offer.queue) else "agent_first"
        try:
            if order == "customer_first":
                await self._customer_first(pbx, offer, side)
            else:
                await self._agent_first(pbx, offer, side)
        except (AmiError, UnsafeValue, InvalidValue) as e:
            log.warning("callback %s to %s: %s", offer.call_id, offer.agent_id, e)
            await self._hang_up(pbx, offer.leg_id)
            await self._hang_up(pbx, self._customer_leg(offer))
            side.offer_failed(offer, "failed")
        except asyncio.CancelledError:
            # The offer was withdrawn (the agent logged out, the callback was cancelled) while a leg rang: an
            # Originate already sent goes on in Asterisk, so the customer's phone would ring on for nobody.
            self._drop(pbx, self._customer_leg(offer))
            raise

    def _drop(self, pbx: Pbx, leg: str) -> None:
        task = asyncio.get_running_loop().create_task(self._hang_up_when_seen(pbx, leg), name=f"drop {leg}")
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def _hang_up_when_seen(self, pbx: Pbx, leg: str, wait_s: float = 3.0) -> None:
        """The leg's Newchannel may still be on its way: wait for it a little, then hang it up."""
        deadline = self.clock() + wait_s
        while self._channel(pbx, leg) is None and self.clock() < deadline:
            await asyncio.sleep(0.05)
        await self._hang_up(pbx, leg)

    async def stop(self) -> None:
        for task in list(self._drops):
            task.cancel()
        await asyncio.gather(*self._drops, return_exceptions=True)

    @staticmethod
    def _customer_leg(offer: d.Offer) -> str:
        return legs.CUSTOMER + offer.leg_id.removeprefix(legs.OFFER)

    async def _agent_first(self, pbx: Pbx, offer: d.Offer, side: OfferSide) -> None:
        number = offer.callback_number or ""
        agent = await self._ring_agent(pbx, offer, number)
        if not agent.success:
            kind = agent.outcome.value
            side.offer_failed(offer, "busy" if kind == "busy" else "no-answer" if kind == "no_answer" else "failed")
            return
        side.record(ev.OfferAnswered(offer.call_id, offer.agent_id))
        customer = await self._dial_customer(pbx, offer, number)
        outcome = s.outcome_of(customer.success, customer.reason)
        if outcome != s.ANSWERED:
            self._attempted(offer, outcome)
            side.record(ev.AgentCallEnded(offer.agent_id, offer.call_id, "caller"))
            await self._hang_up(pbx, offer.leg_id)
            return
        await self._connect(pbx, offer, side)

    async def _customer_first(self, pbx: Pbx, offer: d.Offer, side: OfferSide) -> None:
        number = offer.callback_number or ""
        customer = await self._dial_customer(pbx, offer, number)
        outcome = s.outcome_of(customer.success, customer.reason)
        if outcome != s.ANSWERED:
            self._attempted(offer, outcome)
            side.record(ev.CallLeftQueue(offer.call_id, f"callback: {outcome}"))  # the agent is free again
            return
        agent = await self._ring_agent(pbx, offer, number)
        if not agent.success:
            await self._hang_up(pbx, self._customer_leg(offer))
            self._attempted(offer, s.AGENT_NO_ANSWER)
            side.record(ev.CallLeftQueue(offer.call_id, "callback: the agent did not answer"))
            return
        side.record(ev.OfferAnswered(offer.call_id, offer.agent_id))
        await self._connect(pbx, offer, side)

    async def _ring_agent(self, pbx: Pbx, offer: d.Offer, number: str) -> OriginateResult:
        cb = self.book_.of_call(offer.call_id)
        name = (cb.name if cb is not None else "") or f"Callback {number}"
        return await pbx.control.originate_agent_leg(
            offer.endpoint, channel_id=offer.leg_id, caller_id_name=name, caller_id_num=number,
            ring_timeout_s=offer.ring_timeout_s)

    async def _dial_customer(self, pbx: Pbx, offer: d.Offer, number: str) -> OriginateResult:
        leg = self._customer_leg(offer)
        self._watched[leg] = self._watched[offer.leg_id] = _Legs()  # from now on, either hang-up is seen
        return await pbx.control.originate_agent_leg(
            f"Local/{number}@{self.settings.context}/n", channel_id=leg, caller_id_name="",
            caller_id_num=self.settings.caller_id_num, ring_timeout_s=self.settings.customer_ring_s)

    async def _connect(self, pbx: Pbx, offer: d.Offer, side: OfferSide) -> None:
        """Both answered: bridge them; the callback is done. When either hangs up, the other is hung up (a
        channel pulled into an AMI Bridge would go on in its dialplan: capture 19)."""
        customer = self._customer_leg(offer)
        watch = self._watched.get(customer) or _Legs()
        agent_chan, customer_chan = self._channel(pbx, offer.leg_id), self._channel(pbx, customer)
        try:
            if agent_chan is None or customer_chan is None:
                # One side went while the other answered: the customer was not served; try again.
                self._attempted(offer, s.CANCELLED if agent_chan is None else s.FAILED)
                view = self.recorder.projector.router.agent_view(offer.agent_id, self.clock())
                if view.call_id == offer.call_id and view.state in ("on_call", "on_hold"):
                    side.record(ev.AgentCallEnded(offer.agent_id, offer.call_id,
                                                  "agent" if agent_chan is None else "caller"))
                await self._hang_up(pbx, offer.leg_id)
                await self._hang_up(pbx, customer)
                return
            await pbx.control.bridge(agent_chan, customer_chan)
            self._attempted(offer, s.ANSWERED)
            while not watch.gone:
                watch.changed.clear()
                await watch.changed.wait()
            if customer in watch.gone:  # the customer hung up: the agent's part ends on their side
                view = self.recorder.projector.router.agent_view(offer.agent_id, self.clock())
                if view.call_id == offer.call_id and view.state in ("on_call", "on_hold"):
                    side.record(ev.AgentCallEnded(offer.agent_id, offer.call_id, "caller"))
                await self._hang_up(pbx, offer.leg_id)
            else:
                await self._hang_up(pbx, customer)
        finally:
            self._watched.pop(customer, None)
            self._watched.pop(offer.leg_id, None)

    def _attempted(self, offer: d.Offer, outcome: str) -> None:
        cb = self.book_.of_call(offer.call_id)
        if cb is None:
            return
        counted = cb.attempts + (0 if outcome in (s.AGENT_NO_ANSWER, s.CANCELLED) else 1)
        retry_at = self.settings.retry.next_try(outcome, counted, self.clock())
        self.recorder.record(f.CallbackAttempted(cb.callback_id, offer.call_id, outcome, offer.agent_id, retry_at))
        if retry_at is None:
            self.recorder.record(f.CallbackClosed(cb.callback_id, "done" if outcome == s.ANSWERED else "given_up",
                                                  outcome))
        self._wake.set()

    # ------------------------------------------------------------------ legs

    def _on_leg_hung_up(self, e: ce.LegHungUp) -> None:
        watch = self._watched.get(e.uniqueid)
        if watch is not None:
            watch.gone.add(e.uniqueid)
            watch.changed.set()

    _channel = staticmethod(live_channel)
    _hang_up = staticmethod(hang_up_leg)


def describe(cb: Any) -> dict[str, object]:
    """A callback as the supervisors' page and the web API answer show it."""
    return {"callback_id": cb.callback_id, "number": cb.number, "queue": cb.queue, "source": cb.source,
            "name": cb.name, "topic": cb.topic, "due_at": cb.due_at, "state": cb.state, "attempts": cb.attempts,
            "last_outcome": cb.last_outcome}
