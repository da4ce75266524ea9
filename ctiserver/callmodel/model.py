"""The live call model: a pure state machine fed AMI messages, returning domain events.

It knows every channel, which call each belongs to, the bridges, and derives each call's phase from those
facts (the caller's application, music on hold, bridges, ringing legs). Deriving the phase from facts,
rather than from a memory of past events, is what lets a resync after a dropped AMI link (CoreShowChannels)
land on the same answer as an uninterrupted event stream.

Identity: a call's ``call_id`` is the Linkedid of its first channel when it arrived. Asterisk rewrites a
channel's Linkedid when it is bridged into an older call (capture 05 B: the originated agent leg takes the
caller's Linkedid at BridgeEnter); the model then moves that channel into the older call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from ..ami.protocol import Message
from .events import (
    CallArrived,
    CallConnected,
    CallEnded,
    CallHeld,
    CallPhaseChanged,
    CallResumed,
    CallTransferred,
    LegHungUp,
    LegRinging,
    PbxContactChanged,
    PbxContactsListed,
    PbxShutdown,
)
from .states import CallPhase, IllegalTransition, check_transition

P = CallPhase
# The phases as plain module constants: an attribute of an Enum class costs ~100 ns a lookup (EnumType),
# and _derive/_rederive run on most events.
_ARRIVING = P.ARRIVING
_IVR = P.IVR
_QUEUED = P.QUEUED
_OFFERED = P.OFFERED
_CONNECTED = P.CONNECTED
_ON_HOLD = P.ON_HOLD
_ENDED = P.ENDED
UP = 6
RINGING = 5
# ChannelState as it comes on the wire; int() is the fallback for anything else (and still raises on junk).
_STATES = {str(n): n for n in range(11)}
# The channel snapshot every channel event carries (EVENT-CATALOG.md), read in one C call.
_SNAPSHOT = itemgetter(
    "ChannelState", "CallerIDNum", "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Context", "Exten",
    "Linkedid",
)

# Applications in which a caller is waiting for us, without music from our IVR.
_WAITING_APPS = frozenset({"MusicOnHold", "Queue", "Wait", "WaitForCondition"})
# The ;1 half of a dialled or originated Local pair shows these instead of a real application.
_DIAL_HALF_APPS = frozenset({"AppDial", "AppDial2"})
# The caller's application as _derive sees it; moving between two applications of one class (Set, NoOp,
# Gosub ... all "other") changes no phase. "" (not announced yet) is a class of its own.
_APP_CLASS = {"": 0, "Dial": 1, "Queue": 2, "MusicOnHold": 3, "Wait": 4, "WaitForCondition": 4, "AGI": 5}
_OTHER_APP = 6


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    call_id: str
    created_at: float
    state: int = 0
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    app_data: str = ""
    bridge: str | None = None
    moh: bool = False
    held: bool = False
    was_bridged: bool = False
    dial_answered: bool = False  # the far end of a Dial answered (DialEnd ANSWER)
    parked: bool = False
    offer_leg: bool = False  # originated by the CTI for this call (expect_leg): an agent being offered it
    dialing: bool = False  # a DialBegin with this channel as the destination, no DialEnd yet
    queue: str | None = None  # inside app_queue
    answered_at: float | None = None
    hungup_at: float | None = None
    cause: int = 0
    cause_txt: str = ""
    end_signal: int = 0  # order of this channel's first sign of ending (hang-up request or Hangup); 0: none
    shutdown: bool = False  # hung up by the PBX shutting down (SoftHangupRequest Cause 4)

    @property
    def alive(self) -> bool:
        return self.hungup_at is None

    @property
    def alerting(self) -> bool:
        return self.alive and self.state != UP and (self.state == RINGING or self.dialing)


@dataclass(slots=True)
class Call:
    call_id: str
    pbx: str
    origin: str  # uniqueid of the first channel
    caller: str  # uniqueid of the caller's leg: the channel that runs the inbound dialplan
    arrived_at: float
    legs: dict[str, Channel] = field(default_factory=dict)
    phase: CallPhase = P.ARRIVING
    times: dict[CallPhase, float] = field(default_factory=dict)
    announced: bool = False  # CallArrived published
    queued: bool = False  # the ACD holds this caller (our waiting loop runs inside FastAGI)
    peer: str | None = None  # uniqueid of the party the caller is connected to
    ever_connected: bool = False
    pending_transfer: str | None = None  # "blind"/"attended" seen on AMI, applied at the next connect
    ended_at: float | None = None
    cause: int = 0
    cause_txt: str = ""
    anomalies: int = 0
    connect_mark: int = 0  # hang-up signals up to this number came before the current connection
    tearing_down: bool = False  # the caller's party is hanging up: no false phase until a real one
    caller_leaving: bool = False  # the caller's side is hanging up: the phase holds until the end
    # A fact _derive reads may have changed since the last _rederive. While False, an event that changes
    # none of those facts skips the rederive, which would return nothing: NewCallerid, NewConnectedLine,
    # a Newexten that keeps the caller's application class, the state or Dial of the caller's own legs
    # (10 rederives a call in a burst became 6, README 09). tests/callmodel/test_rederive_skips.py holds
    # the model to it.
    stale: bool = field(default=True, repr=False, compare=False)

    @property
    def caller_leg(self) -> Channel | None:
        return self.legs.get(self.caller)

    @property
    def answered_at(self) -> float | None:
        leg = self.caller_leg
        return leg.answered_at if leg else None


def _local_base(name: str) -> str | None:
    """``Local/5551000@from-pstn-00000000;2`` -> ``Local/5551000@from-pstn-00000000``."""
    if name.startswith("Local/") and name[-2:] in (";1", ";2"):
        return name[:-2]
    return None


class CallModel:
    """Feed ``apply(message, now)``; read ``calls``, ``channels``, ``bridges``; publish what it returns."""

    def __init__(self, pbx: str = "pbx1", *, keep_ended: int = 1000) -> None:
        self.pbx = pbx
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[str]] = {}
        self.by_name: dict[str, str] = {}
        self._by_linkedid: dict[str, str] = {}
        # call_id -> the other _by_linkedid keys that were pointed at it (expect_leg, _move), so ending a
        # call does not scan every live call's Linkedid.
        self._aliases: dict[str, list[str]] = {}
        self._expected: dict[str, str] = {}  # uniqueid we chose (Originate ChannelId) -> call_id
        self.ended: dict[str, Call] = {}
        self._keep_ended = keep_ended
        self.anomalies = 0
        self._signals = 0  # numbers hang-up signals in arrival order
        self.shutting_down = False  # Asterisk announced a shutdown or restart
        self._handlers = {
            "Newchannel": self._newchannel,
            "Newstate": self._touch_only,
            "NewCallerid": self._touch_only,
            "NewConnectedLine": self._touch_only,
            "Newexten": self._newexten,
            "Hangup": self._hangup,
            "HangupRequest": self._hangup_request,
            "SoftHangupRequest": self._hangup_request,
            "Shutdown": self._shutdown,
            "ContactStatus": self._contact_status,
            "BridgeCreate": self._bridge_create,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "BridgeDestroy": self._bridge_destroy,
            "BridgeMerge": self._bridge_merge,
            "MusicOnHoldStart": self._moh_start,
            "MusicOnHoldStop": self._moh_stop,
            "Hold": self._hold,
            "Unhold": self._unhold,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "QueueCallerJoin": self._queue_join,
            "QueueCallerLeave": self._queue_leave,
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            "Rename": self._rename,
            "ParkedCall": self._parked,
            "UnParkedCall": self._unparked,
            "ParkedCallGiveUp": self._unparked,
            "ParkedCallTimeOut": self._unparked,
        }

    # ------------------------------------------------------------------ queries

    def call_of(self, uniqueid: str) -> Call | None:
        ch = self.channels.get(uniqueid)
        return self.calls.get(ch.call_id) if ch else None

    def call_of_channel(self, name: str) -> Call | None:
        uid = self.by_name.get(name)
        return self.call_of(uid) if uid else None

    def live_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.phase is not _ENDED]

    def snapshot(self) -> dict[str, object]:
        """What the model believes, in a form a test can compare with the PBX's truth."""
        return {
            "channels": {
                u: {"name": c.name, "call": c.call_id, "state": c.state, "bridge": c.bridge}
                for u, c in sorted(self.channels.items())
            },
            "calls": {cid: c.phase.value for cid, c in sorted(self.calls.items())},
            "bridges": {b: sorted(m) for b, m in sorted(self.bridges.items()) if m},
        }

    # ------------------------------------------------------------------ inputs from the CTI itself

    def expect_leg(self, uniqueid: str, call_id: str) -> None:
        """An Originate with ``ChannelId: uniqueid`` is on its way for this call (an agent's leg)."""
        self._expected[uniqueid] = call_id
        self._by_linkedid[uniqueid] = call_id
        self._aliases.setdefault(call_id, []).append(uniqueid)

    def expect_line_agent(self, call_id: str, leg_id: str, now: float) -> list[object]:
        """The CTI is about to originate an agent's leg (``ChannelId: leg_id``) and bridge it to a line it
        placed itself (``ChannelId: call_id``, a campaign's). The line's own channel runs our dialplan, so it
        is the caller's leg, even when the trunk is a Local pair whose ;2 half plays the far end."""
        self.expect_leg(leg_id, call_id)
        call = self.calls.get(call_id)
        if call is None or call.origin != call_id or call.caller == call.origin:
            return []
        call.caller = call.origin
        call.stale = True
        return self._rederive(call, now)

    def hangup_requested(self, name: str) -> None:
        """The CTI is about to hang this channel up (AMI Hangup: an agent's hang-up button). Asterisk shows
        no request on the target of an AMI Hangup, and the partner's own dialplan hang-up comes before the
        target's Hangup event (capture 17, step 4), so this is the first sign of who ended the call."""
        uid = self.by_name.get(name)
        ch = self.channels.get(uid) if uid else None
        if ch is not None and ch.alive:
            self._signal(ch)

    def mark_queued(self, call_id: str, queued: bool, now: float) -> list[object]:
        call = self.calls.get(call_id)
        if call is None or call.queued == queued:
            return []
        call.queued = queued
        return self._rederive(call, now)

    # ------------------------------------------------------------------ the event feed

    def apply(self, msg: Message, now: float) -> list[object]:
        handler = self._handlers.get(msg.get("Event", ""))
        if handler is None:
            return []
        return handler(msg, now)

    def apply_all(self, msgs: Iterable[Message], now: float) -> list[object]:
        out: list[object] = []
        for m in msgs:
            out.extend(self.apply(m, now))
        return out

    # ------------------------------------------------------------------ channel life

    def _newchannel(self, m: Message, now: float) -> list[object]:
        uid = m.get("Uniqueid", "")
        if not uid or uid in self.channels:
            return self._touch_only(m, now)
        name = m.get("Channel", "")
        linkedid = m.get("Linkedid", uid)
        expected = self._expected.pop(uid, None)
        call_id = expected or self._by_linkedid.get(linkedid)
        out: list[object] = []
        if call_id is None or call_id not in self.calls:
            call_id = linkedid
            self.calls[call_id] = Call(call_id, self.pbx, origin=uid, caller=uid, arrived_at=now)
            self._by_linkedid[linkedid] = call_id
        call = self.calls[call_id]
        ch = Channel(uid, name, linkedid, call_id, now)
        ch.offer_leg = expected is not None and expected == call_id
        self._update(ch, m, now)
        self.channels[uid] = ch
        self.by_name[name] = uid
        call.legs[uid] = ch
        call.stale = True
        # A Local pair originated as the caller's phone: ;1 is the phone, ;2 runs the inbound dialplan
        # and is the leg the CTI steers (README: "Local channels, Uniqueid and Linkedid").
        base = _local_base(name)
        if base and name.endswith(";2"):
            origin = call.legs.get(call.origin)
            if origin and origin.name == base + ";1" and call.caller == call.origin:
                call.caller = uid
        return out

    def _touch_only(self, m: Message, now: float) -> list[object]:
        uid = m.get("Uniqueid")
        ch = self.channels.get(uid) if uid else None
        if ch is None:
            return []
        state_changed = self._update(ch, m, now)
        call = self.calls.get(ch.call_id)
        if call is None:
            return []
        # The state of a leg other than the caller's (and the origin's) tells whether it rings.
        if call.stale or (state_changed and uid != call.caller and uid != call.origin):
            return self._rederive(call, now)
        return []

    def _newexten(self, m: Message, now: float) -> list[object]:
        uid = m.get("Uniqueid")
        ch = self.channels.get(uid) if uid else None
        if ch is None:
            return []
        state_changed = self._update(ch, m, now)
        app = m.get("Application", "")
        old_app = ch.application
        if app not in _DIAL_HALF_APPS:
            ch.application = app
            ch.app_data = m.get("AppData", "")
        call = self.calls.get(ch.call_id)
        if call is None:
            return []
        if call.stale:
            return self._rederive(call, now)
        if uid == call.caller:
            # Only the caller's application counts, and only its class.
            if app != old_app and app not in _DIAL_HALF_APPS and (
                _APP_CLASS.get(app, _OTHER_APP) != _APP_CLASS.get(old_app, _OTHER_APP)
            ):
                return self._rederive(call, now)
        elif state_changed and uid != call.origin:
            return self._rederive(call, now)
        return []

    def _hangup_request(self, m: Message, now: float) -> list[object]:
        """HangupRequest (the channel's driver queued a hang-up: a BYE, a Local partner gone) or
        SoftHangupRequest (something hangs it up: its dialplan ended, Cause 16 = AST_SOFTHANGUP_APPUNLOAD;
        the PBX shuts down, Cause 4 = AST_SOFTHANGUP_SHUTDOWN). The first one of a call tells who hung up."""
        ch = self.channels.get(m.get("Uniqueid", ""))
        if ch is None or not ch.alive:
            return []
        if m.get("Event") == "SoftHangupRequest" and m.get("Cause") == "4":
            ch.shutdown = True
        self._signal(ch)
        return self._touch_only(m, now)  # it carries the channel's snapshot, like any channel event

    def _signal(self, ch: Channel) -> None:
        if ch.end_signal:
            return
        self._signals += 1
        ch.end_signal = self._signals
        call = self.calls.get(ch.call_id)
        if call is None:
            return
        if ch.uniqueid in (call.caller, call.origin):
            call.caller_leaving = call.stale = True  # the phase now holds: a fact _derive's caller reads
        elif call.peer is not None and ch.bridge is not None and call.caller_leg is not None \
                and ch.bridge == call.caller_leg.bridge:
            call.tearing_down = call.stale = True

    @staticmethod
    def _party(call: Call) -> set[str]:
        if call.peer is None:
            return {u for u in call.legs if u not in (call.caller, call.origin)}
        peer = call.legs.get(call.peer)
        party = {call.peer}
        base = _local_base(peer.name) if peer is not None else None
        if base is not None:
            party.update(u for u, leg in call.legs.items() if _local_base(leg.name) == base)
        return party

    def _shutdown(self, m: Message, now: float) -> list[object]:
        self.shutting_down = True
        return [PbxShutdown(self.pbx, m.get("Restart") == "True", now)]

    def _contact_status(self, m: Message, now: float) -> list[object]:
        # Passed on as said, even when incomplete: the phones' owner judges it (and says why it does not count).
        return [PbxContactChanged(self.pbx, m.get("EndpointName", ""), m.get("URI", ""), m.get("ContactStatus", ""), now)]

    def contacts_listed(self, entries: Iterable[Message], now: float) -> list[object]:
        """A fresh PJSIPShowContacts listing (ContactList events; capture 33): the PBX's whole view of its
        phones, which a CTI that just (re)connected cannot have from ContactStatus. ContactList names the
        fields differently from ContactStatus: ``Endpoint``, ``Uri`` and ``Status``."""
        contacts = tuple(PbxContactChanged(self.pbx, e.get("Endpoint", ""), e.get("Uri", ""), e.get("Status", ""), now)
                         for e in entries)
        return [PbxContactsListed(self.pbx, contacts, now)]

    def hung_up_by(self, call: Call) -> str:
        """Whose side ended the caller's current connection: the side whose channel gave the first sign
        of ending since the connection was made. The party's side is the channel the caller is connected
        to and its Local partner; another leg of the call going away (the first agent after a transfer)
        is not the end of this connection."""
        if self.shutting_down or any(leg.shutdown for leg in call.legs.values()):
            return "unknown"
        party = self._party(call)
        caller_first = other_first = 0
        for leg in call.legs.values():
            sig = leg.end_signal
            if sig <= call.connect_mark:
                continue
            if leg.uniqueid in (call.caller, call.origin):
                caller_first = sig if not caller_first else min(caller_first, sig)
            elif leg.uniqueid in party:
                other_first = sig if not other_first else min(other_first, sig)
        if caller_first and (not other_first or caller_first < other_first):
            return "caller"
        if other_first:
            return "agent"
        return "unknown"

    def _hangup(self, m: Message, now: float, *, not_before: float | None = None) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None or not ch.alive:
            return []
        observed = not_before is None
        if observed:
            self._signal(ch)  # a Hangup with no request before it (an AMI Hangup) is a sign of its own
        ch.hungup_at = now
        ch.cause = int(m.get("Cause", "0") or 0)
        ch.cause_txt = m.get("Cause-txt", "")
        if ch.bridge is not None:
            self._stale_bridge(ch.bridge)
            self.bridges.get(ch.bridge, set()).discard(ch.uniqueid)
            ch.bridge = None
        call = self.calls[ch.call_id]
        is_caller = ch.uniqueid in (call.caller, call.origin)
        side = self.hung_up_by(call) if observed else "unknown"
        restart = self.shutting_down or ch.shutdown
        reason = "pbx_restart" if restart else "" if observed else "link_down"
        out: list[object] = [
            LegHungUp(call.call_id, ch.name, ch.uniqueid, ch.cause, ch.cause_txt, is_caller, now, side,  # type: ignore[arg-type]
                      observed and not restart, not_before, reason)
        ]
        del self.channels[ch.uniqueid]
        if self.by_name.get(ch.name) == ch.uniqueid:
            del self.by_name[ch.name]
        out.extend(self._rederive(call, now, not_before=not_before))
        for leg in call.legs.values():
            if leg.hungup_at is None:
                break
        else:
            self._forget(call)
        return out

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        call_id = call.call_id
        by_linkedid = self._by_linkedid
        for lid in (call_id, *self._aliases.pop(call_id, ())):
            if by_linkedid.get(lid) == call_id:
                del by_linkedid[lid]
        self.ended[call.call_id] = call
        if len(self.ended) > self._keep_ended:
            del self.ended[next(iter(self.ended))]

    def _rename(self, m: Message, now: float) -> list[object]:
        ch = self.channels.get(m.get("Uniqueid", ""))
        if ch:
            self.by_name.pop(ch.name, None)
            ch.name = m.get("Newname", ch.name)
            self.by_name[ch.name] = ch.uniqueid
        return []

    # ------------------------------------------------------------------ bridges

    def _bridge_create(self, m: Message, now: float) -> list[object]:
        self.bridges.setdefault(m.get("BridgeUniqueid", ""), set())
        return []

    def _bridge_enter(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        bid = m.get("BridgeUniqueid", "")
        if ch.bridge and ch.bridge != bid:
            self._stale_bridge(ch.bridge)
            self.bridges.get(ch.bridge, set()).discard(ch.uniqueid)
        self._stale_bridge(bid)
        self._stale_channel(ch)
        ch.bridge = bid
        ch.was_bridged = True
        if ch.application == "AGI":
            # An AMI Bridge pulls the channel out of its AGI (the session ends); after the bridge it goes
            # on in the dialplan, so the AGI it was in is no fact any more.
            ch.application = ""
        self.bridges.setdefault(bid, set()).add(ch.uniqueid)
        return self._rederive_bridge(bid, now, extra=ch)

    def _bridge_leave(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        bid = m.get("BridgeUniqueid", "")
        self._stale_bridge(bid)
        self._stale_channel(ch)
        self.bridges.get(bid, set()).discard(ch.uniqueid)
        if ch.bridge == bid:
            ch.bridge = None
        return self._rederive_bridge(bid, now, extra=ch)

    def _bridge_destroy(self, m: Message, now: float) -> list[object]:
        bid = m.get("BridgeUniqueid", "")
        self._stale_bridge(bid)
        members = self.bridges.pop(bid, set())
        for uid in members:
            ch = self.channels.get(uid)
            if ch:
                ch.bridge = None
        return []

    def _bridge_merge(self, m: Message, now: float) -> list[object]:
        to, frm = m.get("ToBridgeUniqueid", ""), m.get("FromBridgeUniqueid", "")
        self._stale_bridge(to)
        self._stale_bridge(frm)
        # An attended transfer completes by merging bridges; AttendedTransfer itself comes after
        # BridgeMerge (README: event ordering), too late to name the transfer we are about to see.
        for uid in (*self.bridges.get(to, ()), *self.bridges.get(frm, ())):
            ch = self.channels.get(uid)
            call = self.calls.get(ch.call_id) if ch else None
            if call is not None and call.ever_connected:
                call.pending_transfer = "attended"
        moved = self.bridges.pop(frm, set())
        dest = self.bridges.setdefault(to, set())
        for uid in moved:
            dest.add(uid)
            ch = self.channels.get(uid)
            if ch:
                ch.bridge = to
        return self._rederive_bridge(to, now)

    def _rederive_bridge(self, bid: str, now: float, extra: Channel | None = None) -> list[object]:
        out: list[object] = []
        seen: set[str] = set()
        members = [self.channels[u] for u in self.bridges.get(bid, ()) if u in self.channels]
        if extra is not None:
            members.append(extra)
        for ch in members:
            if ch.call_id not in seen and ch.call_id in self.calls:
                seen.add(ch.call_id)
                out.extend(self._rederive(self.calls[ch.call_id], now))
        return out

    # ------------------------------------------------------------------ music, hold, dial, queue, transfer

    def _moh_start(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.moh = True
        return self._after_change(ch, now)

    def _moh_stop(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.moh = False
        return self._after_change(ch, now)

    def _hold(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.held = True
        return self._after_change(ch, now)

    def _unhold(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.held = False
        return self._after_change(ch, now)

    def _parked(self, m: Message, now: float) -> list[object]:
        return self._set_parked(m.get("ParkeeUniqueid", ""), True, now)

    def _unparked(self, m: Message, now: float) -> list[object]:
        return self._set_parked(m.get("ParkeeUniqueid", ""), False, now)

    def _set_parked(self, uid: str, parked: bool, now: float) -> list[object]:
        ch = self.channels.get(uid)
        if ch is None:
            return []
        ch.parked = parked
        return self._after_change(ch, now)

    def _dial_begin(self, m: Message, now: float) -> list[object]:
        dest = self.channels.get(m.get("DestUniqueid", ""))
        if dest is None:
            return []
        dest.dialing = True
        return self._after_leg_change(dest, now)

    def _dial_end(self, m: Message, now: float) -> list[object]:
        dest = self.channels.get(m.get("DestUniqueid", ""))
        if dest is None:
            return []
        dest.dialing = False
        dest.dial_answered = m.get("DialStatus") == "ANSWER"
        return self._after_leg_change(dest, now)

    def _queue_join(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.queue = m.get("Queue")
        return self._after_change(ch, now)

    def _queue_leave(self, m: Message, now: float) -> list[object]:
        ch = self._channel_for(m, now)
        if ch is None:
            return []
        ch.queue = None
        return self._after_change(ch, now)

    def _blind_transfer(self, m: Message, now: float) -> list[object]:
        if m.get("Result") == "Success":
            ch = self.channels.get(m.get("TransfereeUniqueid", ""))
            call = self.calls.get(ch.call_id) if ch else None
            if call:
                call.pending_transfer = "blind"
                call.stale = True
        return []

    def _attended_transfer(self, m: Message, now: float) -> list[object]:
        if m.get("Result") == "Success":
            ch = self.channels.get(m.get("TransfereeUniqueid", ""))
            call = self.calls.get(ch.call_id) if ch else None
            if call:
                call.pending_transfer = "attended"
                return self._rederive(call, now)
        return []

    # ------------------------------------------------------------------ shared steps

    def _channel_for(self, m: Message, now: float) -> Channel | None:
        uid = m.get("Uniqueid")
        if not uid:
            return None
        ch = self.channels.get(uid)
        if ch is None:
            return None
        self._update(ch, m, now)
        return ch

    def _update(self, ch: Channel, m: Message, now: float) -> bool:
        """Refresh the channel snapshot every channel event carries.

        True if the channel state changed. A move to another call (a new Linkedid) marks both calls stale.
        """
        try:
            st, num, name, cnum, cname, ctx, exten, linkedid = _SNAPSHOT(m)
        except KeyError:
            return self._update_partial(ch, m, now)
        state = _STATES.get(st)
        if state is None:
            state = int(st)
        if state == UP and ch.answered_at is None:
            ch.answered_at = now
        changed = state != ch.state
        ch.state = state
        ch.caller_num = num
        ch.caller_name = name
        ch.connected_num = cnum
        ch.connected_name = cname
        ch.context = ctx
        ch.exten = exten
        if linkedid and linkedid != ch.linkedid:
            self._relink(ch, linkedid)
        return changed

    def _update_partial(self, ch: Channel, m: Message, now: float) -> bool:
        """_update for a message without the whole snapshot (CoreShowChannel entries, odd peers)."""
        get = m.get
        changed = False
        st = get("ChannelState")
        if st is not None:
            state = _STATES.get(st)
            if state is None:
                state = int(st)
            if state == UP and ch.answered_at is None:
                ch.answered_at = now
            if state != ch.state:
                ch.state = state
                changed = True
        num = get("CallerIDNum")
        if num is not None:
            ch.caller_num = num
            ch.caller_name = get("CallerIDName", "")
            ch.connected_num = get("ConnectedLineNum", "")
            ch.connected_name = get("ConnectedLineName", "")
        ctx = get("Context")
        if ctx is not None:
            ch.context = ctx
            ch.exten = get("Exten", "")
        linkedid = get("Linkedid")
        if linkedid and linkedid != ch.linkedid:
            self._relink(ch, linkedid)
        return changed

    def _relink(self, ch: Channel, linkedid: str) -> None:
        ch.linkedid = linkedid
        target = self._by_linkedid.get(linkedid)
        if target and target != ch.call_id and target in self.calls:
            self._move(ch, self.calls[target])

    def _stale_channel(self, ch: Channel) -> None:
        call = self.calls.get(ch.call_id)
        if call is not None:
            call.stale = True

    def _stale_bridge(self, bid: str) -> None:
        """Bridge membership is a fact of every call with a channel in the bridge (the caller's peers)."""
        channels = self.channels
        for uid in self.bridges.get(bid, ()):
            ch = channels.get(uid)
            if ch is not None:
                self._stale_channel(ch)

    def _move(self, ch: Channel, dest: Call) -> None:
        dest.stale = True
        src = self.calls.get(ch.call_id)
        if src is not None:
            src.stale = True
            src.legs.pop(ch.uniqueid, None)
            if not src.legs:
                self.calls.pop(src.call_id, None)
                by_linkedid = self._by_linkedid
                aliases = self._aliases.setdefault(dest.call_id, [])
                for lid in (src.call_id, *self._aliases.pop(src.call_id, ())):
                    if by_linkedid.get(lid) == src.call_id:
                        by_linkedid[lid] = dest.call_id
                        aliases.append(lid)
        ch.call_id = dest.call_id
        dest.legs[ch.uniqueid] = ch

    def _after_change(self, ch: Channel, now: float) -> list[object]:
        call = self.calls.get(ch.call_id)
        if call is None:
            return []
        return self._rederive(call, now)

    def _after_leg_change(self, ch: Channel, now: float) -> list[object]:
        """A fact that counts only for a leg other than the caller's and the origin's changed (dialing,
        Dial answered): the Dial of an originated Local pair's own ;1 half changes no phase."""
        call = self.calls.get(ch.call_id)
        if call is None:
            return []
        if call.stale or (ch.uniqueid != call.caller and ch.uniqueid != call.origin):
            return self._rederive(call, now)
        return []

    def _derive(self, call: Call) -> CallPhase:
        # Runs on most events: the Channel properties (alive, alerting) are spelled out inline.
        legs = call.legs
        caller_id = call.caller
        origin_id = call.origin
        caller = legs.get(caller_id)
        if caller is None or caller.hungup_at is not None:
            return _ENDED
        if origin_id != caller_id:
            origin = legs.get(origin_id)
            if origin is not None and origin.hungup_at is not None:
                return _ENDED
        if caller.bridge is not None:
            for u in self.bridges.get(caller.bridge, ()):
                if u != caller_id and u != origin_id:
                    return _ON_HOLD if caller.moh else _CONNECTED
        if caller.parked:
            return _ON_HOLD
        held = caller.moh and call.ever_connected
        app = caller.application
        in_dial = app == "Dial" or app == "Queue"
        offered = party = False
        for leg in legs.values():
            if leg.hungup_at is not None or leg.uniqueid == caller_id or leg.uniqueid == origin_id:
                continue
            # Another leg rings (alerting) or is dialled; and between the agent's answer (DialEnd) and
            # BridgeEnter the caller is still in Dial.
            if (
                leg.dialing
                or leg.state == RINGING
                # Answered, on its way into the bridge, the caller still in Dial. A leg that has
                # already left a bridge is being torn down, not offered.
                or (in_dial and leg.dial_answered and (not leg.was_bridged or leg.bridge is not None))
                # The agent answered the CTI's Originate and the Bridge action is on its way.
                or (leg.offer_leg and leg.state == UP and not leg.was_bridged)
            ):
                offered = True
            else:
                party = True
        # A caller on hold music after a conversation is held while somebody of the call is still there (an
        # agent consulting a colleague); with nobody left but a ringing phone, it is being offered again (a
        # blind transfer to an agent).
        if held and (party or not offered):
            return _ON_HOLD
        if offered:
            return _OFFERED
        if call.queued or caller.queue is not None or app in _WAITING_APPS:
            return _ON_HOLD if call.ever_connected and app == "MusicOnHold" else _QUEUED
        if app == "AGI":
            return _IVR
        return _ARRIVING

    def _peer(self, call: Call) -> str | None:
        caller = call.legs.get(call.caller)
        if caller is None or caller.bridge is None:
            return None
        for u in sorted(self.bridges.get(caller.bridge, ())):
            if u != caller.uniqueid and u != call.origin:
                return u
        return None

    def _rederive(self, call: Call, now: float, *, not_before: float | None = None) -> list[object]:
        out: list[object] = []
        call.stale = False
        caller = call.legs.get(call.caller)
        if not call.announced and caller is not None and caller.application:
            call.announced = True
            out.append(
                CallArrived(
                    call.call_id, call.pbx, caller.name, caller.uniqueid, caller.caller_num,
                    caller.caller_name, caller.exten, now,
                )
            )
        new = self._derive(call)
        old = call.phase
        if new is not _ENDED and new is not old:
            new = self._through_teardown(call, old, new)
        if new is _OFFERED and old is not _OFFERED:
            for leg in call.legs.values():
                if leg.alerting and leg.uniqueid not in (call.caller, call.origin):
                    out.append(LegRinging(call.call_id, leg.name, leg.uniqueid, now))
        if new is not old:
            try:
                check_transition(old, new)
            except IllegalTransition:
                # Real event streams are the truth: record the oddity and follow the facts.
                call.anomalies += 1
                self.anomalies += 1
            call.phase = new
            call.times.setdefault(new, now)
            out.append(CallPhaseChanged(call.call_id, old, new, now))
            if new is _ON_HOLD:
                out.append(CallHeld(call.call_id, now))
            elif old is _ON_HOLD and new is _CONNECTED and self._peer(call) == call.peer:
                out.append(CallResumed(call.call_id, now))
        if new is _CONNECTED:
            peer = self._peer(call)
            if peer is not None and peer != call.peer:
                peer_ch = self.channels[peer]
                if call.ever_connected and call.peer is not None:
                    kind = call.pending_transfer or "redirect"
                    prev = self.channels.get(call.peer) or call.legs.get(call.peer)
                    out.append(
                        CallTransferred(call.call_id, kind, prev.name if prev else call.peer, peer_ch.name, now)
                    )
                    call.pending_transfer = None
                if old is not _ON_HOLD or call.peer != peer:
                    out.append(CallConnected(call.call_id, peer_ch.name, peer, now))
                call.peer = peer
                call.ever_connected = True
                call.connect_mark = self._signals
        if new is _ENDED and call.ended_at is None:
            gone = caller if caller is not None and not caller.alive else call.legs.get(call.origin)
            call.ended_at = now
            call.cause = gone.cause if gone else 0
            call.cause_txt = gone.cause_txt if gone else ""
            if self.shutting_down or any(leg.shutdown for leg in call.legs.values()):
                # Asterisk hangs everything up with cause 16 when it restarts: that is not how it ended.
                out.append(CallEnded(call.call_id, 0, "PBX restart", now, "unknown", False,
                                     not_before if not_before is not None else now, "pbx_restart"))
            elif not_before is not None:
                out.append(CallEnded(call.call_id, 0, "", now, "unknown", False, not_before, "link_down"))
            else:
                out.append(CallEnded(call.call_id, call.cause, call.cause_txt, now,
                                     self.hung_up_by(call), True))  # type: ignore[arg-type]
        return out

    def _through_teardown(self, call: Call, old: CallPhase, new: CallPhase) -> CallPhase:
        """While a connection is being torn down (hang-up requests seen, Hangups on their way), the facts
        pass through states that are no phase of the call: the caller out of the bridge for a moment, a
        dialplan step before the hang-up. The call keeps its last real phase until a real one comes."""
        if call.caller_leaving:
            return old
        if not call.tearing_down:
            return new
        caller = call.caller_leg
        app = caller.application if caller is not None else ""
        if new is _ARRIVING or new is _OFFERED or (new is _QUEUED and app not in ("AGI", "Queue")):
            return old
        call.tearing_down = False
        return new


def _uid_order(uid: str) -> tuple[float, int, str]:
    epoch, _, counter = uid.partition(".")
    try:
        return (float(epoch), int(counter), uid)
    except ValueError:
        return (float("inf"), 0, uid)


def resync(model: CallModel, entries: list[Message], now: float, *, gone_since: float | None = None) -> list[object]:
    """Make the model match a fresh ``CoreShowChannels`` listing (after a reconnect or a CTI restart).

    Channels the PBX no longer has are hung up as ends nobody saw: cause 0, side unknown, the end between
    ``gone_since`` (when the link went down: last seen alive) and now (first seen gone). Channels we did
    not know are added in creation order so each call's first channel becomes its origin; bridges are
    rebuilt from ``BridgeId``. Then every call's phase is derived again from the facts.
    """
    out: list[object] = []
    listed = {e.get("Uniqueid", ""): e for e in entries if e.get("Uniqueid")}
    for uid in [u for u in model.channels if u not in listed]:
        gone = Message({"Uniqueid": uid, "Cause": "0", "Cause-txt": "Gone while the AMI link was down"})
        out.extend(model._hangup(gone, now, not_before=gone_since if gone_since is not None else now))
    model.shutting_down = False  # a PBX that answers a resync is up again
    for e in sorted(listed.values(), key=lambda e: (e.get("Linkedid", ""), _uid_order(e["Uniqueid"]))):
        uid = e["Uniqueid"]
        known = uid in model.channels
        if not known:
            out.extend(model._newchannel(e, now))
        ch = model.channels[uid]
        if known:
            model._update(ch, e, now)
        app = e.get("Application", "")
        if app and app not in _DIAL_HALF_APPS:
            ch.application = app
            ch.app_data = e.get("ApplicationData", "")
        if app == "MusicOnHold":
            ch.moh = True
        if ch.state == UP and ch.answered_at is None:
            ch.answered_at = now
    model.bridges = {}
    for uid, ch in model.channels.items():
        bid = listed[uid].get("BridgeId") or None
        ch.bridge = bid
        if bid:
            model.bridges.setdefault(bid, set()).add(uid)
    for call in list(model.calls.values()):
        out.extend(model._rederive(call, now))
    return out


# Events the call model never reads; an AMI link that feeds only the model can skip parsing them.
UNUSED_EVENTS = frozenset(
    {
        "DeviceStateChange", "Cdr", "VarSet", "AGIExecStart", "AGIExecEnd", "DTMFBegin", "DTMFEnd",
        "NewAccountCode", "RTCPSent", "RTCPReceived", "PeerStatus", "Registry",
        "SuccessfulAuth", "ChallengeSent", "FullyBooted", "LocalBridge", "DialState",
    }
)
