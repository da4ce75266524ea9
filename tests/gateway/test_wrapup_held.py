"""The wrap-up belongs to its call: an open form (wrapup_draft) keeps the agent in wrap-up past the queue's
wrap_up_s, so a waiting caller is not offered to them until the form is saved or the queue's maximum is
reached; then the notes are kept as a draft on that call and supervisors see it. And the idle screen
(my_day). Real websocket clients against the real app (gw_harness.AppSite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.gateway.gw_client import Msg
from tests.gateway.gw_harness import ACD_YAML, AGENT1, AGENT2, PLAIN_CALLER, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent, agent_state, call_state, supervisor

# sales: 1 s of wrap-up, at most 3 s with the form open (seconds of the server's clock).
SHORT_WRAP_YAML = ACD_YAML.replace(
    "{name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30,",
    "{name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 1, wrap_up_max_s: 3,")
assert SHORT_WRAP_YAML != ACD_YAML


@pytest.fixture
async def short_site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, acd_yaml=SHORT_WRAP_YAML) as s:
        yield s


async def _wrapping_up(site: AppSite, a, caller: str = PLAIN_CALLER) -> str:  # type: ignore[no-untyped-def]
    """A call answered by agent1 and hung up by them: agent1 is in wrap-up of it."""
    _, call_id = await site.ring_agent(AGENT1, caller)
    await site.answer(call_id)
    await a.wait_for(call_state("talking", call_id))
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    await a.wait_for(call_state("ended", call_id))
    await a.wait_for(agent_state("wrap_up"))
    return call_id


def _router_state(site: AppSite, agent_id: str) -> str:
    return site.server.projector.router.agent_view(agent_id, site.server.clock()).state


async def test_a_wrap_up_that_outlives_its_timer_while_a_new_call_waits(short_site: AppSite) -> None:
    site = short_site
    boss = await supervisor(site)
    a = await agent(site, queues=("sales",))
    first = await _wrapping_up(site, a)
    wrap = (await a.request("wrapup_draft", call_id=first, disposition="", notes="客户要退款, half written"))
    assert wrap["type"] == "result" and wrap["data"]["until"] is not None, wrap
    held = await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["wrap_held"])
    assert held["agent"]["wrap_call_id"] == first and held["agent"]["wrap_caller"]
    assert held["agent"]["wrap_up_max_at"] == pytest.approx(held["agent"]["wrap_up_until"] + 2, abs=0.01)
    waiting = await site.add_waiting_call("sales", "+8613900000077")

    # Past the queue's 1 s: the agent is still wrapping up the first call and the caller still waits.
    await asyncio.sleep(1.5)
    assert _router_state(site, AGENT1) == "wrap_up"
    view = site.server.projector.router.call_view(waiting)
    assert view is not None and view.state == "waiting"
    assert not [m for m in a.drain() if m["type"] == "offer" and m["offer"]["call_id"] == waiting]

    # The maximum: the notes are kept as a draft on the first call, and only then is the caller offered.
    await a.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == waiting, timeout=5)
    kept = site.server.projector.drafts.kept[first]
    assert (kept.agent_id, kept.notes, kept.why) == (AGENT1, "客户要退款, half written", "wrap-up maximum reached")
    assert site.crm_rows("SELECT 1 FROM journal WHERE kind = 'call.wrapup_draft' AND call_id = ?", first)
    alert = await boss.wait_for(lambda m: m["type"] == "alert" and m["alert"]["metric"] == "wrapup_draft")
    assert alert["alert"]["subject"] == f"{AGENT1} {first}" and "half written" in alert["alert"]["text"]
    state = await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["drafts"])
    assert [d["call_id"] for d in state["agent"]["drafts"]] == [first]
    day = await a.request("my_day")
    assert [d["call_id"] for d in day["data"]["drafts"]] == [first]
    assert await site.saved_wrapup(first) is None

    # The draft is saved later to its own call: the supervisor's alert clears.
    saved = await a.request("wrapup", call_id=first, disposition="follow_up", notes="客户要退款, done")
    assert saved["type"] == "wrapup_saved"
    stored = await site.saved_wrapup(first)
    assert stored is not None and stored["notes"] == "客户要退款, done"
    await boss.wait_for(lambda m: m["type"] == "alert" and m["alert"]["metric"] == "wrapup_draft"
                        and m["alert"]["level"] == "cleared")
    assert first not in site.server.projector.drafts.kept


async def test_saving_the_form_lets_the_waiting_caller_through(short_site: AppSite) -> None:
    site = short_site
    a = await agent(site, queues=("sales",))
    first = await _wrapping_up(site, a)
    assert (await a.request("wrapup_draft", call_id=first, notes="typing"))["type"] == "result"
    waiting = await site.add_waiting_call("sales", "+8613900000078")
    await asyncio.sleep(1.2)
    assert _router_state(site, AGENT1) == "wrap_up"
    saved = await a.request("wrapup", call_id=first, disposition="resolved", notes="typed")
    assert saved["type"] == "wrapup_saved"
    await a.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == waiting)
    assert first not in site.server.projector.drafts.kept  # saved: nothing kept as a draft
    stored = await site.saved_wrapup(first)
    assert stored is not None and stored["notes"] == "typed"


async def test_without_an_open_form_the_queue_timer_still_applies(short_site: AppSite) -> None:
    site = short_site
    a = await agent(site, queues=("sales",))
    await _wrapping_up(site, a)
    waiting = await site.add_waiting_call("sales", "+8613900000079")
    await a.wait_for(lambda m: m["type"] == "offer" and m["offer"]["call_id"] == waiting, timeout=5)


async def test_wrapup_draft_refusals(site: AppSite) -> None:
    a1 = await agent(site, queues=("sales",))
    a2 = await agent(site, "agent2", AGENT2, queues=("support",))
    boss = await supervisor(site)
    call_id = await _wrapping_up(site, a1)
    # The wrong agent, the wrong role, a bad field: refused, nothing recorded.
    reply = await a2.request("wrapup_draft", call_id=call_id, notes="not mine")
    assert reply["code"] == "not_your_call", reply
    for kind, fields in (("wrapup_draft", {"call_id": call_id, "notes": "x"}), ("my_day", {})):
        reply = await boss.request(kind, **fields)
        assert reply["code"] == "forbidden", (kind, reply)
    reply = await a1.request("wrapup_draft", call_id=call_id, notes="x" * 4001)
    assert reply["code"] == "bad_field" and reply["field"] == "notes", reply
    reply = await a1.request("wrapup_draft", call_id=call_id, disposition="no spaces allowed")
    assert reply["code"] == "bad_field", reply
    assert not site.crm_rows("SELECT 1 FROM journal WHERE kind = 'call.wrapup_draft'")
    assert _router_state(site, AGENT1) == "wrap_up"
    # Once saved, the wrap-up is over: a late draft is refused, not journaled.
    assert (await a1.request("wrapup", call_id=call_id, disposition="resolved"))["type"] == "wrapup_saved"
    reply = await a1.request("wrapup_draft", call_id=call_id, notes="late")
    assert reply["code"] == "refused" and reply["reason"] == "wrapup_over", reply
    assert not site.crm_rows("SELECT 1 FROM journal WHERE kind = 'call.wrapup_draft'")


async def test_my_day_figures_waiting_callers_and_due_follow_ups(site: AppSite) -> None:
    a = await agent(site, queues=("sales", "support"))
    empty = (await a.request("my_day"))["data"]
    assert empty["calls"] == 0 and empty["aht_s"] is None and empty["follow_ups"] == []
    assert {w["queue"] for w in empty["waiting"]} == {"sales", "support"}
    call_id = await _wrapping_up(site, a)
    due = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    saved = await a.request("wrapup", call_id=call_id, disposition="follow_up", notes="call back",
                            follow_up={"kind": "callback", "due_at": due, "note": "refund"})
    assert saved["type"] == "wrapup_saved"
    await a.wait_for(agent_state("available"))
    assert (await a.request("pause", reason="break"))["type"] == "result"
    waiting = await site.add_waiting_call("support", "+8613900000080")
    day: Msg = (await a.request("my_day"))["data"]
    assert day["calls"] == 1 and day["aht_s"] is not None  # answer to saved wrap-up: may round to 0.0 here
    assert day["occupancy_pct"] is not None and 0 < day["occupancy_pct"] <= 100
    support = next(w for w in day["waiting"] if w["queue"] == "support")
    assert support["waiting"] == 1 and support["oldest_since"] is not None
    assert [(f["kind"], f["note"], f["overdue"], f["call_id"]) for f in day["follow_ups"]] == [
        ("callback", "refund", True, call_id)]
    assert waiting
