"""An agent whose consoles are all gone (closed, or a network that stopped answering) is paused with reason
console_lost after a grace period, and made available again when a console comes back, unless they were
paused for something else meanwhile. Real websocket clients against the real app; the grace is short here
(cti.yaml consoles.lost_after_s) and the keepalive quick, so a silent console is found in a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from acd.config import parse_config
from acd.router import AgentView
from crmstore.journal import read_rows
from ctiserver.gateway.auth import Principal, Role
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import ACD_YAML, AGENT1, PLAIN_CALLER, VIP_CALLER, AppSite, app_site

GRACE_S = 0.5
ACD_SHORT_WRAP = ACD_YAML.replace("wrap_up_s: 30", "wrap_up_s: 1")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, console_lost_after_s=GRACE_S, console_ping_interval_s=0.2,
                        console_ping_timeout_s=0.2, acd=parse_config(ACD_SHORT_WRAP, "<presence tests>"),
                        acd_text=ACD_SHORT_WRAP) as s:
        yield s


async def console(site: AppSite, name: str = "agent1") -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    return client


async def agent_at_work(site: AppSite) -> ConsoleClient:
    client = await console(site)
    reply = await client.request("agent_login", extension=AGENT1, queues=["sales", "vip"])
    assert reply["type"] == "result", reply
    await client.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    return client


def agent(site: AppSite) -> AgentView:
    return site.server.projector.router.agent_view(AGENT1, site.server.now())


async def until_state(site: AppSite, state: str, reason: str | None = None) -> None:
    await site.until(lambda: agent(site).state == state and (reason is None or agent(site).pause_reason == reason),
                     f"agent {AGENT1} {state} {reason or ''}")


def grid(reason: str, state: str = "paused") -> object:
    """A grid delta giving the agent's row this reason (deltas carry changed fields only: a state that
    did not change is not in it)."""
    def test(m: Msg) -> bool:
        row = m["agents"].get(AGENT1) if m["type"] == "agent_grid_delta" else None
        return bool(row) and row.get("state", state) == state and row.get("reason") == reason
    return test


async def paused_facts(site: AppSite) -> list[str]:
    journal = site.server.recorder.journal
    await journal.durable(journal.last_seq, 10)
    rows = await site.server.crm.read_plan(read_rows(0, 1_000_000))
    return [json.loads(r[5])["reason"] for r in rows if r[2] == "acd.agent_paused" and r[4] == AGENT1]


async def test_closed_console_pauses_the_agent_and_a_new_one_resumes(site: AppSite) -> None:
    boss = await console(site, "super1")
    a = await agent_at_work(site)
    await a.close()  # the browser is closed
    await until_state(site, "paused", "console_lost")
    await boss.wait_for(grid("console_lost"))  # the supervisors see why
    assert await paused_facts(site) == ["console_lost"]  # an ACD input, journaled like the others
    # A caller now waits: nobody is at agent 1001's desk, so no offer goes there.
    call_id = await site.add_waiting_call("sales", PLAIN_CALLER)
    assert agent(site).state == "paused"

    back = await console(site)  # the agent opens the console again (a new login)
    snapshot_state = next(m for m in back.seen if m["type"] == "snapshot")["agent"]
    assert (snapshot_state["state"], snapshot_state["reason"]) == ("paused", "console_lost")
    await back.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == call_id)
    assert agent(site).state == "reserved"  # available again, and the waiting caller went to them


async def test_one_console_of_two_closing_changes_nothing(site: AppSite) -> None:
    a = await agent_at_work(site)
    tab = await console(site)
    await tab.close()
    await site.until(lambda: site.gateway.connection_count() == 1, "the second tab gone")
    assert AGENT1 in site.server.presence.absences.connected
    assert site.server.presence.absences.next_due() is None  # no grace running: one console is still open
    await a.close()
    await until_state(site, "paused", "console_lost")


async def test_laptop_asleep_is_found_by_the_keepalive(site: AppSite) -> None:
    a = await agent_at_work(site)
    # Asleep: the TCP connection stays open, nothing is read or answered (no pong, no close frame).
    transport = a.ws.transport
    transport.pause_reading()
    await until_state(site, "paused", "console_lost")
    transport.resume_reading()  # it wakes up: its old connection is gone, the console logs in again
    with pytest.raises((ConnectionClosed, TimeoutError)):
        while True:
            await a.next(2.0)
    back = await console(site)
    await back.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    await until_state(site, "available")


async def test_network_gone_without_a_close_frame(site: AppSite) -> None:
    a = await agent_at_work(site)
    a.ws.transport.abort()  # the connection is cut: no close frame
    await until_state(site, "paused", "console_lost")


async def test_on_a_call_the_agent_keeps_it_and_is_paused_after_wrap_up(site: AppSite) -> None:
    boss = await console(site, "super1")
    a = await agent_at_work(site)
    _, call_id = await site.ring_agent(AGENT1, VIP_CALLER, "vip")
    await site.answer(call_id)
    await until_state(site, "on_call")
    await a.close()
    await site.until(lambda: agent(site).pending_pause == "console_lost", "the pause waiting for the call's end")
    await boss.wait_for(grid("console_lost", "on_call"))
    view = site.server.projector.router.call_view(call_id)
    assert agent(site).state == "on_call" and view is not None and view.state == "connected"  # the call is kept
    site.hang_up_caller(call_id)
    await until_state(site, "wrap_up")
    await until_state(site, "paused", "console_lost")  # when the wrap-up time is over


async def test_console_back_during_the_call_means_no_pause_after_it(site: AppSite) -> None:
    a = await agent_at_work(site)
    _, call_id = await site.ring_agent(AGENT1, VIP_CALLER, "vip")
    await site.answer(call_id)
    await until_state(site, "on_call")
    await a.close()
    await site.until(lambda: agent(site).pending_pause == "console_lost", "the pause waiting for the call's end")
    back = await console(site)
    site.hang_up_caller(call_id)
    await back.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "wrap_up")
    await back.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    await until_state(site, "available")


async def test_a_pause_for_lunch_is_left_alone(site: AppSite) -> None:
    a = await agent_at_work(site)
    assert (await a.request("pause", reason="lunch"))["type"] == "result"
    await until_state(site, "paused", "lunch")
    await a.close()
    await site.until(lambda: site.server.presence.absences.next_due() is None, "the grace to run out")
    assert (agent(site).state, agent(site).pause_reason) == ("paused", "lunch")
    back = await console(site)
    await site.until(lambda: AGENT1 in site.server.presence.absences.connected, "the console back")
    assert (agent(site).state, agent(site).pause_reason) == ("paused", "lunch")
    assert await paused_facts(site) == ["lunch"]
    await back.close()


async def test_paused_for_lunch_while_away_stays_paused_on_return(site: AppSite) -> None:
    boss = await console(site, "super1")
    a = await agent_at_work(site)
    await a.close()
    await until_state(site, "paused", "console_lost")
    reply = await boss.request("force_pause", agent_id=AGENT1, reason="lunch")
    assert reply["type"] == "result", reply
    await until_state(site, "paused", "lunch")
    await console(site)
    await site.until(lambda: AGENT1 in site.server.presence.absences.connected, "the console back")
    assert (agent(site).state, agent(site).pause_reason) == ("paused", "lunch")


async def test_console_lost_is_not_a_reason_to_choose(site: AppSite) -> None:
    a = await agent_at_work(site)
    reply = await a.request("pause", reason="console_lost")
    assert (reply["type"], reply.get("reason")) == ("error", "invalid_value"), reply
    assert agent(site).state == "available"


async def test_after_a_restart_an_agent_whose_console_never_comes_back_is_paused(site: AppSite) -> None:
    # After a restart the journal has the agent logged in and no console is connected yet: the server counts
    # the grace from its start (CtiServer.start calls presence.start), as if every console had just closed.
    who = Principal("agent1", Role.AGENT, AGENT1, AGENT1, "Li Na", "restored", 2**31)
    await site.server.console.agent_login(who, AGENT1, ())
    assert agent(site).state == "available" and site.server.presence.absences.next_due() is None
    site.server.presence.start(site.server.projector.router.agent_ids())
    await until_state(site, "paused", "console_lost")
    assert site.server.projector.router.agent_view("1002", site.server.now()).state == "logged_out"
