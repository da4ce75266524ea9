"""Dialplan applications of the simulated PBX. Each returns None (next priority), a (context, exten,
priority) goto, "hangup" (the app failed: pbx ends) or "hangup-app" (Hangup() itself).

A feature above world.py: the facade installs ``Apps`` as the world's ``AppRunner``. Queue() and
ParkedCall() use the queues and the parking lot it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pbxsim import audiosocket, wire
from pbxsim.agi_client import run_agi
from pbxsim.amd import AmdSettings, detect
from pbxsim.channels import HUNGUP, Channel
from pbxsim.dialplan import evaluate, split_args
from pbxsim.parking import ParkingLot
from pbxsim.prompts import moh_class, prompt_seconds
from pbxsim.queues import Queues
from pbxsim.world import AppResult, PhoneProfile, World

AppFunc = Callable[[Channel, str], Awaitable[AppResult]]

# How much of a prompt is voice when a Local half plays it into its partner (README: caller-speech is
# ~3 s of speech then 5 s of digital silence).
SPEECH_SECONDS = {"custom/caller-speech": 3.0}

DIAL_VARS = ("DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
             "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS")


class Apps:
    def __init__(self, world: World, queues: Queues, parking: ParkingLot) -> None:
        self.world = world
        self.queues = queues
        self.parking = parking
        self.table: dict[str, AppFunc] = {
            "noop": self.noop, "answer": self.answer, "hangup": self.hangup, "wait": self.wait,
            "ringing": self.ringing, "playback": self.playback, "busy": self.busy,
            "congestion": self.congestion, "amd": self.amd, "waitforcondition": self.wait_for_condition,
            "musiconhold": self.music_on_hold, "startmusiconhold": self.start_moh,
            "stopmusiconhold": self.stop_moh, "goto": self.goto, "gotoif": self.goto_if, "set": self.set,
            "userevent": self.user_event, "agi": self.agi, "dial": self.dial, "voicemail": self.voicemail,
            "chanspy": self.chanspy, "progress": self.noop, "verbose": self.noop, "log": self.noop,
            "queue": self.queue, "parkedcall": self.parked_call,
            "mixmonitor": self.mix_monitor, "stopmixmonitor": self.stop_mix_monitor,
            "audiosocket": self.audio_socket,
        }

    amd_settings: AmdSettings = AmdSettings()

    def unload(self, app: str) -> None:
        """An application whose module declined to load (app_amd without amd.conf): unknown to the pbx."""
        self.table.pop(app.lower(), None)

    def exists(self, app: str) -> bool:
        return app.lower() in self.table

    async def run(self, chan: Channel, app: str, data: str) -> AppResult:
        func = self.table.get(app.lower())
        if func is None:
            return "hangup"  # "No application 'X' for extension": the pbx ends
        return await func(chan, data)

    # ---------------------------------------------------------------- simple apps
    async def noop(self, chan: Channel, data: str) -> AppResult:
        return None

    def do_answer(self, chan: Channel) -> None:
        w = self.world
        if chan.state == 6:
            return
        partner = chan.partner
        was_ringing = partner is not None and partner.state == 5
        if partner is not None and not chan.is_one and partner.state != 6 and was_ringing:
            # A ringing ';1' goes Up before ';2' (capture 05 B).
            w.new_state(partner, 6)
            if partner.dialstring:
                w.emit(wire.event("DialEnd", partner.snapshot("Dest"), [("DialStatus", "ANSWER")]))
            w.new_state(chan, 6)
        else:
            w.new_state(chan, 6)
            if partner is not None and not chan.is_one and partner.state != 6:
                w.new_state(partner, 6)
                if partner.dialstring:
                    w.emit(wire.event("DialEnd", partner.snapshot("Dest"), [("DialStatus", "ANSWER")]))
        if partner is not None and partner.dialstring:
            w.device_state(chan.device, "INUSE")
            w.device_state(chan.device, "INUSE")

    async def answer(self, chan: Channel, data: str) -> AppResult:
        self.do_answer(chan)
        await chan.wait_for(0.02)  # Answer() settles for ~20 ms before the next priority (captures 01-05)
        return None

    async def hangup(self, chan: Channel, data: str) -> AppResult:
        explicit = data.strip().isdigit()
        cause = int(data) if explicit else (chan.hangup_cause or 16)
        chan.hangup_cause = cause
        # Hangup(21) sets the channel's cause, Hangup() keeps the one it has (3 after a Dial that made no
        # channel); the soft hangup request itself always says 16, a soft hangup flag (captures 15, 34 M).
        self.world.chan_event("SoftHangupRequest", chan, ("Cause", "16"))
        chan.hungup = True
        return "hangup-app"

    async def wait(self, chan: Channel, data: str) -> AppResult:
        try:
            seconds = float(data or 0)
        except ValueError:
            seconds = 0.0
        await chan.wait_for(seconds)
        return None

    async def ringing(self, chan: Channel, data: str) -> AppResult:
        w = self.world
        partner = chan.partner
        if partner is not None and not chan.is_one and partner.state != 5 and partner.state != 6:
            w.new_state(partner, 5)
            if partner.dialstring:
                w.device_state(chan.device, "INUSE")
                w.emit(wire.event("DialState", partner.snapshot("Dest"), [("DialStatus", "RINGING")]))
        return None

    async def play(self, chan: Channel, name: str, *, digits: str = "",
                   controls: bool = False) -> tuple[str | None, float]:
        """Play a prompt; returns (escape digit / HUNGUP / INTERRUPTED / STREAM_STOPPED / None, seconds
        played). ``controls``: a ControlPlayback stop ends it (STREAM FILE, CONTROL STREAM FILE: 24 A)."""
        w = self.world
        seconds = prompt_seconds(name)
        partner = chan.partner
        if partner is not None and not partner.dead:
            w.hear(partner, 0.0 if name.startswith("silence/") else SPEECH_SECONDS.get(name, seconds))
        for obs in chan.observers:
            obs.prompt_started(chan, name, bool(digits))
        start = w.vnow()
        chan_digits_wanted = bool(digits)
        while True:
            elapsed = w.vnow() - start
            r = await chan.wait_for(seconds - elapsed, digits=chan_digits_wanted, controls=controls)
            if r is not None and len(r) == 1 and r not in digits:
                continue  # a key that is not an escape digit is ignored
            return r, min(seconds, w.vnow() - start)

    async def mix_monitor(self, chan: Channel, data: str) -> AppResult:
        """MixMonitor(<file>,<options>): with r(<file>) the caller's side is written as it arrives (capture
        21); a plain file gets the whole call's mix when it stops (captures 07 B, 20)."""
        args = split_args(data)
        file = args[0].strip() if args else ""
        options = args[1] if len(args) > 1 else ""
        read_file = ""
        if "r(" in options:
            read_file = options.split("r(", 1)[1].split(")", 1)[0]
        w = self.world
        w.set_var(chan, "MIXMONITOR_FILENAME", file)
        w.chan_event("MixMonitorStart", chan)
        if read_file:
            w.start_live_recording(chan, read_file)
        if file:
            chan.variables["__mixmonitor"] = file
            w.start_recording(chan, file, options)
        return None

    async def stop_mix_monitor(self, chan: Channel, data: str) -> AppResult:
        w = self.world
        live = w.stop_live_recording(chan)
        whole = chan.variables.pop("__mixmonitor", None) is not None
        if whole:
            w.stop_recording(chan)
        if live or whole:
            w.chan_event("MixMonitorStop", chan)
        return None

    async def playback(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        ok = True
        for name in args[0].split("&"):
            if not self.world.sounds.exists(name):
                ok = False  # "Playback failed": the next file is played all the same (capture 14)
                continue
            r, _ = await self.play(chan, name)
            if r is not None:
                ok = False
                break
        if not chan.dead:
            self.world.set_var(chan, "PLAYBACKSTATUS", "SUCCESS" if ok else "FAILED")
        return None

    async def busy(self, chan: Channel, data: str) -> AppResult:
        return await self._refuse(chan, data, 17, "BUSY")

    async def congestion(self, chan: Channel, data: str) -> AppResult:
        # Capture 15: the Originate ends at once with Reason 8; ';2' ends 34, ';1' 0 Unknown.
        return await self._refuse(chan, data, 34, "CONGESTION")

    async def _refuse(self, chan: Channel, data: str, cause: int, status: str) -> AppResult:
        w = self.world
        w.new_state(chan, 7)
        chan.hangup_cause = cause
        partner = chan.partner
        if partner is not None and partner.state != 6:
            if partner.dialstring and not partner.dial_ended:
                partner.dial_ended = True
                w.emit(wire.event("DialEnd", partner.snapshot("Dest"), [("DialStatus", status)]))
            if status == "BUSY":
                partner.remote_busy = True
            else:
                partner.remote_congested = True
            partner.wake()
        try:
            seconds = float(data) if data else None
        except ValueError:
            seconds = None
        await chan.wait_for(seconds)
        return "hangup"

    async def amd(self, chan: Channel, data: str) -> AppResult:
        """AMD(): the verdict in AMDSTATUS/AMDCAUSE once the far end's voice tells (pbxsim/amd.py)."""
        found = await detect(chan, self.world.vnow, self.amd_settings)
        if found is None or chan.dead:
            return "hangup"
        status, cause = found
        self.world.set_var(chan, "AMDSTATUS", status)
        self.world.set_var(chan, "AMDCAUSE", cause)
        return None

    async def wait_for_condition(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        marker = args[0] or "$"
        expr = args[1] if len(args) > 1 else ""
        timeout = float(args[2]) if len(args) > 2 and args[2] else 10000.0
        interval = float(args[3]) if len(args) > 3 and args[3] else 0.05
        w = self.world
        start = w.vnow()
        while True:
            value = w.expand(chan, expr.replace(marker + "{", "${").replace(marker + "[", "$["))
            if value not in ("", "0"):
                w.set_var(chan, "WAITFORCONDITIONSTATUS", "TRUE")
                return None
            if w.vnow() - start >= timeout:
                w.set_var(chan, "WAITFORCONDITIONSTATUS", "TIMEOUT")
                return None
            r = await chan.wait_for(interval)
            if r is not None:
                return None

    async def music_on_hold(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        klass = moh_class(args[0])
        seconds = float(args[1]) if len(args) > 1 and args[1] else None
        w = self.world
        w.chan_event("MusicOnHoldStart", chan, ("Class", klass))
        chan.moh = klass
        for obs in chan.observers:
            obs.waiting_started(chan)
        await chan.wait_for(seconds)
        if chan.moh is not None:
            chan.moh = None
            w.chan_event("MusicOnHoldStop", chan)
        return None

    async def start_moh(self, chan: Channel, data: str) -> AppResult:
        klass = moh_class(split_args(data)[0])
        self.world.chan_event("MusicOnHoldStart", chan, ("Class", klass))
        chan.moh = klass
        return None

    async def stop_moh(self, chan: Channel, data: str) -> AppResult:
        if chan.moh is not None:
            chan.moh = None
            self.world.chan_event("MusicOnHoldStop", chan)
        return None

    def _target(self, chan: Channel, spec: str) -> tuple[str, str, int]:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) == 1:
            ctx, exten, prio = chan.context, chan.exten, parts[0]
        elif len(parts) == 2:
            ctx, exten, prio = chan.context, parts[0], parts[1]
        else:
            ctx, exten, prio = parts[0], parts[1], parts[2]
        if prio.isdigit():
            return ctx, exten, int(prio)
        label = self.world.dialplan.label_priority(ctx, exten, prio)
        return ctx, exten, label or 1

    async def goto(self, chan: Channel, data: str) -> AppResult:
        return self._target(chan, data)

    async def goto_if(self, chan: Channel, data: str) -> AppResult:
        cond, _, rest = data.partition("?")
        yes, _, no = rest.partition(":")
        branch = yes if evaluate(cond) not in ("", "0") and cond.strip() not in ("", "0") else no
        if not branch:
            return None
        return self._target(chan, branch)

    async def set(self, chan: Channel, data: str) -> AppResult:
        name, _, value = data.partition("=")
        name = name.strip()
        w = self.world
        up = name.upper()
        if up.startswith("PJSIP_HEADER(") and name.endswith(")"):
            action, _, header = name[13:-1].partition(",")
            # Only a PJSIP channel has a session to carry it (Asterisk logs an error for any other).
            if action.strip().lower() == "add" and chan.tech == "PJSIP":
                chan.sip_headers.append((header.strip(), value))
            return None
        if up.startswith("CALLERID("):
            what = name[9:-1].lower()
            num = value if what.startswith("num") else chan.cid_num
            cname = value if what == "name" else chan.cid_name
            w.set_callerid(chan, cname, num)
            return None
        if up.startswith("GLOBAL("):
            w.globals[name[7:-1]] = value
            return None
        if up.startswith("DB("):
            family, _, key = name[3:-1].partition("/")
            w.astdb[(family, key)] = value
            return None
        w.set_var(chan, name.lstrip("_"), value)
        return None

    async def user_event(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        extra: list[tuple[str, str]] = [("UserEvent", args[0])]
        for a in args[1:]:
            k, _, v = a.partition(":")
            extra.append((k.strip(), v.strip()))
        self.world.chan_event("UserEvent", chan, *extra)
        return None

    async def agi(self, chan: Channel, data: str) -> AppResult:
        await run_agi(self.world, self, chan, data)
        return None

    # ---------------------------------------------------------------- Dial
    async def dial(self, chan: Channel, data: str) -> AppResult:
        w = self.world
        args = split_args(data)
        target = args[0].split("&")[0]
        timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
        predial = _option_arg(args[2] if len(args) > 2 else "", "b")
        for var in DIAL_VARS:
            w.set_var(chan, var, "")
        tech, _, rest = target.partition("/")
        started = w.vnow()
        callee: Channel
        trunk_line = tech.upper() == "PJSIP" and "@" in rest  # PJSIP/<number>@<trunk endpoint>
        if tech.lower() == "local":
            exten, _, ctx = rest.partition("@")
            ctx, _, local_options = ctx.partition("/")
            if not w.dialplan.exists(ctx, exten):
                w.set_var(chan, "DIALSTATUS", "CHANUNAVAIL")
                return None
            one, two = w.new_local_pair(exten, ctx, linkedid=chan.linkedid)
            w.chan_event("Newchannel", one)
            w.chan_event("Newchannel", two)
            one.no_cdr = True
            w.set_var(one, "DIALEDPEERNUMBER", rest)
            # The dialled ';1' shows the caller's dialled number as its caller ID (capture 04).
            one.cid_num, one.cid_name = chan.exten, chan.cid_name
            one.conn_num, one.conn_name = chan.cid_num, chan.cid_name
            one.exten = chan.exten
            w.emit(wire.event("Newexten", one.snapshot(), [
                ("Extension", one.exten), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")]))
            one.last_app, one.last_data = "AppDial", "(Outgoing Line)"
            w.chan_event("NewCallerid", one, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
            w.chan_event("NewConnectedLine", one)
            if predial:
                await self.pre_dial(one, predial)
            w.set_var(two, "DIALEDPEERNUMBER", rest)
            w.set_callerid(two, chan.cid_name, chan.cid_num)
            w.set_connected(two, chan.cid_name, chan.exten)
            w.emit(wire.event("LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), [
                ("Context", ctx), ("Exten", exten),
                ("LocalOptimization", "No" if "n" in local_options else "Yes")]))
            w.emit(wire.event("DialBegin", chan.snapshot(), one.snapshot("Dest"), [("DialString", rest)]))
            callee = one
            w.start_pbx(two)
        elif tech.upper() == "PJSIP":
            peer, _, trunk = rest.partition("@")
            profile = w.phones.get(peer)
            if profile is None and trunk:
                profile = PhoneProfile(answer_after=2.0)
            if profile is None or not profile.dialable:
                # No channel could be made (no reachable contact): app_dial gives its caller the request's
                # cause, 3 no route to destination, which a Local ';2' hands to ';1' (capture 34 M)
                w.set_var(chan, "DIALSTATUS", "CHANUNAVAIL")
                chan.hangup_cause = 3
                return None
            callee = w.new_pjsip(trunk or peer, context="default", exten=peer, state=0, linkedid=chan.linkedid)
            # A trunk line's caller ID number is the number dialled (captures 25 and 31: NewCallerid on
            # PJSIP/trunk-…); through a Local pair it comes back to ';1' as it rings.
            callee.cid_num, callee.cid_name = (peer if trunk else chan.cid_num), chan.cid_name
            callee.conn_num, callee.conn_name = chan.cid_num, chan.cid_name
            w.chan_event("Newchannel", callee)
            if predial:
                await self.pre_dial(callee, predial)  # app_dial: after the request, before ast_call
            w.emit(wire.event("DialBegin", chan.snapshot(), callee.snapshot("Dest"), [("DialString", rest)]))
            w.spawn(w.ring_phone(callee, profile, chan), name=f"phone {callee.name}")
        else:
            w.set_var(chan, "DIALSTATUS", "CHANUNAVAIL")
            return None

        rang = False
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout * w.time_scale
        status = ""
        while True:
            if chan.hungup or chan.interrupt is not None:
                status = "CANCEL"
                break
            if callee.state == 5 and not rang:
                rang = True
                ms = int((w.vnow() - started) * 1000)
                w.set_var(chan, "RINGTIME", str(ms // 1000))
                w.set_var(chan, "RINGTIME_MS", str(ms))
                w.emit(wire.event("DialState", chan.snapshot(), callee.snapshot("Dest"), [("DialStatus", "RINGING")]))
                if callee.tech == "Local":
                    w.device_state(callee.device, "INUSE")
                partner = chan.partner
                if partner is not None and not chan.is_one and partner.state not in (5, 6):
                    w.new_state(partner, 5)  # ringing travels back through a Local pair (an atxfer target)
                    if trunk_line:
                        w.set_callerid(partner, callee.cid_name, callee.cid_num)  # the trunk's, capture 31
            if callee.state == 6:
                status = "ANSWER"
                break
            if callee.remote_busy:
                status = "BUSY"
                break
            if callee.dead or callee.hungup:
                status = "CONGESTION" if callee.hangup_cause == 34 else "CHANUNAVAIL"
                break
            if deadline is not None and loop.time() >= deadline:
                status = "NOANSWER"
                break
            await _wait_any([chan, callee], None if deadline is None else deadline - loop.time())
        if status != "ANSWER":
            if not callee.dead:
                w.emit(wire.event("DialEnd", chan.snapshot(), callee.snapshot("Dest"), [("DialStatus", status)]))
                if callee.partner is not None:
                    w.queue_hangup(callee.partner, 16 if status == "CANCEL" else 0)
                    callee.partner.partner = None
                    callee.partner = None
                callee.hungup = True
                callee.hangup_cause = {"NOANSWER": 19, "BUSY": 17}.get(status, callee.hangup_cause or 16)
                w.spawn(w.destroy(callee))
            w.set_var(chan, "DIALSTATUS", status)
            return "hangup" if chan.hungup else None
        if chan.state != 6:
            self.do_answer(chan)  # Dial answers its caller once the callee does
        w.set_var(chan, "DIALSTATUS", "ANSWER")
        w.set_var(chan, "DIALEDPEERNAME", callee.name)
        w.set_var(chan, "DIALEDPEERNUMBER", rest)
        w.emit(wire.event("DialEnd", chan.snapshot(), callee.snapshot("Dest"), [("DialStatus", "ANSWER")]))
        answered = w.vnow()
        bridge = w.create_bridge()
        bridge.by_dial = True
        if callee.tech == "Local":
            callee.exten = ""
            callee.app, callee.appdata = "AppDial", "(Outgoing Line)"
            w.emit(wire.event("Newexten", callee.snapshot(), [
                ("Extension", ""), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")]))
        w.enter_bridge(bridge, callee)
        w.enter_bridge(bridge, chan)
        w.device_state(callee.device, "INUSE")
        w.device_state(callee.device, "INUSE")
        w.set_bridgepeers(bridge)
        for obs in chan.observers:
            obs.connected(chan, callee)
        chan.dialing = True
        try:
            while chan.bridge is not None and not chan.hungup and chan.interrupt is None:
                await chan.wait_signal()
        finally:
            chan.dialing = False
        now = w.vnow()
        if chan.interrupt is not None and not chan.hungup:
            w.set_var(chan, "DIALSTATUS", "ANSWER")  # redirected out of the call: only this (07 A)
            return None
        if chan.hungup and chan.bridge is not None and not chan.dead:
            # The caller hung up: Dial leaves the bridge and files its variables before the pbx
            # raises its soft hangup (captures 06 C, 07 F).
            w.leave_bridge(chan, hangup=True)
        if not chan.dead:
            w.set_var(chan, "ANSWEREDTIME", str(int(now - answered)))
            w.set_var(chan, "ANSWEREDTIME_MS", str(int((now - answered) * 1000)))
            w.set_var(chan, "DIALEDTIME", str(int(now - started)))
            w.set_var(chan, "DIALEDTIME_MS", str(int((now - started) * 1000)))
            w.set_var(chan, "DIALSTATUS", "ANSWER")
        if chan.interrupt is not None:
            return None
        # Without the 'g' option the caller hangs up once the called party does (capture 04).
        if chan.hangup_cause is None:
            chan.hangup_cause = 16
        return "hangup"

    async def pre_dial(self, callee: Channel, where: str) -> None:
        """Dial's ``b(context^exten^priority)``: a Gosub on the new callee channel before it is called, the
        only place ``PJSIP_HEADER(add,...)`` reaches the INVITE (Asterisk 22 docs of PJSIP_HEADER)."""
        parts = where.split("^")
        exten = parts[1] if len(parts) > 1 else "s"
        priority = parts[2] if len(parts) > 2 else "1"
        await self.gosub(callee, parts[0], exten, int(priority) if priority.isdigit() else 1)

    async def gosub(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        """Run ``context,exten,priority`` on ``chan`` until ``Return()`` (app_stack's gosub_run), then put the
        channel back where it was. GOSUB_RETVAL is set on the way out."""
        w = self.world
        saved = chan.context, chan.exten, chan.priority
        chan.context, chan.exten, chan.priority = context, exten, priority
        value = ""
        try:
            while not chan.hungup:
                step = w.dialplan.step(chan.context, chan.exten, chan.priority)
                if step is None:
                    break
                data = w.expand(chan, step.data)
                w.emit(wire.event("Newexten", chan.snapshot(), [
                    ("Extension", chan.exten), ("Application", step.app), ("AppData", data)]))
                if step.app.lower() == "return":
                    value = data
                    break
                result = await self.run(chan, step.app, data)
                if isinstance(result, tuple):
                    chan.context, chan.exten, chan.priority = result
                    continue
                if result in ("hangup", "hangup-app"):
                    break
                chan.priority += 1
        finally:
            chan.context, chan.exten, chan.priority = saved
        w.set_var(chan, "GOSUB_RETVAL", value)

    # ---------------------------------------------------------------- voicemail, spy, queue
    async def voicemail(self, chan: Channel, data: str) -> AppResult:
        w = self.world
        self.do_answer(chan)
        r, _ = await self.play(chan, "vm-intro", digits="#")
        if r is not None and r.startswith("\x00"):
            w.set_var(chan, "VMSTATUS", "FAILED")
            return None
        r = await chan.wait_for(30.0, digits=True)
        w.set_var(chan, "VMSTATUS", "SUCCESS")
        return None

    async def chanspy(self, chan: Channel, data: str) -> AppResult:
        w = self.world
        args = split_args(data)
        prefix = args[0]
        options = args[1] if len(args) > 1 else ""
        exact = "u" in options  # a uniqueid or a full channel name, not a prefix
        spyee = next((c for c in w.channels.values() if c is not chan and not c.dead and (
            c.name == prefix or c.uniqueid == prefix if exact else c.name.startswith(prefix))), None)
        if chan.state != 6:
            self.do_answer(chan)
        if spyee is None:
            await chan.wait_for(1.0)
            return None
        # ChanSpy starts ~100 ms after the answer; attaching its audiohook makes the spyee's bridge
        # re-publish BRIDGEPEER, once per hook (whisper adds a second one on the way out) (07 C/D). On a
        # Local channel that reads nothing, its first wait lasts ~0.6 s; a frame written to it (an AudioSocket
        # server's first message) ends it at once (capture 32).
        if await chan.wait_for(0.1) is not None:
            return None
        if not chan.frames_in:
            for _ in range(5):
                if chan.frames_in or await chan.wait_for(0.1) is not None:
                    break
        if chan.hungup:
            return None
        w.emit(wire.event("ChanSpyStart", chan.snapshot("Spyer"), spyee.snapshot("Spyee")))
        w.announce_bridgepeers(spyee)
        spyee.spied_by.append(chan)
        chan.spying = spyee
        ear = chan.partner is not None and chan.partner.app.lower() == "audiosocket"
        if ear:  # a speech menu's ear: the caller is being listened to from now on
            w.ears[spyee.name] = chan
            for obs in spyee.observers:
                obs.record_started(spyee)
        while not chan.hungup and not spyee.dead and chan.interrupt is None:
            await chan.wait_signal()
        chan.spying = None
        if w.ears.get(spyee.name) is chan:
            del w.ears[spyee.name]
        if chan in spyee.spied_by:
            spyee.spied_by.remove(chan)
        if not spyee.dead:
            w.announce_bridgepeers(spyee)
        w.emit(wire.event("ChanSpyStop", chan.snapshot("Spyer"), spyee.snapshot("Spyee")))
        if "w" in options and not spyee.dead:
            w.announce_bridgepeers(spyee)
        return None

    async def audio_socket(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        ok = await audiosocket.run(self.world, chan, args[0] if args else "", args[1] if len(args) > 1 else "")
        return None if ok else "hangup"

    async def parked_call(self, chan: Channel, data: str) -> AppResult:
        args = split_args(data)
        space = args[1] if len(args) > 1 else ""
        if chan.state != 6:
            self.do_answer(chan)
        bridge = self.parking.retrieve(chan, space)
        if bridge is None:
            return "hangup"
        while chan.bridge is not None and not chan.hungup:
            await chan.wait_signal()
        if chan.hangup_cause is None:
            chan.hangup_cause = 16
        return "hangup"  # the call is over for the retriever (07 F: SoftHangupRequest, cause 16)

    async def queue(self, chan: Channel, data: str) -> AppResult:
        # The CTI's own ACD queues callers inside FastAGI (architecture.md); this is for capture 08.
        return await self.queues.run(chan, data)


def _option_arg(options: str, letter: str) -> str:
    """The argument of an application option letter: ``b`` in ``tTb(cti-autoanswer^s^1)``; "" if absent."""
    i = 0
    while i < len(options):
        c = options[i]
        arg = ""
        if i + 1 < len(options) and options[i + 1] == "(":
            end = options.find(")", i + 2)
            end = len(options) if end < 0 else end
            arg = options[i + 2:end]
            i = end
        if c == letter:
            return arg
        i += 1
    return ""


async def _wait_any(chans: list[Channel], timeout: float | None) -> None:
    """Wait real ``timeout`` seconds or until any channel is signalled."""
    for c in chans:
        c._signal.clear()
    waits = [asyncio.ensure_future(c._signal.wait()) for c in chans]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in waits:
            t.cancel()


__all__ = ["HUNGUP", "Apps"]
