"""Callbacks on the whole site (PBX simulator, CTI server, SQLite CRM): at the requested time, keeping the
caller's place, agent first and customer first, outcomes retried by the rule, and pending callbacks found
again after a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acd import events as ev
from ctiserver.app import CtiServer
from ctiserver.calls import legs
from ctiserver.outbound.callbacks import CallbackSettings
from ctiserver.projections.callbacks import RetryRule
from pbxsim.people import CallerBehaviour
from pbxsim.world import PhoneProfile
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import ACD_YAML, AGENT1, AGENT2, DID, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent

NUMBER = "+8613966667777"
SETTINGS = CallbackSettings(queue="sales", retry=RetryRule(max_attempts=2, busy_s=1.0, no_answer_s=1.0,
                                                           failed_s=1.0), customer_ring_s=40.0)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, callbacks=SETTINGS) as s:
        s.sim.world.phones[AGENT1].answer_after = 0.5
        yield s


def _facts(site: AppSite, kind: str) -> list[dict[str, object]]:
    return [json.loads(r["body"]) for r in site.crm_rows("SELECT body FROM journal WHERE kind = ? ORDER BY seq",
                                                          kind)]


async def _login(site: AppSite) -> ConsoleClient:
    """Agent 1 logs in on sales; a callback waiting for them is offered at once (no 'available' between)."""
    client = await ConsoleClient.open(site.ws_url)
    await client.login("agent1", site.passwords["agent1"])
    assert (await client.request("agent_login", extension=AGENT1, queues=["sales"]))["type"] == "result"
    return client


async def _durable(site: AppSite) -> None:
    await site.server.journal.durable(site.server.journal.last_seq, timeout=5)


async def test_callback_at_the_requested_time_is_offered_dialled_and_done(site: AppSite) -> None:
    site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=1.0, talk_time=40.0)
    a = await agent(site)
    due = site.server.now() + 1.5
    cb_id = site.server.callbacks.book(NUMBER, source="supervisor", name="Wang Fang", topic="invoice",
                                       due_at=due, requested_by="super1")
    await asyncio.sleep(0.5)
    assert site.server.projector.router.call_view(f"{cb_id}-1") is None  # not before its time
    assert site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "available"
    await site.until(lambda: site.server.projector.callbacks.get(cb_id).state == "done",  # type: ignore[union-attr]
                     "the callback answered", timeout=15)
    offered_at = next(json.loads(r["body"]) for r in site.crm_rows(
        "SELECT body FROM journal WHERE kind = 'acd.call_enqueued' ORDER BY seq"))
    assert offered_at["call_id"] == f"{cb_id}-1"
    enqueued = site.crm_rows("SELECT at FROM journal WHERE kind = 'acd.call_enqueued' AND call_id = ?",
                             f"{cb_id}-1")[0]["at"]
    assert enqueued >= due
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["call_id"] == f"{cb_id}-1"
                     and m["call"]["state"] == "talking", timeout=10)
    offer = next(m["offer"] for m in a.seen if m["type"] == "offer" and m["offer"]["call_id"] == f"{cb_id}-1")
    assert offer["callback"] == {"callback_id": cb_id, "source": "supervisor", "name": "Wang Fang",
                                 "topic": "invoice", "attempts": 0}  # the pop says what the callback is about
    # The customer hangs up: the agent's part ends on the customer's side; the CRM has the call.
    await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "wrap_up",
                     "the agent in wrap-up", timeout=15)
    await _durable(site)
    [attempt] = _facts(site, "callback.attempted")
    assert (attempt["outcome"], attempt["agent_id"], attempt["retry_at"]) == ("answered", AGENT1, None)
    assert [c["outcome"] for c in _facts(site, "callback.closed")] == ["done"]
    row = site.crm_rows("SELECT * FROM interactions WHERE call_id = ?", f"{cb_id}-1")
    assert row and row[0]["agent"] == AGENT1 and row[0]["caller"] == NUMBER


async def test_busy_callback_is_retried_by_the_rule_then_given_up(site: AppSite) -> None:
    site.sim.world.phones[NUMBER] = PhoneProfile(busy=True)
    a = await agent(site)
    cb_id = site.server.callbacks.book(NUMBER, source="supervisor")
    for tries in (1, 2):  # after each busy line the agent wraps up (nothing to say), then is ready again
        await site.until(lambda: site.server.projector.callbacks.get(cb_id).attempts == tries,  # type: ignore[union-attr]  # noqa: B023
                         f"busy attempt {tries}", timeout=15)
        await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state
                         == "wrap_up", "the agent in wrap-up")
        assert (await a.request("ready"))["type"] == "result"
    await site.until(lambda: site.server.projector.callbacks.get(cb_id).state == "given_up",  # type: ignore[union-attr]
                     "two busy attempts", timeout=20)
    await _durable(site)
    attempts = _facts(site, "callback.attempted")
    assert [a["outcome"] for a in attempts] == ["busy", "busy"]
    assert attempts[0]["retry_at"] is not None and attempts[1]["retry_at"] is None
    assert [c["outcome"] for c in _facts(site, "callback.closed")] == ["given_up"]
    # Exactly two dials of the customer: nothing dialled after the rule said stop.
    await asyncio.sleep(1.5)
    originated = [r for r in _facts(site, "acd.call_enqueued") if str(r["call_id"]).startswith(cb_id)]
    assert [r["call_id"] for r in originated] == [f"{cb_id}-1", f"{cb_id}-2"]


CUSTOMER_FIRST = ACD_YAML.replace("{name: sales, skills: {sales: 1},",
                                  "{name: sales, skills: {sales: 1}, callback_dial: customer_first,")


async def test_customer_first_rings_the_agent_only_once_the_customer_answered(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=CUSTOMER_FIRST, callbacks=SETTINGS) as site:
        site.sim.world.phones[AGENT1].answer_after = 0.5
        site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=2.0, talk_time=30.0)
        await agent(site)
        rang: list[float] = []
        answered: list[float] = []

        def tap(pairs: list[tuple[str, str]]) -> None:
            fields = dict(pairs)
            if fields.get("Event") == "Newstate" and fields.get("ChannelState") == "5" \
                    and fields.get("Channel", "").startswith(f"PJSIP/{AGENT1}-"):
                rang.append(asyncio.get_running_loop().time())
            if fields.get("Event") == "OriginateResponse" and fields.get("Response") == "Success" \
                    and fields.get("Uniqueid", "").startswith("cti-cust-"):
                answered.append(asyncio.get_running_loop().time())

        site.sim.world.listeners.append(tap)
        cb_id = site.server.callbacks.book(NUMBER, source="supervisor")
        await site.until(lambda: site.server.projector.callbacks.get(cb_id).state == "done",  # type: ignore[union-attr]
                         "the callback answered", timeout=15)
        assert answered and rang and rang[0] > answered[0]  # the customer first, then the agent's phone


async def test_callback_keeps_the_callers_place(site: AppSite) -> None:
    """A caller presses the callback key and hangs up; a second caller comes after. The first agent free is
    offered the callback first: it kept the first caller's place."""
    first, second = "+8613900000011", "+8613900000022"
    site.sim.world.phones[first] = PhoneProfile(answer_after=1.0, talk_time=30.0)
    site.sim.place_call(DID, first, "", CallerBehaviour(keys=("", "1", "*"), patience=10_000))
    await site.until(lambda: any(cb.number == first and cb.state == "queued"
                                 for cb in site.server.projector.callbacks.callbacks.values()),
                     "the callback keeping the first caller's place", timeout=15)
    cb = next(cb for cb in site.server.projector.callbacks.callbacks.values() if cb.number == first)
    waiting = await site.add_waiting_call("sales", second)
    view = site.server.projector.router.call_view(cb.call_id)
    assert view is not None and view.virtual and view.position == 1
    assert site.server.projector.router.call_view(waiting).position == 2  # type: ignore[union-attr]
    await _login(site)  # the agent comes: the callback is theirs first
    await site.until(lambda: site.server.projector.callbacks.get(cb.callback_id).state == "done",  # type: ignore[union-attr]
                     "the kept place dialled", timeout=15)
    assert site.server.projector.router.call_view(waiting).state == "waiting"  # type: ignore[union-attr]
    assert cb.number == first


