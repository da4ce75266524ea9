"""A simulated channel and bridge: state, snapshot headers and the wait primitives apps block on.

The event ORDER is the contract (captures); durations are virtual and compressed by ``time_scale``.
A channel only needs the world's clock, so this module sits below world.py and imports nothing above it.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pbxsim import wire

HUNGUP = "\x00hangup"
INTERRUPTED = "\x00interrupt"
STREAM_STOPPED = "\x00stream-stop"  # AMI ControlPlayback stop reached a playback (or a WAIT FOR DIGIT)
UNKNOWN = "<unknown>"


@dataclass(slots=True)
class Audio:
    """Sound arriving on a channel from its far end (the caller speaking): [start, start+speech) is voice."""

    start: float
    speech: float
    wav: str | None = None


@dataclass(slots=True)
class Interrupt:
    """An outside request to pull a channel out of its application (Redirect, Bridge, hold...)."""

    kind: str  # "goto" | "bridge"
    context: str = ""
    exten: str = ""
    priority: int = 1


class Clock(Protocol):
    """Virtual time as the world keeps it: ``vnow()`` in epoch seconds, real waits scaled by ``time_scale``."""

    time_scale: float

    def vnow(self) -> float: ...


class ChannelObserver(Protocol):
    """Someone at the far end of a channel (an emulated caller, people.py), told what happens on it."""

    def prompt_started(self, chan: Channel, name: str, interruptible: bool) -> None: ...

    def input_wanted(self, chan: Channel, max_digits: int) -> None: ...

    def record_started(self, chan: Channel) -> None: ...

    def waiting_started(self, chan: Channel) -> None: ...

    def connected(self, chan: Channel, peer: Channel) -> None: ...

    def channel_gone(self, chan: Channel) -> None: ...


class Channel:
    def __init__(self, clock: Clock, name: str, uniqueid: str, linkedid: str, *, state: int,
                 context: str, exten: str, tech: str) -> None:
        self.clock = clock
        self.name = name
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.state = state
        self.tech = tech
        self.cid_num = UNKNOWN
        self.cid_name = UNKNOWN
        self.conn_num = UNKNOWN
        self.conn_name = UNKNOWN
        self.language = "en"
        self.accountcode = ""
        self.context = context
        self.exten = exten
        self.priority = 1
        self.variables: dict[str, str] = {}
        self.app = ""
        self.appdata = ""
        self.partner: Channel | None = None  # the other half of a Local pair
        self.is_one = False  # ';1' of a Local pair
        self.bridge: Bridge | None = None
        self.created = clock.vnow()
        self.answered_at: float | None = None
        self.hangup_cause: int | None = None
        self.hungup = False  # soft hangup requested: apps stop
        self.dead = False  # Hangup event sent
        self.pbx = False  # runs dialplan (pbx thread) rather than an Originate application
        self.interrupt: Interrupt | None = None
        self.digits: collections.deque[str] = collections.deque()
        self.audio: list[Audio] = []
        # A queued AST_CONTROL_STREAM_STOP: the playback (or WAIT FOR DIGIT) reading next takes it; the
        # FastAGI loop between commands reads and drops it (capture 24 B).
        self.stream_stop = False
        self.moh: str | None = None
        self.dialstring = ""  # for the Cdr / DialBegin
        self.hangup_device_state = "NOT_INUSE"  # DeviceStateChange sent with this channel's Hangup
        self.bridged_hangup = False  # hung up by AMI while bridged: the bridge, not the pbx, ends it
        self.late_callerid: tuple[str, str] | None = None  # (name, num) a Local half takes at hangup
        self.dial_ended = False  # DialEnd already sent for an originated channel
        self.last_app = ""
        self.last_data = ""
        self.device = ""  # DeviceStateChange device name
        self.task: asyncio.Task[Any] | None = None
        self.observers: list[ChannelObserver] = []  # people watching this channel (callers)
        self.agi_active = False
        # Bumped when AMI Bridge yanks the channel away from the program running it (an AGI): that program
        # now runs on a zombie and every wait it is in reports INTERRUPTED (see World.yank_into_bridge).
        self.pbx_gen = 0
        # An async goto already published the new place (with the old app): the first priority run
        # there gets no Newexten of its own (manager only reports a changed place; capture 07 A).
        self.skip_newexten = False
        self.default_cause: int | None = None  # cause of an AMI Hangup without Cause (16 once bridged)
        # Asterisk's hangup cause already set on a live channel: leaving a bridge alive sets 16 when none is
        # (channel_set_cause in bridge_channel.c); AMI Bridge of a channel in no bridge yanks it into a fresh
        # one, which has none. A phone's BYE then shows it on HangupRequest (capture 19 B), or nothing.
        self.cause_set = False
        self.spied_by: list[Channel] = []
        self.spying: Channel | None = None  # ChanSpy: the channel this one hears
        self.frames_in = 0  # audio frames written to this channel from outside (an AudioSocket server's)
        self.last_frame_in = 0.0
        self.sip_headers: list[tuple[str, str]] = []  # added to the INVITE by a pre-dial PJSIP_HEADER(add,...)
        self._signal = asyncio.Event()
        self.done = asyncio.Event()  # set once the Hangup event is out
        self.remote_busy = False
        self.remote_congested = False  # the far end ran Congestion(): Originate Reason 8 (capture 15)
        # CDR records beyond the first: Asterisk closes a record and opens a new one each time the channel
        # leaves a bridge alive or gets a new bridge peer (captures 06, 07: one Cdr per segment).
        self.cdr_extra = 0
        self.dialing = False  # its own Dial() holds it in the bridge: the pbx thread ends it
        self.held_by_app = False  # an app (app_queue) tears this leg down itself, not its Local partner
        self.originated = False  # created by AMI Originate (its record yields to an older bridge peer: 05 B)
        self.no_cdr = False  # a dialled leg's CDR is its caller's (capture 04: no Cdr for the agent ;1)

    # ------------------------------------------------------------------ headers
    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        pairs = [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", wire.STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.cid_num),
            ("CallerIDName", self.cid_name),
            ("ConnectedLineNum", self.conn_num),
            ("ConnectedLineName", self.conn_name),
            ("Language", self.language),
            ("AccountCode", self.accountcode),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]
        return wire.prefixed(prefix, pairs) if prefix else pairs

    def callerid_all(self) -> str:
        num = "" if self.cid_num == UNKNOWN else self.cid_num
        name = "" if self.cid_name == UNKNOWN else self.cid_name
        return f'"{name}" <{num}>'

    # ------------------------------------------------------------------ waiting
    def wake(self) -> None:
        self._signal.set()

    async def wait_for(self, seconds: float | None, *, digits: bool = False, controls: bool = False) -> str | None:
        """Wait virtual ``seconds``; return a digit (if wanted), HUNGUP, INTERRUPTED, STREAM_STOPPED (if
        ``controls``: a ControlPlayback stop queued on the channel) or None (timeout)."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + max(0.0, seconds) * self.clock.time_scale
        gen = self.pbx_gen
        while True:
            if self.hungup:
                return HUNGUP
            if self.interrupt is not None or self.pbx_gen != gen:
                return INTERRUPTED
            if digits and self.digits:
                return self.digits.popleft()
            if controls and self.stream_stop:
                self.stream_stop = False
                return STREAM_STOPPED
            self._signal.clear()
            if deadline is None:
                await self._signal.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._signal.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_signal(self) -> None:
        """Wait for the next wake-up of this channel (state change, bridge change, hangup...)."""
        if self.hungup or self.interrupt is not None:
            return
        self._signal.clear()
        await self._signal.wait()

    def heard_speech_until(self, now: float) -> tuple[bool, float | None]:
        """(speaking now?, end of the last voice heard) from the audio arriving on this channel."""
        speaking = False
        last_end: float | None = None
        for a in self.audio:
            end = a.start + a.speech
            if a.start <= now < end:
                speaking = True
            if a.start <= now:
                last_end = max(last_end or end, min(end, now))
        return speaking, last_end


def new_bridge_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class Bridge:
    uniqueid: str
    channels: list[Channel] = field(default_factory=list)
    kind: str = "basic"  # basic | holding (parking)
    technology: str = "simple_bridge"
    dissolve_on_hangup: bool = True
    by_dial: bool = False  # made by Dial(): a Redirect out of it reports the old app at the new place (07 A)
    # Set on an attended transfer's second bridge: it merges into the first when a member hangs up in it (the
    # transferer, 06 C). The world knows the moment, transfers.py knows the merge: called with (this, member).
    merge_on_hangup: Callable[[Bridge, Channel], None] | None = None
    creator: str = "<unknown>"
    name: str = "<unknown>"
    persistent: bool = False  # a parking lot's holding bridge outlives its members
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def pairs(self, prefix: str = "", count: int | None = None) -> list[tuple[str, str]]:
        pairs = [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", self.kind),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", self.creator),
            ("BridgeName", self.name),
            ("BridgeNumChannels", str(len(self.channels) if count is None else count)),
            ("BridgeVideoSourceMode", "none"),
        ]
        return wire.prefixed(prefix, pairs) if prefix else pairs
