"""The simulated PBX: channels, Local pairs, bridges, originate, hangup propagation and the event stream.

Every rule that fixes an event's place in the stream cites the capture it comes from. Events go to
subscribers (AMI sessions) synchronously, in emission order; durations are virtual and scaled by
``time_scale``. This is the PBX core: it imports only the low modules (wire, channels, dialplan) and never
a feature. The features (apps.py, agi_client.py, queues.py, parking.py, transfers.py) import it, and the
facade (simulator.py) wires them in: the applications the pbx runs are an ``AppRunner`` it is given.
"""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from pbxsim import wire
from pbxsim.channels import HUNGUP, UNKNOWN, Audio, Bridge, Channel, new_bridge_id
from pbxsim.dialplan import Dialplan, expand, split_args
from pbxsim.mixmonitor import FRAME, VOICE_TONE, LiveRecording, Recording
from pbxsim.prompts import ASTDATADIR, Sounds

Listener = Callable[[wire.Pairs], None]
# What an application returns: None (next priority), a (context, exten, priority) goto, "hangup" (the app
# failed: the pbx ends) or "hangup-app" (Hangup() itself).
AppResult = Any


class AppRunner(Protocol):
    """The dialplan applications (apps.Apps, installed by the facade)."""

    async def run(self, chan: Channel, app: str, data: str) -> AppResult: ...


class NoApps:
    """A pbx with no application loaded: every app is unknown, so the pbx ends ("No application")."""

    async def run(self, chan: Channel, app: str, data: str) -> AppResult:
        return "hangup"


class PhoneLine(Protocol):
    """A phone that is a real SIP user agent (a browser registered over the websocket, sip_ws.py): it is
    rung with an INVITE and answers, rings or hangs up through SIP instead of a profile's timers."""

    async def ring(self, chan: Channel) -> None: ...

    def reachable(self) -> bool: ...


@dataclass(slots=True)
class PhoneProfile:
    """How a simulated phone (PJSIP/<ext>) reacts when it rings. Times in virtual seconds."""

    answer_after: float | None = 1.0  # None: never answers
    busy: bool = False
    # The network refuses the call before it rings: 34 congestion, 21 rejected, 1 unallocated number
    # (a trunk number: Dial sees CONGESTION for 34, CHANUNAVAIL for the others).
    refuse_cause: int | None = None
    talk_time: float | None = None  # hang up this long after answering (None: stay until the call ends)
    registered: bool = True
    auto_answer: bool = False  # answers by itself when the INVITE says Call-Info: ...;answer-after=N
    context: str = "cti-dial"  # the endpoint's context (asterisk-config/pjsip.conf's agent templates)
    line: PhoneLine | None = None  # a registered SIP user agent answers instead of the timers above

    @property
    def dialable(self) -> bool:
        """Whether chan_pjsip makes a channel for it at all: a browser whose only contact is Unreachable has none
        to dial, like one not registered (capture 34)."""
        return self.registered and (self.line is None or self.line.reachable())


TRUNK_CONTEXT = "from-pstn"  # asterisk-config/pjsip.conf: the [trunk] endpoint's context


@dataclass(slots=True)
class OriginateRequest:
    channel: str
    context: str | None = None
    exten: str | None = None
    priority: int = 1
    application: str | None = None
    data: str = ""
    timeout_ms: int = 30000
    callerid: tuple[str, str] | None = None  # (name, num)
    variables: list[tuple[str, str]] = field(default_factory=list)
    channel_id: str | None = None
    other_channel_id: str | None = None
    action_id: str | None = None
    is_async: bool = True


@dataclass(slots=True)
class OriginateResult:
    ok: bool
    reason: int  # 4 answered, 3 no answer, 5 busy, 8 congestion, 0 other
    channel: Channel | None = None
    uniqueid: str | None = None  # a failed Originate whose channel existed names it (capture 15)