async def test_pending_callbacks_survive_a_restart(site: AppSite) -> None:
    due = site.server.now() + 3600
    cb_id = site.server.callbacks.book(NUMBER, source="web", name="Li", topic="refund", due_at=due,
                                       requested_by="203.0.113.7")
    server = site.server
    await server.stop()
    site.server = CtiServer(server.settings)
    await site.server.start()
    try:
        cb = site.server.projector.callbacks.get(cb_id)
        assert cb is not None and (cb.state, cb.number, cb.due_at, cb.topic) == ("pending", NUMBER, due, "refund")
        assert site.server.callbacks.book(NUMBER, source="web") == "cb-2"  # numbering goes on
    finally:
        await site.server.stop()
        site.server = server


async def test_a_second_agent_gets_the_callback_when_the_first_does_not_answer(tmp_path: Path) -> None:
    async with app_site(tmp_path, callbacks=SETTINGS) as site:
        site.sim.world.phones[AGENT1].answer_after = None  # never picks up
        site.sim.world.phones[AGENT2].answer_after = 0.5
        site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=1.0, talk_time=30.0)
        await agent(site)
        await agent(site, "agent2", AGENT2)
        cb_id = site.server.callbacks.book(NUMBER, source="supervisor")
        await site.until(lambda: site.server.projector.callbacks.get(cb_id).state == "done",  # type: ignore[union-attr]
                         "the callback answered by someone", timeout=40)
        await _durable(site)
        [attempt] = _facts(site, "callback.attempted")
        assert (attempt["outcome"], attempt["agent_id"]) == ("answered", AGENT2)


