"""The shipped asterisk-config against what the real Asterisk 22.10.1 did with it (captures 25-27): app_amd
loads only with an amd.conf, and the simulator, loading the same folder, does the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.amd import AmdSettings, settings_from_conf
from pbxsim.captures import RECEIVED, capture
from pbxsim.simulator import CONFIG_ENV, Simulator, product_dialplan
from pbxsim.world import PhoneProfile
from tests.pbxsim.test_product_paths import Pbx, pbx  # noqa: F401

CONFIG = product_dialplan().parent


def _recorded_stream(name: str, stream: str) -> list[Message]:
    parser, out = AmiParser(), []
    for rec in capture(name):
        if rec.stream == stream and rec.direction == RECEIVED:
            out.extend(m for m in parser.feed(rec.payload) if isinstance(m, Message))
    return out


def _recorded(name: str) -> list[Message]:
    return _recorded_stream(name, "AMI1")


def test_the_shipped_config_has_the_amd_settings_the_captures_were_made_with() -> None:
    """Without amd.conf a real Asterisk logs "Configuration file amd.conf missing" and app_amd declines to
    load: every campaign line would hang up at AMD()."""
    settings = settings_from_conf((CONFIG / "amd.conf").read_text(encoding="utf-8"))
    assert settings == AmdSettings()  # capture 15's, which gave the verdicts of captures 26 and 27
    verdicts = {(f["AMDSTATUS"], f["AMDCAUSE"]) for name in ("26", "27") for f in _recorded(name)
                if f.get("Event") == "UserEvent" and f.get("UserEvent") == "AMDResult"}
    assert verdicts == {("HUMAN", "HUMAN-800-800"), ("MACHINE", "LONGGREETING-1500-1500")}


def test_the_simulator_has_no_amd_when_the_config_folder_lacks_amd_conf(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Simulator().world.apps.exists("AMD")  # the shipped folder, with its amd.conf
    folder = tmp_path / "asterisk-config"
    folder.mkdir()
    for name in ("extensions.conf", "prompts.tsv"):
        (folder / name).write_bytes((CONFIG / name).read_bytes())
    monkeypatch.setenv(CONFIG_ENV, str(folder))
    assert not Simulator().world.apps.exists("AMD")


def _line_story(frames: list[Message], uniqueid: str) -> list[tuple[str, str]]:
    """How a campaign line ended: its hang-up events and the Originate's answer, with cause or reason."""
    keep = ("HangupRequest", "DialEnd", "Hangup", "OriginateResponse")
    return [(f["Event"], f.get("Cause") or f.get("Reason") or f.get("DialStatus", "")) for f in frames
            if f.get("Event") in keep and (f.get("Uniqueid") == uniqueid or f.get("DestUniqueid") == uniqueid)]


def _refused_lines(frames: list[Message]) -> dict[str, str]:
    """Campaign lines refused before ringing (the trunk's HangupRequest came before any answer): uniqueid ->
    cause."""
    return {f["Uniqueid"]: f["Cause"] for f in frames if f.get("Event") == "HangupRequest"
            and f["Uniqueid"].startswith("dial-") and f.get("ChannelState") == "0"}


def test_a_refused_campaign_line_fails_with_reason_0_whatever_the_cause() -> None:
    """Captures 26-28: 486 (cause 17) and 603 (cause 21) both give Reason 0; the HangupRequest with the
    cause always comes before the OriginateResponse, the Hangup before or after it."""
    stories = {}
    for name in ("26", "27", "28"):
        frames = _recorded(name)
        for uid, cause in _refused_lines(frames).items():
            stories[uid] = (cause, _line_story(frames, uid))
    assert {cause for cause, _ in stories.values()} == {"17", "21"}
    for cause, story in stories.values():
        assert story[0] == ("HangupRequest", cause)
        assert ("OriginateResponse", "0") in story and ("Hangup", cause) in story


async def test_the_simulator_refuses_a_trunk_line_as_the_real_pbx(pbx: Pbx) -> None:  # noqa: F811
    real = []
    for name in ("26", "27", "28"):
        frames = _recorded(name)
        real += [_line_story(frames, uid) for uid, cause in _refused_lines(frames).items() if cause == "17"]
    pbx.sim.world.phones["+442079460013"] = PhoneProfile(busy=True)
    resp = await pbx.ami.action("Originate", Channel="PJSIP/+442079460013@trunk", Context="cti-dialer", Exten="s",
                                Priority="1", Async="true", ChannelId="dial-1-1", Timeout="15000")
    done = await pbx.ami.wait_event(lambda f: f.get("Event") == "OriginateResponse"
                                    and f.get("ActionID") == resp["ActionID"])
    assert (done["Response"], done["Reason"], done["Channel"]) == ("Failure", "0", "PJSIP/+442079460013@trunk")
    assert _line_story(pbx.ami.frames, "dial-1-1") in real
    new = next(f for f in pbx.ami.frames if f.get("Event") == "Newchannel" and f.get("Uniqueid") == "dial-1-1")
    assert new["Channel"].startswith("PJSIP/trunk-") and (new["Context"], new["Exten"]) == ("from-pstn", "s")


def test_an_agent_legs_hangup_event_follows_the_hangup_actions_answer_within_milliseconds() -> None:
    """Capture 25: the CTI's Hangup of a leg is answered, and that leg's Hangup event mostly follows within
    5 ms: close enough to be read in the same batch (tests/ami_relay.py replays that)."""
    recs = [r for r in capture("25") if r.stream == "AMI1"]
    gaps = []
    for i, r in enumerate(recs):
        if r.direction == RECEIVED and b"Message: Channel Hungup" in r.payload:
            later = next(x for x in recs[i + 1:]
                         if x.direction == RECEIVED and x.payload.startswith(b"Event: Hangup\r\n"))
            gaps.append(later.t - r.t)
    assert len(gaps) == 5 and sum(gap < 0.005 for gap in gaps) >= 3, gaps


def test_a_customer_first_callback_rings_the_agent_only_once_the_customer_answered() -> None:
    """Capture 29 B and C: the customer's leg first; the agent's leg is originated after its answer, and a
    busy customer never rings the agent."""
    sent = [r for r in capture("29") if r.stream == "AMI2" and r.direction == ">>>"
            and r.payload.startswith(b"Action: Originate")]
    channels = [next(line.split(": ", 1)[1] for line in r.payload.decode().split("\r\n")
                     if line.startswith("Channel: ")) for r in sent]
    assert channels == ["Local/+442079464021@cti-customer/n", "PJSIP/1001", "Local/+442079464013@cti-customer/n"]
    frames = [f for f in _recorded_stream("29", "AMI2") if f.get("Event") == "OriginateResponse"]
    assert [(f["Uniqueid"], f["Reason"]) for f in frames] == [
        ("cti-cust-2-1001", "4"), ("cti-offer-2-1001", "4"), ("cti-cust-3-1001", "5")]
