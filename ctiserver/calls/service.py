"""Calls: each PBX's AMI link and call model, and the call facts they yield.

The call model is the one owner of what the PBX says (channels, bridges, phases). This slice feeds it the
AMI stream, publishes its events on the bus, journals the facts a call's record needs (arrived, connected,
ended: with who hung up, and whether the end was seen or inferred), and applies what other rooms ask of
the model through their events: the ACD's offers name the agent leg the model must expect, its call states
say when the caller waits for us.

After a restart or a dropped AMI link it reconciles: a call the journal holds as live that the PBX no
longer has gets exactly one end, inferred, bounded by when it was last seen alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from acd import decisions as d

from ..ami.link import AmiLink, LinkState
from ..ami.pool import AmiPool
from ..ami.resync import PbxSnapshot, resync_hook
from ..bus import EventBus
from ..callmodel import events as ce
from ..callmodel.model import UNUSED_EVENTS, Call, CallModel, resync
from ..control import CallControl
from ..journal import facts as f
from ..projections.recorder import Recorder
from . import legs

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = "cti-fallback"  # asterisk-config/extensions.conf: where calls go when the CTI is gone
_QUEUED_STATES = frozenset({"waiting", "callback", "offered", "ringing"})


@dataclass(frozen=True, slots=True)
class PbxSettings:
    name: str
    host: str
    port: int
    username: str
    secret: str


@dataclass(slots=True)
class Pbx:
    name: str
    link: AmiLink
    model: CallModel
    control: CallControl
    down_since: float | None = None  # last seen alive, while the link is down
    synced: bool = False  # resynced at least once by this process


@dataclass(frozen=True, slots=True)
class PbxResynced:
    """Published after the model matches the PBX again (first connect, or after the link was down).
    `gone_since`: since when we did not watch (a restart: the previous process's last fact)."""

    pbx: str
    gone_since: float | None


@dataclass(frozen=True, slots=True)
class LineAgentLeg:
    """An agent's leg is being originated (ChannelId `leg_id`) to be bridged to line `call_id`, which the CTI
    placed itself (a campaign's): one call, as an ACD offer's leg is one with its caller."""

    call_id: str
    leg_id: str


class CallsService:
    def __init__(
        self,
        pbxes: tuple[PbxSettings, ...],
        bus: EventBus,
        recorder: Recorder,
        clock: Callable[[], float],
        *,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
        last_alive: float | None = None,
        fallback_scan_s: float = 1.0,
    ) -> None:
        self.fallback_scan_s = fallback_scan_s  # the safety net; a reconnect scans at once
        self.bus = bus
        self.recorder = recorder
        self.clock = clock
        self.pool = AmiPool()
        self.pbxes: dict[str, Pbx] = {}
        self._last_alive = last_alive  # the previous process's last journaled fact
        self._take_backs: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        for p in pbxes:
            self._add(p, action_timeout, ping_interval)
            # Until its link is up, this process cannot steer the PBX, whatever the journal last said: no
            # offers there (they would fail at once, agent after agent) until the link is up and resynced.
            recorder.record(f.PbxLinkChanged(p.name, False))
        bus.subscribe(ce.CallArrived, self._on_arrived)
        bus.subscribe(ce.CallConnected, self._on_connected)
        bus.subscribe(ce.CallEnded, self._on_ended)
        bus.subscribe(ce.PbxShutdown, self._on_shutdown)
        bus.subscribe(d.Offer, self._on_offer)
        bus.subscribe(d.CallStateChanged, self._on_acd_call_state)
        bus.subscribe(LineAgentLeg, self._on_line_agent_leg)

    # ------------------------------------------------------------------ links and models

    def _add(self, p: PbxSettings, action_timeout: float, ping_interval: float) -> None:
        model = CallModel(p.name)
        publish = self.bus.publish_all
        clock = self.clock

        def on_event(msg: Any) -> None:
            publish(model.apply(msg, clock()))

        link = AmiLink(p.name, p.host, p.port, p.username, p.secret, on_event=on_event,
                       on_connected=resync_hook(self._on_snapshot), action_timeout=action_timeout,
                       ping_interval=ping_interval, ignore_events=UNUSED_EVENTS)
        pbx = Pbx(p.name, link, model, CallControl(link))
        link.state_listeners.append(partial(self._on_link_state, pbx))
        self.pool.add(link)
        self.pbxes[p.name] = pbx

    def _on_link_state(self, pbx: Pbx, state: LinkState) -> None:
        if state is LinkState.UP:
            self.recorder.record(f.PbxLinkChanged(pbx.name, True))
            self.scan_fallback()  # the resync is done: callers in the fallback come back now, not in a second
        elif pbx.down_since is None and pbx.synced and state in (LinkState.CONNECTING, LinkState.CLOSED):
            pbx.down_since = self.clock()
            self.recorder.record(f.PbxLinkChanged(pbx.name, False))

    def _on_snapshot(self, snap: PbxSnapshot) -> None:
        pbx = self.pbxes[snap.pbx]
        gone_since = pbx.down_since if pbx.synced else self._last_alive
        now = self.clock()
        self.bus.publish_all(resync(pbx.model, list(snap.channels), now,
                                    gone_since=gone_since if gone_since is not None else now))
        pbx.down_since = None
        pbx.synced = True
        self._end_unseen(pbx, gone_since, now)
        if snap.contacts is not None:
            self.bus.publish_all(pbx.model.contacts_listed(snap.contacts, now))
        self.bus.publish(PbxResynced(pbx.name, gone_since))

    def _end_unseen(self, pbx: Pbx, gone_since: float | None, now: float) -> None:
        """Calls the journal holds as live on this PBX that the PBX does not have: they ended unwatched."""
        reason = "server_down" if gone_since is not None and gone_since == self._last_alive else "link_down"
        for rec in list(self.recorder.projector.records.calls.values()):
            if rec.live and rec.pbx == pbx.name and self._model_call(pbx, rec.call_id) is None:
                self.recorder.record(f.CallEnded(rec.call_id, 0, "", "unknown", False,
                                                 gone_since if gone_since is not None else now, reason))

    @staticmethod
    def _model_call(pbx: Pbx, call_id: str) -> Call | None:
        call = pbx.model.calls.get(call_id)
        return call if call is not None and call.ended_at is None else None

    # ------------------------------------------------------------------ model events -> facts

    def _on_arrived(self, e: ce.CallArrived) -> None:
        # A leg of our own seen first (an offer still ringing after a restart, a click-to-call) is no caller.
        # The customer's leg of an outbound call runs a dialplan too (Local/<n>@cti-customer;2): its call is
        # named by our leg's ChannelId, so it is ours as well.
        if not legs.ours(e.uniqueid) and not legs.ours(e.call_id) \
                and self.recorder.projector.records.get(e.call_id) is None:
            self.recorder.record(f.CallArrived(e.call_id, e.pbx, e.channel, e.caller_num, e.caller_name, e.dialed))

    def _on_connected(self, e: ce.CallConnected) -> None:
        if self._known(e.call_id):
            self.recorder.record(f.CallConnected(e.call_id, e.peer_channel, e.peer_uniqueid))

    def _on_ended(self, e: ce.CallEnded) -> None:
        if not self._known(e.call_id):
            return  # not a call of the centre's (an agent leg of its own, a supervisor's spy) or ended
        self.recorder.record(f.CallEnded(e.call_id, e.cause, e.cause_txt, e.hung_up_by, e.observed,
                                         e.not_before, e.reason))

    def _on_shutdown(self, e: ce.PbxShutdown) -> None:
        self.recorder.record(f.PbxRestarting(e.pbx))

    def _known(self, call_id: str) -> bool:
        """A live call of the centre's whose facts come from here: not an outbound call (ctiserver.outbound
        journals its own steps and end)."""
        rec = self.recorder.projector.records.get(call_id)
        return rec is not None and rec.live and rec.direction != "outbound"

    # ------------------------------------------------------------------ what others ask of the model

    def _on_offer(self, offer: d.Offer) -> None:
        pbx = self.pbx_of(offer.call_id)
        if pbx is not None:
            pbx.model.expect_leg(offer.leg_id, offer.call_id)

    def _on_line_agent_leg(self, e: LineAgentLeg) -> None:
        pbx = self.pbx_of(e.call_id)
        if pbx is not None:
            self.bus.publish_all(pbx.model.expect_line_agent(e.call_id, e.leg_id, self.clock()))

    def _on_acd_call_state(self, e: d.CallStateChanged) -> None:
        pbx = self.pbx_of(e.call_id)
        if pbx is None:
            return
        if e.new in _QUEUED_STATES or e.new in ("connected", "held", "ended"):
            # The caller waits for us while the ACD holds them in line; not once bridged or gone.
            self.bus.publish_all(pbx.model.mark_queued(e.call_id, e.new in _QUEUED_STATES, self.clock()))

    def mark_waiting(self, call_id: str) -> None:
        pbx = self.pbx_of(call_id)
        if pbx is not None:
            self.bus.publish_all(pbx.model.mark_queued(call_id, True, self.clock()))

    async def hang_up(self, pbx: Pbx, channel: str) -> None:
        """Hang a channel up for someone of the centre (an agent's hang-up button). The model hears it
        before Asterisk does: nothing on AMI says who asked (capture 17, step 4)."""
        pbx.model.hangup_requested(channel)
        await pbx.control.hangup(channel)

    # ------------------------------------------------------------------ queries

    def pbx_of(self, call_id: str) -> Pbx | None:
        rec = self.recorder.projector.records.get(call_id)
        if rec is not None and rec.pbx in self.pbxes:
            return self.pbxes[rec.pbx]
        for pbx in self.pbxes.values():
            if call_id in pbx.model.calls:
                return pbx
        return next(iter(self.pbxes.values()), None)

    def channel_name(self, call_id: str, uniqueid: str) -> str | None:
        """The live channel with this uniqueid (an agent leg's ChannelId), on the call's PBX."""
        pbx = self.pbx_of(call_id)
        ch = pbx.model.channels.get(uniqueid) if pbx is not None else None
        return ch.name if ch is not None and ch.alive else None

    def channel_context(self, call_id: str, uniqueid: str) -> str | None:
        """The dialplan context a live channel of the call's PBX last reported (its place to go on from)."""
        pbx = self.pbx_of(call_id)
        ch = pbx.model.channels.get(uniqueid) if pbx is not None else None
        return ch.context if ch is not None and ch.alive else None

    def caller_channel(self, call_id: str) -> str | None:
        pbx = self.pbx_of(call_id)
        call = pbx.model.calls.get(call_id) if pbx is not None else None
        leg = call.caller_leg if call is not None else None
        return leg.name if leg is not None and leg.alive else None

    async def find_call(self, uniqueid: str, timeout: float = 2.0) -> tuple[Pbx, str] | None:
        """The call a FastAGI channel belongs to. AMI and FastAGI are separate sockets (events caused by
        AGI may arrive before or after), so give the AMI stream a moment to catch up."""
        deadline = self.clock() + timeout
        while True:
            for pbx in self.pbxes.values():
                call = pbx.model.call_of(uniqueid)
                if call is not None:
                    return pbx, call.call_id
            if self.clock() >= deadline:
                return None
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ callers the CTI lost

    def scan_fallback(self) -> list[str]:
        """Callers whose FastAGI session died (with a previous CTI process, or a crash) went on to the
        dialplan's fallback: captures 13 and 13b, Asterisk never reconnects an AGI. Send each back to
        waiting, twice at most so a broken wait script cannot bounce a caller forever; CTI_QUEUE on the
        channel says which queue they were in. Returns the channels being taken back."""
        taken: list[str] = []
        for pbx in self.pbxes.values():
            if not pbx.link.is_up:
                continue
            for call in pbx.model.live_calls():
                leg = call.caller_leg
                # A caller in a bridge is with somebody: after a restart the ACD may connect a caller who
                # still hears the fallback's music (an AMI Bridge leaves its dialplan place as it was).
                if leg is None or leg.context != FALLBACK_CONTEXT or leg.bridge is not None:
                    continue
                tries = self._take_backs.get(leg.uniqueid, 0)
                if tries < 2:
                    self._take_backs[leg.uniqueid] = tries + 1
                    task = asyncio.get_running_loop().create_task(self._take_back(pbx, leg.name))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    taken.append(leg.name)
        return taken

    async def _take_back(self, pbx: Pbx, channel: str) -> None:
        try:
            await pbx.control.redirect(channel, "cti-wait", "s")
            log.info("took %s back from the fallback into the ACD", channel)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.warning("could not take back %s: %s", channel, e)

    async def run_fallback_scan(self) -> None:
        while True:
            await asyncio.sleep(self.fallback_scan_s)
            self.scan_fallback()
            if len(self._take_backs) > 10_000:
                self._take_backs.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.pool.close()
