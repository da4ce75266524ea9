"""The simulator's SIP-over-WebSocket endpoint with a browser-style phone on a real socket: registration (401,
then 200), wrong credentials, an agent leg's INVITE with Asterisk's shape, 180/200/ACK, BYE both ways, CANCEL,
re-INVITE, and the contact going with the websocket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pbxsim import sip
from pbxsim.simulator import Simulator
from pbxsim.sip_ws import SipWsServer
from pbxsim.world import OriginateRequest
from tests.pbxsim.ws_phone import WsPhone

PASSWORDS = {"1002": "pw-1002", "1003": "pw-1003"}


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[tuple[Simulator, SipWsServer]]:
    sim = Simulator(time_scale=0.05)
    await sim.start()
    server = SipWsServer(sim.world, PASSWORDS.get, media_dir=tmp_path, media=False)
    await server.start()
    try:
        yield sim, server
    finally:
        await server.stop()
        await sim.stop()


async def phone(server: SipWsServer, ext: str, password: str | None = None) -> WsPhone:
    p = WsPhone(server.url, ext, password or PASSWORDS[ext], "127.0.0.1")
    await p.open()
    return p


async def test_register_is_challenged_then_accepted(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    p = await phone(server, "1002")
    uri, to = "sip:127.0.0.1", "<sip:1002@127.0.0.1>"
    await p.send(p.request("REGISTER", uri, to=to, extra=[("Contact", f"{p.contact};expires=300")]))
    challenge = await p.final_response()
    assert challenge.status == 401
    params = sip.digest_params(challenge.get("WWW-Authenticate"))
    assert params["realm"] == "asterisk" and params["algorithm"] == "MD5" and params["qop"] == "auth"
    ok = await p.register()
    assert ok.status == 200
    assert ok.get("Expires") == "300" and ok.get("Contact").endswith(";expires=299")
    assert server.registered("1002") and sim.world.phones["1002"].registered
    await p.close()


async def test_wrong_password_and_other_agents_extension_are_refused(pbx: tuple[Simulator, SipWsServer]) -> None:
    _, server = pbx
    wrong = await phone(server, "1002", password="not-it")
    assert (await wrong.register()).status == 401  # PJSIP answers a bad digest with a fresh challenge
    # agent 1003's console, holding 1003's password, trying to register as 1002
    other = await phone(server, "1003")
    other.username = "1002"
    assert (await other.register(password=PASSWORDS["1003"])).status == 401
    assert not server.registered("1002")
    assert server.refused.count(("1002", 401)) == 2
    await wrong.close()
    await other.close()


async def ring(sim: Simulator, ext: str) -> asyncio.Task[object]:
    req = OriginateRequest(channel=f"PJSIP/{ext}", application="Wait", data="30", timeout_ms=20000,
                           callerid=("Zhang San", "13800138000"))
    return asyncio.create_task(sim.world.originate(req))


async def test_agent_leg_invite_answer_and_bye_from_the_browser(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    originate = await ring(sim, "1002")
    invite = await p.next_request("INVITE")
    assert invite.uri == p.contact.strip("<>")
    assert sip.address(invite.get("From")) == "sip:13800138000@127.0.0.1"
    assert '"Zhang San"' in invite.get("From") and invite.get("Contact").endswith(";transport=ws>")
    await p.send(sip.response_to(invite, 100, "Trying"))
    await p.send(sip.response_to(invite, 180, "Ringing", to_tag="b1"))
    await asyncio.sleep(0.1)
    chan = next(c for c in sim.world.channels.values() if c.name.startswith("PJSIP/1002-"))
    assert chan.state == 5
    await p.send(sip.response_to(invite, 200, "OK", to_tag="b1", extra=[("Contact", p.contact)]))
    ack = await p.next_request("ACK")
    assert ack.call_id == invite.call_id and ack.cseq == (invite.cseq[0], "ACK")
    result = await asyncio.wait_for(originate, 5)
    assert result.ok and chan.state == 6  # type: ignore[attr-defined]
    # the browser hangs up
    bye = p.request("BYE", invite.get("Contact").strip("<>"), to=invite.get("From"),
                    call_id=invite.call_id, from_tag="b1")
    await p.send(bye)
    assert (await p.final_response()).status == 200
    await asyncio.wait_for(chan.done.wait(), 5)
    assert server.calls[-1].hung_up_by == "browser"
    await p.close()


async def test_pbx_hangup_sends_bye_and_ringing_leg_gets_cancel(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    p = await phone(server, "1002")
    await p.register()
    originate = await ring(sim, "1002")
    invite = await p.next_request("INVITE")
    await p.send(sip.response_to(invite, 200, "OK", to_tag="b2", extra=[("Contact", p.contact)]))
    await p.next_request("ACK")
    await asyncio.wait_for(originate, 5)
    chan = next(c for c in sim.world.channels.values() if c.name.startswith("PJSIP/1002-"))
    sim.world.queue_hangup(chan, 16)
    bye = await p.next_request("BYE")
    assert bye.call_id == invite.call_id and sip.tag(bye.get("To")) == "b2"
    await p.send(sip.response_to(bye, 200, "OK"))
    # a leg that is still ringing when the PBX gives up is CANCELled; the 487 is ACKed
    originate = await ring(sim, "1002")
    invite = await p.next_request("INVITE")
    await p.send(sip.response_to(invite, 180, "Ringing", to_tag="b3"))
    await asyncio.sleep(0.1)
    chan = next(c for c in sim.world.channels.values() if c.name.startswith("PJSIP/1002-") and not c.dead)
    sim.world.queue_hangup(chan, 16)
    cancel = await p.next_request("CANCEL")
    assert cancel.cseq == (invite.cseq[0], "CANCEL")
    await p.send(sip.response_to(cancel, 200, "OK", to_tag="b3"))
    await p.send(sip.response_to(invite, 487, "Request Terminated", to_tag="b3"))
    ack = await p.next_request("ACK")
    assert ack.call_id == invite.call_id
    assert not (await asyncio.wait_for(originate, 5)).ok  # type: ignore[attr-defined]
    await p.close()


async def test_busy_browser_and_no_contact_fail_the_originate(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    p = await phone(server, "1002")
    await p.register()
    originate = await ring(sim, "1002")
    invite = await p.next_request("INVITE")
    await p.send(sip.response_to(invite, 486, "Busy Here", to_tag="b4"))
    await p.next_request("ACK")
    result = await asyncio.wait_for(originate, 5)
    assert not result.ok and result.reason == 0  # type: ignore[attr-defined]  # 486: Reason 0 (captures 26-28)
    # the websocket goes: so does the contact, and the next agent leg fails at once
    await p.close()
    for _ in range(50):
        if not server.registered("1002"):
            break
        await asyncio.sleep(0.02)
    assert not server.registered("1002") and not sim.world.phones["1002"].registered
    result = await asyncio.wait_for(await ring(sim, "1002"), 5)
    assert not result.ok  # type: ignore[attr-defined]


async def test_reinvite_for_hold_is_answered_with_the_mirror_direction(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    p = await phone(server, "1002")
    await p.register()
    originate = await ring(sim, "1002")
    invite = await p.next_request("INVITE")
    await p.send(sip.response_to(invite, 200, "OK", to_tag="b5", extra=[("Contact", p.contact)]))
    await p.next_request("ACK")
    await asyncio.wait_for(originate, 5)
    hold = p.request("INVITE", invite.get("Contact").strip("<>"), to=invite.get("From"), call_id=invite.call_id,
                     from_tag="b5", extra=[("Content-Type", "application/sdp")],
                     body=b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\n")
    await p.send(hold)
    assert (await p.final_response()).status == 200
    assert server.calls[-1].held and server.calls[-1].reinvites == ["sendonly"]
    await p.close()


async def test_garbage_on_the_websocket_is_dropped_and_the_phone_goes_on(pbx: tuple[Simulator, SipWsServer]) -> None:
    _, server = pbx
    p = await phone(server, "1002")
    assert p.ws is not None
    await p.ws.send("HELLO\r\n\r\n")
    await p.ws.send(b"\xff" * 100_000)
    assert (await p.register()).status == 200
    await p.close()


def _captured_contact_events(name: str = "30") -> list[list[tuple[str, str]]]:
    from ctiserver.ami.protocol import AmiParser, Message
    from pbxsim.captures import RECEIVED, capture

    parser, out = AmiParser(), []
    for rec in capture(name):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            out += [f.headers() for f in parser.feed(rec.payload)
                    if isinstance(f, Message) and f.event in ("ContactStatus", "PeerStatus")]
    return out


async def test_contact_status_on_ami_as_asterisk_reports_it(pbx: tuple[Simulator, SipWsServer]) -> None:
    sim, server = pbx
    seen: list[list[tuple[str, str]]] = []
    sim.world.listeners.append(lambda pairs: seen.append(pairs) if pairs[0][1] in ("ContactStatus", "PeerStatus")
                               else None)
    real = _captured_contact_events()
    names = {e[0][1]: [k for k, _ in e] for e in real}
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    for _ in range(100):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.02)
    # registered: ContactStatus NonQualified, then PeerStatus Reachable, then the qualify's answer makes the
    # contact Reachable with its round trip (captures 30 and 33)
    assert [(e[0][1], dict(e)[e[0][1]]) for e in seen] == [("ContactStatus", "NonQualified"),
                                                           ("PeerStatus", "Reachable"),
                                                           ("ContactStatus", "Reachable")]
    assert int(dict(seen[2])["RoundtripUsec"]) > 0 and p.qualified == 1
    assert [k for k, _ in seen[0]] == names["ContactStatus"] and [k for k, _ in seen[1]] == names["PeerStatus"]
    uri = dict(seen[0])["URI"]
    assert uri.startswith("sip:") and ";transport=WS;x-ast-orig-host=" in uri and uri.endswith(".invalid:0")
    assert dict(seen[0])["EndpointName"] == dict(seen[0])["AOR"] == "1002"
    # the browser dies without unregistering: its websocket's end removes the contact
    seen.clear()
    assert p.ws is not None
    p.ws.transport.abort()
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [(e[0][1], dict(e)[e[0][1]]) for e in seen] == [("PeerStatus", "Unreachable"),
                                                           ("ContactStatus", "Removed")]
    assert dict(seen[1])["URI"] == uri
    assert [(e[0][1], dict(e)[e[0][1]]) for e in real][-2:] == [("PeerStatus", "Unreachable"),
                                                               ("ContactStatus", "Removed")]
    await p.close()


# ------------------------------------------------------------------ qualify, expiry, the contact list (capture 33)

def _said(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    return pairs[0][1], dict(pairs)[pairs[0][1]]


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]]:
    """A registrar whose qualify and expiration timers run in tenths of a second instead of 30 s, and that takes a
    registration of 1 s."""
    sim = Simulator(time_scale=0.05)
    await sim.start()
    server = SipWsServer(sim.world, PASSWORDS.get, media_dir=tmp_path, media=False, qualify_frequency_s=0.4,
                         qualify_timeout_s=0.2, expiration_check_s=0.5, minimum_expiration_s=1)
    await server.start()
    seen: list[list[tuple[str, str]]] = []
    sim.world.listeners.append(lambda pairs: seen.append(pairs) if pairs[0][1] in ("ContactStatus", "PeerStatus")
                               else None)
    try:
        yield sim, server, seen
    finally:
        await server.stop()
        await sim.stop()


async def _until(seen: list[list[tuple[str, str]]], event: tuple[str, str], timeout: float = 5.0,
                 since: int = 0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while event not in [_said(e) for e in seen[since:]]:
        assert loop.time() < deadline, f"no {event} in {[_said(e) for e in seen]}"
        await asyncio.sleep(0.02)


async def test_qualify_makes_a_contact_reachable_then_unreachable_when_the_page_stops_answering(
        quick: tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]) -> None:
    """Capture 33 B-D: qualified at once, Reachable with its round trip; a page that stops answering OPTIONS
    (frozen, its websocket still open) is Unreachable after the qualify timeout, and is not rung; answering
    again makes it Reachable at the next qualify. The same events in the same order as the real PBX."""
    sim, server, seen = quick
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    await _until(seen, ("ContactStatus", "Reachable"))
    assert int(dict(seen[-1])["RoundtripUsec"]) > 0
    p.answers_qualify = False
    await _until(seen, ("ContactStatus", "Unreachable"))
    assert dict(seen[-1])["RoundtripUsec"] == "0"
    # chan_pjsip dials reachable contacts only: the agent leg fails without ringing the frozen page
    result = await asyncio.wait_for(await ring(sim, "1002"), 5)
    assert not result.ok and server.calls == []  # type: ignore[attr-defined]
    p.answers_qualify = True
    await _until(seen, ("ContactStatus", "Reachable"), since=len(seen))
    real = [_said(e) for e in _captured_contact_events("33")]
    assert [_said(e) for e in seen] == real[:7] == [
        ("ContactStatus", "NonQualified"), ("PeerStatus", "Reachable"), ("ContactStatus", "Reachable"),
        ("PeerStatus", "Unreachable"), ("ContactStatus", "Unreachable"),
        ("PeerStatus", "Reachable"), ("ContactStatus", "Reachable")]
    await p.close()


async def test_a_registration_not_refreshed_is_removed_at_the_expiration_check(
        quick: tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]) -> None:
    """Capture 33 E: a contact that expires while its phone still answers OPTIONS is Removed, not at its
    expiry but at res_pjsip's next expiration check."""
    _, server, seen = quick
    p = await phone(server, "1002")
    loop = asyncio.get_running_loop()
    assert (await p.register(expires=1)).status == 200
    registered = loop.time()
    await _until(seen, ("ContactStatus", "Reachable"))
    seen.clear()
    await _until(seen, ("ContactStatus", "Removed"))
    assert loop.time() - registered >= 1.0
    assert not server.registered("1002") and p.qualified >= 2
    real = [_said(e) for e in _captured_contact_events("33")]
    assert [_said(e) for e in seen] == real[-2:] == [("PeerStatus", "Unreachable"), ("ContactStatus", "Removed")]
    await p.close()


