"""Agents' phones are dial strings (queues.yaml per agent, cti.yaml's site template), optionally answering by
themselves: the pure choice of the dial string, then whole calls through the simulator and the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.config import AgentConfig
from ctiserver.consoles.devices import DeviceRefused, Phones, PhoneSettings, label
from tests.gateway.gw_harness import ACD_YAML, AGENT1, PLAIN_CALLER, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent, agent_state, call_state

AGENT_PHONES = Path(__file__).with_name("agent_phones.conf")  # [agent-phones]: Dial(PJSIP/${EXTEN})


def _agent(device: str | None = None, auto_answer: bool | None = None) -> AgentConfig:
    return AgentConfig("1001", "Li Na", {}, ("sales",), device, 1, auto_answer)


# ---------------------------------------------------------------------------- which dial string


def test_the_site_template_takes_the_extension_typed_at_login() -> None:
    assert Phones().agent_device(_agent(), "1001") == "PJSIP/1001"
    site = Phones(PhoneSettings("IAX2/office/{extension}"))
    assert site.agent_device(_agent(), "2002") == "IAX2/office/2002"
    assert site.supervisor_device("2900") == "IAX2/office/2900"
    assert site.needs_extension(_agent()) and site.needs_extension(None)


def test_an_agents_own_device_wins_whatever_was_typed() -> None:
    home = _agent("PJSIP/13800138000@trunk")
    assert Phones().agent_device(home, "1001") == "PJSIP/13800138000@trunk"
    assert not Phones().needs_extension(home)


def test_local_devices_are_rung_without_optimization() -> None:
    # Once both halves are bridged Asterisk would swap the Local pair out, and the leg we follow would go.
    assert Phones(PhoneSettings("Local/{extension}@agent-phones")).agent_device(_agent(), "1001") == \
        "Local/1001@agent-phones/n"
    assert Phones().agent_device(_agent("Local/1001@agent-phones/n"), "x") == "Local/1001@agent-phones/n"
    assert Phones().agent_device(_agent("Local/1001@agent-phones/b"), "x") == "Local/1001@agent-phones/bn"


def test_auto_answer_rings_a_desk_phone_through_the_pre_dial_context() -> None:
    on = Phones(PhoneSettings(auto_answer=True))
    assert on.agent_device(_agent(), "1001") == "Local/1001@cti-agent-dial/n"
    assert on.supervisor_device("2001") == "Local/2001@cti-agent-dial/n"
    assert on.agent_device(_agent(auto_answer=False), "1001") == "PJSIP/1001"  # the agent's own choice
    assert Phones().agent_device(_agent("PJSIP/1005", auto_answer=True), "x") == "Local/1005@cti-agent-dial/n"
    # A mobile through the trunk cannot be told to answer: it rings as usual.
    assert on.agent_device(_agent("PJSIP/13800138000@trunk"), "x") == "PJSIP/13800138000@trunk"


def test_a_bad_template_is_refused() -> None:
    with pytest.raises(ValueError, match="not a dial string"):
        Phones(PhoneSettings("PJSIP/{extension}&PJSIP/1002"))
    with pytest.raises(DeviceRefused):
        Phones(PhoneSettings("PJSIP/{extension}")).agent_device(_agent(), "10 01")


@pytest.mark.parametrize(("device", "shown"), [
    ("PJSIP/1001", "1001"), ("Local/1001@cti-agent-dial/n", "1001"), ("Local/1001@agent-phones/n", "1001"),
    ("PJSIP/13800138000@trunk", "13800138000"), ("IAX2/office/1001", "1001"),
])
def test_consoles_show_the_phone_not_the_dial_string(device: str, shown: str) -> None:
    assert label(device) == shown


# ---------------------------------------------------------------------------- whole calls

LOCAL_DEVICE_ACD = ACD_YAML.replace("endpoint: PJSIP/1001", "device: Local/1001@agent-phones")


async def test_an_offer_rings_a_local_channel_device_and_the_caller_is_connected(tmp_path: Path) -> None:
    assert LOCAL_DEVICE_ACD != ACD_YAML
    async with app_site(tmp_path, acd_yaml=LOCAL_DEVICE_ACD, dialplans=[AGENT_PHONES]) as site:
        a = await agent(site, queues=("sales",))
        _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
        leg = site.agent_leg(call_id)
        assert leg.name.startswith("Local/1001@agent-phones-") and leg.name.endswith(";1")
        phone = await _ringing_phone(site, AGENT1)
        assert phone.linkedid == leg.linkedid  # dialled by the Local pair's ';2'
        await a.wait_for("offer")

        site.sim.world.new_state(phone, 6)  # the agent picks up the desk phone
        await a.wait_for(call_state("talking", call_id))
        caller = next(run.chan for run in site.sim.callers)
        assert caller.bridge is not None and leg.bridge is caller.bridge  # the caller talks to the agent leg
        assert phone.bridge is not None and phone.bridge is leg.partner.bridge  # ... and through it to the phone
        grid = site.server.console.views.agent_row(AGENT1)
        assert grid["extension"] == "1001"

        site.sim.world.queue_hangup(phone, 16)  # the agent hangs up
        await a.wait_for(call_state("ended", call_id))
        await a.wait_for(agent_state("wrap_up"))
        await site.until(lambda: caller.dead, "the caller's line to end")


async def test_an_auto_answer_phone_answers_by_itself(tmp_path: Path) -> None:
    async with app_site(tmp_path, phones=PhoneSettings(auto_answer=True)) as site:
        # This desk phone is never picked up by hand: only the INVITE's Call-Info answers it.
        site.sim.add_agent_phone(AGENT1, answer_after=None, auto_answer=True)
        a = await agent(site, queues=("sales",))
        caller = site.call(PLAIN_CALLER, "sales")
        call_id = (await a.wait_for(call_state("talking"), 15))["call"]["call_id"]
        leg = site.sim.channel(site.server.queueing.agent_leg(call_id) or "")
        assert leg is not None and leg.name.startswith("Local/1001@cti-agent-dial-"), leg
        assert leg.bridge is not None and leg.bridge is caller.bridge
        phone = next(c for c in site.sim.world.channels.values() if c.name.startswith("PJSIP/1001-"))
        headers = dict(phone.sip_headers)
        assert headers["Call-Info"].endswith(";answer-after=0"), headers  # set by [cti-autoanswer]
        assert "info=alert-autoanswer" in headers["Alert-Info"]
        assert phone.state == 6 and phone.bridge is not None
        assert site.server.console.views.agent_row(AGENT1)["extension"] == "1001"


async def _ringing_phone(site: AppSite, extension: str):  # type: ignore[no-untyped-def]
    return await site.until(lambda: next((c for c in site.sim.world.channels.values()
                                          if c.name.startswith(f"PJSIP/{extension}-") and c.state == 5), None),
                            f"PJSIP/{extension} ringing")
