"""The simulator's AMI server: Asterisk 22's greeting, login rules, actions and event fan-out.

Actions are read by the simulator's own parser (action_frames.py); frames are written by ``wire.render``.
Response texts are the captures' (EVENT-CATALOG "Action responses seen").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pbxsim import wire
from pbxsim.action_frames import ActionFrame, ActionParser, OversizedFrame
from pbxsim.channels import Channel, Interrupt
from pbxsim.parking import ParkingLot
from pbxsim.queues import Queues
from pbxsim.transfers import attended_transfer
from pbxsim.world import OriginateRequest, World, parse_callerid

log = logging.getLogger(__name__)

GREETING = b"Asterisk Call Manager/11.0.0\r\n"
FAILED_LOGIN_DELAY = 1.0  # real seconds, not scaled: the client's timeout logic sees real time (capture 01)
WRITE_LIMIT = 4 << 20  # a reader this far behind is dropped, like Asterisk's write timeout


@dataclass(frozen=True, slots=True)
class AmiUser:
    username: str
    secret: str


class AmiSession:
    def __init__(self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.world = server.world
        self.reader = reader
        self.writer = writer
        self.user: str | None = None
        self.events = True
        self.challenge: str | None = None
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/127.0.0.1/{server.port}"
        self.session_id = f"0x{id(self) & 0xFFFFFFFFFFFF:x}"
        self.session_tv = _tv()
        self.closed = False

    # ---------------------------------------------------------------- output
    def send(self, pairs: wire.Pairs) -> None:
        if self.closed:
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > WRITE_LIMIT:
            self.drop()
            return
        self.writer.write(wire.render(pairs))

    def on_event(self, pairs: wire.Pairs) -> None:
        if self.user is not None and self.events:
            self.send(pairs)

    def drop(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.writer.transport.abort()

    # ---------------------------------------------------------------- input
    async def serve(self) -> None:
        parser = ActionParser()
        self.writer.write(GREETING)
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                for frame in parser.feed(data):
                    if isinstance(frame, OversizedFrame):
                        log.warning("AMI client %s sent an action over %d bytes (%r...); closing the session",
                                    self.remote, frame.limit, frame.head)
                        self.closed = True
                        break
                    await self.handle(frame)
                    if self.closed:
                        break
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.server.sessions.discard(self)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def handle(self, msg: ActionFrame) -> None:
        action = (msg.get("Action") or "").strip()
        aid = msg.get("ActionID")
        key = action.lower()
        if self.user is None and key not in ("login", "challenge", "logoff"):
            self.send(wire.response(aid, "Error", "Permission denied"))
            self.server.security_event(self, "RequestNotAllowed", f"Action: {action}", authed=False)
            return
        handler = ACTIONS.get(key)
        if handler is None:
            self.send(wire.response(aid, "Error", f"Invalid/unknown command: {action}. Use Action: ListCommands "
                                                 "to show available commands."))
            self.pending_bad = f"Action: {action}"
            return
        await handler(self, msg, aid)

    # ---------------------------------------------------------------- helpers
    def channel(self, msg: ActionFrame, key: str = "Channel") -> Channel | None:
        name = msg.get(key)
        return self.world.find(name) if name else None


def _tv() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"


Handler = Callable[[AmiSession, ActionFrame, str | None], Awaitable[None]]
ACTIONS: dict[str, Handler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ACTIONS[name.lower()] = fn
        return fn

    return deco


# ------------------------------------------------------------------------------------ login


@action("Challenge")
async def _challenge(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.challenge = s.server.fixed_challenge or str(random.randrange(100000000, 999999999))
    s.send(wire.response(aid, "Success", None, ("Challenge", s.challenge)))


@action("Login")
async def _login(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    username = m.get("Username", "")
    user = s.server.users.get(username)
    ok = False
    if user is not None:
        if (m.get("AuthType") or "").lower() == "md5" and s.challenge is not None:
            expect = hashlib.md5((s.challenge + user.secret).encode()).hexdigest()
            ok = (m.get("Key") or "").lower() == expect
        else:
            ok = m.get("Secret") == user.secret
    if not ok:
        s.server.security_event(s, "InvalidPassword", "", authed=False, account=username)
        await asyncio.sleep(FAILED_LOGIN_DELAY)  # Asterisk answers a bad login after ~1 s, then closes
        s.send(wire.response(aid, "Error", "Authentication failed"))
        with contextlib.suppress(ConnectionError):
            await s.writer.drain()
        s.closed = True
        s.writer.close()
        return
    s.user = username
    events = (m.get("Events") or "on").lower()
    s.events = events not in ("off", "no", "false", "0")
    s.send(wire.response(aid, "Success", "Authentication accepted"))
    if s.events:
        s.send(wire.event("FullyBooted", [("Uptime", str(s.server.uptime())),
                                          ("LastReload", str(s.server.uptime())), ("Status", "Fully Booted")]))
    s.server.security_event(s, "SuccessfulAuth", "", authed=True, account=username)


@action("Logoff")
async def _logoff(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.send(wire.response(aid, "Goodbye", "Thanks for all the fish."))
    with contextlib.suppress(ConnectionError):
        await s.writer.drain()
    s.closed = True
    s.writer.close()


@action("Ping")
async def _ping(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.send(wire.response(aid, "Success", None, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))


# ------------------------------------------------------------------------------------ status


def _duration(chan: Channel, now: float) -> str:
    secs = int(now - chan.created)
    return f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


@action("CoreShowChannels")
async def _core_show(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.send(wire.response(aid, "Success", "Channels will follow", ("EventList", "start")))
    chans = list(s.world.channels.values())
    now = s.world.vnow()
    for c in chans:
        pairs: wire.Pairs = [("Event", "CoreShowChannel")]
        if aid is not None:
            pairs.append(("ActionID", aid))
        pairs += c.snapshot()
        pairs += [("Application", c.app), ("ApplicationData", c.appdata), ("Duration", _duration(c, now)),
                  ("BridgeId", c.bridge.uniqueid if c.bridge else "")]
        s.send(pairs)
    s.send(_complete("CoreShowChannelsComplete", aid, len(chans)))


def _complete(name: str, aid: str | None, n: int, *extra: tuple[str, str]) -> wire.Pairs:
    pairs: wire.Pairs = [("Event", name)]
    if aid is not None:
        pairs.append(("ActionID", aid))
    pairs += [("EventList", "Complete"), ("ListItems", str(n))]
    pairs += list(extra)
    return pairs


@action("PJSIPShowContacts")
async def _pjsip_show_contacts(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    rows = [row for lister in s.world.contact_lists for row in lister()]
    if not rows:
        # astman_send_error with a message ending in a newline: "No Contacts found\n\r\n" (capture 33)
        s.send(wire.response(aid, "Error", wire.Verbatim("No Contacts found\n")))
        return
    s.send(wire.response(aid, "Success", "A listing of Contacts follows, presented as ContactList events",
                         ("EventList", "start")))
    for row in rows:
        s.send([("Event", "ContactList"), *([("ActionID", aid)] if aid is not None else []), *row])
    s.send(_complete("ContactListComplete", aid, len(rows)))


@action("Status")
async def _status(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    name = m.get("Channel")
    if name:
        chan = s.world.find(name)
        if chan is None:
            s.send(wire.response(aid, "Error", "No such channel"))
            return
        chans = [chan]
    else:
        chans = list(s.world.channels.values())
    wanted = [v.strip() for v in (m.get("Variables") or "").split(",") if v.strip()]
    s.send(wire.response(aid, "Success", "Channel status will follow", ("EventList", "start")))
    now = s.world.vnow()
    for c in chans:
        pairs = wire.event("Status", c.snapshot())
        pairs[1] = ("Privilege", "Call")  # Status spells it this way (README)
        pairs += [("Type", c.tech), ("DNID", ""), ("EffectiveConnectedLineNum", c.conn_num),
                  ("EffectiveConnectedLineName", c.conn_name), ("TimeToHangup", "0"),
                  ("BridgeID", c.bridge.uniqueid if c.bridge else ""), ("Application", c.app),
                  ("Data", c.appdata), ("Nativeformats", "(slin)" if c.tech == "Local" else "(ulaw)"),
                  ("Readformat", "slin"), ("Readtrans", ""), ("Writeformat", "slin"), ("Writetrans", ""),
                  ("Callgroup", "0"), ("Pickupgroup", "0"), ("Seconds", str(int(now - c.created)))]
        if name:
            for v in wanted:
                pairs.append(("Variable", f"{v}={s.world.read_var(c, v) or ''}"))
        if aid is not None:
            pairs.append(("ActionID", aid))
        s.send(pairs)
    s.send(_complete("StatusComplete", aid, len(chans), ("Items", str(len(chans)))))


@action("Getvar")
async def _getvar(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    var = m.get("Variable", "")
    chan = s.channel(m)
    if m.get("Channel") and chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    value = s.world.read_var(chan, var) if chan is not None else s.world.globals.get(var)
    s.send(wire.response(aid, "Success", None, ("Variable", var), ("Value", value or "")))


@action("Setvar")
async def _setvar(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    var = m.get("Variable", "")
    value = m.get("Value", "")
    chan = s.channel(m)
    if m.get("Channel") and chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    s.send(wire.response(aid, "Success", "Variable Set"))
    if chan is None:
        s.world.globals[var] = value
    else:
        s.world.set_var(chan, var, value)
        chan.wake()


@action("Command")
async def _command(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    cmd = (m.get("Command") or "").strip()
    out: list[tuple[str, str]] = []
    if cmd.startswith("core show channels concise"):
        for c in s.world.channels.values():
            out.append(("Output", "!".join([c.name, c.context, c.exten, str(c.priority),
                                             wire.STATE_DESC.get(c.state, ""), c.app, c.appdata, c.cid_num,
                                             c.accountcode, "", "3", str(int(s.world.vnow() - c.created)),
                                             c.bridge.uniqueid if c.bridge else "(None)", c.uniqueid])))
    elif cmd.startswith("core show version"):
        out.append(("Output", "Asterisk 22.10.1 built by root @ pbx1 on a x86_64 running Linux"))
    elif cmd.startswith("core show channels"):
        out.append(("Output", f"{len(s.world.channels)} active channels"))
    else:
        out.append(("Output", f"No such command '{cmd}' (type 'core show help {cmd}' for other possible commands)"))
    head: wire.Pairs = [("Response", "Success")]
    if aid is not None:
        head.append(("ActionID", aid))
    s.send(head + [("Message", "Command output follows")] + out)


# ------------------------------------------------------------------------------------ call control


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("true", "yes", "1", "on")


@action("Originate")
async def _originate(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    channel = m.get("Channel")
    if not channel:
        s.send(wire.response(aid, "Error", "Channel not specified"))
        return
    variables: list[tuple[str, str]] = []
    for v in m.all("Variable"):
        for part in v.split(","):
            k, _, val = part.partition("=")
            if k:
                variables.append((k.strip(), val))
    try:
        timeout = int(m.get("Timeout") or 30000)
    except ValueError:
        timeout = 30000
    req = OriginateRequest(
        channel=channel, context=m.get("Context"), exten=m.get("Exten"),
        priority=int(m.get("Priority") or 1) if (m.get("Priority") or "1").isdigit() else 1,
        application=m.get("Application"), data=m.get("Data", ""), timeout_ms=timeout,
        callerid=parse_callerid(m["CallerID"]) if m.get("CallerID") else None, variables=variables,
        channel_id=m.get("ChannelId"), other_channel_id=m.get("OtherChannelId"), action_id=aid,
        is_async=_truthy(m.get("Async")),
    )
    if req.application is None and not req.exten:
        s.send(wire.response(aid, "Error", "Exten not specified" if req.context else "Context not specified"))
        return
    if req.is_async:
        s.send(wire.response(aid, "Success", "Originate successfully queued"))
        s.world.spawn(s.world.originate(req), name=f"originate {aid}")
    else:
        await s.world.originate(req, respond=s.send)


@action("Hangup")
async def _hangup(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    name = m.get("Channel")
    if not name:
        s.server.security_event(s, "RequestBadFormat", getattr(s, "pending_bad", "Action: Hangup"), authed=True)
        s.send(wire.response(aid, "Error", "No channel specified"))
        return
    targets = [c for c in s.world.channels.values() if c.name == name or c.uniqueid == name]
    if not targets and name.startswith("/") and name.endswith("/"):
        rx = re.compile(name[1:-1])
        targets = [c for c in s.world.channels.values() if rx.search(c.name)]
    if not targets:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    cause = int(m["Cause"]) if (m.get("Cause") or "").isdigit() else None
    s.send(wire.response(aid, "Success", "Channel Hungup"))
    for c in targets:
        s.world.soft_hangup(c, cause)


@action("PlayDTMF")
async def _play_dtmf(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    digit = m.get("Digit", "")
    if chan is None:
        s.send(wire.response(aid, "Error", "Channel not found"))
        return
    if not digit:
        s.send(wire.response(aid, "Error", "No digit specified"))
        return
    try:
        duration = int(m.get("Duration") or 120)
    except ValueError:
        duration = 120
    # The digit is heard after it has been played (~120 ms, capture 02).
    await s.world.sleep(duration / 1000)
    s.send(wire.response(aid, "Success", "DTMF successfully queued"))
    s.world.play_dtmf(chan, digit[0], duration)


@action("Redirect")
async def _redirect(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "Channel specified does not exist"))
        return
    exten, ctx = m.get("Exten"), m.get("Context")
    if not exten or not ctx:
        s.send(wire.response(aid, "Error", "Exten not specified" if not exten else "Context not specified"))
        return
    prio = int(m.get("Priority") or 1) if (m.get("Priority") or "1").isdigit() else 1
    extra = s.channel(m, "ExtraChannel")
    if m.get("ExtraChannel") and extra is None:
        s.send(wire.response(aid, "Error", "ExtraChannel does not exist"))
        return
    s.send(wire.response(aid, "Success", "Dual Redirect successful" if extra else "Redirect successful"))
    redirect(s.world, chan, ctx, exten, prio)
    if extra is not None:
        redirect(s.world, extra, m.get("ExtraContext") or ctx, m.get("ExtraExten") or exten,
                 int(m.get("ExtraPriority") or prio))


def redirect(world: World, chan: Channel, ctx: str, exten: str, prio: int, *, moved: bool = False) -> None:
    chan.interrupt = Interrupt("goto", ctx, exten, prio)
    bridge = chan.bridge
    if bridge is not None:
        # The async goto moves the channel before it leaves the bridge (BridgeLeave shows the new place).
        world.clear_bridgepeers(bridge)
        chan.context, chan.exten, chan.priority = ctx, exten, prio
        if bridge.by_dial and not moved:
            # Dial's bridge: the move itself is published, with the app still running (capture 07 A).
            world.emit(wire.event("Newexten", chan.snapshot(), [
                ("Extension", exten), ("Application", chan.app), ("AppData", chan.appdata)]))
            chan.skip_newexten = True
        world.leave_bridge(chan)
        if bridge.channels:
            world.spawn(world.release_bridge_rest(bridge))
    chan.wake()
    if chan.task is None or chan.task.done():
        chan.interrupt = None
        chan.context, chan.exten, chan.priority = ctx, exten, prio
        world.start_pbx(chan)


@action("Bridge")
async def _bridge(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    a, b = s.channel(m, "Channel1"), s.channel(m, "Channel2")
    if a is None or b is None:
        which = "Channel1" if a is None else "Channel2"
        s.send(wire.response(aid, "Error", f"Channel {which} does not exist"))
        return
    s.send(wire.response(aid, "Success", "Channels have been bridged"))
    w = s.world
    for c in (a, b):
        if c.bridge is not None:
            kept = c.cause_set  # moved from bridge to bridge: the same channel, its cause as it was
            w.leave_bridge(c)
            c.cause_set = kept
        else:
            c.cause_set = False  # yanked: a fresh channel takes its place (bridge.c, ast_channel_yank)
        if c.moh is not None:
            c.moh = None
            w.chan_event("MusicOnHoldStop", c)
        if c.agi_active:
            w.yank_into_bridge(c)  # the AGI goes on with a zombie; FastAGI sees a hangup
            continue
        c.interrupt = Interrupt("bridge")
        if c.pbx:
            c.priority += 1  # the channel resumes after the app it was in (capture 05 B)
        c.wake()
    w.bridge_channels(a, b)


@action("BlindTransfer")
async def _blind_transfer(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "No channel found"))
        return
    exten = m.get("Exten")
    if not exten:
        s.send(wire.response(aid, "Error", "No extension specified"))
        return
    ctx = m.get("Context") or chan.context
    bridge = chan.bridge
    s.send(wire.response(aid, "Success", "Transfer succeeded"))
    w = s.world
    if bridge is None:
        redirect(w, chan, ctx, exten, 1)
        return
    others = [c for c in bridge.channels if c is not chan]
    # Capture 06 B: Unhold on the transferer (no Hold before it), BLINDTRANSFER on both sides, the
    # transferee moves (still in Dial), BlindTransfer, then the transferee leaves and the transferer ends.
    w.chan_event("Unhold", chan)
    for o in others:
        w.set_var(o, "BLINDTRANSFER", chan.name)
    if others:
        w.set_var(chan, "BLINDTRANSFER", others[0].name)
    w.clear_bridgepeers(bridge)
    for o in others:
        o.context, o.exten, o.priority = ctx, exten, 1
        if bridge.by_dial:
            w.emit(wire.event("Newexten", o.snapshot(), [
                ("Extension", exten), ("Application", o.app), ("AppData", o.appdata)]))
            o.skip_newexten = True
    w.emit(wire.event("BlindTransfer", [("Result", "Success")], chan.snapshot("Transferer"),
                      others[0].snapshot("Transferee") if others else [], bridge.pairs(),
                      [("IsExternal", "No"), ("Context", ctx), ("Extension", exten)]))
    for o in others:
        redirect(w, o, ctx, exten, 1, moved=True)
    if chan.bridge is None and chan.task is None:
        w.soft_hangup(chan, 16)


@action("Atxfer")
async def _atxfer(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "Channel specified does not exist"))
        return
    exten = m.get("Exten")
    if not exten:
        s.send(wire.response(aid, "Error", "No extension specified"))
        return
    s.send(wire.response(aid, "Success", "Atxfer successfully queued"))
    ctx = m.get("Context") or chan.context
    s.world.spawn(attended_transfer(s.world, chan, exten, ctx), name=f"atxfer {chan.name}")


@action("MixMonitor")
async def _mixmonitor(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    s.send(wire.response(aid, "Success"))
    w = s.world
    w.set_var(chan, "MIXMONITOR_FILENAME", m.get("File", ""))
    w.announce_bridgepeers(chan)
    w.chan_event("MixMonitorStart", chan)
    chan.variables["__mixmonitor"] = m.get("File", "")
    w.start_recording(chan, m.get("File", ""), m.get("Options", ""))


@action("ControlPlayback")
async def _control_playback(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    # app_controlplayback's checks in its order, with its words (capture 24 B).
    control = m.get("Control", "").lower()
    if not m.get("Channel"):
        s.send(wire.response(aid, "Error", "Channel not specified"))
        return
    if not control:
        s.send(wire.response(aid, "Error", "Control not specified"))
        return
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    if control not in ("stop", "forward", "reverse", "pause", "restart"):
        s.send(wire.response(aid, "Error", "Unknown control type"))
        return
    if control == "stop":
        # Queued on the channel whatever it is doing: a playback stops, WAIT FOR DIGIT returns 1000, an
        # AGI between commands drops it (capture 24).
        chan.stream_stop = True
        chan.wake()
    s.send(wire.response(aid, "Success"))


@action("MixMonitorMute")
async def _mixmonitor_mute(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    # The checks in app_mixmonitor's order, with its words (capture 20 C).
    direction, state = m.get("Direction", ""), m.get("State", "")
    if not direction:
        s.send(wire.response(aid, "Error", "No direction specified. Must be read, write or both"))
        return
    if direction.lower() not in ("read", "write", "both"):
        s.send(wire.response(aid, "Error", "Invalid direction specified. Must be read, write or both"))
        return
    if not m.get("Channel"):
        s.send(wire.response(aid, "Error", "No channel specified"))
        return
    if not state:
        s.send(wire.response(aid, "Error", "No state specified"))
        return
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    recording = s.world.recordings.get(chan.name)
    if recording is None:
        s.send(wire.response(aid, "Error", "Cannot set mute flag"))
        return
    # Muted unless the State is one of ast_false's words; the event's State is ast_true's verdict.
    word = state.strip().lower()
    s.send(wire.response(aid, "Success"))
    recording.mute(word not in ("no", "false", "n", "f", "0", "off"), s.world.vnow())
    shown = "1" if word in ("yes", "true", "y", "t", "1", "on") else "0"
    s.world.chan_event("MixMonitorMute", chan, ("Direction", direction), ("State", shown))


@action("StopMixMonitor")
async def _stop_mixmonitor(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "No such channel"))
        return
    live = s.world.stop_live_recording(chan)
    if chan.variables.pop("__mixmonitor", None) is None and not live:
        s.send(wire.response(aid, "Error", "Could not stop monitoring channel"))  # capture 20 C
        return
    s.send(wire.response(aid, "Success"))
    s.world.stop_recording(chan)
    s.world.chan_event("MixMonitorStop", chan)
    s.world.announce_bridgepeers(chan)


def _send_list(s: AmiSession, aid: str | None, message: str, items: list[wire.Pairs], complete: str) -> None:
    """A list action's answer: Response with EventList start, the items, then the ...Complete event."""
    s.send(wire.response(aid, "Success", message, ("EventList", "start")))
    for item in items:
        s.send(item)
    s.send(_complete(complete, aid, len(items)))


