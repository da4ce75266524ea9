"""The console's Answer control: an auto-answer phone with ``answer: console`` is not rung when the offer
comes; it is dialled when the agent clicks Answer, picks up by itself and the caller is connected. Whole
calls through the simulator and the real server."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.gw_harness import ACD_YAML, AGENT1, AGENT2, PLAIN_CALLER, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent, agent_state, call_state, supervisor

ANSWER_AT_CONSOLE_ACD = ACD_YAML.replace("endpoint: PJSIP/1001}", "endpoint: PJSIP/1001, auto_answer: true, "
                                         "answer: console}")
SHORT_RING_ACD = ANSWER_AT_CONSOLE_ACD.replace("{name: sales, skills: {sales: 1}, ring_timeout_s: 600",
                                               "{name: sales, skills: {sales: 1}, ring_timeout_s: 1")


def _phone_legs(site: AppSite, offer_id: str) -> list[str]:
    """Channels ringing or talking to agent 1001's phone: the offer's leg and the phone's own channel."""
    return [c.name for c in site.sim.world.channels.values()
            if not c.dead and (c.uniqueid == offer_id or c.name.startswith(f"PJSIP/{AGENT1}-"))]


def _refused(reply: dict[str, object], reason: str) -> bool:
    return reply["type"] == "error" and reply.get("reason") == reason


async def test_the_phone_is_dialled_only_when_the_agent_clicks_answer(tmp_path: Path) -> None:
    assert ANSWER_AT_CONSOLE_ACD != ACD_YAML
    async with app_site(tmp_path, acd_yaml=ANSWER_AT_CONSOLE_ACD) as site:
        # This desk phone is never picked up by hand: only the INVITE's Call-Info answers it.
        site.sim.add_agent_phone(AGENT1, answer_after=None, auto_answer=True)
        a = await agent(site, queues=("sales",))
        b = await agent(site, "agent2", AGENT2, queues=("support",))
        views = site.server.console.views
        assert views.agent(AGENT1).answer_at_console and not views.agent(AGENT2).answer_at_console
        boss = await supervisor(site)
        caller = site.call(PLAIN_CALLER, "sales")
        offer = (await a.wait_for("offer", 15))["offer"]
        offer_id, call_id = offer["offer_id"], offer["call_id"]

        # Refusals, and meanwhile the phone is not rung.
        assert _refused(await b.request("answer", offer_id=offer_id), "not_yours")
        assert _refused(await b.request("answer", offer_id=f"cti-offer-999-{AGENT2}"), "not_found")
        assert _refused(await a.request("answer", offer_id=f"cti-offer-999-{AGENT1}"), "not_found")
        reply = await boss.request("answer", offer_id=offer_id)
        assert (reply["type"], reply["code"]) == ("error", "forbidden"), reply
        assert _phone_legs(site, offer_id) == []
        view = site.server.projector.router.call_view(call_id)
        assert view is not None and view.state == "offered"

        assert (await a.request("answer", offer_id=offer_id))["type"] == "result"
        await a.wait_for(call_state("talking", call_id), 15)
        leg = site.agent_leg(call_id)
        assert leg.uniqueid == offer_id and leg.name.startswith(f"Local/{AGENT1}@cti-agent-dial-")
        assert leg.bridge is not None and leg.bridge is caller.bridge  # the caller talks to the agent
        phone = next(c for c in site.sim.world.channels.values() if c.name.startswith(f"PJSIP/{AGENT1}-"))
        assert dict(phone.sip_headers)["Call-Info"].endswith(";answer-after=0")  # it picked up by itself
        assert phone.state == 6 and phone.bridge is not None
        # Answered once: a second click finds no ringing offer.
        assert _refused(await a.request("answer", offer_id=offer_id), "not_found")


async def test_an_offer_never_answered_in_the_console_is_a_ring_no_answer(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=SHORT_RING_ACD) as site:
        site.sim.add_agent_phone(AGENT1, answer_after=None, auto_answer=True)
        a = await agent(site, queues=("sales",))
        site.call(PLAIN_CALLER, "sales")
        offer_id = (await a.wait_for("offer", 15))["offer"]["offer_id"]
        cancelled = await a.wait_for("offer_cancelled", 15)
        assert cancelled["offer_id"] == offer_id and cancelled["reason"] == "no-answer", cancelled
        await a.wait_for(agent_state("not_responding"))
        assert _phone_legs(site, offer_id) == []  # the phone never rang
        assert _refused(await a.request("answer", offer_id=offer_id), "not_found")


async def test_a_caller_who_hangs_up_before_the_answer_withdraws_the_offer(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=ANSWER_AT_CONSOLE_ACD) as site:
        site.sim.add_agent_phone(AGENT1, answer_after=None, auto_answer=True)
        a = await agent(site, queues=("sales",))
        caller = site.call(PLAIN_CALLER, "sales")
        offer_id = (await a.wait_for("offer", 15))["offer"]["offer_id"]
        site.sim.world.queue_hangup(caller, 16)
        cancelled = await a.wait_for("offer_cancelled", 15)
        assert cancelled["offer_id"] == offer_id and cancelled["reason"] != "no-answer", cancelled
        await a.wait_for(agent_state("available"))
        assert _refused(await a.request("answer", offer_id=offer_id), "not_found")
        assert _phone_legs(site, offer_id) == []


async def test_an_ordinary_phone_is_answered_on_the_phone_not_in_the_console(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=ANSWER_AT_CONSOLE_ACD) as site:
        b = await agent(site, "agent2", AGENT2, queues=("support",))
        offer_id, call_id = await site.ring_agent(AGENT2, PLAIN_CALLER, "support")
        assert _refused(await b.request("answer", offer_id=offer_id), "invalid_state")
        await site.answer(call_id)  # the desk phone is picked up by hand, as always
        await b.wait_for(call_state("talking", call_id), 15)