def parse_callerid(text: str) -> tuple[str, str]:
    """``"John Doe" <5551234>`` -> (name, num)."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].rpartition("<")
        return name.strip().strip('"'), num.strip()
    if text.isdigit() or text.startswith("+"):
        return "", text
    return text.strip('"'), ""


class World:
    def __init__(self, dialplan: Dialplan, *, time_scale: float = 1.0, epoch: float | None = None) -> None:
        self.dialplan = dialplan
        self.time_scale = time_scale
        self.cdr_events = True  # cdr_manager on (captures 01-09); capture 15's manager user saw no Cdr
        self._epoch0 = time.time() if epoch is None else epoch
        self._mono0 = time.monotonic()
        self.listeners: list[Listener] = []
        self.channels: dict[str, Channel] = {}
        self._linked_birth: dict[str, tuple[float, int, str]] = {}
        self.bridges: dict[str, Bridge] = {}
        self.recordings: dict[str, Recording] = {}  # MixMonitors running, by channel name
        self.live_recordings: dict[str, LiveRecording] = {}  # MixMonitor r(): the caller's side, as it comes
        self.ears: dict[str, Channel] = {}  # speech menus' ChanSpy on a caller streaming to AudioSocket, by caller
        self._voices: dict[str, bytes] = {}  # 8 kHz samples of the callers' utterance files
        self.local_counter = 0
        self.uid_counter = 0
        self.phones: dict[str, PhoneProfile] = {}
        # PJSIPShowContacts: each registrar's contacts (the SIP-over-WebSocket endpoint's), as ContactList fields
        self.contact_lists: list[Callable[[], list[wire.Pairs]]] = []
        self.astdb: dict[tuple[str, str], str] = {}
        self.globals: dict[str, str] = dict(dialplan.globals)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.agi_host_override: tuple[str, int] | None = None
        self.apps: AppRunner = NoApps()
        self.sounds = Sounds()  # what is in the sounds directory (the facade installs the PBX's set)

    # ---------------------------------------------------------------- time and tasks
    def vnow(self) -> float:
        """Virtual wall-clock seconds (epoch based), advancing 1/time_scale times faster than real time."""
        return self._epoch0 + (time.monotonic() - self._mono0) / self.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.time_scale)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- events
    def emit(self, pairs: wire.Pairs) -> None:
        for listener in list(self.listeners):
            listener(pairs)

    def chan_event(self, name: str, chan: Channel, *extra: tuple[str, str]) -> None:
        self.emit(wire.event(name, chan.snapshot(), list(extra)))

    def start_recording(self, chan: Channel, file: str, options: str = "") -> None:
        old = self.recordings.pop(chan.name, None)
        if old is not None:
            old.finish(self.vnow())
        self.recordings[chan.name] = Recording(file, self.vnow(), append="a" in options)

    def start_live_recording(self, chan: Channel, path: str) -> None:
        """MixMonitor r(<path>): the file grows while the caller talks (or is silent), until StopMixMonitor
        or the hang-up."""
        self.stop_live_recording(chan)
        rec = LiveRecording(path, self.vnow())
        self.live_recordings[chan.name] = rec
        for obs in chan.observers:
            obs.record_started(chan)
        self.spawn(self._record_live(chan, rec), name=f"mixmonitor {chan.name}")

    async def _record_live(self, chan: Channel, rec: LiveRecording) -> None:
        while self.live_recordings.get(chan.name) is rec:
            if chan.hungup or chan.dead:
                self.stop_live_recording(chan)
                return
            rec.write_until(self.vnow(), lambda t0, first, n: self.voice(chan, t0, first, n))
            await self.sleep(FRAME)

    def stop_live_recording(self, chan: Channel) -> bool:
        rec = self.live_recordings.pop(chan.name, None)
        if rec is None:
            return False
        rec.write_until(self.vnow(), lambda t0, first, n: self.voice(chan, t0, first, n))
        rec.close()
        return True

    def voice(self, chan: Channel, t0: float, first: int, n: int) -> bytes:
        """The caller's 8 kHz samples ``first .. first + n`` counted from virtual time ``t0``: their utterance
        files where they speak (a quiet tone for voice without a file), silence elsewhere."""
        out = bytearray(2 * n)
        for a in chan.audio:
            # A file is heard whole (its quiet tail too); ``speech`` is only its voiced part.
            pcm = self._pcm(a.wav) if a.wav else VOICE_TONE * (int(a.speech * 100) + 1)
            length = len(pcm) // 2 if a.wav else min(len(pcm) // 2, round(a.speech * 8000))
            at = round((a.start - t0) * 8000) - first  # where the utterance starts in this stretch
            i0, i1 = max(0, at), min(n, at + length)
            if i1 <= i0:
                continue
            out[2 * i0 : 2 * i1] = pcm[2 * (i0 - at) : 2 * (i1 - at)]
        return bytes(out)

    def _pcm(self, path: str) -> bytes:
        pcm = self._voices.get(path)
        if pcm is None:
            try:
                with wave.open(path, "rb") as w:
                    pcm = w.readframes(w.getnframes())
            except (OSError, wave.Error, EOFError):
                pcm = b""
            self._voices[path] = pcm
        return pcm

    def stop_recording(self, chan: Channel) -> None:
        """StopMixMonitor, or the channel hung up (no event then: capture 20 D)."""
        recording = self.recordings.pop(chan.name, None)
        if recording is not None:
            recording.finish(self.vnow())

    def set_var(self, chan: Channel, name: str, value: str, *, event: bool = True) -> None:
        if name == "CHANNEL(language)":
            # A dialplan function, not a variable: Asterisk writes it without a VarSet (pbx_builtin_setvar_helper
            # hands a name ending in ')' to ast_func_write), and the channel's events then say Language: <value>.
            chan.language = value
            return
        chan.variables[name] = value
        if event:
            self.chan_event("VarSet", chan, ("Variable", name), ("Value", value))

    def new_state(self, chan: Channel, state: int) -> None:
        if chan.state == state:
            return
        chan.state = state
        if state == 6 and chan.answered_at is None:
            chan.answered_at = self.vnow()
        self.chan_event("Newstate", chan)
        chan.wake()

    def set_callerid(self, chan: Channel, name: str, num: str) -> None:
        chan.cid_name, chan.cid_num = name, num
        self.chan_event("NewCallerid", chan, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))

    def set_connected(self, chan: Channel, name: str, num: str) -> None:
        chan.conn_name, chan.conn_num = name, num
        self.chan_event("NewConnectedLine", chan)

    def propagate_connected(self, chan: Channel, name: str, num: str) -> None:
        """A Local half's new connected line becomes its partner's caller ID. The partner reports it at
        once while it is in Answer() (07 F), otherwise only as it hangs up (05 B, 06 C)."""
        partner = chan.partner
        if partner is None or partner.dead:
            return
        if partner.app == "Answer":
            self.set_callerid(partner, name, num)
        else:
            partner.late_callerid = (name, num)

    def device_state(self, device: str, state: str) -> None:
        if device:
            self.emit(wire.event("DeviceStateChange", [("Device", device), ("State", state)]))

    def _time_str(self, t: float | None) -> str:
        return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    def cdr(self, chan: Channel) -> None:
        if not self.cdr_events:
            return
        for _ in range(1 + chan.cdr_extra):
            self._cdr_record(chan)

    def _cdr_record(self, chan: Channel) -> None:
        end = self.vnow()
        answered = chan.answered_at
        src = "" if chan.cid_num == UNKNOWN else chan.cid_num
        cid = chan.callerid_all() if chan.cid_num != UNKNOWN else '"" <>'
        disposition = "ANSWERED" if answered is not None else ("BUSY" if chan.hangup_cause == 17 else
                                                                ("NO ANSWER" if chan.hangup_cause == 19 else "FAILED"))
        self.emit(wire.event("Cdr", [
            ("AccountCode", chan.accountcode), ("Source", src), ("Destination", chan.exten),
            ("DestinationContext", chan.context), ("CallerID", cid), ("Channel", chan.name),
            ("DestinationChannel", ""), ("LastApplication", chan.last_app), ("LastData", chan.last_data),
            ("StartTime", self._time_str(chan.created)), ("AnswerTime", self._time_str(answered)),
            ("EndTime", self._time_str(end)), ("Duration", str(int(end - chan.created))),
            ("BillableSeconds", str(int(end - answered)) if answered is not None else "0"),
            ("Disposition", disposition), ("AMAFlags", "DOCUMENTATION"), ("UniqueID", chan.uniqueid),
            ("UserField", ""),
        ]))

    # ---------------------------------------------------------------- variables
    def resolver(self, chan: Channel) -> Callable[[str], str | None]:
        def resolve(expr: str) -> str | None:
            return self.read_var(chan, expr)

        return resolve

    def expand(self, chan: Channel, text: str) -> str:
        return expand(text, self.resolver(chan)) if "$" in text else text

    def read_var(self, chan: Channel, expr: str) -> str | None:
        e = expr.strip()
        up = e.upper()
        if up.startswith("CALLERID(") and e.endswith(")"):
            what = e[9:-1].lower()
            num = "" if chan.cid_num == UNKNOWN else chan.cid_num
            name = "" if chan.cid_name == UNKNOWN else chan.cid_name
            return {"num": num, "name": name, "all": chan.callerid_all(), "number": num}.get(what, "")
        if up.startswith("CONNECTEDLINE(") and e.endswith(")"):
            return chan.conn_num if e[14:-1].lower().startswith("num") else chan.conn_name
        if up.startswith("CHANNEL(") and e.endswith(")"):
            what = e[8:-1].lower()
            return {"name": chan.name, "musicclass": "", "language": chan.language,
                    "uniqueid": chan.uniqueid, "linkedid": chan.linkedid,
                    "state": wire.STATE_DESC.get(chan.state, "")}.get(what, "")
        if up.startswith("LEN(") and e.endswith(")"):
            return str(len(e[4:-1]))
        if up.startswith("DB(") and e.endswith(")"):
            family, _, key = e[3:-1].partition("/")
            return self.astdb.get((family, key), "")
        if up.startswith("IF(") and e.endswith(")"):
            cond, _, rest = e[3:-1].partition("?")
            a, _, b = rest.partition(":")
            return a if cond.strip() not in ("", "0") else b
        if up.startswith("GLOBAL(") and e.endswith(")"):
            return self.globals.get(e[7:-1], "")
        if up.startswith("STRREPLACE(") and e.endswith(")"):
            # func_strings: STRREPLACE(varname,find-string[,replace-string]): the variable's value edited
            var, find, replace = (split_args(e[11:-1]) + ["", ""])[:3]
            value = self.read_var(chan, var) or ""
            return value.replace(find, replace) if find else value
        if up.startswith("STAT(") and e.endswith(")"):
            flag, _, path = e[5:-1].partition(",")
            if flag.strip() != "e":
                return ""  # only the existence test is simulated (capture 14)
            return "1" if self.sounds.file_exists(path.strip()) else "0"
        special = {
            "CHANNEL": chan.name, "EXTEN": chan.exten, "CONTEXT": chan.context, "PRIORITY": str(chan.priority),
            "UNIQUEID": chan.uniqueid, "LINKEDID": chan.linkedid, "HANGUPCAUSE": str(chan.hangup_cause or 0),
            "ASTDATADIR": ASTDATADIR,
        }
        if e in chan.variables:
            return chan.variables[e]
        if e in special:
            return special[e]
        return self.globals.get(e)

    # ---------------------------------------------------------------- channel creation
    def _uids(self, count: int, spacing: int) -> list[str]:
        epoch = int(self.vnow())
        base = self.uid_counter
        # Asterisk's counter also numbers other objects, so a call's ids are not contiguous (README).
        ids = [f"{epoch}.{base + i * spacing}" for i in range(count)]
        self.uid_counter = base + count * spacing + 2
        return ids

    def _register(self, chan: Channel) -> None:
        self.channels[chan.name] = chan
        # A Linkedid's age is its call's creation order, whatever the id looks like (a CTI ChannelId).
        # local_counter, not len(_linked_birth): the dict is pruned as calls end, so its length would rank
        # a new call's Linkedid older than a live one (the 2nd agent leg then kept its own Linkedid).
        self._linked_birth.setdefault(chan.linkedid, (0.0, self.local_counter, chan.linkedid))

    def new_local_pair(self, exten: str, context: str, *, linkedid: str | None = None,
                       ids: tuple[str | None, str | None] = (None, None)) -> tuple[Channel, Channel]:
        n = self.local_counter
        self.local_counter += 1
        base = f"Local/{exten}@{context}-{n:08x}"
        uid1, uid2 = self._uids(2, 2)
        uid1 = ids[0] or uid1
        # A ChannelId without OtherChannelId names ';2' after ';1': "<ChannelId>;2" (Asterisk's unreal
        # channel driver; seen on a real 22.10.1 for Local/<agent>@cti-agent-dial/n).
        uid2 = ids[1] or (f"{ids[0]};2" if ids[0] else uid2)
        link = linkedid or uid1
        one = Channel(self, base + ";1", uid1, link, state=0, context=context, exten=exten, tech="Local")
        two = Channel(self, base + ";2", uid2, link, state=4, context=context, exten=exten, tech="Local")
        one.partner, two.partner, one.is_one = two, one, True
        one.device = two.device = f"Local/{exten}@{context}"
        self._register(one)
        self._register(two)
        return one, two

    def new_pjsip(self, peer: str, *, context: str, exten: str, state: int, linkedid: str | None = None,
                  uid: str | None = None) -> Channel:
        n = self.local_counter
        self.local_counter += 1
        uniqueid = uid or self._uids(1, 1)[0]
        chan = Channel(self, f"PJSIP/{peer}-{n:08x}", uniqueid, linkedid or uniqueid, state=state,
                       context=context, exten=exten, tech="PJSIP")
        chan.device = f"PJSIP/{peer}"
        self._register(chan)
        return chan

    # ---------------------------------------------------------------- running programs
    def start_pbx(self, chan: Channel, delay: float = 0.0) -> None:
        chan.pbx = True
        chan.task = self.spawn(self._pbx(chan, delay), name=f"pbx {chan.name}")

    async def _pbx(self, chan: Channel, delay: float) -> None:
        if delay:
            await self.sleep(delay)
        ended_by_app = False
        failed = False
        gen = chan.pbx_gen
        try:
            while not chan.hungup:
                step = self.dialplan.step(chan.context, chan.exten, chan.priority)
                if step is None:
                    if chan.hangup_cause is None:
                        chan.hangup_cause = 16 if chan.priority > 1 else 0
                    break
                data = self.expand(chan, step.data)
                chan.app, chan.appdata = step.app, data
                chan.last_app, chan.last_data = step.app, data
                if chan.skip_newexten:
                    chan.skip_newexten = False
                else:
                    self.emit(wire.event("Newexten", chan.snapshot(), [
                        ("Extension", chan.exten), ("Application", step.app), ("AppData", data)]))
                result = await self.apps.run(chan, step.app, data)
                if chan.pbx_gen != gen:
                    return  # yanked into a bridge: another task runs the channel now
                if result == "hangup-app":
                    ended_by_app = True
                    break
                if chan.hungup:
                    break
                if chan.interrupt is not None:
                    if not await self._take_interrupt(chan):
                        break
                    continue
                if isinstance(result, tuple):
                    chan.context, chan.exten, chan.priority = result
                    continue
                if result == "hangup":
                    if chan.hangup_cause is None:
                        chan.hangup_cause = 16
                    failed = True
                    break
                chan.priority += 1
        finally:
            if not chan.dead and chan.pbx_gen == gen:
                if (chan.hungup or failed) and not ended_by_app and not chan.bridged_hangup:
                    # The pbx thread notices the hangup and raises its own soft hangup (captures 01, 03, 05).
                    self.chan_event("SoftHangupRequest", chan, ("Cause", "16"))
                await self.destroy(chan)

    async def _take_interrupt(self, chan: Channel) -> bool:
        """Redirect or Bridge pulled the channel out of its app; False when it must hang up."""
        intr = chan.interrupt
        chan.interrupt = None
        if intr is None:
            return True
        if intr.kind == "goto":
            chan.context, chan.exten, chan.priority = intr.context, intr.exten, intr.priority
            return True
        if intr.kind == "bridge":
            # After an AMI Bridge the channel resumes at the next priority (capture 05 B).
            bridge = chan.bridge
            if bridge is not None:
                while chan.bridge is not None and not chan.hungup and chan.interrupt is None:
                    await chan.wait_signal()
            if chan.hungup:
                return False
            if chan.interrupt is not None:
                return await self._take_interrupt(chan)
            return True
        return True

    async def run_application(self, chan: Channel, app: str, data: str) -> None:
        """An Originate's Application on ';1': no Newexten, no SoftHangupRequest (capture 09)."""
        chan.app, chan.appdata = app, data
        chan.last_app, chan.last_data = app, data
        try:
            while True:
                await self.apps.run(chan, app, data)
                if chan.interrupt is not None and not chan.hungup:
                    if chan.interrupt.kind == "bridge":
                        await self._take_interrupt(chan)
                        break
                    if chan.interrupt.kind == "goto":
                        # A redirected application channel starts running dialplan.
                        intr = chan.interrupt
                        chan.interrupt = None
                        chan.context, chan.exten, chan.priority = intr.context, intr.exten, intr.priority
                        chan.task = None
                        self.start_pbx(chan)
                        return
                break
        finally:
            if not chan.dead and not chan.pbx:
                if chan.hangup_cause is None and not chan.hungup:
                    chan.hangup_cause = 0  # application simply finished (README: cause 0)
                await self.destroy(chan)

    # ---------------------------------------------------------------- hangup
    def queue_hangup(self, chan: Channel, cause: int) -> None:
        """The far end hung up: HangupRequest on this channel, its app stops (captures 01-05)."""
        if chan.dead or chan.hungup:
            return
        local = chan.name.startswith("Local/")
        if not local and cause == 16:
            # A SIP phone's BYE carries no cause: HangupRequest shows only the cause the channel already had
            # (capture 19 B: on hold after leaving a bridge), and the channel ends Normal Clearing only if a
            # bridge clears it; in an AGI it ends 0 Unknown (capture 17, 1-3).
            self.chan_event("HangupRequest", chan, *((("Cause", "16"),) if chan.cause_set else ()))
            if chan.bridge is not None:
                chan.bridged_hangup = True  # the bridge ends it: no SoftHangupRequest (capture 17, 1-2)
            elif chan.agi_active and chan.hangup_cause is None:
                chan.hangup_cause = 0
        else:
            self.chan_event("HangupRequest", chan, ("Cause", str(cause)))
        if chan.hangup_cause is None or (chan.hangup_cause == 0 and local):
            # A channel that has been bridged clears normally even when told "0" (07 E).
            chan.hangup_cause = cause or chan.default_cause or cause
        chan.hungup = True
        chan.wake()
        if chan.task is None and not chan.dialstring and not chan.held_by_app:
            self.spawn(self.destroy(chan))  # no program of its own (a dialled leg): it just goes away

    def soft_hangup(self, chan: Channel, cause: int | None) -> None:
        """AMI Hangup: no event on the target itself (README)."""
        if chan.dead:
            return
        if cause is not None:
            chan.hangup_cause = cause
        elif chan.hangup_cause is None:
            chan.hangup_cause = chan.default_cause
        if chan.bridge is not None and not chan.dialing:
            # The bridge ends a bridged channel: Normal Clearing and no SoftHangupRequest (capture 05 B).
            # A caller in its own Dial() is ended by its pbx thread instead, which raises one (20 D).
            chan.bridged_hangup = True
            if chan.hangup_cause is None:
                chan.hangup_cause = 16
        chan.hungup = True
        chan.wake()
        if chan.task is None:
            self.spawn(self.destroy(chan))

    async def destroy(self, chan: Channel) -> None:
        if chan.dead:
            return
        # Hangup of an AGI channel waits for the FastAGI socket to close (capture 03).
        while chan.agi_active:
            chan._signal.clear()
            await chan._signal.wait()
        if chan.dead:
            return
        chan.dead = True
        chan.hungup = True
        self.stop_recording(chan)
        cause = chan.hangup_cause if chan.hangup_cause is not None else 0
        partner = chan.partner
        if partner is not None and not partner.dead:
            status = chan.variables.get("DIALSTATUS")
            if status and not chan.is_one:  # a ';2' that ran Dial leaves its outcome on ';1' (04-06, 34 M)
                self.set_var(partner, "CHANLOCALSTATUS", status)
            self.queue_hangup(partner, cause)
        if chan.moh is not None:
            self.chan_event("MusicOnHoldStop", chan)
            chan.moh = None
        bridge = chan.bridge
        if bridge is not None:
            partners = [c for c in bridge.channels if c is not chan and c.task is not None]
            self.leave_bridge(chan, hangup=True)
            if chan.bridged_hangup and partners and not chan.name.startswith("Local/"):
                # A SIP channel ended inside a bridge (a BYE, an AMI Hangup) leaves it at once, but its
                # Hangup event comes only after the partner, back in its dialplan, has run its Hangup()
                # (capture 17, steps 1, 2 and 4: the partner's SoftHangupRequest first).
                await self.sleep(0.005)
        late_cid = chan.late_callerid
        if late_cid is not None:
            chan.cid_name, chan.cid_num = late_cid
        self.chan_event("Hangup", chan, ("Cause", str(cause)), ("Cause-txt", wire.CAUSE_TEXT.get(cause, "Unknown")))
        if late_cid is not None:
            # A Local half learns its partner's new connected line as caller ID only as it goes (05 B).
            self.chan_event("NewCallerid", chan, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
        if not chan.no_cdr:
            self.cdr(chan)
        self.channels.pop(chan.name, None)
        live_links = {c.linkedid for c in self.channels.values()}
        for link in [k for k in self._linked_birth if k not in live_links]:
            del self._linked_birth[link]  # bounded by the live calls (long demo and load runs)
        for spy in list(chan.spied_by):
            spy.wake()
        if partner is None or partner.dead:
            self.device_state(chan.device, chan.hangup_device_state)
            if partner is not None:
                self.device_state(chan.device, "NOT_INUSE")
        chan.done.set()
        chan.wake()
        for obs in chan.observers:
            obs.channel_gone(chan)
        if chan.task is None and partner is not None and not partner.dead and partner.task is None:
            await self.destroy(partner)

    # ---------------------------------------------------------------- bridges
    def create_bridge(self) -> Bridge:
        bridge = Bridge(new_bridge_id())
        self.bridges[bridge.uniqueid] = bridge
        self.emit(wire.event("BridgeCreate", bridge.pairs()))
        return bridge

    def enter_bridge(self, bridge: Bridge, chan: Channel) -> None:
        if chan.bridge is not None and chan.bridge is not bridge:
            self.leave_bridge(chan)
        chan.bridge = bridge
        chan.default_cause = 16  # a channel that has been bridged ends with Normal Clearing (07 E)
        bridge.channels.append(chan)
        if len(bridge.channels) > 1:
            # Bridged channels share the oldest Linkedid (capture 05 B: the agent leg takes the caller's).
            oldest = min(bridge.channels, key=lambda c: self._linked_birth.get(c.linkedid, _uid_key(c.linkedid))).linkedid
            chan.linkedid = oldest
        self.emit(wire.event("BridgeEnter", bridge.pairs(), chan.snapshot()))
        if chan.variables.get("BLINDTRANSFER"):
            self.set_var(chan, "BLINDTRANSFER", "")  # the transfer is over once it is bridged again (06 B)

    def set_bridgepeers(self, bridge: Bridge) -> None:
        if len(bridge.channels) == 2:
            a, b = bridge.channels
            self.set_var(a, "BRIDGEPEER", b.name)
            self.set_var(b, "BRIDGEPEER", a.name)

    def clear_bridgepeers(self, bridge: Bridge) -> None:
        if len(bridge.channels) == 2 and bridge.channels[0].variables.get("BRIDGEPEER"):
            for c in bridge.channels:
                self.set_var(c, "BRIDGEPEER", "")

    def announce_bridgepeers(self, chan: Channel) -> None:
        """A bridge re-publishes BRIDGEPEER when a member's audiohooks change (MixMonitor, ChanSpy: 07 B-D)."""
        bridge = chan.bridge
        if bridge is not None and len(bridge.channels) == 2:
            self.set_bridgepeers(bridge)

    def leave_bridge(self, chan: Channel, *, hangup: bool = False, clear_peers: bool = True) -> None:
        bridge = chan.bridge
        if bridge is None:
            return
        merge = bridge.merge_on_hangup if hangup else None
        if merge is not None:
            self.set_var(chan, "BRIDGEPEER", "")  # only the transferer's is cleared (06 C)
        elif clear_peers:
            self.clear_bridgepeers(bridge)
        bridge.channels.remove(chan)
        chan.bridge = None
        self.emit(wire.event("BridgeLeave", bridge.pairs(), chan.snapshot()))
        chan.wake()
        if not hangup and not chan.hungup:
            chan.cause_set = True
            if chan.no_cdr:
                chan.no_cdr = False  # a dialled leg that goes on alone gets its own record (07 A)
            else:
                chan.cdr_extra += 1
        if merge is not None:
            partner = chan.partner
            if partner is not None and not partner.dead:
                self.queue_hangup(partner, chan.hangup_cause or 16)
            merge(bridge, chan)
            return
        if hangup and bridge.dissolve_on_hangup:
            for other in list(bridge.channels):
                other.bridge = None
                bridge.channels.remove(other)
                self.emit(wire.event("BridgeLeave", bridge.pairs(), other.snapshot()))
                other.variables["__bridge_peer_hungup"] = "1"
                other.cause_set = True
                other.wake()
                if other.task is None and not other.hungup and not other.dead:
                    # A leg with no program of its own (Dial's callee, a transfer target) ends with it.
                    other.hangup_cause = 16
                    other.hungup = True
                    self.spawn(self.destroy(other))
        if not bridge.channels and not bridge.persistent:
            self.destroy_bridge(bridge)

    async def release_bridge_rest(self, bridge: Bridge) -> None:
        """A channel moved out of a two-party bridge (Redirect, BlindTransfer): the bridge dissolves. A leg
        with no program of its own (Dial's callee) is hung up: BridgeLeave, then Hangup with Normal
        Clearing and no (Soft)HangupRequest (capture 06 A/B); a leg running dialplan goes on after it."""
        await asyncio.sleep(0)  # a dual Redirect moves the other channel in the same action
        for other in list(bridge.channels):
            if other.interrupt is not None or other.dead or other.bridge is not bridge:
                continue
            if other.variables.get("BRIDGEPEER"):
                self.set_var(other, "BRIDGEPEER", "")
            if other.task is None:
                other.hangup_cause = 16
                other.hungup = True
                await self.destroy(other)
            else:
                self.leave_bridge(other)

    def destroy_bridge(self, bridge: Bridge) -> None:
        if bridge.uniqueid in self.bridges:
            del self.bridges[bridge.uniqueid]
            self.emit(wire.event("BridgeDestroy", bridge.pairs()))
            bridge.ended.set()

    def yank_into_bridge(self, chan: Channel) -> None:
        """AMI Bridge on a channel whose program cannot be interrupted in place (an AGI): Asterisk yanks
        the channel (a masquerade) and the old program goes on with a zombie, which the FastAGI server
        sees as a hangup (-1, then HANGUP and 511s). The channel itself resumes after the bridge at the
        next priority (ast_bridge_set_after_go_on), in a new task."""
        chan.pbx_gen += 1
        chan.agi_active = False  # the zombie holds the FastAGI session, not this channel
        chan.priority += 1
        chan.wake()
        chan.task = self.spawn(self._resume_after_bridge(chan), name=f"pbx {chan.name}")

    async def _resume_after_bridge(self, chan: Channel) -> None:
        await asyncio.sleep(0)  # the bridge is built by the caller of yank_into_bridge
        while chan.bridge is not None and not chan.hungup and chan.interrupt is None:
            await chan.wait_signal()
        intr = chan.interrupt
        if intr is not None and not chan.hungup:
            chan.interrupt = None
            if intr.kind == "goto":  # redirected out of the bridge
                chan.context, chan.exten, chan.priority = intr.context, intr.exten, intr.priority
            elif intr.kind == "bridge":  # bridged again before this task ran
                await self._take_interrupt(chan)
        await self._pbx(chan, 0.0)

    def bridge_channels(self, a: Channel, b: Channel) -> Bridge:
        bridge = self.create_bridge()
        self.enter_bridge(bridge, a)
        self.enter_bridge(bridge, b)
        self.set_bridgepeers(bridge)
        # Each side's connected line becomes the other's caller ID (capture 05 B, after BRIDGEPEER).
        a_name, a_num, b_name, b_num = a.cid_name, a.cid_num, b.cid_name, b.cid_num
        for chan, name, num in ((a, b_name, b_num), (b, a_name, a_num)):
            if (chan.conn_name, chan.conn_num) != (name, num):  # only a change is published (07 A)
                self.set_connected(chan, name, num)
                self.propagate_connected(chan, name, num)
        # The older channel is the bridge CDR's party A; the younger one's own record is dropped (05 B).
        younger = b if b.created >= a.created else a
        if younger.originated and younger.cdr_extra == 0:
            younger.no_cdr = True
        # Emulated people react to being connected however it happened (Dial or an AMI Bridge).
        for chan, peer in ((a, b), (b, a)):
            for obs in chan.observers:
                obs.connected(chan, peer)
        return bridge

    # ---------------------------------------------------------------- DTMF and audio
    def play_dtmf(self, chan: Channel, digit: str, duration_ms: int = 120) -> None:
        """AMI PlayDTMF: the digit is heard on the far side of a Local pair (capture 02)."""
        target = chan.partner if chan.partner is not None else None
        if target is None:
            return  # a real phone would hear it; nothing is reported on AMI
        self.receive_dtmf(target, digit, duration_ms)

    def receive_dtmf(self, chan: Channel, digit: str, duration_ms: int = 120, begin: bool = True) -> None:
        if chan.dead:
            return
        if begin:
            self.chan_event("DTMFBegin", chan, ("Digit", digit), ("Direction", "Received"))
        chan.digits.append(digit)
        chan.wake()
        self.chan_event("DTMFEnd", chan, ("Digit", digit), ("DurationMs", str(duration_ms)),
                        ("Direction", "Received"))

    def hear(self, chan: Channel, speech_seconds: float, wav: str | None = None) -> None:
        chan.audio.append(Audio(self.vnow(), speech_seconds, wav))
        chan.wake()

    # ---------------------------------------------------------------- originate
    async def originate(self, req: OriginateRequest, respond: Callable[[wire.Pairs], None] | None = None
                        ) -> OriginateResult:
        tech, _, rest = req.channel.partition("/")
        if tech.lower() == "local":
            result = await self._originate_local(req, rest, respond)
        elif tech.upper() == "PJSIP":
            result = await self._originate_pjsip(req, rest, respond)
        else:
            if respond is not None and not req.is_async:
                respond(wire.response(req.action_id, "Error", "Originate failed"))
            result = OriginateResult(False, 0)
            self._originate_response(req, result)
        return result

    def _originate_response(self, req: OriginateRequest, result: OriginateResult) -> None:
        if not req.is_async:
            return
        pairs: wire.Pairs = []
        if req.action_id is not None:
            pairs.append(("ActionID", req.action_id))
        pairs.append(("Response", "Success" if result.ok else "Failure"))
        pairs.append(("Channel", result.channel.name if result.ok and result.channel else req.channel))
        if req.application:
            pairs += [("Application", req.application), ("Data", req.data)]
        else:
            pairs += [("Context", req.context or ""), ("Exten", req.exten or "")]
        pairs.append(("Reason", str(result.reason)))
        pairs.append(("Uniqueid", result.channel.uniqueid if result.ok and result.channel
                      else result.uniqueid or "<unknown>"))
        name, num = req.callerid or ("", "")
        if result.ok and result.channel is not None:
            name = result.channel.cid_name
            num = result.channel.cid_num
        pairs += [("CallerIDNum", num or "<unknown>"), ("CallerIDName", name or "<unknown>")]
        self.emit(wire.event("OriginateResponse", pairs))

    def _apply_originate_ids(self, one: Channel, two: Channel, req: OriginateRequest) -> None:
        for chan in (one, two):
            for k, v in req.variables:
                self.set_var(chan, k, v)
            if req.callerid is not None:
                name, num = req.callerid
                self.set_callerid(chan, name, num)
                self.set_connected(chan, name, num)
            if chan is one and req.variables and req.callerid is None:
                pass

    def _start_originated(self, one: Channel, req: OriginateRequest) -> None:
        if req.application:
            one.task = self.spawn(self.run_application(one, req.application, req.data), name=f"app {one.name}")
        else:
            one.context, one.exten, one.priority = req.context or "default", req.exten or "s", req.priority
            one.pbx = True
            one.task = self.spawn(self._pbx(one, 0.0), name=f"pbx {one.name}")

    async def _originate_local(self, req: OriginateRequest, rest: str,
                               respond: Callable[[wire.Pairs], None] | None) -> OriginateResult:
        target, _, ctx = rest.partition("@")
        ctx, _, options = ctx.partition("/")  # Local/<exten>@<context>/n: no optimization
        ctx = ctx or "default"
        exists = self.dialplan.exists(ctx, target)
        if not exists and respond is not None and not req.is_async:
            respond(wire.response(req.action_id, "Error", "Originate failed"))  # before the events (01)
        one, two = self.new_local_pair(target, ctx, ids=(req.channel_id, req.other_channel_id))
        self.chan_event("Newchannel", one)
        self.chan_event("Newchannel", two)
        self.emit(wire.event("Newexten", one.snapshot(), [
            ("Extension", one.exten), ("Application", "AppDial2"), ("AppData", "(Outgoing Line)")]))
        one.last_app, one.last_data = "AppDial2", "(Outgoing Line)"
        if not exists:
            # Invalid extension: caller ID events, then no LocalBridge, cause 0 on both halves (captures 01, 05 C).
            self._apply_originate_ids(one, two, req)
            one.hangup_cause = two.hangup_cause = 0
            two.dead = True
            self.chan_event("Hangup", two, ("Cause", "0"), ("Cause-txt", "Unknown"))
            self.cdr(two)
            result = OriginateResult(False, 0)
            self._originate_response(req, result)
            one.dead = True
            self.chan_event("Hangup", one, ("Cause", "0"), ("Cause-txt", "Unknown"))
            self.cdr(one)
            self.channels.pop(one.name, None)
            self.channels.pop(two.name, None)
            self.device_state(one.device, "INVALID")
            self.device_state(one.device, "INVALID")
            return result
        self._apply_originate_ids(one, two, req)
        self.emit(wire.event("LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), [
            ("Context", ctx), ("Exten", target), ("LocalOptimization", "No" if "n" in options else "Yes")]))
        self.emit(wire.event("DialBegin", one.snapshot("Dest"), [("DialString", f"{target}@{ctx}")]))
        one.dialstring = f"{target}@{ctx}"
        one.originated = True
        self.start_pbx(two)
        outcome = await self._await_answer(one, req.timeout_ms)
        return self._finish_originate(req, one, outcome, respond)

    async def _await_answer(self, one: Channel, timeout_ms: int) -> str:
        """'answer', 'busy', 'timeout' or 'hangup' for the originated channel."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000 * self.time_scale
        while True:
            if one.state == 6:
                return "answer"
            if one.remote_busy:
                return "busy"
            if one.remote_congested:
                return "congestion"
            if one.hungup or one.dead:
                return "hangup"
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "timeout"
            one._signal.clear()
            try:
                await asyncio.wait_for(one._signal.wait(), remaining)
            except TimeoutError:
                pass

    def _finish_originate(self, req: OriginateRequest, one: Channel, outcome: str,
                          respond: Callable[[wire.Pairs], None] | None) -> OriginateResult:
        if outcome == "answer":
            result = OriginateResult(True, 4, one)
            if respond is not None and not req.is_async:
                respond(wire.response(req.action_id, "Success", "Originate successfully queued"))
            self._start_originated(one, req)
            self._originate_response(req, result)
            return result
        # __ast_request_and_dial's outstate: 3 ringing (timed out), 5 busy, 8 congestion, 1 hung up while
        # ringing; a Local pair whose ';2' hung up by itself (Hangup(21)) gives 0 (capture 15, rejected).
        reason = {"timeout": 3, "busy": 5, "congestion": 8, "hangup": 1}.get(outcome, 0)
        partner_gone = one.partner is not None and (one.partner.hungup or one.partner.dead)
        if outcome == "hangup" and one.is_one and partner_gone and one.state != 5:
            reason = 0
        # With a ChannelId the failure names the channel it made (capture 15); without, "<unknown>" (05 C).
        result = OriginateResult(False, reason, uniqueid=one.uniqueid if req.channel_id else None)
        if respond is not None and not req.is_async:
            respond(wire.response(req.action_id, "Error", "Originate failed"))
        if outcome == "timeout":
            one.hangup_cause = 19  # User alerting, no answer (capture 05 C)
        elif one.hangup_cause is None:
            one.hangup_cause = 0
        if outcome in ("busy", "congestion", "hangup") and one.dialstring and not one.dial_ended:
            # The far end hung up before answering (Hangup(21), capture 15): Dial reports NOANSWER.
            one.dial_ended = True
            status = {"busy": "BUSY", "congestion": "CONGESTION"}.get(outcome) or _dial_status(one.hangup_cause)
            self.emit(wire.event("DialEnd", one.snapshot("Dest"), [("DialStatus", status)]))
        partner = one.partner
        if partner is not None and not partner.dead:
            self.queue_hangup(partner, one.hangup_cause)
            partner.partner = None  # the originate thread drops ;1 itself
            one.partner = None
        self._originate_response(req, result)
        one.hungup = True
        busy = outcome in ("busy", "congestion") and partner is not None  # the far end stays up in Busy()/Congestion()
        if busy:
            one.hangup_device_state = "INUSE"  # ';2' is still up in Busy() (capture 05 C)
        self.spawn(self._drop_originated(one, partner, busy))
        return result

    async def _drop_originated(self, one: Channel, partner: Channel | None, busy: bool) -> None:
        await asyncio.sleep(0)
        await self.destroy(one)
        if partner is not None:
            await partner.done.wait()
        if busy:
            self.device_state(one.device, "NOT_INUSE")

    async def _originate_pjsip(self, req: OriginateRequest, rest: str,
                               respond: Callable[[wire.Pairs], None] | None) -> OriginateResult:
        peer, _, endpoint = rest.partition("@")
        profile = self.phones.get(peer)
        if profile is None and endpoint:
            profile = PhoneProfile(answer_after=2.0)  # somebody behind the trunk (as Dial has it)
        if profile is None or not profile.dialable:
            # No contact to dial (none registered, or its only one Unreachable): chan_pjsip makes no channel,
            # so there is no event but the outcome, which names the ChannelId it was given (capture 34 J-P).
            if respond is not None and not req.is_async:
                respond(wire.response(req.action_id, "Error", "Originate failed"))
            result = OriginateResult(False, 0, uniqueid=req.channel_id)
            self._originate_response(req, result)
            return result
        # Until it answers, an originated phone's channel is in its endpoint's context at 's' (captures 19,
        # 21); the Originate's context and extension are where it goes once answered.
        # A number dialled through an endpoint (PJSIP/<number>@trunk) is named after the endpoint and starts
        # in its context, pjsip.conf's [trunk] from-pstn (captures 26, 27).
        chan = self.new_pjsip(endpoint or peer, context=TRUNK_CONTEXT if endpoint else profile.context, exten="s",
                              state=0, uid=req.channel_id)
        self.chan_event("Newchannel", chan)
        for k, v in req.variables:
            self.set_var(chan, k, v)
        if req.callerid is not None:
            name, num = req.callerid
            self.set_callerid(chan, name, num)
            self.set_connected(chan, name, num)
        chan.dialstring = peer
        chan.originated = True
        self.emit(wire.event("DialBegin", chan.snapshot("Dest"), [("DialString", peer)]))
        self.spawn(self.ring_phone(chan, profile, None), name=f"phone {chan.name}")
        outcome = await self._await_answer(chan, req.timeout_ms)
        if outcome == "answer":
            self.emit(wire.event("DialEnd", chan.snapshot("Dest"), [("DialStatus", "ANSWER")]))
        elif outcome in ("busy", "hangup") and chan.state != 5 and chan.hangup_cause:
            return await self._refused_pjsip(req, chan, respond)
        return self._finish_originate(req, chan, outcome, respond)

    async def _refused_pjsip(self, req: OriginateRequest, chan: Channel,
                             respond: Callable[[wire.Pairs], None] | None) -> OriginateResult:
        """A PJSIP channel originated straight at a number that refuses before ringing (486 busy, 603 ...):
        the session ends first (HangupRequest and Hangup with the cause: 17 busy, 21 rejected) and only
        then does the Originate fail, with `Reason: 0` even for busy (captures 26 and 27; a Local
        channel's Busy() gives 5, capture 15)."""
        cause = chan.hangup_cause or 0
        if not chan.hungup:
            self.chan_event("HangupRequest", chan, ("Cause", str(cause)))
        chan.hungup = True
        if not chan.dial_ended:
            chan.dial_ended = True
            status = "BUSY" if cause == 17 else "CONGESTION" if cause == 34 else "NOANSWER"
            self.emit(wire.event("DialEnd", chan.snapshot("Dest"), [("DialStatus", status)]))
        await self.destroy(chan)
        result = OriginateResult(False, 0, uniqueid=chan.uniqueid if req.channel_id else None)
        if respond is not None and not req.is_async:
            respond(wire.response(req.action_id, "Error", "Originate failed"))
        self._originate_response(req, result)
        return result

    # ---------------------------------------------------------------- phones
    async def ring_phone(self, chan: Channel, profile: PhoneProfile, caller: Channel | None) -> None:
        """A simulated PJSIP phone: busy, ring then answer after a delay, talk, hang up."""
        await asyncio.sleep(0)
        if chan.dead or chan.hungup:
            return
        if profile.line is not None:
            await profile.line.ring(chan)
            return
        if profile.busy:
            chan.remote_busy = True
            chan.hangup_cause = 17
            chan.wake()
            return
        if profile.refuse_cause is not None:
            chan.hangup_cause = profile.refuse_cause
            self.queue_hangup(chan, profile.refuse_cause)
            return
        self.new_state(chan, 5)
        self.device_state(chan.device, "RINGING")
        if caller is None:
            self.emit(wire.event("DialState", chan.snapshot("Dest"), [("DialStatus", "RINGING")]))
        answer_after = profile.answer_after
        told = _answer_after(chan.sip_headers) if profile.auto_answer else None
        if told is not None:
            answer_after = told if answer_after is None else min(told, answer_after)
        if answer_after is None:
            await chan.wait_for(None)
            return
        r = await chan.wait_for(answer_after)
        if r == HUNGUP or chan.dead:
            return
        self.new_state(chan, 6)
        self.device_state(chan.device, "INUSE")
        if profile.talk_time is not None:
            talked = await self._wait_answered_then(chan, profile.talk_time)
            if talked and not chan.dead and not chan.hungup:
                self.queue_hangup(chan, 16)
                if chan.task is None and chan.bridge is None:
                    await self.destroy(chan)

    async def _wait_answered_then(self, chan: Channel, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds * self.time_scale
        while not chan.dead and not chan.hungup:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            chan._signal.clear()
            try:
                await asyncio.wait_for(chan._signal.wait(), remaining)
            except TimeoutError:
                return True
        return False

    # ---------------------------------------------------------------- inbound trunk calls
    def inbound_call(self, did: str, caller_num: str, caller_name: str, *, context: str = "from-pstn",
                     peer: str = "pstn") -> Channel:
        """A call arriving from the trunk: PJSIP/pstn-XXXXXXXX in Ring, running ``context``."""
        chan = self.new_pjsip(peer, context=context, exten=did, state=4)
        chan.cid_num, chan.cid_name = caller_num, caller_name
        chan.variables["__DID"] = did
        self.chan_event("Newchannel", chan)
        self.device_state(chan.device, "INUSE")
        self.start_pbx(chan)
        return chan

    def find(self, name: str) -> Channel | None:
        chan = self.channels.get(name)
        if chan is not None:
            return chan
        for c in self.channels.values():
            if c.uniqueid == name:
                return c
        return None

    async def wait_idle(self, timeout: float = 5.0) -> None:
        async def idle() -> None:
            while self.channels:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(idle(), timeout)


_ANSWER_AFTER = re.compile(r"answer-after=(\d+)", re.IGNORECASE)


def _answer_after(headers: list[tuple[str, str]]) -> float | None:
    """Seconds a phone waits before answering by itself, from ``Call-Info: <...>;answer-after=N``."""
    for name, value in headers:
        m = _ANSWER_AFTER.search(value) if name.lower() == "call-info" else None
        if m:
            return float(m.group(1))
    return None


def _uid_key(uid: str) -> tuple[float, int, str]:
    head, _, tail = uid.partition(".")
    try:
        return (float(head), int(tail), uid)
    except ValueError:
        return (float("inf"), 0, uid)


Waiter = Callable[[], Awaitable[None]]


def _dial_status(cause: int | None) -> str:
    """DialEnd's status for a dialled channel that hung up before answering, from its cause (dial.c's
    ast_hangup_cause_to_dial_status): 3 or 20 CHANUNAVAIL (capture 34 M), anything else NOANSWER (capture 15)."""
    return {17: "BUSY", 34: "CONGESTION", 3: "CHANUNAVAIL", 20: "CHANUNAVAIL"}.get(cause or 0, "NOANSWER")
