"""A survey campaign's answered line on the real Asterisk 22.10.1 (capture 31), and the simulator held to it:
the dialer's `Redirect` of the `PJSIP/trunk-…` line from `Wait` in `[cti-dialer]` to `s@cti-survey`, the
FastAGI `survey` script's environment (the Originate's `ChannelId` as `agi_uniqueid`) and the Originate's
variables read back with `GET VARIABLE`."""

from __future__ import annotations

from pbxsim.captures import RECEIVED, capture
from pbxsim.world import PhoneProfile
from tests.pbxsim.test_product_paths import Pbx, pbx  # noqa: F401

NUMBER = "+442079465011"  # capture 31's first person
LINE = "dial-1a223274ad3-1"
SURVEY_VARS = ("CTI_CAMPAIGN", "CTI_SURVEY_FLOW", "CTI_CONTACT_NUMBER", "CTI_CUSTOMER_ID")


def _env(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def _recorded_survey() -> tuple[dict[str, str], list[str]]:
    """The first survey line's AGI environment and the replies to its four GET VARIABLEs."""
    recs = [r for r in capture("31") if r.stream == "AGI1" and r.direction == RECEIVED]
    return _env(recs[0].payload.decode()), [r.payload.decode() for r in recs[1:5]]


async def test_a_survey_line_reaches_the_agi_as_on_the_real_pbx(pbx: Pbx) -> None:  # noqa: F811
    real_env, real_replies = _recorded_survey()
    assert (real_env["agi_uniqueid"], real_env["agi_context"], real_env["agi_network_script"]) == (
        LINE, "cti-survey", "survey")
    pbx.sim.world.phones[NUMBER] = PhoneProfile(answer_after=1.0)
    variables = {"CTI_CAMPAIGN": "trial-survey", "CTI_ABANDON_MESSAGE": "abandoned-call",
                 "CTI_MACHINE_MESSAGE": "machine-message", "CTI_SURVEY_FLOW": "satisfaction_survey_en",
                 "CTI_CONTACT_NUMBER": NUMBER, "CTI_CUSTOMER_ID": ""}
    resp = await pbx.ami.action("Originate", Channel=f"PJSIP/{NUMBER}@trunk", Context="cti-dialer", Exten="s",
                                Priority="1", Timeout="15000", CallerID='"Example Co" <4008001234>',
                                ChannelId=LINE, Async="true",
                                Variable=[f"{k}={v}" for k, v in variables.items()])
    assert resp["Response"] == "Success"
    verdict = await pbx.event("UserEvent", UserEvent="AMDResult", Uniqueid=LINE, timeout=20)
    moved = await pbx.ami.action("Redirect", Channel=verdict["Channel"], Context="cti-survey", Exten="s",
                                 Priority="1")
    assert (moved["Response"], moved["Message"]) == ("Success", "Redirect successful")
    session = await pbx.agi.next()
    env = _env(session.env)
    varying = ("agi_channel", "agi_request", "agi_threadid")
    assert {k: v for k, v in env.items() if k not in varying} == {
        k: v for k, v in real_env.items() if k not in varying}
    assert env["agi_channel"] == verdict["Channel"] and env["agi_channel"].startswith("PJSIP/trunk-")
    assert env["agi_request"].endswith("/survey")
    replies = [(await session.run(f"GET VARIABLE {name}")).decode() for name in SURVEY_VARS]
    assert replies == real_replies
    session.close()


def _recorded_local_env() -> dict[str, str]:
    recs = [r for r in capture("31") if r.stream == "AGI8" and r.direction == RECEIVED]
    return _env(recs[0].payload.decode())


async def test_a_local_survey_line_reaches_the_agi_as_on_the_real_pbx(pbx: Pbx) -> None:  # noqa: F811
    """`dialer.trunk: Local/{number}@cti-customer/n` (capture 31, AGI8): the `;1` half is redirected, and its
    caller ID in the AGI is the dialled number, not the campaign's."""
    real_env = _recorded_local_env()
    number = "+442079465071"
    assert real_env["agi_channel"].startswith(f"Local/{number}@cti-customer-")
    pbx.sim.world.phones[number] = PhoneProfile(answer_after=1.0)
    resp = await pbx.ami.action("Originate", Channel=f"Local/{number}@cti-customer/n", Context="cti-dialer",
                                Exten="s", Priority="1", Timeout="15000", CallerID='"Example Co" <4008001234>',
                                ChannelId="dial-1a223303092-1", Async="true",
                                Variable=["CTI_CAMPAIGN=trial-survey-local", "CTI_SURVEY_FLOW=satisfaction_survey_en",
                                          f"CTI_CONTACT_NUMBER={number}", "CTI_CUSTOMER_ID="])
    assert resp["Response"] == "Success"
    verdict = await pbx.event("UserEvent", UserEvent="AMDResult", Uniqueid="dial-1a223303092-1", timeout=20)
    assert verdict["Channel"].endswith(";1")
    moved = await pbx.ami.action("Redirect", Channel=verdict["Channel"], Context="cti-survey", Exten="s",
                                 Priority="1")
    assert moved["Response"] == "Success"
    session = await pbx.agi.next()
    env = _env(session.env)
    varying = ("agi_channel", "agi_request", "agi_threadid")
    assert {k: v for k, v in env.items() if k not in varying} == {
        k: v for k, v in real_env.items() if k not in varying}
    assert env["agi_channel"] == verdict["Channel"]
    session.close()