async def _ami(sim: Simulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami.port)
    await reader.readline()
    writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: ctisecret\r\nEvents: off\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _show_contacts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, aid: str) -> list[bytes]:
    writer.write(f"Action: PJSIPShowContacts\r\nActionID: {aid}\r\n\r\n".encode())
    out = [await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)]
    if b"EventList: start" in out[0]:
        while b"EventList: Complete" not in out[-1]:
            out.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    return out


def _names(message: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0] for line in message.split(b"\r\n") if line]


async def test_pjsip_show_contacts_answers_as_asterisk_22(
        quick: tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]) -> None:
    """Capture 33 A and B: no contact is an error whose message ends in a bare LF; a registered browser is
    one ContactList (Asterisk's header order, Endpoint/Uri/Status) and ContactListComplete."""
    from pbxsim.captures import RECEIVED, capture

    sim, server, seen = quick
    real = [r.payload for r in capture("33") if r.stream == "AMI1" and r.direction == RECEIVED]
    reader, writer = await _ami(sim)
    empty = await _show_contacts(reader, writer, "contacts-1")
    assert empty == [next(m for m in real if b"No Contacts found" in m)]
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    await _until(seen, ("ContactStatus", "Reachable"))
    listed = await _show_contacts(reader, writer, "contacts-2")
    real_list = real[real.index(next(m for m in real if b"ActionID: contacts-2" in m)):][:3]
    assert [_names(m) for m in listed] == [_names(m) for m in real_list]
    assert listed[0] == real_list[0]  # the same Response, word for word
    contact = dict(line.split(": ", 1) for line in listed[1].decode().split("\r\n") if ": " in line)
    status = dict(next(e for e in reversed(seen) if e[0][1] == "ContactStatus"))
    assert (contact["Endpoint"], contact["Uri"], contact["Status"]) == ("1002", status["URI"], "Reachable")
    assert int(contact["RoundtripUsec"]) > 0 and contact["ObjectName"].startswith("1002;@")
    assert listed[2] == real_list[2]  # ContactListComplete, ListItems: 1
    p.answers_qualify = False
    await _until(seen, ("ContactStatus", "Unreachable"))
    listed = await _show_contacts(reader, writer, "contacts-3")
    assert b"Status: Unreachable\r\nRoundtripUsec: N/A\r\n" in listed[1]
    writer.close()
    await p.close()


