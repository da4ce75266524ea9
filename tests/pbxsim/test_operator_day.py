"""The simulator held to capture 21 (Asterisk 22.10.1, sipp phones on PJSIP, the product dialplan, the CTI's
own AMI session): a follow-up call from the worklist (the agent's desk phone originated, then the customer
dialled through the trunk), the console's Answer control (Local/<endpoint>@cti-agent-dial/n with the
auto-answer pre-dial handler), and blacklisted callers refused by the IVR (prompt, then AGI HANGUP)."""

from __future__ import annotations

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import RECEIVED, capture
from tests.pbxsim.test_product_paths import Pbx, pbx  # noqa: F401


def _recorded() -> list[Message]:
    parser, out = AmiParser(), []
    for rec in capture("21"):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            out.extend(m for m in parser.feed(rec.payload) if isinstance(m, Message))
    return out


REAL = _recorded()


def ends(frames: list[Message], channel: str) -> list[tuple[str, str]]:
    """How a channel ended: its hang-up requests and its Hangup, with their causes."""
    return [(f["Event"], f.get("Cause", "")) for f in frames if f.get("Channel") == channel
            and f["Event"] in ("HangupRequest", "SoftHangupRequest", "Hangup")]


def refused_callers() -> list[str]:
    """The callers whose FastAGI script ran HANGUP: the two blacklisted ones."""
    return [f["Channel"] for f in REAL if f.get("Event") == "AGIExecStart" and f.get("Command") == "HANGUP"]


def test_the_capture_shows_each_piece() -> None:
    assert len(refused_callers()) == 2
    (local,) = [f for f in REAL if f.get("Event") == "LocalBridge"]
    assert local["LocalOneChannel"].startswith("Local/1003@cti-agent-dial-")
    assert any(f.get("Event") == "Newchannel" and f["Channel"].startswith("PJSIP/trunk-")
               and f.get("Linkedid", "").startswith("cti-fu-") for f in REAL)  # the customer's line


async def test_a_caller_hung_up_by_the_ivr_ends_as_on_the_real_pbx(pbx: Pbx) -> None:  # noqa: F811
    real = {tuple(ends(REAL, c)) for c in refused_callers()}
    assert real == {(("SoftHangupRequest", "32"), ("SoftHangupRequest", "16"), ("Hangup", "0"))}
    caller, session = await pbx.caller_in_ivr()
    assert await session.run('STREAM FILE cti/no-such-prompt ""') == b"200 result=-1 endpos=0\n"
    assert await session.run("HANGUP") == b"200 result=1\n"
    assert await session.run("SET VARIABLE IVR_DONE 1") == b"HANGUP\n"
    assert await session.line() == b"200 result=1\n"
    session.close()
    await pbx.event("Hangup", caller.name)
    assert tuple(ends(pbx.ami.frames, caller.name)) in real


async def test_an_answer_at_console_leg_is_named_as_on_the_real_pbx(pbx: Pbx) -> None:  # noqa: F811
    (real,) = [f for f in REAL if f.get("Event") == "LocalBridge"]
    leg = real["LocalOneUniqueid"]
    assert (real["LocalTwoUniqueid"], real["LocalTwoLinkedid"], real["LocalOptimization"]) == (f"{leg};2", leg, "No")
    resp = await pbx.ami.action("Originate", Channel="Local/1007@cti-agent-dial/n", Context="cti-agent-ready",
                                Exten="s", Priority="1", Async="true", ChannelId=leg, Timeout="20000")
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert done["Response"] == "Success"
    got = await pbx.event("LocalBridge")
    for key in ("LocalOneUniqueid", "LocalTwoUniqueid", "LocalTwoLinkedid", "LocalOptimization", "LocalOneContext",
                "LocalTwoContext", "Context"):
        assert got[key] == real[key], key


async def test_an_originated_desk_phone_rings_in_its_endpoints_context(pbx: Pbx) -> None:  # noqa: F811
    """The follow-up's agent leg: Newchannel in the endpoint's context at 's' (pjsip.conf's cti-dial), then
    the Originate's context once answered (cti-outbound, where the customer is dialled)."""
    (real,) = [f for f in REAL if f.get("Event") == "Newchannel" and f.get("Uniqueid", "").startswith("cti-fu-")]
    assert (real["Context"], real["Exten"], real["ChannelState"]) == ("cti-dial", "s", "0")
    fu = "cti-fu-1-1-1001"
    resp = await pbx.ami.action("Originate", Channel="PJSIP/1001", Context="cti-outbound", Exten="8613800000004",
                                Priority="1", Async="true", ChannelId=fu, Timeout="8000",
                                CallerID='"" <8613800000004>')
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert (done["Response"], done["Uniqueid"]) == ("Success", fu)
    new = await pbx.ami.wait_event(lambda f: f.get("Event") == "Newchannel" and f.get("Uniqueid") == fu)
    assert (new["Context"], new["Exten"], new["ChannelState"]) == (real["Context"], real["Exten"], "0")
    dial = await pbx.ami.wait_event(lambda f: f.get("Event") == "Newexten" and f.get("Uniqueid") == fu
                                    and f.get("Application") == "Dial")
    assert (dial["Context"], dial["AppData"]) == ("cti-outbound", "PJSIP/8613800000004@trunk,60,tT")
