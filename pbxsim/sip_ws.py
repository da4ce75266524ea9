"""The simulator's SIP-over-WebSocket endpoint (RFC 7118), as Asterisk's res_pjsip_transport_websocket serves it
at ``ws://<pbx>:8088/ws``: the agents' browser phones register here (401 digest challenge, then 200), and each
agent leg the CTI originates to ``PJSIP/<extension>`` becomes an INVITE down the browser's websocket, with real
WebRTC media from a Python peer (webrtc_peer.py) that plays a known sound and records what it receives.

What it says follows a real Asterisk 22.10.1 with the shipped pjsip.conf (tests/captures/22-webrtc-softphone.txt):
the 401's ``WWW-Authenticate: Digest realm="asterisk",nonce=..,opaque=..,algorithm=MD5,qop="auth"``, the 200's
``Contact: <..>;expires=<n-1>`` and ``Expires``, the INVITE's headers and SDP shape, a wrong password answered
with a fresh 401, ACK after a final non-2xx, BYE and CANCEL both ways, 200 to a re-INVITE.

The registrar's view of each contact follows Asterisk 22 with the shipped agent-webrtc-aor (captures 30, 33):
a qualify OPTIONS as soon as it registers and every ``qualify_frequency_s`` after; an answer makes the contact
Reachable (with its round trip), ``qualify_timeout_s`` without one Unreachable, and a registration not
refreshed is Removed at the first expiration check after it expires (res_pjsip checks every 30 s). AMI
PJSIPShowContacts lists the contacts as ContactList events. A REGISTER's expiry is clamped into the AOR's
range, never refused; an endpoint whose only contact is Unreachable is not dialled at all: no channel, no
INVITE, the Originate fails at once (capture 34).

Message parsing is pbxsim.sip (pure); this module is the I/O around it and the registrar's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pbxsim import sip, webrtc_peer, wire
from pbxsim.channels import Channel
from pbxsim.media_peer import MediaProcess, MediaProcessError, RemotePeer
from pbxsim.world import PhoneProfile, World

log = logging.getLogger(__name__)

REALM = "asterisk"  # res_pjsip's default_realm
USER_AGENT = "Asterisk PBX (CTI)"  # pjsip.conf [global] user_agent
ALLOW = "OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, INFO, REFER"
NONCE_TTL_S = 32.0  # pjsip's nonce lifetime


QUALIFY_FREQUENCY_S = 30.0  # agent-webrtc-aor's qualify_frequency
QUALIFY_TIMEOUT_S = 3.0  # res_pjsip's default qualify_timeout
EXPIRATION_CHECK_S = 30.0  # [global] contact_expiration_check_interval: when an expired contact goes
# agent-webrtc-aor's range (minimum_expiration is res_pjsip's default): an expiry outside it is clamped, never
# refused with 423 (capture 34 B-G)
MINIMUM_EXPIRATION_S = 60
DEFAULT_EXPIRATION_S = 300
MAXIMUM_EXPIRATION_S = 600


@dataclass
class Registration:
    extension: str
    contact: str  # the URI in the browser's Contact
    conn: ServerConnection
    expires_at: float  # time.monotonic()
    call_id: str = ""
    via_host: str = ""
    user_agent: str = ""
    status: str = "NonQualified"  # as ContactStatus says it: NonQualified, Reachable, Unreachable
    rtt_us: int = 0
    watch: asyncio.Task[None] | None = None  # its qualify and expiry
    next_qualify: float = 0.0  # time.monotonic(); 0: at once


@dataclass
class BrowserCall:
    """One agent leg rung in a browser: the dialog, its media and what the tests read afterwards."""

    extension: str
    chan: Channel
    call_id: str
    from_tag: str
    contact: str
    conn: ServerConnection
    cseq: int = 1
    to_tag: str = ""
    answered: bool = False
    ended: bool = False
    rung_at: float = 0.0  # time.monotonic() of each step from the originate to the answer, for the bench
    offer_ready_at: float = 0.0
    invite_sent_at: float = 0.0
    ringing_at: float | None = None
    answered_at: float | None = None
    final_status: int | None = None
    peer: RemotePeer | None = None  # the call's media, in the media process
    recording: Path | None = None
    held: bool = False
    reinvites: list[str] = field(default_factory=list)  # the direction each re-INVITE asked for
    hung_up_by: str = ""  # "browser" or "pbx"
    responses: asyncio.Queue[sip.SipMessage] = field(default_factory=asyncio.Queue)

    @property
    def digits(self) -> str:
        return "".join(self.peer.digits) if self.peer is not None else ""


class SipWsServer:
    def __init__(self, world: World, passwords: Callable[[str], str | None], *, host: str = "127.0.0.1",
                 port: int = 0, media_dir: Path | None = None, media: bool = True, media_nice: int = 0,
                 qualify_frequency_s: float = QUALIFY_FREQUENCY_S, qualify_timeout_s: float = QUALIFY_TIMEOUT_S,
                 expiration_check_s: float = EXPIRATION_CHECK_S, minimum_expiration_s: int = MINIMUM_EXPIRATION_S,
                 default_expiration_s: int = DEFAULT_EXPIRATION_S,
                 maximum_expiration_s: int = MAXIMUM_EXPIRATION_S) -> None:
        self.world = world
        self.expiration_range = (minimum_expiration_s, default_expiration_s, maximum_expiration_s)
        self.qualify_frequency_s = qualify_frequency_s  # real seconds, like the registrations' expiry
        self.qualify_timeout_s = qualify_timeout_s
        self.expiration_check_s = expiration_check_s
        self._qualifies: dict[str, asyncio.Future[sip.SipMessage]] = {}  # OPTIONS Call-ID -> its answer
        self._started = time.monotonic()
        self._cseq = 1700
        self.passwords = passwords  # extension -> its SIP password (None: no such endpoint)
        self.host, self.port = host, port
        self.media_dir = media_dir
        self.media = media
        self.media_process = MediaProcess(nice=media_nice) if media else None
        self.registrations: dict[str, Registration] = {}
        self.calls: list[BrowserCall] = []
        self.refused: list[tuple[str, int]] = []  # (extension, status) of refused REGISTERs, for the tests
        self._nonces: dict[str, float] = {}
        self._server: Server | None = None
        self._conns: set[ServerConnection] = set()
        self._tone: Path | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def start(self) -> int:
        if self.media_process is not None:
            await self.media_process.start()  # it loads aiortc and makes a certificate before the first call
            await self.media_process.prepare(self._known_sound())
        self._server = await serve(self._session, self.host, self.port, subprotocols=["sip"],  # type: ignore[list-item]
                                   ping_interval=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self.world.contact_lists.append(self.contact_list)
        return self.port

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.world.contact_lists.remove(self.contact_list)
        for reg in self.registrations.values():
            if reg.watch is not None:
                reg.watch.cancel()
        for call in list(self.calls):
            await self._close_media(call)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.media_process is not None:
            await self.media_process.stop()

    async def drop_connections(self) -> int:
        """The network between the PBX and the browsers goes: every websocket is cut (no close handshake)."""
        n = 0
        for conn in list(self._conns):
            conn.transport.abort()
            n += 1
        return n

    def registered(self, extension: str) -> bool:
        reg = self.registrations.get(extension)
        return reg is not None and reg.expires_at > time.monotonic()

    # ---------------------------------------------------------------- the websocket
    async def _session(self, conn: ServerConnection) -> None:
        if conn.subprotocol != "sip":
            await conn.close(1002, "subprotocol sip required")
            return
        self._conns.add(conn)
        try:
            async for data in conn:
                if sip.is_keepalive(data):
                    continue
                try:
                    msg = sip.parse(data)
                except sip.SipError as e:
                    log.warning("sip/ws: dropped a message from %s: %s", conn.remote_address, e)
                    continue
                await self._receive(conn, msg)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            self._connection_gone(conn)

    def _connection_gone(self, conn: ServerConnection) -> None:
        # The websocket was the only way to the browser: its contact goes with it (transport shutdown).
        for ext, reg in list(self.registrations.items()):
            if reg.conn is conn:
                self._unregister(ext)

    async def _send(self, conn: ServerConnection, msg: sip.SipMessage) -> None:
        try:
            await conn.send(msg.to_text())
        except ConnectionClosed:
            pass

    async def _receive(self, conn: ServerConnection, msg: sip.SipMessage) -> None:
        if not msg.is_request:
            qualify = self._qualifies.get(msg.call_id)
            if qualify is not None and not qualify.done():
                qualify.set_result(msg)
                return
            call = self._call(msg.call_id)
            if call is not None:
                await call.responses.put(msg)
            return
        if msg.method == "REGISTER":
            await self._register(conn, msg)
        elif msg.method == "OPTIONS":
            await self._send(conn, sip.response_to(msg, 200, "OK", to_tag=sip.new_tag(),
                                                   extra=[("Allow", ALLOW), ("Server", USER_AGENT)]))
        elif msg.method == "ACK":
            return
        elif msg.method in ("BYE", "CANCEL", "INVITE", "INFO"):
            await self._in_dialog(conn, msg)
        else:
            await self._send(conn, sip.response_to(msg, 501, "Not Implemented", to_tag=sip.new_tag()))

    def _call(self, call_id: str) -> BrowserCall | None:
        return next((c for c in reversed(self.calls) if c.call_id == call_id), None)

    # ---------------------------------------------------------------- the registrar
    def _challenge(self, msg: sip.SipMessage) -> sip.SipMessage:
        now = time.monotonic()
        for n in [n for n, t in self._nonces.items() if now - t > NONCE_TTL_S]:
            del self._nonces[n]
        nonce = f"{int(time.time())}/{secrets.token_hex(16)}"
        self._nonces[nonce] = now
        challenge = (f'Digest realm="{REALM}",nonce="{nonce}",opaque="{secrets.token_hex(8)}",algorithm=MD5,'
                     f'qop="auth"')
        return sip.response_to(msg, 401, "Unauthorized", to_tag=_via_branch(msg),
                               extra=[("WWW-Authenticate", challenge), ("Server", USER_AGENT)])

    def _authenticated(self, msg: sip.SipMessage, extension: str) -> bool:
        header = msg.get("Authorization")
        if not header:
            return False
        try:
            p = sip.digest_params(header)
        except sip.SipError:
            return False
        nonce = p.get("nonce", "")
        password = self.passwords(extension)
        if nonce not in self._nonces or password is None or p.get("username") != extension:
            return False
        return sip.check_authorization(header, password=password, realm=REALM, method=msg.method,
                                       nonce=nonce) == extension

    async def _register(self, conn: ServerConnection, msg: sip.SipMessage) -> None:
        extension = sip.user(sip.address(msg.get("To")))
        if self.passwords(extension) is None:
            # PJSIP answers a REGISTER for an unknown AOR with the same challenge (no user enumeration).
            self.refused.append((extension, 401))
            await self._send(conn, self._challenge(msg))
            return
        if not self._authenticated(msg, extension):
            if msg.get("Authorization"):
                self.refused.append((extension, 401))
                log.info("sip/ws: REGISTER for %s with wrong credentials", extension)
            await self._send(conn, self._challenge(msg))
            return
        contact = msg.get("Contact")
        expires = self._expiration(sip.params(contact).get("expires") or msg.get("Expires") or None)
        # The 200 repeats Expires only when the REGISTER had one, clamped on its own (capture 34 E-G)
        echoed = ([("Expires", str(self._expiration(msg.get("Expires"))))]
                  if any(k.lower() == "expires" for k, _ in msg.headers) else [])
        if contact == "*" or expires == 0:
            self._unregister(extension)
            await self._send(conn, sip.response_to(msg, 200, "OK", to_tag=_via_branch(msg),
                                                   extra=[("Date", _date()), *echoed, ("Server", USER_AGENT)]))
            return
        old = self.registrations.get(extension)
        reg = Registration(extension, sip.address(contact), conn, time.monotonic() + expires, msg.call_id,
                           _via_host(msg.get("Via")), msg.get("User-Agent"))
        self.registrations[extension] = reg
        if old is not None and old.watch is not None:
            old.watch.cancel()
        if old is None or _pbx_uri(old) != _pbx_uri(reg):
            if old is not None:  # max_contacts 1, remove_existing: the new contact replaces the old one
                self._contact_status(old, "Removed")
            self._contact_status(reg, "NonQualified")
        else:  # a refresh: the contact stays what the qualify last found, qualified on the same beat
            reg.status, reg.rtt_us, reg.next_qualify = old.status, old.rtt_us, old.next_qualify  # (capture 34 B-H)
        reg.watch = self.world.spawn(self._watch(reg), name=f"contact {extension}")
        profile = self.world.phones.get(extension)
        if profile is None or profile.line is None:
            profile = PhoneProfile(answer_after=None, line=_Line(self, extension))
            self.world.phones[extension] = profile
        profile.registered = True  # dialable at once; its device state waits for the qualify's answer
        await self._send(conn, sip.response_to(
            msg, 200, "OK", to_tag=_via_branch(msg),
            extra=[("Date", _date()), ("Contact", f"<{sip.address(contact)}>;expires={expires - 1}"), *echoed,
                   ("Server", USER_AGENT)]))

    def _expiration(self, value: str | None) -> int:
        """res_pjsip_registrar's registrar_get_expiration: 0 stays 0 (an unregistration), none is the AOR's
        default, anything else is clamped into the AOR's range."""
        low, default, high = self.expiration_range
        if value is None:
            return default
        try:
            asked = int(value)
        except ValueError:
            asked = -1
        if asked < 0:
            return default
        return 0 if asked == 0 else max(low, min(asked, high))

    def _contact_status(self, reg: Registration, status: str, rtt_us: int = 0) -> None:
        """AMI, as Asterisk 22 reports a contact (captures 30, 33, 34): registered, NonQualified; the qualify's
        answer, PeerStatus Reachable (the endpoint comes online only then) and Reachable with the round trip;
        no answer to the qualify, PeerStatus Unreachable then Unreachable; gone (unregistered, expired, or its
        websocket closed), PeerStatus Unreachable, then Removed. PeerStatus and the device state only when the
        endpoint's state changes: a contact removed before any qualify answered goes with ContactStatus alone."""
        reachable = status == "Reachable"
        before = reg.status == "Reachable"
        reg.status, reg.rtt_us = (reg.status, reg.rtt_us) if status == "Removed" else (status, rtt_us)
        peer = wire.event("PeerStatus", [("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{reg.extension}"),
                                         ("PeerStatus", "Reachable" if reachable else "Unreachable")])
        contact = wire.event("ContactStatus", [("URI", _pbx_uri(reg)), ("ContactStatus", status),
                                               ("AOR", reg.extension), ("EndpointName", reg.extension),
                                               ("RoundtripUsec", str(rtt_us))])
        changed = before if status == "Removed" else reachable != before
        events = [peer, contact] if changed else [contact]
        for event in events:
            self.world.emit(event)
        if changed and status in ("Reachable", "Unreachable"):
            # the endpoint's device state follows its only contact (capture 34 I, N)
            self.world.device_state(f"PJSIP/{reg.extension}", "NOT_INUSE" if reachable else "UNAVAILABLE")

    def reachable(self, extension: str) -> bool:
        """Whether chan_pjsip would dial ``extension``: it has a contact that is not Unreachable (capture 34)."""
        reg = self.registrations.get(extension)
        return reg is not None and reg.expires_at > time.monotonic() and reg.status != "Unreachable"

    async def _watch(self, reg: Registration) -> None:
        """Qualify the contact when it is new and every qualify_frequency_s after (a refresh keeps the beat);
        remove it at the first expiration check after it expires."""
        while self.registrations.get(reg.extension) is reg:
            now = time.monotonic()
            if now >= reg.expires_at:
                due = self._expiration_check_after(reg.expires_at)
                if now >= due:
                    log.info("sip/ws: the registration of %s expired", reg.extension)
                    self._unregister(reg.extension)
                    return
                await asyncio.sleep(due - now)
                continue
            if now >= reg.next_qualify:
                # the beat moves on before the OPTIONS: a refresh during it does not qualify again
                reg.next_qualify = (reg.next_qualify or now) + self.qualify_frequency_s
                await self._qualify(reg)
                continue
            await asyncio.sleep(min(reg.next_qualify, reg.expires_at) - now)

    async def qualify(self, extension: str) -> str:
        """Qualify ``extension``'s contact now (as ``pjsip qualify <endpoint>`` does); its status after it."""
        reg = self.registrations.get(extension)
        if reg is None:
            return "Removed"
        await self._qualify(reg)
        return reg.status

    def _expiration_check_after(self, t: float) -> float:
        """res_pjsip prunes expired contacts on a timer of its own, every expiration_check_s since it started."""
        step = self.expiration_check_s
        if step <= 0:
            return t
        return self._started + math.ceil((t - self._started) / step) * step

    async def _qualify(self, reg: Registration) -> None:
        """One OPTIONS down the contact's websocket, as Asterisk sends it (capture 30)."""
        self._cseq += 1
        call_id = secrets.token_hex(16)
        ip, port = reg.conn.remote_address[:2]
        target = f"{reg.contact.split('@', 1)[0]}@{ip}:{port};transport=WS"
        options = sip.SipMessage(method="OPTIONS", uri=target, headers=[
            ("Via", f"SIP/2.0/WS {self.host}:{self.port};rport;branch=z9hG4bKPj{secrets.token_hex(16)};alias"),
            ("From", f"<sip:{reg.extension}@{self.host}>;tag={sip.new_tag()}"),
            ("To", f"<{target.split(';', 1)[0]}>"),
            ("Contact", f"<sip:{reg.extension}@{self.host}:{self.port};transport=ws>"),
            ("Call-ID", call_id), ("CSeq", f"{self._cseq} OPTIONS"), ("Max-Forwards", "70"),
            ("User-Agent", USER_AGENT)])
        answer: asyncio.Future[sip.SipMessage] = asyncio.get_running_loop().create_future()
        self._qualifies[call_id] = answer
        sent = time.monotonic()
        try:
            await self._send(reg.conn, options)
            async with asyncio.timeout(self.qualify_timeout_s):
                await answer
            rtt_us = max(1, int((time.monotonic() - sent) * 1e6))
        except TimeoutError:
            rtt_us = 0
        finally:
            self._qualifies.pop(call_id, None)
        if self.registrations.get(reg.extension) is not reg:
            return
        if rtt_us and reg.status == "Reachable":
            reg.rtt_us = rtt_us  # no event: ContactStatus tells changes only (capture 33 E)
        elif rtt_us:
            self._contact_status(reg, "Reachable", rtt_us)
        elif reg.status != "Unreachable":
            log.info("sip/ws: %s did not answer the qualify in %g s: Unreachable", reg.extension,
                     self.qualify_timeout_s)
            self._contact_status(reg, "Unreachable")

    def contact_list(self) -> list[wire.Pairs]:
        """The registered contacts as PJSIPShowContacts lists them (ContactList fields in capture 33's order,
        without Event and ActionID)."""
        rows = []
        wall = time.time() - time.monotonic()
        for reg in self.registrations.values():
            uri = _pbx_uri(reg)
            rows.append([
                ("ObjectType", "contact"), ("ObjectName", f"{reg.extension};@{hashlib.md5(uri.encode()).hexdigest()}"),
                ("ViaAddr", reg.via_host), ("QualifyTimeout", f"{self.qualify_timeout_s:.6f}"),
                ("Qualify2xxOnly", "false"), ("CallId", reg.call_id), ("RegServer", ""), ("PruneOnBoot", "yes"),
                ("Path", ""), ("Endpoint", reg.extension), ("ViaPort", "0"), ("AuthenticateQualify", "no"),
                ("Uri", uri), ("QualifyFrequency", f"{self.qualify_frequency_s:g}"), ("UserAgent", reg.user_agent),
                ("ExpirationTime", str(int(wall + reg.expires_at))), ("OutboundProxy", ""),
                ("Status", reg.status),
                ("RoundtripUsec", str(reg.rtt_us) if reg.status == "Reachable" else "N/A")])
        return rows

    def _unregister(self, extension: str) -> None:
        reg = self.registrations.pop(extension, None)
        if reg is None:
            return
        if reg.watch is not None and reg.watch is not asyncio.current_task():
            reg.watch.cancel()
        online = reg.status == "Reachable"
        self._contact_status(reg, "Removed")
        profile = self.world.phones.get(extension)
        if profile is not None and profile.line is not None:
            profile.registered = False
            if online:  # an endpoint that never came online has no device state to lose
                self.world.device_state(f"PJSIP/{extension}", "UNAVAILABLE")

    # ---------------------------------------------------------------- calls to the browser
    async def ring(self, extension: str, chan: Channel) -> None:
        reg = self.registrations.get(extension)
        if reg is None or not self.reachable(extension):
            # The contact went between the channel's request (PhoneProfile.dialable) and its INVITE
            chan.hangup_cause = 3
            chan.hungup = True
            chan.wake()
            return
        call = BrowserCall(extension, chan, call_id=secrets.token_hex(16), from_tag=sip.new_tag(),
                           contact=reg.contact, conn=reg.conn, rung_at=time.monotonic())
        self.calls.append(call)
        chan.observers.append(_Watcher(self, call))
        try:
            offer = await self._media_offer(call)
        except MediaProcessError as e:
            log.warning("sip/ws: no media for the call to %s: %s", extension, e)
            chan.hangup_cause = 58  # bearer capability not available
            chan.hungup = True
            chan.wake()
            return
        call.offer_ready_at = time.monotonic()
        await self._send(call.conn, self._invite(call, offer))
        call.invite_sent_at = time.monotonic()
        await self._await_final(call)

    async def _media_offer(self, call: BrowserCall) -> str:
        if self.media_process is None:
            return ""
        call.recording = self._media_dir() / f"{call.chan.uniqueid}-from-agent.wav"
        call.peer = await self.media_process.peer_for_call(self._known_sound(), call.recording)
        return call.peer.offer_sdp

    def _media_dir(self) -> Path:
        media_dir = self.media_dir or Path(".")
        media_dir.mkdir(parents=True, exist_ok=True)
        return media_dir

    def _known_sound(self) -> Path:
        if self._tone is None:
            self._tone = webrtc_peer.write_tone(self._media_dir() / "known-sound.wav")
        return self._tone

    def _invite(self, call: BrowserCall, sdp: str, *, method: str = "INVITE", cseq: int | None = None,
                branch: str | None = None) -> sip.SipMessage:
        chan = call.chan
        num = "" if chan.cid_num in ("", "<unknown>") else chan.cid_num
        name = "" if chan.cid_name in ("", "<unknown>") else chan.cid_name
        from_value = (f'"{name}" ' if name else "") + f"<sip:{num or 'asterisk'}@{self.host}>;tag={call.from_tag}"
        to_value = f"<sip:{call.extension}@{self.host}>" + (f";tag={call.to_tag}" if call.to_tag else "")
        headers = [("Via", f"SIP/2.0/WS {self.host}:{self.port};rport;branch={branch or 'z9hG4bKPj' + secrets.token_hex(16)};alias"),
                   ("From", from_value), ("To", to_value),
                   ("Contact", f"<sip:asterisk@{self.host}:{self.port};transport=ws>"),
                   ("Call-ID", call.call_id), ("CSeq", f"{call.cseq if cseq is None else cseq} {method}")]
        if method == "INVITE":
            headers += [("Allow", ALLOW), ("Supported", "100rel, timer, replaces, norefersub, histinfo"),
                        ("Max-Forwards", "70"), ("User-Agent", USER_AGENT)]
        else:
            headers += [("Max-Forwards", "70"), ("User-Agent", USER_AGENT)]
        body = sdp.encode() if sdp else b""
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return sip.SipMessage(method=method, uri=call.contact, headers=headers, body=body)

    async def _await_final(self, call: BrowserCall) -> None:
        chan = call.chan
        while not call.ended:
            resp = await call.responses.get()
            if resp.cseq[1] != "INVITE":
                continue
            if resp.status in (180, 183):
                if call.ringing_at is None:
                    call.ringing_at = time.monotonic()
                    self.world.new_state(chan, 5)
                    self.world.device_state(chan.device, "RINGING")
                    if chan.originated:
                        self.world.emit(wire.event("DialState", chan.snapshot("Dest"), [("DialStatus", "RINGING")]))
                continue
            if resp.status < 200:
                continue
            call.final_status = resp.status
            call.to_tag = sip.tag(resp.get("To"))
            await self._send(call.conn, self._ack(call, resp))
            if resp.status >= 300:
                call.ended = True
                await self._close_media(call)
                if chan.dead or chan.hungup:
                    return
                if resp.status in (486, 600):
                    chan.remote_busy = True
                    chan.hangup_cause = 17
                else:
                    chan.hangup_cause = {603: 21, 480: 18, 404: 1, 487: 16}.get(resp.status, 21)
                    chan.hungup = True
                chan.wake()
                return
            if chan.dead or chan.hungup:  # the CTI gave up while the 200 was on its way: end it at once
                await self._bye(call)
                return
            # The channel is up with the 200, as in Asterisk: ICE and DTLS follow on their own, and a slow
            # media side never holds the answer back from the CTI.
            call.answered = True
            call.answered_at = time.monotonic()
            self.world.new_state(chan, 6)
            self.world.device_state(chan.device, "INUSE")
            if call.peer is not None:
                self.world.spawn(self._media_answer(call.peer, resp.body.decode("utf-8", "replace")),
                                 name=f"media answer {call.call_id}")
            return

    async def _media_answer(self, peer: RemotePeer, sdp: str) -> None:
        try:
            await peer.answer(sdp)
        except MediaProcessError as e:
            log.warning("sip/ws: the browser's answer SDP not taken: %s", e)

    def _ack(self, call: BrowserCall, resp: sip.SipMessage) -> sip.SipMessage:
        ack = self._invite(call, "", method="ACK", cseq=resp.cseq[0])
        return ack

    async def _bye(self, call: BrowserCall) -> None:
        if call.ended:
            return
        call.ended = True
        call.hung_up_by = call.hung_up_by or "pbx"
        call.cseq += 1
        await self._send(call.conn, self._invite(call, "", method="BYE"))
        await self._close_media(call)

    async def _cancel(self, call: BrowserCall) -> None:
        if call.ended:
            return
        call.hung_up_by = "pbx"
        # CANCEL repeats the INVITE's CSeq number; the browser answers 200, then 487 to the INVITE (ACKed
        # by _await_final, which is still waiting for it).
        await self._send(call.conn, self._invite(call, "", method="CANCEL", cseq=call.cseq))

    async def _close_media(self, call: BrowserCall) -> None:
        if call.peer is not None:
            await call.peer.close()

    def channel_gone(self, call: BrowserCall) -> None:
        if call.ended:
            return
        coro = self._bye(call) if call.answered else self._cancel(call)
        self.world.spawn(coro, name=f"sip end {call.call_id}")

    # ---------------------------------------------------------------- requests inside a dialog
    async def _in_dialog(self, conn: ServerConnection, msg: sip.SipMessage) -> None:
        call = self._call(msg.call_id)
        if call is None:
            if msg.method == "INVITE":
                # A browser calling out: the agent console makes no such calls (click-to-call goes
                # through the CTI), so like an endpoint with no dialplan for it.
                await self._send(conn, sip.response_to(msg, 403, "Forbidden", to_tag=sip.new_tag()))
            else:
                await self._send(conn, sip.response_to(msg, 481, "Call/Transaction Does Not Exist",
                                                       to_tag=sip.new_tag()))
            return
        if msg.method == "BYE":
            await self._send(conn, sip.response_to(msg, 200, "OK"))
            call.hung_up_by = call.hung_up_by or "browser"
            call.ended = True
            await self._close_media(call)
            if not call.chan.dead and not call.chan.hungup:
                self.world.queue_hangup(call.chan, 16)
        elif msg.method == "INVITE":
            await self._reinvite(conn, call, msg)
        elif msg.method == "INFO":
            await self._send(conn, sip.response_to(msg, 200, "OK"))
        else:
            await self._send(conn, sip.response_to(msg, 200, "OK"))

    async def _reinvite(self, conn: ServerConnection, call: BrowserCall, msg: sip.SipMessage) -> None:
        """A re-INVITE (hold from the phone, an ICE restart after a network change): 200 with our SDP, its
        direction the mirror of the one asked for, as Asterisk answers sendonly with recvonly."""
        offer = msg.body.decode("utf-8", "replace")
        asked = next((d for d in ("sendonly", "recvonly", "inactive", "sendrecv") if f"a={d}" in offer), "sendrecv")
        call.reinvites.append(asked)
        call.held = asked in ("sendonly", "inactive")
        mirror = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(asked, asked)
        ours = ""
        peer = call.peer
        if peer is not None:
            ours = webrtc_peer.asterisk_shaped_offer(peer.local_sdp).replace("a=setup:actpass", "a=setup:passive")
            ours = ours.replace("a=sendrecv", f"a={mirror}")
        await self._send(conn, sip.response_to(msg, 200, "OK", extra=[
            ("Contact", f"<sip:asterisk@{self.host}:{self.port};transport=ws>"),
            ("Content-Type", "application/sdp")], body=ours.encode()))


