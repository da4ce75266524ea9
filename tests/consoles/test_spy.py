"""A supervisor listens to one call at a time, and stops: by spy_stop, by hanging up their phone, or because
the call ended. Each start and stop is a SupervisorAction fact. Real server, real websocket, the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctiserver.consoles.devices import PhoneSettings
from ctiserver.journal import facts as f
from pbxsim.channels import Channel
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import AGENT1, PLAIN_CALLER, SUPERVISOR_EXTENSION, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent, agent_state, call_state, supervisor

AGENT_PHONES = Path(__file__).with_name("agent_phones.conf")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path) as s:
        s.sim.world.phones[SUPERVISOR_EXTENSION].answer_after = 0.2
        yield s


def spy_calls(site: AppSite) -> list[Channel]:
    return [c for c in site.sim.world.channels.values() if c.app == "ChanSpy" and not c.dead]


def journaled(site: AppSite) -> list[f.SupervisorAction]:
    facts: list[f.SupervisorAction] = []
    site.server.bus.subscribe(f.SupervisorAction, facts.append)
    return facts


async def talking(site: AppSite) -> tuple[ConsoleClient, str]:
    a = await agent(site, queues=("sales",))
    _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    await site.answer(call_id)
    await a.wait_for(call_state("talking", call_id))
    return a, call_id


async def test_one_spy_per_supervisor_a_second_one_ends_the_first(site: AppSite) -> None:
    _, call_id = await talking(site)
    boss = await supervisor(site)
    facts = journaled(site)
    for mode in ("listen", "whisper", "barge"):
        assert (await boss.request("spy", agent_id=AGENT1, mode=mode))["type"] == "result"
        running = await site.until(lambda: len(spy_calls(site)) == 1 and spy_calls(site), "one spy call")
        assert running[0].appdata.endswith({"listen": ",qbE", "whisper": ",qbwE", "barge": ",qBE"}[mode])
    assert site.server.console.listening("super1") == (AGENT1, call_id)
    assert [(x.action, x.target, x.detail) for x in facts] == [
        ("spy:listen", AGENT1, call_id), ("spy_stop", AGENT1, f"{call_id}:replaced"),
        ("spy:whisper", AGENT1, call_id), ("spy_stop", AGENT1, f"{call_id}:replaced"),
        ("spy:barge", AGENT1, call_id)]
    assert {x.user for x in facts} == {"super1"}


async def test_spy_stop_hangs_up_the_spy_call_and_the_call_goes_on(site: AppSite) -> None:
    a, call_id = await talking(site)
    boss = await supervisor(site)
    assert (await boss.request("spy", agent_id=AGENT1, mode="listen"))["type"] == "result"
    (spy,) = await site.until(lambda: spy_calls(site), "the spy call")
    facts = journaled(site)
    stopped = await boss.request("spy_stop")
    assert (stopped["type"], stopped["data"]) == ("result", {"stopped": True})
    await site.until(lambda: spy.dead, "the spy call to end")
    assert site.server.console.listening("super1") is None
    assert [(x.action, x.detail) for x in facts] == [("spy_stop", f"{call_id}:stopped")]
    again = await boss.request("spy_stop")
    assert (again["type"], again["data"]) == ("result", {"stopped": False})
    assert site.server.projector.router.agent_view(AGENT1, 0).state == "on_call"
    a.drain()
    assert not [m for m in await a.collect(0.3) if m["type"] == "call_state" and m["call"]["state"] == "ended"]


async def test_the_supervisor_hanging_up_ends_the_spy(site: AppSite) -> None:
    _, call_id = await talking(site)
    boss = await supervisor(site)
    assert (await boss.request("spy", agent_id=AGENT1, mode="whisper"))["type"] == "result"
    (spy,) = await site.until(lambda: spy_calls(site), "the spy call")
    assert spy.name.startswith(f"PJSIP/{SUPERVISOR_EXTENSION}-")
    facts = journaled(site)
    site.sim.world.queue_hangup(spy, 16)  # the supervisor puts the phone down
    await site.until(lambda: spy.dead, "ChanSpy to end with the supervisor's phone")
    await site.until(lambda: site.server.console.listening("super1") is None, "the spy to be over")
    assert [(x.action, x.detail) for x in facts] == [("spy_stop", f"{call_id}:hung up")]
    # Listening again rings a new spy call; nothing is left of the old one.
    assert (await boss.request("spy", agent_id=AGENT1, mode="listen"))["type"] == "result"
    assert len(await site.until(lambda: spy_calls(site), "the new spy call")) == 1


async def test_the_spy_ends_with_the_call(site: AppSite) -> None:
    a, call_id = await talking(site)
    boss = await supervisor(site)
    assert (await boss.request("spy", agent_id=AGENT1, mode="listen"))["type"] == "result"
    (spy,) = await site.until(lambda: spy_calls(site), "the spy call")
    facts = journaled(site)
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    await a.wait_for(agent_state("wrap_up"))
    await site.until(lambda: spy.dead, "ChanSpy to leave with the spied call (option E)")
    await site.until(lambda: site.server.console.listening("super1") is None, "the spy to be over")
    assert [(x.action, x.detail) for x in facts] == [("spy_stop", f"{call_id}:hung up")]


async def test_a_supervisor_on_a_local_channel_phone_stops_listening_by_hanging_up(tmp_path: Path) -> None:
    phones = PhoneSettings(device="Local/{extension}@agent-phones")
    async with app_site(tmp_path, phones=phones, dialplans=[AGENT_PHONES]) as site:
        site.sim.world.phones[SUPERVISOR_EXTENSION].answer_after = 0.2
        # The agent's own device (queues.yaml endpoint: PJSIP/1001) wins over the site template.
        _, call_id = await talking(site)
        boss = await supervisor(site)
        assert (await boss.request("spy", agent_id=AGENT1, mode="listen"))["type"] == "result"
        (spy,) = await site.until(lambda: spy_calls(site), "the spy call")
        assert spy.name.startswith(f"Local/{SUPERVISOR_EXTENSION}@agent-phones-") and spy.name.endswith(";1")
        phone = next(c for c in site.sim.world.channels.values()
                     if c.name.startswith(f"PJSIP/{SUPERVISOR_EXTENSION}-") and not c.dead)
        site.sim.world.queue_hangup(phone, 16)  # the desk phone behind the Local channel hangs up
        await site.until(lambda: spy.dead, "ChanSpy to end with the supervisor's phone")
        await site.until(lambda: site.server.console.listening("super1") is None, "the spy to be over")
        assert site.server.projector.router.agent_view(AGENT1, 0).call_id == call_id