async def test_the_ivr_callback_step_books_a_callback_that_an_agent_gets(tmp_path: Path) -> None:
    async with app_site(tmp_path, callbacks=SETTINGS, flows_dir=Path(__file__).with_name("flows")) as site:
        site.sim.world.phones[AGENT1].answer_after = 0.5
        caller = "+8613911110000"
        site.sim.world.phones[caller] = PhoneProfile(answer_after=1.0, talk_time=30.0)
        site.sim.place_call(DID, caller, "Zhao Lei", CallerBehaviour())
        await site.until(lambda: any(cb.source == "ivr" for cb in site.server.projector.callbacks.callbacks.values()),
                         "the IVR's callback booked", timeout=15)
        cb = next(iter(site.server.projector.callbacks.callbacks.values()))
        assert (cb.number, cb.queue, cb.name) == (caller, "sales", "Zhao Lei")
        await _login(site)
        await site.until(lambda: site.server.projector.callbacks.get(cb.callback_id).state == "done",  # type: ignore[union-attr]
                         "the IVR's callback made", timeout=15)


QUEUE_TIMEOUT = ACD_YAML.replace(
    "{name: sales, skills: {sales: 1},",
    "{name: sales, skills: {sales: 1}, max_wait_s: 1, on_max_wait: callback,")


async def test_a_queue_timeout_makes_a_callback_keeping_the_place(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=QUEUE_TIMEOUT, callbacks=SETTINGS) as site:
        site.sim.world.phones[AGENT1].answer_after = 0.5
        caller = "+8613900000033"
        site.sim.world.phones[caller] = PhoneProfile(answer_after=1.0, talk_time=30.0)
        site.call(caller, "sales")
        await site.until(lambda: any(cb.number == caller and cb.source == "queue"
                                     for cb in site.server.projector.callbacks.callbacks.values()),
                         "the timeout's callback", timeout=15)
        await _login(site)
        cb = next(cb for cb in site.server.projector.callbacks.callbacks.values() if cb.number == caller)
        await site.until(lambda: site.server.projector.callbacks.get(cb.callback_id).state == "done",  # type: ignore[union-attr]
                         "the timeout's callback made", timeout=15)


async def test_a_supervisor_books_lists_and_cancels_callbacks_from_the_console(site: AppSite) -> None:
    site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=1.0, talk_time=30.0)
    boss = await ConsoleClient.open(site.ws_url)
    await boss.login("super1", site.passwords["super1"])
    later = await boss.request("callback_book", number="+8613955550000", name="Sun", topic="contract",
                               due_at="2099-01-01T10:00+08:00")
    assert later["type"] == "result", later
    now = await boss.request("callback_book", number=NUMBER, queue="sales", topic="refund")
    listed = await boss.request("callbacks")
    assert {c["callback_id"] for c in listed["data"]["callbacks"]} == {later["data"]["callback_id"],
                                                                       now["data"]["callback_id"]}
    assert (await boss.request("callback_cancel", callback_id=later["data"]["callback_id"]))["data"] == \
        {"cancelled": True}
    await site.server.crm.add_do_not_call("+8613955551111")
    refused = await boss.request("callback_book", number="+8613955551111")
    assert refused["type"] == "error" and refused["reason"] == "do_not_call", refused
    # An agent may not book for others.
    a = await _login(site)
    mine = await a.request("callback_book", number=NUMBER)
    assert mine["type"] == "error", mine
    await site.until(lambda: site.server.projector.callbacks.get(now["data"]["callback_id"]).state == "done",  # type: ignore[union-attr]
                     "the supervisor's callback made", timeout=15)
    cb = site.server.projector.callbacks.get(later["data"]["callback_id"])
    assert cb is not None and cb.state == "cancelled"
    assert cb.requested_by == "super1" and cb.source == "supervisor"


