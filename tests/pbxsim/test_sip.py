"""pbxsim.sip over bytes only: every message a real Asterisk 22.10.1 exchanged with a browser-style phone
(capture 22) parses; the digest the phone sent is the one Asterisk accepted; and the simulator's 401, 200 and
INVITE have the captured shape (header names in order, the SDP's media line and WebRTC attributes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsim import sip
from pbxsim.captures import capture
from pbxsim.simulator import Simulator
from pbxsim.sip_ws import SipWsServer
from pbxsim.world import OriginateRequest
from tests.pbxsim.ws_phone import WsPhone

TRIAL_PASSWORD = "trialpass1002"  # 1002's password on the PBX of capture 22


def captured() -> list[tuple[str, sip.SipMessage]]:
    out = []
    for record in capture("22"):
        if record.stream.startswith("SIPWS") and record.direction:
            out.append((record.direction, sip.parse(record.payload)))
    return out


def test_every_captured_message_parses() -> None:
    messages = captured()
    assert len(messages) >= 30
    kinds = {(d, m.method or m.status) for d, m in messages}
    assert {("<<<", 401), ("<<<", 200), ("<<<", "INVITE"), ("<<<", "BYE"), ("<<<", "CANCEL"), ("<<<", "OPTIONS"),
            (">>>", "REGISTER"), (">>>", "ACK")} <= kinds
    invite = next(m for d, m in messages if m.method == "INVITE" and d == "<<<")
    assert invite.get("Content-Length") == str(len(invite.body))


def test_the_captured_digest_is_the_one_asterisk_accepted() -> None:
    messages = captured()
    accepted = next(i for i, (d, m) in enumerate(messages) if m.status == 200 and m.cseq[1] == "REGISTER")
    register = messages[accepted - 1][1]
    challenge = next(m for d, m in reversed(messages[:accepted]) if m.status == 401)
    nonce = sip.digest_params(challenge.get("WWW-Authenticate"))["nonce"]
    assert sip.check_authorization(register.get("Authorization"), password=TRIAL_PASSWORD, realm="asterisk",
                                   method="REGISTER", nonce=nonce) == "1002"
    assert sip.check_authorization(register.get("Authorization"), password="wrong", realm="asterisk",
                                   method="REGISTER", nonce=nonce) is None


def test_parse_refuses_with_one_line() -> None:
    for bad, why in [(b"HELLO\r\n\r\n", "bad start line"), (b"INVITE sip:a SIP/2.0\r\nVia: x\r\n", "no blank line"),
                     (b"x" * 70_000, "over the limit"),
                     (b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: x\r\n\r\n", "bad CSeq"),
                     (b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCSeq: 1 X\r\n\r\n", "no Call-ID")]:
        with pytest.raises(sip.SipError, match=why):
            sip.parse(bad)
    assert sip.is_keepalive(b"\r\n\r\n") and not sip.is_keepalive("OPTIONS")


@given(st.binary(max_size=2000))
def test_parse_only_ever_raises_sip_error(data: bytes) -> None:
    try:
        sip.parse(data)
    except sip.SipError:
        pass


def _names(msg: sip.SipMessage) -> list[str]:
    return [k for k, _ in msg.headers]


def _webrtc_attributes(sdp: str) -> dict[str, object]:
    lines = sdp.splitlines()
    media = next(line for line in lines if line.startswith("m=audio"))
    return {"proto": media.split()[2], "first_codec": media.split()[3],
            "setup": next(line for line in lines if line.startswith("a=setup:")),
            "fingerprint": next(line for line in lines if line.startswith("a=fingerprint:")).split()[0],
            "ice": all(any(line.startswith(p) for line in lines) for p in ("a=ice-ufrag:", "a=ice-pwd:",
                                                                              "a=candidate:")),
            "rtcp_mux": "a=rtcp-mux" in lines, "ptime": "a=ptime:20" in lines, "sendrecv": "a=sendrecv" in lines,
            "telephone_event": any(line.startswith("a=rtpmap:101 telephone-event/8000") for line in lines)}


async def test_the_simulator_answers_with_the_captured_shape(tmp_path: Path) -> None:
    messages = captured()
    real_401 = next(m for d, m in messages if m.status == 401)
    real_200 = next(m for d, m in messages if m.status == 200 and m.cseq[1] == "REGISTER")
    real_invite = next(m for d, m in messages if m.method == "INVITE" and d == "<<<")

    sim = Simulator(time_scale=0.05)
    await sim.start()
    server = SipWsServer(sim.world, {"1002": "pw"}.get, media_dir=tmp_path)
    await server.start()
    phone = WsPhone(server.url, "1002", "pw", "127.0.0.1")
    await phone.open()
    try:
        uri, to = "sip:127.0.0.1", "<sip:1002@127.0.0.1>"
        await phone.send(phone.request("REGISTER", uri, to=to, extra=[("Contact", f"{phone.contact};expires=300"),
                                                                     ("Expires", "300")]))
        sim_401 = await phone.final_response()
        assert _names(sim_401) == _names(real_401)
        assert sip.digest_params(sim_401.get("WWW-Authenticate")).keys() == \
            sip.digest_params(real_401.get("WWW-Authenticate")).keys()
        assert sip.tag(sim_401.get("To")) == sip.params(sim_401.get("Via"))["branch"]  # PJSIP's To tag
        sim_200 = await phone.register()
        assert _names(sim_200) == _names(real_200)
        task = asyncio.create_task(sim.world.originate(OriginateRequest(
            channel="PJSIP/1002", application="Echo", callerid=("Zhang San", "13800138000"))))
        sim_invite = await phone.next_request("INVITE")
        assert _names(sim_invite)[:6] == _names(real_invite)[:6]  # Via From To Contact Call-ID CSeq
        assert set(_names(real_invite)) - {"Session-Expires", "Min-SE"} <= set(_names(sim_invite))
        assert _webrtc_attributes(sim_invite.body.decode()) == {
            **_webrtc_attributes(real_invite.body.decode()), "fingerprint": "a=fingerprint:sha-256"}
        await phone.send(sip.response_to(sim_invite, 486, "Busy Here", to_tag="x"))
        await phone.next_request("ACK")
        await asyncio.wait_for(task, 5)
    finally:
        await phone.close()
        await server.stop()
        await sim.stop()