class _Line:
    """A registered browser as the world's phone line."""

    def __init__(self, server: SipWsServer, extension: str) -> None:
        self.server, self.extension = server, extension

    async def ring(self, chan: Channel) -> None:
        await self.server.ring(self.extension, chan)

    def reachable(self) -> bool:
        return self.server.reachable(self.extension)


class _Watcher:
    """Ends the SIP dialog when the agent leg ends on the PBX side (BYE, or CANCEL while it rings)."""

    def __init__(self, server: SipWsServer, call: BrowserCall) -> None:
        self.server, self.call = server, call

    def prompt_started(self, chan: Channel, name: str, interruptible: bool) -> None:
        return None

    def input_wanted(self, chan: Channel, max_digits: int) -> None:
        return None

    def record_started(self, chan: Channel) -> None:
        return None

    def waiting_started(self, chan: Channel) -> None:
        return None

    def connected(self, chan: Channel, peer: Channel) -> None:
        return None

    def channel_gone(self, chan: Channel) -> None:
        self.server.channel_gone(self.call)


def _pbx_uri(reg: Registration) -> str:
    """The contact's URI as Asterisk names it: the websocket's source address, the browser's own host kept in
    x-ast-orig-host (rewrite_contact). This endpoint is ``ws://``, where Asterisk writes ``transport=WS``
    (captures 22, 33; over WSS it is ``transport=ws``, capture 30)."""
    user = sip.user(reg.contact)
    host = reg.contact.split("@", 1)[-1].split(";", 1)[0]
    ip, port = reg.conn.remote_address[:2]
    return f"sip:{user}@{ip}:{port};transport=WS;x-ast-orig-host={host}:0"


def _via_host(via: str) -> str:
    """``SIP/2.0/WS df7jal23ls0d.invalid;branch=..`` -> ``df7jal23ls0d.invalid`` (ContactList's ViaAddr)."""
    parts = via.split(None, 1)
    return parts[1].split(";", 1)[0].rsplit(":", 1)[0] if len(parts) == 2 else ""


def _via_branch(msg: sip.SipMessage) -> str:
    # PJSIP's registrar uses the request's branch as its To tag (see the capture)
    return sip.params(msg.get("Via")).get("branch", sip.new_tag())


def _date() -> str:
    return email.utils.formatdate(usegmt=True)
