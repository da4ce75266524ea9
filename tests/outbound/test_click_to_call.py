"""Click-to-call as a tracked outbound call, end to end: the console's dial command, the PBX simulator's
phones and trunk (outcomes as capture 15), the ACD keeping the agent busy, the CRM's outbound row, the
journal's facts and a replay of them."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crmstore.store import open_store
from ctiserver.outbound.dialling import DialSettings
from ctiserver.projections.replay import replay
from pbxsim.world import PhoneProfile
from tests.ami_relay import AmiRelay
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import AGENT1, PLAIN_CALLER, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent

# Virtual seconds (the simulator runs at 0.05): the customer may ring 40 s, 2 s of real time.
DIAL = DialSettings(agent_ring_s=100.0, customer_ring_s=40.0)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, outbound_dial=DIAL) as s:
        s.sim.world.phones[AGENT1].answer_after = 0.5  # the agent picks up their desk phone
        yield s


def _customer(site: AppSite, number: str, **profile: object) -> None:
    """How the far end behaves when the trunk dials `number` (pbxsim: a PJSIP peer on the trunk)."""
    site.sim.world.phones[number] = PhoneProfile(**profile)  # type: ignore[arg-type]


def _states(console: ConsoleClient, call_id: str) -> list[str]:
    return [m["call"]["state"] for m in console.seen if m["type"] == "call_state"
            and m["call"]["call_id"] == call_id]


def _facts(site: AppSite, call_id: str) -> list[tuple[str, str]]:
    rows = site.crm_rows("SELECT kind, body FROM journal WHERE call_id = ? ORDER BY seq", call_id)
    return [(r["kind"], r["body"]) for r in rows]


async def _ended(console: ConsoleClient, call_id: str) -> dict[str, object]:
    msg = await console.wait_for(lambda m: m["type"] == "call_state" and m["call"]["call_id"] == call_id
                                 and m["call"]["state"] == "ended", timeout=15)
    return msg["call"]  # type: ignore[no-any-return]


async def _row(site: AppSite, call_id: str) -> dict[str, object]:
    await site.until(lambda: site.crm_rows("SELECT 1 FROM interactions WHERE call_id = ?", call_id),
                     f"the CRM row of {call_id}")
    return dict(site.crm_rows("SELECT * FROM interactions WHERE call_id = ?", call_id)[0])


async def test_answered_click_to_call_shows_its_states_keeps_the_agent_busy_and_lands_in_crm(site: AppSite) -> None:
    _customer(site, PLAIN_CALLER, answer_after=20.0, talk_time=100.0)  # 1 s ringing, 5 s talk
    a = await agent(site)
    reply = await a.request("dial", number=PLAIN_CALLER)
    assert reply["type"] == "result", reply
    call_id = reply["data"]["call_id"]
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["call_id"] == call_id
                     and m["call"]["state"] == "talking", timeout=15)
    assert _states(a, call_id) == ["dialling_agent", "agent_answered", "dialling_customer", "customer_ringing",
                                   "talking"]
    assert site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "on_call"
    # An inbound caller now waits: the ACD counts the agent busy, no offer while the outbound call lasts.
    waiting = await site.add_waiting_call("sales", "+8613911112222")
    assert site.server.projector.router.call_view(waiting).state == "waiting"
    ended = await _ended(a, call_id)  # the customer hangs up
    assert (ended["direction"], ended["outcome"]) == ("outbound", "answered")
    assert site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "wrap_up"
    row = await _row(site, call_id)
    customer = site.crm_rows("SELECT customer_id FROM phones WHERE e164 = ?", PLAIN_CALLER)
    assert (row["direction"], row["outcome"], row["agent"], row["caller"]) == \
        ("outbound", "answered", AGENT1, PLAIN_CALLER)
    assert row["customer_id"] == customer[0]["customer_id"] and row["talk_s"] > 0
    assert row["hung_up_by"] == "caller"
    kinds = [k for k, _ in _facts(site, call_id)]
    assert kinds == ["outbound.dialling", "acd.outbound_started", "outbound.progress", "outbound.progress",
                     "outbound.progress", "outbound.progress", "acd.outbound_ended"]
    # The wrap-up is the queue's (sales: 30 s); saved, the waiting caller is offered at last.
    saved = await a.request("wrapup", call_id=call_id, disposition="sale", notes="called back about the order")
    assert saved["type"] in ("result", "wrapup_saved"), saved
    await site.until(lambda: site.server.projector.router.call_view(waiting).state in ("offered", "ringing"),
                     "the waiting caller offered after the wrap-up")


@pytest.mark.parametrize(("profile", "outcome"), [
    ({"busy": True}, "busy"),
    ({"answer_after": None}, "no_answer"),
    ({"refuse_cause": 34}, "failed"),
])
async def test_unanswered_outcomes(site: AppSite, profile: dict[str, object], outcome: str) -> None:
    number = "+8613922223333"
    _customer(site, number, **profile)
    a = await agent(site)
    call_id = (await a.request("dial", number=number))["data"]["call_id"]
    ended = await _ended(a, call_id)
    assert ended["outcome"] == outcome
    assert "talking" not in _states(a, call_id)
    row = await _row(site, call_id)
    assert (row["direction"], row["outcome"], row["agent"], row["answered_at"]) == \
        ("outbound", outcome, AGENT1, None)
    assert site.sim.world.channels == {} or all(not c.name.startswith(("Local/", "PJSIP/1001"))
                                                for c in site.sim.world.channels.values())


async def test_agent_hangs_up_while_the_customer_rings(site: AppSite) -> None:
    number = "+8613944445555"
    _customer(site, number, answer_after=None)
    a = await agent(site)
    call_id = (await a.request("dial", number=number))["data"]["call_id"]
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["call_id"] == call_id
                     and m["call"]["state"] == "customer_ringing", timeout=10)
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    ended = await _ended(a, call_id)
    assert ended["outcome"] == "cancelled"
    await site.until(lambda: not any(c.uniqueid.startswith(call_id) for c in site.sim.world.channels.values()),
                     "both legs gone")


async def test_dial_refused_while_on_a_call(site: AppSite) -> None:
    _customer(site, PLAIN_CALLER, answer_after=1.0)
    a = await agent(site)
    call_id = (await a.request("dial", number=PLAIN_CALLER))["data"]["call_id"]
    again = await a.request("dial", number="+8613955556666")
    assert again["type"] == "error" and again["reason"] == "invalid_state", again
    await a.request("hangup", call_id=call_id)
    await _ended(a, call_id)


async def test_replay_rebuilds_the_outbound_rows(site: AppSite, tmp_path: Path) -> None:
    _customer(site, PLAIN_CALLER, answer_after=1.0, talk_time=2.0)
    _customer(site, "+8613977778888", busy=True)
    a = await agent(site)
    answered = (await a.request("dial", number=PLAIN_CALLER))["data"]["call_id"]
    await _ended(a, answered)
    await a.request("wrapup", call_id=answered, disposition="sale", notes="ok")
    await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state
                     == "available", "ready again")
    busy = (await a.request("dial", number="+8613977778888"))["data"]["call_id"]
    await _ended(a, busy)
    live = {c: await _row(site, c) for c in (answered, busy)}
    await site.server.journal.durable(site.server.journal.last_seq, timeout=5)
    copy = tmp_path / "copy.db"
    shutil.copy(site.db, copy)
    with sqlite3.connect(copy) as con:
        con.execute("DELETE FROM interactions")
    source, into = await open_store(f"sqlite:///{site.db}"), await open_store(f"sqlite:///{copy}")
    try:
        await replay(source, into=into, queue_log=tmp_path / "queue_log.replayed")
    finally:
        await into.close()
        await source.close()
    con = sqlite3.connect(copy)
    con.row_factory = sqlite3.Row
    for call_id, row in live.items():
        copy = dict(con.execute("SELECT * FROM interactions WHERE call_id = ?", (call_id,)).fetchone())
        keep = ("direction", "outcome", "agent", "caller", "customer_id", "answered_at", "ended_at", "talk_s",
                "disposition", "notes")
        assert {k: copy[k] for k in keep} == {k: row[k] for k in keep}
    con.close()


async def test_click_to_call_refuses_a_do_not_call_number(site: AppSite) -> None:
    await site.server.crm.add_do_not_call("+8613988889999")
    a = await agent(site)
    refused = await a.request("dial", number="+8613988889999")
    assert refused["type"] == "error" and refused["reason"] == "do_not_call", refused
    assert not site.crm_rows("SELECT 1 FROM journal WHERE kind = 'outbound.dialling'")


@pytest.mark.parametrize(("profile", "outcome"), [
    ({"refuse_cause": 21}, "failed"),  # capture 25 C: 603 from the trunk, Congestion(), Reason 8
    ({"answer_after": None}, "no_answer"),  # capture 25 E: Reason 3 after the ring time
])
async def test_outcome_holds_when_the_agent_legs_hangup_is_read_with_the_actions_answer(
        tmp_path: Path, profile: dict[str, object], outcome: str) -> None:
    """On the real PBX the agent leg's Hangup event follows the Hangup action's answer within a millisecond
    and can be read with it (capture 25): the call is still the customer's failure, not a cancel by the
    agent."""
    relay = AmiRelay(0, coalesce_s=0.02)
    async with app_site(tmp_path, outbound_dial=DIAL, relay=relay) as site:
        site.sim.world.phones[AGENT1].answer_after = 0.5
        number = "+8613922223333"
        _customer(site, number, **profile)
        a = await agent(site)
        call_id = (await a.request("dial", number=number))["data"]["call_id"]
        ended = await _ended(a, call_id)
        assert ended["outcome"] == outcome
        assert relay.actions("Hangup")  # the agent's leg was hung up by the CTI
        row = await _row(site, call_id)
        assert row["outcome"] == outcome