async def test_a_number_put_on_do_not_call_after_booking_is_never_dialled(site: AppSite) -> None:
    await agent(site)
    cb_id = site.server.callbacks.book(NUMBER, source="web", due_at=site.server.now() + 1.0)
    await site.server.crm.add_do_not_call(NUMBER, "asked on the phone")
    await site.until(lambda: site.server.projector.callbacks.get(cb_id).state == "cancelled",  # type: ignore[union-attr]
                     "the callback cancelled at its time", timeout=10)
    await _durable(site)
    assert _facts(site, "callback.closed")[0]["reason"] == "on the do-not-call list"
    assert not site.crm_rows("SELECT 1 FROM journal WHERE kind = 'acd.call_enqueued' AND call_id LIKE 'cb-%'")


def _customer_legs(site: AppSite) -> list[str]:
    return [c.uniqueid for c in site.sim.world.channels.values() if c.uniqueid.startswith(legs.CUSTOMER)]


async def test_customer_first_a_withdrawn_offer_hangs_up_the_customers_ringing_phone(tmp_path: Path) -> None:
    # The customer's phone would ring 400 s of the simulator's time (20 s here), nobody answering.
    settings = dataclasses.replace(SETTINGS, customer_ring_s=400.0)
    async with app_site(tmp_path, acd_yaml=CUSTOMER_FIRST, callbacks=settings) as site:
        site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=10_000.0, talk_time=30.0)
        await agent(site)
        cb_id = site.server.callbacks.book(NUMBER, source="supervisor")
        await site.until(lambda: _customer_legs(site), "the customer's phone ringing", timeout=10)
        assert site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "reserved"
        # The offer is withdrawn while the customer's phone rings: the agent logs out.
        site.server.queueing.command(ev.AgentLoggedOut(AGENT1))
        await site.until(lambda: not _customer_legs(site), "the customer's leg hung up", timeout=5)
        cb = site.server.projector.callbacks.get(cb_id)
        assert cb is not None and cb.state in ("queued", "pending")  # still to be made, by another agent


async def _made_callback(site: AppSite) -> tuple[ConsoleClient, str]:
    """Agent 1 makes a callback booked by a supervisor; the customer hangs up: the agent is in its wrap-up."""
    site.sim.world.phones[NUMBER] = PhoneProfile(answer_after=1.0, talk_time=20.0)
    a = await agent(site)
    cb_id = site.server.callbacks.book(NUMBER, source="supervisor", name="Wang Fang", topic="invoice")
    await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "wrap_up",
                     "the callback made, the agent in wrap-up", timeout=20)
    return a, cb_id


async def test_a_call_back_asked_for_at_a_callbacks_wrap_up_books_the_next_callback(site: AppSite) -> None:
    a, cb_id = await _made_callback(site)
    past = datetime.now(UTC) - timedelta(minutes=5)
    reply = await a.request("wrapup", call_id=f"{cb_id}-1", disposition="follow_up",
                            follow_up={"kind": "callback", "due_at": past.isoformat()})
    assert (reply["type"], reply.get("field")) == ("error", "follow_up.due_at"), reply
    due = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    reply = await a.request("wrapup", call_id=f"{cb_id}-1", disposition="follow_up", notes="after the meeting",
                            follow_up={"kind": "callback", "due_at": due.isoformat(), "note": "invoice again"})
    assert reply["type"] == "wrapup_saved", reply
    [nxt] = [cb for cb in site.server.projector.callbacks.open() if cb.callback_id != cb_id]
    assert (nxt.number, nxt.queue, nxt.source, nxt.due_at, nxt.name, nxt.topic) == (
        NUMBER, "sales", "agent", due.timestamp(), "Wang Fang", "invoice again")
    await _durable(site)
    [booked] = [b for b in _facts(site, "callback.booked") if b["source"] == "agent"]
    assert booked["requested_by"] == "agent1"


async def test_do_not_call_at_a_callbacks_wrap_up_lists_the_number(site: AppSite) -> None:
    a, cb_id = await _made_callback(site)
    reply = await a.request("wrapup", call_id=f"{cb_id}-1", disposition="do_not_call", notes="asked us")
    assert reply["type"] == "wrapup_saved", reply
    assert await site.server.crm.on_do_not_call(NUMBER)
    rows = site.crm_rows("SELECT number, source FROM do_not_call")
    assert [(r["number"], r["source"]) for r in rows] == [(NUMBER, f"callback:{cb_id}")]
