"""The PBX side of a tracked outbound call: the agent's leg, then the customer's, bridged; every step a fact.

The agent's phone is originated into ``[cti-agent-ready]`` with ChannelId = the call id (the console's
hang-up finds it by that id); answered, the customer's number is originated as
``Local/<number>@cti-customer/n`` into ``[cti-agent-ready]`` too, with ChannelId ``<call id>-c``, so its
OriginateResponse tells busy, no answer, congestion or answer exactly as capture 15 shows (the context turns
Dial's status into Busy()/Congestion()). Answered, the two legs are bridged; when either hangs up the other
is hung up (a channel pulled into an AMI Bridge goes on in its dialplan otherwise: capture 19).

What a call is doing lives in the facts (``outbound.dialling``, ``outbound.progress``, ``acd.outbound_*``);
the only state kept here is the work in flight: the task per call and the legs it waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acd import decisions as d
from acd import events as ev

from ..ami.errors import AmiError
from ..ami.protocol import UnsafeValue
from ..bus import EventBus
from ..callmodel import events as ce
from ..calls.service import CallsService, Pbx, PbxResynced
from ..control import InvalidValue
from ..journal import facts as f
from ..projections.recorder import Recorder
from . import states as s

log = logging.getLogger(__name__)

CUSTOMER_CONTEXT = "cti-customer"
CUSTOMER_LEG = "-c"  # the customer's leg: <call id>-c
_RINGING = 5  # Newstate 5 (Ringing) on the customer's ;1: the far end rings (capture 15, noanswer)
_POLL_S = 0.05


def live_channel(pbx: Pbx, uniqueid: str) -> str | None:
    """The channel's name while it is up, else None."""
    chan = pbx.model.channels.get(uniqueid)
    return chan.name if chan is not None and chan.alive else None


async def hang_up_leg(pbx: Pbx, uniqueid: str) -> None:
    name = live_channel(pbx, uniqueid)
    if name is not None:
        with contextlib.suppress(AmiError, UnsafeValue, InvalidValue):  # gone meanwhile: that is the goal
            await pbx.control.hangup(name)


@dataclass(frozen=True, slots=True)
class DialSettings:
    agent_ring_s: float = 20.0  # the agent's phone rings this long before the call is given up
    customer_ring_s: float = 30.0  # the customer's phone rings this long: then no answer (Reason 3)
    context: str = CUSTOMER_CONTEXT
    caller_id_num: str = ""  # what the customer sees; "" leaves it to the trunk


@dataclass(slots=True)
class _Dial:
    call_id: str
    agent_id: str
    number: str
    queue: str
    state: s.Outbound = s.Outbound.DIALLING_AGENT
    gone: dict[str, str] = field(default_factory=dict)  # leg uniqueid -> who hung up
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    ended: bool = False


