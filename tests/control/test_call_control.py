"""CallControl over a real AmiLink to a loopback peer answering from the captures."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiserver.ami.errors import AmiActionError
from ctiserver.ami.link import AmiLink
from ctiserver.ami.protocol import AmiParser, Message, UnsafeValue
from ctiserver.control import (
    CallControl,
    InvalidValue,
    OriginateOutcome,
    OriginateResult,
    SpyMode,
    clean_display_name,
)
from tests.ami.ami_peer import AmiPeer, recorded_action, recorded_reply

CALLER = "Local/5552000@from-pstn-00000000;2"
AGENT = "Local/agent-long@agents-00000001;1"


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[AmiPeer, CallControl]]:
    peer = await AmiPeer().start()
    link = AmiLink("pbx1", "127.0.0.1", peer.port, "cti", "ctisecret", action_timeout=2.0)
    await link.connect(timeout=3)
    yield peer, CallControl(link)
    await link.close()
    await peer.close()


def keys_of(payload: bytes) -> list[str]:
    return [line.split(": ", 1)[0] for line in payload.decode().split("\r\n") if line]


async def test_hold_is_the_captured_dual_redirect(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    resp = await cc.hold(CALLER, AGENT)
    sent = peer.actions("Redirect")[-1]
    assert list(sent.keys()) == keys_of(recorded_action("07", "ami1-003"))
    assert (sent["Context"], sent["Exten"], sent["ExtraContext"], sent["ExtraExten"]) == (
        "cti-hold",
        "caller",
        "cti-hold",
        "agent",
    )
    assert resp["Message"] == "Redirect successful"
    await cc.unhold(CALLER, AGENT)
    bridge = peer.actions("Bridge")[-1]
    assert list(bridge.keys()) == keys_of(recorded_action("07", "ami1-004"))
    assert (bridge["Channel1"], bridge["Channel2"], bridge["Tone"]) == (AGENT, CALLER, "no")


async def test_originate_agent_leg_outcomes(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx

    async def leg(endpoint: str, cid: str) -> OriginateResult:
        return await cc.originate_agent_leg(
            endpoint,
            channel_id=cid,
            caller_id_name="John Doe",
            caller_id_num="5551234",
            ring_timeout_s=4,
            variables={"CTI_CALL": "call-1"},
        )

    ok, noanswer, busy, invalid = await asyncio.gather(
        leg("Local/agent-long@agents", "c1-a"),
        leg("Local/noanswer@agents", "c2-a"),
        leg("Local/busy@agents", "c3-a"),
        leg("Local/nosuchext@agents", "c4-a"),
    )
    assert ok.success and ok.outcome is OriginateOutcome.ANSWERED and ok.uniqueid
    assert noanswer.outcome is OriginateOutcome.NO_ANSWER and noanswer.reason == 3
    assert busy.outcome is OriginateOutcome.BUSY and busy.uniqueid is None
    assert invalid.outcome is OriginateOutcome.FAILED and not invalid.success
    sent = peer.actions("Originate")[0]
    assert sent["Context"] == "cti-agent-ready" and sent["Exten"] == "s" and sent["Async"] == "true"
    assert sent["Timeout"] == "4000" and sent["CallerID"] == '"John Doe" <5551234>'
    assert sent["ChannelId"] in {"c1-a", "c2-a", "c3-a", "c4-a"} and sent["Variable"] == "CTI_CALL=call-1"


async def test_every_verb_sends_the_captured_action_shape(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    await cc.redirect(CALLER, "cti-wait", "s")
    assert list(peer.actions("Redirect")[-1].keys()) == keys_of(recorded_action("05", "ami1-003"))
    await cc.blind_transfer(AGENT, "2002")
    assert list(peer.actions("BlindTransfer")[-1].keys()) == keys_of(recorded_action("06", "ami1-005"))
    await cc.attended_transfer(AGENT, "2009")
    assert list(peer.actions("Atxfer")[-1].keys()) == keys_of(recorded_action("06", "ami1-007"))
    await cc.start_recording(CALLER, "/var/spool/asterisk/monitor/call-0007.wav")
    assert peer.actions("MixMonitor")[-1]["Options"] == "b"
    assert list(peer.actions("MixMonitor")[-1].keys()) == keys_of(recorded_action("07", "ami1-005"))
    await cc.mute_recording(CALLER, True)
    assert list(peer.actions("MixMonitorMute")[-1].keys()) == keys_of(recorded_action("20", "ami1-004"))
    assert (peer.actions("MixMonitorMute")[-1]["Direction"], peer.actions("MixMonitorMute")[-1]["State"]) == (
        "both", "1")
    await cc.mute_recording(CALLER, False)
    assert peer.actions("MixMonitorMute")[-1]["State"] == "0"
    await cc.stop_recording(CALLER)
    await cc.hangup(CALLER, cause=16)
    assert peer.actions("Hangup")[-1]["Cause"] == "16"
    await cc.set_var(CALLER, "ACCOUNT", "1234")
    assert await cc.get_var(CALLER, "CALLERID(all)") == '"John Doe" <5551234>'
    res = await cc.originate_outbound("PJSIP/1001", "01012345678", caller_id_name="Agent 1001")
    assert res.success
    out = peer.actions("Originate")[-1]
    assert (out["Context"], out["Exten"], out["CallerID"]) == (
        "cti-outbound",
        "01012345678",
        '"Agent 1001" <01012345678>',
    )


@pytest.mark.parametrize(("mode", "data"), [(SpyMode.LISTEN, "qbE"), ("whisper", "qbwE"), ("barge", "qBE")])
async def test_spy_originates_chanspy(pbx: tuple[AmiPeer, CallControl], mode: object, data: str) -> None:
    peer, cc = pbx
    res = await cc.spy("Local/sup@supervisors", AGENT, mode)  # type: ignore[arg-type]
    assert res.success
    sent = peer.actions("Originate")[-1]
    assert (sent["Application"], sent["Data"]) == ("ChanSpy", f"{AGENT},{data}")  # capture 07 C/D shape


async def test_spy_names_its_channel_when_asked(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    await cc.spy("Local/2001@cti-agent-dial/n", AGENT, SpyMode.LISTEN, channel_id="cti-spy-1-1")
    sent = peer.actions("Originate")[-1]
    assert (sent["Channel"], sent["ChannelId"]) == ("Local/2001@cti-agent-dial/n", "cti-spy-1-1")


@pytest.mark.parametrize("device", ["PJSIP/1001&PJSIP/1002", "PJSIP/1001,30", "Local/1001@agent-phones;2",
                                    "PJSIP/${EXTEN}", "PJSIP/1001 ", "1001", "PJSIP/"])
async def test_an_agent_leg_rings_a_dial_string_and_nothing_more(pbx: tuple[AmiPeer, CallControl],
                                                                 device: str) -> None:
    peer, cc = pbx
    with pytest.raises(InvalidValue, match="dial string"):
        await cc.originate_agent_leg(device, channel_id="cti-leg-1", caller_id_name="", caller_id_num="",
                                     ring_timeout_s=5)
    assert peer.actions("Originate") == []


async def test_asterisk_errors_reach_the_caller(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    peer.custom["Atxfer"] = lambda m: recorded_reply("06", "ami1-010")  # "Channel specified does not exist"
    with pytest.raises(AmiActionError, match="does not exist"):
        await cc.attended_transfer("Local/nobody@agents-00000099;1", "2002")


async def test_atxfer_needs_digits(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    with pytest.raises(InvalidValue):
        await cc.attended_transfer(AGENT, "agent-long")  # capture 06 C: fails silently on Asterisk
    assert not peer.actions("Atxfer")


# ------------------------------------------------------------------------------------ injection

HOSTILE = [
    "evil\r\nAction: Originate",
    "evil\nChannel: PJSIP/666",
    "evil\r",
    "nul\x00byte",
    "esc\x1b[31m",
    "del\x7f",
    "tab\there",
    "bell\x07",
    "\u0085next-line",  # C1 NEL: not a control char for check_value, but the semantic checks refuse it
    "uni\u2028line",
]


def paths(cc: CallControl) -> list[tuple[str, Callable[[str], Awaitable[object]]]]:
    """Every call-control parameter a caller or an agent can influence."""
    leg: dict[str, Any] = {
        "channel_id": "c1-a",
        "caller_id_name": "John",
        "caller_id_num": "5551234",
        "ring_timeout_s": 5,
    }
    return [
        ("redirect.channel", lambda v: cc.redirect(v, "cti-wait", "s")),
        ("redirect.context", lambda v: cc.redirect(CALLER, v, "s")),
        ("redirect.exten", lambda v: cc.redirect(CALLER, "cti-wait", v)),
        ("redirect.extra_channel", lambda v: cc.redirect(CALLER, "cti-wait", "s", extra_channel=v)),
        ("agent_leg.endpoint", lambda v: cc.originate_agent_leg(v, **leg)),
        (
            "agent_leg.caller_id_name",
            lambda v: cc.originate_agent_leg(
                "PJSIP/1001", channel_id="c1", caller_id_name=v, caller_id_num="1", ring_timeout_s=5
            ),
        ),
        (
            "agent_leg.caller_id_num",
            lambda v: cc.originate_agent_leg(
                "PJSIP/1001", channel_id="c1", caller_id_name="J", caller_id_num=v, ring_timeout_s=5
            ),
        ),
        (
            "agent_leg.channel_id",
            lambda v: cc.originate_agent_leg(
                "PJSIP/1001", channel_id=v, caller_id_name="J", caller_id_num="1", ring_timeout_s=5
            ),
        ),
        (
            "agent_leg.variable_value",
            lambda v: cc.originate_agent_leg("PJSIP/1001", **leg, variables={"NOTE": v}),
        ),
        (
            "agent_leg.variable_name",
            lambda v: cc.originate_agent_leg("PJSIP/1001", **leg, variables={v: "1"}),
        ),
        ("outbound.number", lambda v: cc.originate_outbound("PJSIP/1001", v)),
        ("outbound.endpoint", lambda v: cc.originate_outbound(v, "123")),
        ("outbound.caller_id_name", lambda v: cc.originate_outbound("PJSIP/1001", "123", caller_id_name=v)),
        ("outbound.caller_id_num", lambda v: cc.originate_outbound("PJSIP/1001", "123", caller_id_num=v)),
        ("bridge.channel1", lambda v: cc.bridge(v, AGENT)),
        ("bridge.channel2", lambda v: cc.bridge(CALLER, v)),
        ("blind.channel", lambda v: cc.blind_transfer(v, "2002")),
        ("blind.exten", lambda v: cc.blind_transfer(AGENT, v)),
        ("blind.context", lambda v: cc.blind_transfer(AGENT, "2002", v)),
        ("atxfer.channel", lambda v: cc.attended_transfer(v, "2002")),
        ("atxfer.exten", lambda v: cc.attended_transfer(AGENT, v)),
        ("hold.caller", lambda v: cc.hold(v, AGENT)),
        ("hold.agent", lambda v: cc.hold(CALLER, v)),
        ("unhold.caller", lambda v: cc.unhold(v, AGENT)),
        ("hangup.channel", lambda v: cc.hangup(v)),
        ("record.channel", lambda v: cc.start_recording(v, "call.wav")),
        ("record.file", lambda v: cc.start_recording(CALLER, v)),
        ("record.options", lambda v: cc.start_recording(CALLER, "call.wav", options=v)),
        ("stoprecord.channel", lambda v: cc.stop_recording(v)),
        ("spy.supervisor", lambda v: cc.spy(v, AGENT)),
        ("spy.target", lambda v: cc.spy("PJSIP/2001", v)),
        ("spy.caller_id_name", lambda v: cc.spy("PJSIP/2001", AGENT, caller_id_name=v)),
        ("setvar.channel", lambda v: cc.set_var(v, "NOTE", "x")),
        ("setvar.name", lambda v: cc.set_var(CALLER, v, "x")),
        ("setvar.value", lambda v: cc.set_var(CALLER, "NOTE", v)),
        ("getvar.channel", lambda v: cc.get_var(v, "NOTE")),
        ("getvar.name", lambda v: cc.get_var(CALLER, v)),
    ]


_SAFE_LINE = re.compile(r"[A-Za-z0-9()_-]+: [^\x00-\x1f\x7f\u0085\u2028\u2029]*")


def assert_wire_clean(raw: bytes) -> list[Message]:
    """Every line the peer received is one ``Key: Value`` header without a control character."""
    text = raw.decode("utf-8")
    assert text.endswith("\r\n\r\n")
    for frame in text[:-4].split("\r\n\r\n"):
        for line in frame.split("\r\n"):
            assert _SAFE_LINE.fullmatch(line), f"unsafe line on the wire: {line!r}"
    frames = AmiParser(expect_greeting=False).feed(raw)
    assert all(isinstance(f, Message) for f in frames)
    return frames  # type: ignore[return-value]


async def test_control_characters_never_reach_the_wire(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    await cc.hold(CALLER, AGENT)  # one legitimate action, so the wire check has something to read
    before = len(peer.received)
    for name, call in paths(cc):
        for value in HOSTILE:
            with pytest.raises((UnsafeValue, InvalidValue)):
                await call(value)
            # Also hidden after a plausible prefix of the right shape.
            with pytest.raises((UnsafeValue, InvalidValue)):
                await call("1001" + value)
        assert len(peer.received) == before, f"{name}: a refused value still sent an action"
    await cc.link.ping()  # type: ignore[attr-defined]
    frames = assert_wire_clean(bytes(peer.raw))
    assert [f["Action"] for f in frames] == ["Login", "Redirect", "Ping"]


async def test_every_path_accepts_a_good_value(pbx: tuple[AmiPeer, CallControl]) -> None:
    """The refusals above are not vacuous: the same paths send with a plausible value."""
    peer, cc = pbx
    good = {
        "context": "cti-wait",
        "exten": "2002",
        "number": "2002",
        "endpoint": "PJSIP/1001",
        "supervisor": "PJSIP/2001",
        "file": "call-1.wav",
        "options": "b",
        "name": "NOTE",
        "variable_name": "NOTE",
        "caller_id_name": "Kim Minji",
        "caller_id_num": "01012345678",
        "channel_id": "c9-a",
        "value": "hello world",
        "variable_value": "x",
    }
    for name, call in paths(cc):
        field = name.split(".", 1)[1]
        value = good.get(field, CALLER)
        await call(value)
    assert_wire_clean(bytes(peer.raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=40), number=st.text(max_size=20))
async def test_any_caller_id_either_refused_or_clean(
    pbx: tuple[AmiPeer, CallControl], name: str, number: str
) -> None:
    peer, cc = pbx
    start = len(peer.raw)
    try:
        res = await cc.originate_agent_leg(
            "PJSIP/1001", channel_id="c1-a", caller_id_name=name, caller_id_num=number, ring_timeout_s=5
        )
    except (UnsafeValue, InvalidValue):
        assert len(peer.raw) == start
        return
    assert res.success
    frames = assert_wire_clean(bytes(peer.raw[start:]))
    shown = "" if name == "<unknown>" else clean_display_name(name)
    assert len(frames) == 1 and frames[0]["CallerID"] == f'"{shown}" <{number}>'
    assert len(frames[0]) == 10  # no smuggled header


async def test_caller_name_from_the_wire_vs_typed_in_the_console(pbx: tuple[AmiPeer, CallControl]) -> None:
    peer, cc = pbx
    await cc.originate_agent_leg(
        "PJSIP/1001",
        channel_id="c1-a",
        caller_id_name="<unknown>",
        caller_id_num="<unknown>",
        ring_timeout_s=5,
    )
    assert peer.actions("Originate")[-1]["CallerID"] == '"" <>'  # Asterisk's placeholders (Newchannel)
    await cc.originate_agent_leg(
        "PJSIP/1001",
        channel_id="c2-a",
        caller_id_name='Kim "Boss" <x>',
        caller_id_num="5551234",
        ring_timeout_s=5,
    )
    assert peer.actions("Originate")[-1]["CallerID"] == '"Kim Boss x" <5551234>'
    with pytest.raises(InvalidValue):  # a supervisor's own label is checked, not silently rewritten
        await cc.spy("PJSIP/2001", AGENT, caller_id_name='Sup "X"')


def test_clean_display_name_keeps_printables() -> None:
    assert clean_display_name('Kim "The Boss" <x>\r\n\x00Min\tji') == "Kim The Boss xMinji"