@action("QueueStatus")
async def _queue_status(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    _send_list(s, aid, "Queue status will follow", s.server.queues.status_items(m.get("Queue"), aid),
               "QueueStatusComplete")


@action("QueueSummary")
async def _queue_summary(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    _send_list(s, aid, "Queue summary will follow", s.server.queues.summary_items(m.get("Queue"), aid),
               "QueueSummaryComplete")


@action("QueueAdd")
async def _queue_add(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    queue, interface = m.get("Queue"), m.get("Interface")
    if not queue or not interface:
        s.send(wire.response(aid, "Error", "'Queue' or 'Interface' not set."))
        return
    penalty = int(m["Penalty"]) if (m.get("Penalty") or "").isdigit() else 0
    s.send(wire.response(aid, "Success", "Added interface to queue"))
    error = s.server.queues.add(queue, interface, m.get("MemberName") or interface, penalty, _truthy(m.get("Paused")))
    if error is not None:
        log.warning("QueueAdd: %s", error)


@action("QueuePause")
async def _queue_pause(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    interface = m.get("Interface")
    if not interface:
        s.send(wire.response(aid, "Error", "Need 'Interface' parameter"))
        return
    paused = _truthy(m.get("Paused"))
    if not s.server.queues.queues or not any(interface in q.members for q in s.server.queues.queues.values()):
        s.send(wire.response(aid, "Error", "Interface not found"))
        return
    s.send(wire.response(aid, "Success", "Interface paused successfully" if paused else
                         "Interface unpaused successfully"))
    s.server.queues.pause(m.get("Queue"), interface, paused, m.get("Reason") or "")


@action("QueuePenalty")
async def _queue_penalty(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    interface, penalty = m.get("Interface"), m.get("Penalty") or ""
    if not interface or not penalty.lstrip("-").isdigit():
        s.send(wire.response(aid, "Error", "Need 'Interface' and 'Penalty' parameters."))
        return
    s.send(wire.response(aid, "Success", "Interface penalty set successfully"))
    s.server.queues.penalty(m.get("Queue"), interface, int(penalty))


@action("QueueRemove")
async def _queue_remove(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    queue, interface = m.get("Queue") or "", m.get("Interface") or ""
    q = s.server.queues.queues.get(queue)
    if q is None or interface not in q.members:
        s.send(wire.response(aid, "Error", "Unable to remove interface: Not there"))
        return
    s.send(wire.response(aid, "Success", "Removed interface from queue"))
    s.server.queues.remove(queue, interface)


@action("Park")
async def _park(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    chan = s.channel(m)
    if chan is None:
        s.send(wire.response(aid, "Error", "Channel does not exist"))
        return
    if chan.bridge is None:
        s.send(wire.response(aid, "Error", "Park failed"))
        return
    timeout_chan = s.channel(m, "TimeoutChannel")
    # The message really ends in a stray LF before the CRLF (README).
    s.send(wire.response(aid, "Success", wire.Verbatim("Park successful\n")))
    s.server.parking.park(chan, timeout_chan)


@action("ParkedCalls")
async def _parked_calls(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.send(wire.response(aid, "Success", "Parked calls will follow", ("EventList", "start")))
    items = s.server.parking.list_items(aid)
    for item in items:
        s.send(item)
    s.send(_complete("ParkedCallsComplete", aid, len(items), ("Total", str(len(items)))))


@action("ListCommands")
async def _list_commands(s: AmiSession, m: ActionFrame, aid: str | None) -> None:
    s.send(wire.response(aid, "Success", None, *[(name, name) for name in sorted(ACTIONS)]))


# ------------------------------------------------------------------------------------ server


class AmiServer:
    def __init__(self, world: World, users: dict[str, str], *, queues: Queues, parking: ParkingLot,
                 host: str = "127.0.0.1", port: int = 0, fixed_challenge: str | None = None) -> None:
        self.fixed_challenge = fixed_challenge  # deterministic MD5 challenge for replaying captures
        self.world = world
        self.queues = queues  # app_queue's members and callers (QueueAdd, QueueStatus ...)
        self.parking = parking  # res_parking's lot (Park, ParkedCalls)
        self.users = {u: AmiUser(u, p) for u, p in users.items()}
        self.host = host
        self.port = port
        self.sessions: set[AmiSession] = set()
        self._server: asyncio.base_events.Server | None = None
        self._started = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        world.listeners.append(self._fanout)

    def uptime(self) -> int:
        return max(1, int(time.monotonic() - self._started))

    def _fanout(self, pairs: wire.Pairs) -> None:
        for s in list(self.sessions):
            s.on_event(pairs)

    def security_event(self, origin: AmiSession, name: str, request: str, *, authed: bool,
                       account: str | None = None) -> None:
        tv = _tv()
        base: wire.Pairs = [("EventTV", tv), ("Severity", "Informational" if name == "SuccessfulAuth" else "Error"),
                            ("Service", "AMI"), ("EventVersion", "2" if name == "InvalidPassword" else "1")]
        acct = account if account is not None else (origin.user or "")
        sess = [("SessionID", origin.session_id), ("LocalAddress", origin.local), ("RemoteAddress", origin.remote)]
        stv = origin.session_tv if authed else "1970-01-01T00:00:00.000+0000"
        if name == "SuccessfulAuth":
            pairs = base + [("AccountID", acct)] + sess + [("UsingPassword", "0"), ("SessionTV", stv)]
        elif name == "InvalidPassword":
            pairs = base + [("AccountID", acct)] + sess + [("SessionTV", stv)]
        elif name == "RequestNotAllowed":
            pairs = base + [("AccountID", acct)] + sess + [("RequestType", request), ("SessionTV", stv)]
        else:  # RequestBadFormat
            pairs = base + sess + [("RequestType", request), ("SessionTV", stv), ("AccountID", acct)]
        ev = wire.event(name, pairs)
        for s in list(self.sessions):
            s.on_event(ev)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await session.serve()
        finally:
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

    def drop_clients(self) -> int:
        """Cut every AMI connection (tests drop the link mid-call); calls carry on."""
        n = 0
        for s in list(self.sessions):
            s.drop()
            n += 1
        return n

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_clients()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def close(self) -> None:
        if self._fanout in self.world.listeners:
            self.world.listeners.remove(self._fanout)