class OutboundDialler:
    """Places tracked outbound calls. `dial` journals the start and returns the call id at once; the rest
    runs as a task of its own (the console follows it through the facts)."""

    def __init__(self, recorder: Recorder, calls: CallsService, bus: EventBus, clock: Callable[[], float],
                 settings: DialSettings | None = None,
                 on_end: Callable[[str, str], None] | None = None) -> None:
        self.recorder = recorder
        self.calls = calls
        self.clock = clock
        self.settings = settings or DialSettings()
        self.on_end = on_end  # (call id, outcome): a callback's book hears how its dial went
        self._dials: dict[str, _Dial] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        bus.subscribe(ce.LegHungUp, self._on_leg_hung_up)
        bus.subscribe(PbxResynced, self._on_resynced)

    # ------------------------------------------------------------------ commands

    def dial(self, call_id: str, agent_id: str, endpoint: str, number: str, *, customer_id: int | None = None,
             customer_name: str = "", queue: str = "", purpose: str = "click_to_call",
             callback_id: str = "") -> str:
        """Journal the call and start it. The ACD must take the agent (available or paused): the caller
        checked it; a refusal here still ends the call cleanly."""
        self.recorder.record(f.OutboundDialling(call_id, agent_id, number, customer_id, customer_name, purpose,
                                                queue, callback_id))
        decisions = self.recorder.record(ev.OutboundStarted(agent_id, call_id, queue))
        dial = _Dial(call_id, agent_id, number, queue)
        if any(isinstance(x, d.Refusal) for x in decisions):
            self._end(dial, s.CANCELLED, "unknown")
            return call_id
        self._dials[call_id] = dial
        self._spawn(self._run(dial, endpoint, customer_name or number))
        return call_id

    def cancel(self, call_id: str) -> bool:
        """The agent hung up from the console: whatever rings is dropped. False when not ours."""
        dial = self._dials.get(call_id)
        if dial is None:
            return False
        dial.cancelled = True
        dial.changed.set()
        return True

    def live(self, call_id: str) -> bool:
        return call_id in self._dials

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the call

    def _pbx(self) -> Pbx | None:
        return next(iter(self.calls.pbxes.values()), None)

    def _progress(self, dial: _Dial, trigger: str) -> None:
        dial.state = s.next_state(dial.state, trigger)
        self.recorder.record(f.OutboundProgress(dial.call_id, dial.state.value, dial.agent_id))

    def _end(self, dial: _Dial, outcome: str, hung_up_by: str) -> None:
        if dial.ended:
            return
        dial.ended = True
        self._dials.pop(dial.call_id, None)
        self.recorder.record(ev.OutboundEnded(dial.agent_id, dial.call_id, outcome, hung_up_by,  # type: ignore[arg-type]
                                              dial.queue))
        if self.on_end is not None:
            self.on_end(dial.call_id, outcome)

    async def _run(self, dial: _Dial, endpoint: str, name: str) -> None:
        pbx = self._pbx()
        if pbx is None or not pbx.link.is_up:
            self._end(dial, s.FAILED, "unknown")
            return
        try:
            await self._place(pbx, dial, endpoint, name)
        except asyncio.CancelledError:
            raise
        except (AmiError, UnsafeValue, InvalidValue) as e:
            log.warning("outbound call %s: %s", dial.call_id, e)
            await self._hang_up_all(pbx, dial)
            self._end(dial, s.FAILED, "unknown")

    async def _place(self, pbx: Pbx, dial: _Dial, endpoint: str, name: str) -> None:
        cfg = self.settings
        agent = await self._originate(pbx, dial, endpoint, dial.call_id, cfg.agent_ring_s, name, dial.number)
        if agent is None or not agent.success:
            await self._hang_up_all(pbx, dial)
            self._end(dial, s.CANCELLED if dial.cancelled else s.AGENT_NO_ANSWER, "agent")
            return
        self._progress(dial, "agent_answered")
        if dial.cancelled or dial.call_id in dial.gone:
            await self._hang_up_all(pbx, dial)
            self._end(dial, s.CANCELLED, "agent")
            return
        self._progress(dial, "dial_customer")
        customer_id = dial.call_id + CUSTOMER_LEG
        target = f"Local/{dial.number}@{cfg.context}/n"
        ringing = self._spawn(self._watch_ringing(pbx, dial, customer_id))
        try:
            customer = await self._originate(pbx, dial, target, customer_id, cfg.customer_ring_s, "",
                                             cfg.caller_id_num)
        finally:
            ringing.cancel()
        if customer is None or not customer.success or dial.cancelled or dial.call_id in dial.gone:
            # Who ended it is read before our own hang-up of the agent's leg: on a real PBX that leg's
            # Hangup event can be read before the Hangup action's answer (capture 25, C and E).
            by_agent = customer is None or dial.cancelled or dial.call_id in dial.gone
            await self._hang_up_all(pbx, dial)
            if by_agent:
                self._end(dial, s.CANCELLED, "agent")
            else:
                self._end(dial, s.outcome_of(False, customer.reason), "unknown")
            return
        agent_chan, customer_chan = self._channel(pbx, dial.call_id), self._channel(pbx, customer_id)
        if agent_chan is None or customer_chan is None:
            await self._hang_up_all(pbx, dial)
            self._end(dial, s.ANSWERED if customer_chan is None else s.CANCELLED,
                      "caller" if customer_chan is None else "agent")
            return
        await pbx.control.bridge(agent_chan, customer_chan)
        self._progress(dial, "answered")
        while not dial.gone and not dial.cancelled:
            dial.changed.clear()
            await dial.changed.wait()
        first = next(iter(dial.gone), dial.call_id)
        await self._hang_up_all(pbx, dial)
        self._end(dial, s.ANSWERED, "agent" if first == dial.call_id else "caller")

    async def _originate(self, pbx: Pbx, dial: _Dial, endpoint: str, channel_id: str, ring_s: float,
                         name: str, num: str) -> Any:
        """The Originate, raced against the agent's hang-up: None when the agent gave up first."""
        job = asyncio.ensure_future(pbx.control.originate_agent_leg(
            endpoint, channel_id=channel_id, caller_id_name=name, caller_id_num=num, ring_timeout_s=ring_s))
        try:
            while not job.done():
                if dial.cancelled:
                    await self._hang_up(pbx, channel_id)
                dial.changed.clear()
                waiter = asyncio.ensure_future(dial.changed.wait())
                try:
                    # Cancelled before its channel showed on AMI: look again shortly, to hang it up.
                    await asyncio.wait({job, waiter}, timeout=0.2 if dial.cancelled else None,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            if not job.done():  # the call's task was cancelled (the server stops): the Originate goes too
                job.cancel()
        return job.result()

    async def _watch_ringing(self, pbx: Pbx, dial: _Dial, customer_id: str) -> None:
        while dial.state is s.Outbound.DIALLING_CUSTOMER:
            chan = pbx.model.channels.get(customer_id)
            if chan is not None and chan.state == _RINGING:
                self._progress(dial, "ringing")
                return
            await asyncio.sleep(_POLL_S)

    _channel = staticmethod(live_channel)
    _hang_up = staticmethod(hang_up_leg)

    async def _hang_up_all(self, pbx: Pbx, dial: _Dial) -> None:
        for uid in (dial.call_id, dial.call_id + CUSTOMER_LEG):
            if uid not in dial.gone:
                await self._hang_up(pbx, uid)

    # ------------------------------------------------------------------ the PBX's side

    def _on_leg_hung_up(self, e: ce.LegHungUp) -> None:
        call_id = e.uniqueid.removesuffix(CUSTOMER_LEG)
        dial = self._dials.get(call_id)
        if dial is not None and e.uniqueid not in dial.gone:
            dial.gone[e.uniqueid] = e.hung_up_by
            dial.changed.set()

    def _on_resynced(self, e: PbxResynced) -> None:
        """After a restart or an outage: an outbound call the journal says is live, whose legs are gone and
        that no task here follows, gets its end (unknown who hung up)."""
        pbx = self.calls.pbxes.get(e.pbx)
        if pbx is None:
            return
        for rec in list(self.recorder.projector.records.calls.values()):
            if rec.direction != "outbound" or rec.ended_at is not None or rec.call_id in self._dials:
                continue
            legs = (rec.call_id, rec.call_id + CUSTOMER_LEG)
            if any(self._channel(pbx, uid) for uid in legs) or not rec.parts:
                continue
            answered = rec.parts[0].answered_at is not None
            self.recorder.record(ev.OutboundEnded(rec.parts[0].agent_id, rec.call_id,
                                                  s.ANSWERED if answered else s.FAILED, "unknown", rec.queue))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