# ------------------------------------------------------------------ capture 34: expiry range, an Unreachable browser

def _capture34_registers() -> list[tuple[sip.SipMessage, sip.SipMessage]]:
    """Each REGISTER the phone sent with its credentials in capture 34, and Asterisk's answer to it."""
    from pbxsim.captures import RECEIVED, SENT, capture

    sent = [sip.parse(r.payload) for r in capture("34") if r.stream == "SIPWS1" and r.direction == SENT]
    got = [sip.parse(r.payload) for r in capture("34") if r.stream == "SIPWS1" and r.direction == RECEIVED
           and r.payload.strip()]
    out = []
    for req in sent:
        if req.method == "REGISTER" and req.get("Authorization"):
            out.append((req, next(m for m in got if not m.is_request and m.cseq == req.cseq)))
    return out


def _contact_params(msg: sip.SipMessage) -> str:
    contact = msg.get("Contact")
    return contact[contact.index(">") + 1:]


async def test_register_expiry_outside_the_aors_range_is_clamped_as_capture_34(
        pbx: tuple[Simulator, SipWsServer]) -> None:
    """agent-webrtc-aor takes 60..600 s (default 300): Asterisk never refuses an expiry with 423, it clamps it.
    The Contact's own expires wins over the Expires header; the 200 echoes Expires (clamped) only when the
    REGISTER had one; an unregistration's 200 says Expires: 0 and lists no contact."""
    _, server = pbx
    exchanges = _capture34_registers()
    assert len(exchanges) == 9  # A-H and O
    p = await phone(server, "1002")
    for real_req, real_ok in exchanges:
        params = _contact_params(real_req)
        header = real_req.get("Expires") if any(k == "Expires" for k, _ in real_req.headers) else None
        ok = await p.register_as(params, header)
        what = f"REGISTER Contact {params!r}, Expires {header!r}"
        assert (ok.status, ok.reason) == (real_ok.status, real_ok.reason) == (200, "OK"), what
        assert [k for k, _ in ok.headers] == [k for k, _ in real_ok.headers], what
        assert ok.get("Expires") == real_ok.get("Expires"), what
        if real_ok.get("Contact"):
            assert _contact_params(ok) == _contact_params(real_ok), what
            expires = int(_contact_params(ok).split("=")[1]) + 1
            listed = dict(server.contact_list()[0])
            assert expires - 2 <= int(listed["ExpirationTime"]) - time.time() <= expires, what
        else:
            assert not server.registered("1002")
    await p.close()


class _AmiClient:
    """An AMI session that logs in with every event (as the capture's did) and keeps what comes in order."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()

    async def open(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.reader.readline()
        self.writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: ctisecret\r\n\r\n")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            await self.messages.put(await self.reader.readuntil(b"\r\n\r\n"))

    def drain(self) -> None:
        while not self.messages.empty():
            self.messages.get_nowait()

    async def exchange(self, action: bytes, last: Callable[[bytes], bool]) -> list[bytes]:
        self.writer.write(action)
        out = [await asyncio.wait_for(self.messages.get(), 5)]
        while not last(out[-1]):
            out.append(await asyncio.wait_for(self.messages.get(), 5))
        return out

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()


def _capture34_originate(aid: str) -> tuple[bytes, list[bytes], Callable[[bytes], bool]]:
    """The Originate with ActionID ``aid`` in capture 34, what Asterisk sent from then until its outcome (the
    OriginateResponse of an async one, the Response of a synchronous one), and how to know that last message."""
    from pbxsim.captures import RECEIVED, SENT, capture

    ami = [r for r in capture("34") if r.stream == "AMI1"]
    start = next(i for i, r in enumerate(ami) if r.direction == SENT and f"ActionID: {aid}\r\n".encode() in r.payload)
    action = ami[start].payload
    mark = f"ActionID: {aid}\r\n".encode()
    if b"Async: true" in action:
        def last(m: bytes) -> bool:
            return m.startswith(b"Event: OriginateResponse\r\n") and mark in m
    else:
        def last(m: bytes) -> bool:
            return m.startswith(b"Response: ") and mark in m
    answer = []
    for r in ami[start + 1:]:
        assert r.direction == RECEIVED
        answer.append(r.payload)
        if last(r.payload):
            break
    return action, answer, last


def _shape(messages: list[bytes]) -> list[tuple[str, ...]]:
    """Which message, about which half of a Local pair, and the values the outcome is read from."""
    out = []
    for m in messages:
        fields = dict(line.split(": ", 1) for line in m.decode().split("\r\n") if ": " in line)
        kind = fields.get("Event") or "Response " + fields.get("Response", "")
        half = (fields.get("Channel") or fields.get("DestChannel") or "")[-2:]
        said = tuple(f"{k}={fields[k]}" for k in ("Variable", "Value", "Cause", "DialStatus", "Reason", "Uniqueid")
                     if k in fields)
        out.append((kind, half) + said)
    return out


async def test_an_agent_leg_to_an_unreachable_browser_fails_before_any_invite_as_capture_34(
        quick: tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]) -> None:
    """Capture 34 I-P: chan_pjsip dials reachable contacts only, so an Originate to a browser whose only contact
    is Unreachable (or that has none) makes no channel and sends no INVITE: Response Success, then at once
    OriginateResponse Failure with Reason 0 and the ChannelId as its Uniqueid, word for word; synchronous,
    Originate failed. Through Dial (the auto-answer path) it is CHANUNAVAIL and cause 3 on the Local pair."""
    sim, server, seen = quick
    ami = _AmiClient()
    await ami.open(sim.ami.port)
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    await _until(seen, ("ContactStatus", "Reachable"))
    p.answers_qualify = False
    await _until(seen, ("ContactStatus", "Unreachable"))
    await asyncio.sleep(0.1)
    ami.drain()
    for aid in ("offer-1", "offer-2", "offer-3"):  # into cti-agent-ready with a ChannelId; Echo; synchronous
        action, real, last = _capture34_originate(aid)
        assert await ami.exchange(action, last) == real, aid
    action, real, last = _capture34_originate("offer-4")  # Local/1002@cti-agent-dial/n: Dial(PJSIP/1002)
    local = await ami.exchange(action, last)
    # every message in the real order, by what it says (Cdr and the Local device's state float: README)
    assert [s for s in _shape(local) if s[0] not in ("Cdr", "DeviceStateChange")] == \
        [s for s in _shape(real) if s[0] not in ("Cdr", "DeviceStateChange")]
    assert [s[:3] for s in _shape(real) if "Hangup" in s[0] or s[0] in ("DialEnd", "OriginateResponse")] == [
        ("SoftHangupRequest", ";2", "Cause=16"), ("HangupRequest", ";1", "Cause=3"),
        ("Hangup", ";2", "Cause=3"), ("DialEnd", ";1", "DialStatus=CHANUNAVAIL"),
        ("OriginateResponse", "/n", "Reason=0")]
    assert not any(b"PJSIP/1002-" in m for m in local)  # no PJSIP channel is ever made
    assert p.requests.empty() and server.calls == []  # and no INVITE reached the page
    # unregistered, no contact at all: the same two messages (capture 34 P)
    assert (await p.register_as(";expires=0", "0")).status == 200
    await asyncio.sleep(0.1)
    ami.drain()
    action, real, last = _capture34_originate("offer-5")
    assert await ami.exchange(action, last) == real
    await ami.close()
    await p.close()


async def test_the_endpoints_device_state_follows_its_contact_as_capture_34(
        quick: tuple[Simulator, SipWsServer, list[list[tuple[str, str]]]]) -> None:
    """Capture 34 A, I, N, O: PJSIP/1002 is NOT_INUSE once registered, UNAVAILABLE when its only contact turns
    Unreachable, NOT_INUSE again when it answers, UNAVAILABLE when it unregisters. Each DeviceStateChange
    follows the PeerStatus that caused it; whether it comes before or after that PeerStatus's ContactStatus
    differs from run to run on the real PBX (Asterisk publishes device state from another thread)."""
    from ctiserver.ami.protocol import AmiParser, Message
    from pbxsim.captures import RECEIVED, capture

    sim, server, _ = quick
    said: list[tuple[str, str]] = []
    sim.world.listeners.append(lambda pairs: said.append(_said_device(pairs)) if _about_1002(pairs) else None)
    parser, real = AmiParser(), []
    for rec in capture("34"):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            real += [_said_device(f.headers()) for f in parser.feed(rec.payload)
                     if isinstance(f, Message) and _about_1002(f.headers())]
    p = await phone(server, "1002")
    assert (await p.register()).status == 200
    await _until_said(said, ("ContactStatus", "Reachable"))
    p.answers_qualify = False
    await _until_said(said, ("DeviceStateChange", "UNAVAILABLE"))
    mark = len(said)
    p.answers_qualify = True
    await _until_said(said, ("DeviceStateChange", "NOT_INUSE"), since=mark)
    mark = len(said)
    assert (await p.register_as(";expires=0", "0")).status == 200
    await _until_said(said, ("DeviceStateChange", "UNAVAILABLE"), since=mark)
    for events in (said, real):
        assert [e for e in events if e[0] != "DeviceStateChange"] == [
            ("ContactStatus", "NonQualified"), ("PeerStatus", "Reachable"), ("ContactStatus", "Reachable"),
            ("PeerStatus", "Unreachable"), ("ContactStatus", "Unreachable"),
            ("PeerStatus", "Reachable"), ("ContactStatus", "Reachable"),
            ("PeerStatus", "Unreachable"), ("ContactStatus", "Removed")]
        assert _device_after_peer(events) == [("Reachable", "NOT_INUSE"), ("Unreachable", "UNAVAILABLE"),
                                              ("Reachable", "NOT_INUSE"), ("Unreachable", "UNAVAILABLE")]
    await p.close()


async def test_a_contact_removed_before_its_first_qualify_leaves_the_endpoint_offline(
        pbx: tuple[Simulator, SipWsServer]) -> None:
    """On the real PBX the endpoint comes online (PeerStatus Reachable, device NOT_INUSE) with the first qualify's
    answer, not with the REGISTER (captures 30 and 33: PeerStatus after the OPTIONS' 200). A browser that
    unregisters before answering that qualify (a console stopping the phone it has just registered) made only
    ContactStatus NonQualified then Removed on a real Asterisk 22.10.1: no PeerStatus, no device state."""
    sim, server = pbx
    said: list[tuple[str, str]] = []
    sim.world.listeners.append(lambda pairs: said.append(_said_device(pairs)) if _about_1002(pairs) else None)
    p = await phone(server, "1002")
    p.answers_qualify = False
    assert (await p.register()).status == 200
    await _until_said(said, ("ContactStatus", "NonQualified"))
    await asyncio.sleep(0.2)  # the qualify is out and unanswered: still offline
    assert said == [("ContactStatus", "NonQualified")]
    assert (await p.register_as(";expires=0", "0")).status == 200
    await _until_said(said, ("ContactStatus", "Removed"))
    assert said == [("ContactStatus", "NonQualified"), ("ContactStatus", "Removed")]
    await p.close()


def _about_1002(pairs: list[tuple[str, str]]) -> bool:
    fields = dict(pairs)
    return pairs[0][1] in ("ContactStatus", "PeerStatus") or fields.get("Device") == "PJSIP/1002"


def _device_after_peer(events: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each DeviceStateChange with the PeerStatus last said before it."""
    peer, out = "", []
    for kind, value in events:
        if kind == "PeerStatus":
            peer = value
        elif kind == "DeviceStateChange":
            out.append((peer, value))
    return out


def _said_device(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    fields = dict(pairs)
    return (pairs[0][1], fields["State"]) if pairs[0][1] == "DeviceStateChange" else _said(pairs)


async def _until_said(said: list[tuple[str, str]], event: tuple[str, str], since: int = 0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while event not in said[since:]:
        assert loop.time() < deadline, f"no {event} in {said}"
        await asyncio.sleep(0.02)


async def test_a_refreshed_registration_is_not_qualified_again_as_capture_34(tmp_path: Path) -> None:
    """Capture 34 A-H: the contact is qualified once when it is new; seven refreshes of it within the next two
    seconds sent no OPTIONS (the next came 30 s after the first). Here the beat is an hour, so every OPTIONS
    the page answers is one the registrar sent for a REGISTER or the one asked for at the end."""
    from pbxsim.captures import capture

    recs = capture("34")
    fresh = next(r.t for r in recs if r.stream == "NOTE" and r.note.startswith("B:"))
    frozen = next(r.t for r in recs if r.stream == "NOTE" and r.note.startswith("I:"))
    real = [r for r in recs if r.stream == "SIPWS1" and r.payload.startswith(b"OPTIONS") and fresh < r.t < frozen]
    assert real == [] and len(_capture34_registers()[1:8]) == 7
    sim = Simulator(time_scale=0.05)
    await sim.start()
    server = SipWsServer(sim.world, PASSWORDS.get, media_dir=tmp_path, media=False, qualify_frequency_s=3600)
    await server.start()
    try:
        p = await phone(server, "1002")
        assert (await p.register()).status == 200
        for expires in (30, 3600, 1, 300, 60, 600, 300):
            assert (await p.register(expires=expires)).status == 200
        assert await server.qualify("1002") == "Reachable"  # its OPTIONS is answered after any sent before it
        assert p.qualified == 2
        await p.close()
    finally:
        await server.stop()
        await sim.stop()
