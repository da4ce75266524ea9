"""CRM work over the console protocol against the real app (docs/protocol.md, CRM work): edits refused with
one line and nothing written, tickets closed once, the worklist's follow-up called through the PBX
simulator and saved to the CRM, role and ownership refusals, grading on demand, blacklisted callers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crmstore.model import FollowUpKind, FollowUpRequest
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import (
    ACD_YAML,
    AGENT1,
    AGENT2,
    HOSTILE_CALLER,
    KEY_ACCOUNT_CALLER,
    PLAIN_CALLER,
    AppSite,
    app_site,
)
from tests.gateway.test_gateway_protocol import agent, supervisor


def _count(site: AppSite, table: str) -> int:
    return int(site.crm_rows(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def _customer_of(site: AppSite, phone: str) -> int:
    return int(site.crm_rows("SELECT customer_id FROM phones WHERE e164 = ?", phone)[0]["customer_id"])


async def test_customer_edits_are_checked_and_a_refusal_writes_nothing(site: AppSite) -> None:
    a = await agent(site)
    before = (_count(site, "customers"), _count(site, "phones"), _count(site, "audit_log"))
    bad_phone = await a.request("customer_save", name="王芳", phones=["+86 100 0000 0000"])
    assert (bad_phone["code"], bad_phone["reason"], bad_phone["field"]) == ("refused", "invalid_value", "phones")
    assert "no such number range" in bad_phone["message"] and "\n" not in bad_phone["message"]
    bad_mail = await a.request("customer_save", name="王芳", email="wang@fang")
    assert (bad_mail["reason"], bad_mail["field"]) == ("invalid_value", "email")
    control = await a.request("customer_save", name="王\u0007芳")
    assert control["code"] == "bad_field" and control["field"] == "name"
    taken = await a.request("customer_save", customer_id=_customer_of(site, PLAIN_CALLER), name="renamed",
                            phones=[KEY_ACCOUNT_CALLER])
    assert (taken["code"], taken["reason"]) == ("refused", "conflict")
    assert (_count(site, "customers"), _count(site, "phones")) == before[:2]
    assert site.crm_rows("SELECT name FROM customers WHERE id = ?", _customer_of(site, PLAIN_CALLER))[0][0] != "renamed"

    lead = await a.request("customer_save", phones=["13912345678"], is_lead=True, name="")
    lead_id = lead["data"]["customer_id"]
    edited = await a.request("customer_save", customer_id=lead_id, name="陈静", email="chen.jing@example.cn",
                             is_lead=False)
    assert edited["type"] == "result"
    card = (await a.request("customer_open", customer_id=lead_id))["data"]
    assert card["card"]["name"] == "陈静" and card["card"]["phones"] == ["+8613912345678"]
    assert card["card"]["is_lead"] is False and card["tickets"] == [] and card["surveys"] == []
    missing = await a.request("customer_open", customer_id=987654)
    assert (missing["code"], missing["reason"]) == ("refused", "not_found")


async def test_a_ticket_opened_updated_and_closed_once(site: AppSite) -> None:
    a = await agent(site)
    cid = _customer_of(site, PLAIN_CALLER)
    opened = await a.request("ticket_open", customer_id=cid, subject="快递破损", note="照片已收到")
    tid = opened["data"]["ticket_id"]
    assert (await a.request("ticket_update", ticket_id=tid, status="pending", note="等待快递公司"))["type"] == "result"
    closed = await a.request("ticket_update", ticket_id=tid, status="closed", note="已退款", follow_up_days=3)
    visit_id = closed["data"]["follow_up_id"]
    assert visit_id
    before = (_count(site, "ticket_events"), _count(site, "follow_ups"), _count(site, "audit_log"))
    again = await a.request("ticket_update", ticket_id=tid, status="closed", follow_up_days=3)
    assert (again["code"], again["reason"]) == ("refused", "already_closed")
    assert f"ticket {tid} is already closed" in again["message"]
    assert (_count(site, "ticket_events"), _count(site, "follow_ups"), _count(site, "audit_log")) == before
    file = (await a.request("customer_open", customer_id=cid))["data"]
    ticket = next(t for t in file["tickets"] if t["ticket"]["id"] == tid)
    assert [(e["status"], e["note"]) for e in ticket["events"]] == [
        ("open", "照片已收到"), ("pending", "等待快递公司"), ("closed", "已退款")]
    visit = next(i for i in file["follow_ups"] if i["follow_up"]["id"] == visit_id)
    assert visit["follow_up"]["kind"] == "visit" and visit["follow_up"]["owner"] == AGENT1


async def test_roles_and_other_agents_ids_are_refused(site: AppSite) -> None:
    a = await agent(site)
    b = await agent(site, "agent2", AGENT2, ("support",))
    boss = await supervisor(site)
    for kind, fields in (("churn_list", {}), ("grade_run", {})):
        reply = await a.request(kind, **fields)
        assert reply["code"] == "forbidden", reply
    for kind, fields in (("worklist", {}), ("follow_up_call", {"follow_up_id": 1}),
                         ("follow_up_save", {"follow_up_id": 1, "call_id": "x", "reached": True, "done": True}),
                         ("follow_up_add", {"customer_id": 1, "kind": "visit", "due_at": "2030-01-01T10:00"})):
        msg_id = await boss.ws.send(json.dumps({"v": 1, "type": kind, "id": f"r-{kind}", **fields})) or f"r-{kind}"
        reply = await boss.wait_for(lambda m, i=msg_id: m.get("re") == i)
        assert reply["code"] == "forbidden", reply

    # A ticket tied to another agent's call: refused before anything is written.
    _offer_id, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    before = _count(site, "tickets")
    stolen = await b.request("ticket_open", customer_id=_customer_of(site, PLAIN_CALLER), subject="x",
                             call_id=call_id)
    assert stolen["code"] == "not_your_call"
    mine = await a.request("ticket_open", customer_id=_customer_of(site, PLAIN_CALLER), subject="from the call",
                           call_id=call_id)
    assert mine["type"] == "result" and _count(site, "tickets") == before + 1

    # Supervisors: the churn candidates (the report's rows) and grading on demand, visible at once.
    churn = await boss.request("churn_list")
    assert churn["type"] == "result" and isinstance(churn["data"]["customers"], list)
    graded = await boss.request("grade_run")
    assert graded["data"]["graded"] == _count(site, "customers")
    assert site.crm_rows("SELECT COUNT(*) FROM customers WHERE grade IS NULL")[0][0] == 0
    actors = {r["actor"] for r in site.crm_rows("SELECT actor FROM audit_log WHERE action = 'grade'")}
    assert "super1" in actors


async def test_a_follow_up_called_from_the_worklist_is_journaled_and_saved(site: AppSite) -> None:
    cid = _customer_of(site, KEY_ACCOUNT_CALLER)
    now = datetime.now(UTC)
    crm = site.server.crm
    fid = await crm.add_follow_up(cid, FollowUpRequest(FollowUpKind.SATISFACTION_CALL, now, AGENT1, "3DC 回访"))
    late = await crm.add_follow_up(cid, FollowUpRequest(FollowUpKind.CALLBACK, now - timedelta(days=2), AGENT1))
    theirs = await crm.add_follow_up(cid, FollowUpRequest(FollowUpKind.CALLBACK, now, AGENT2))
    a = await agent(site)
    b = await agent(site, "agent2", AGENT2, ("support",))
    work = (await a.request("worklist"))["data"]
    assert [i["follow_up"]["id"] for i in work["due_today"]] == [fid]
    assert [i["follow_up"]["id"] for i in work["overdue"]] == [late] and work["done"] == []
    assert work["due_today"][0]["phone"] == KEY_ACCOUNT_CALLER and work["due_today"][0]["grade"]

    not_mine = await b.request("follow_up_call", follow_up_id=fid)
    assert (not_mine["code"], not_mine["reason"]) == ("refused", "not_yours")
    assert (await a.request("follow_up_call", follow_up_id=theirs))["reason"] == "not_yours"

    site.sim.world.phones[AGENT1].answer_after = 0.2  # the agent picks up; the trunk answers for the customer
    called = await a.request("follow_up_call", follow_up_id=fid)
    call_id = called["data"]["call_id"]
    assert call_id.startswith(f"cti-fu-{fid}-") and call_id.endswith(f"-{AGENT1}")
    await site.until(lambda: any(KEY_ACCOUNT_CALLER.lstrip("+") in c.name or c.name.startswith("PJSIP/trunk-")
                                 for c in site.sim.world.channels.values()), "the customer's line dialled")
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"

    stolen = await b.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=True, done=True)
    assert stolen["code"] == "not_your_call"
    wrong = await a.request("follow_up_save", follow_up_id=late, call_id=call_id, reached=True, done=True)
    assert (wrong["reason"], wrong["field"]) == ("invalid_value", "follow_up_id")
    saved = await a.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=True, done=True,
                            notes="满意，维修很好")
    assert saved["type"] == "result", saved
    # Durable when answered: read with our own connection.
    row = site.crm_rows("SELECT * FROM interactions WHERE call_id = ?", call_id)[0]
    assert (row["direction"], row["outcome"], row["agent"], row["customer_id"]) == ("outbound", "answered",
                                                                                  AGENT1, cid)
    assert row["notes"] == "满意，维修很好" and row["disposition"] == "follow_up:satisfaction_call"
    fu = site.crm_rows("SELECT * FROM follow_ups WHERE id = ?", fid)[0]
    assert (fu["status"], fu["call_id"], fu["done_by"]) == ("done", call_id, AGENT1)
    kinds = [r["kind"] for r in site.crm_rows("SELECT kind FROM journal WHERE call_id = ? ORDER BY seq", call_id)]
    assert kinds == ["crm.follow_up_called", "crm.follow_up_saved"]
    body = json.loads(site.crm_rows("SELECT body FROM journal WHERE kind = 'crm.follow_up_saved'")[0]["body"])
    assert body["follow_up_id"] == fid and body["reached"] is True
    work = (await a.request("worklist"))["data"]
    assert work["due_today"] == [] and [i["follow_up"]["id"] for i in work["done"]] == [fid]
    assert work["done"][0]["result"] == "reached: 满意，维修很好"
    # The customer's card shows it too.
    file = (await a.request("customer_open", customer_id=cid))["data"]
    assert any(i["follow_up"]["id"] == fid and i["follow_up"]["status"] == "done" for i in file["follow_ups"])


def _with_blacklist(policy: str) -> str:
    return ACD_YAML.replace(
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}",
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60,\n"
        f"     blacklist: {policy}}}")


async def test_a_blacklisted_caller_routed_to_another_queue(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=_with_blacklist("{action: route, queue: complaints}")) as site:
        a = await agent(site, queues=("vip", "complaints"))
        _offer_id, call_id = await site.ring_agent(AGENT1, HOSTILE_CALLER)  # VIP: the flow sends them to vip
        view = site.server.projector.router.call_view(call_id)
        assert view is not None and view.queue == "complaints"
        offer = await a.wait_for("offer")
        assert offer["offer"]["queue"] == "complaints"
        assert any(f["flag"] == "blacklist" for f in offer["offer"]["pop"]["flags"])


async def test_a_blacklisted_caller_refused_with_a_message(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=_with_blacklist("{action: refuse, message: cti/closed}")) as site:
        a = await agent(site, queues=("vip",))
        chan = site.call(HOSTILE_CALLER, "vip")
        await site.until(lambda: chan.hungup or chan.dead, "the refused caller's line dropped")
        rows = await site.until(lambda: site.crm_rows("SELECT call_id, body FROM journal WHERE kind = 'call.refused'"),
                                "the refusal journaled")
        assert len(rows) == 1 and json.loads(rows[0]["body"])["queue"] == "vip"
        assert site.server.projector.router.call_view(rows[0]["call_id"]) is None
        assert not [m for m in a.drain() if m["type"] == "offer"]


async def test_search_results_show_grade_and_flags(site: AppSite) -> None:
    a: ConsoleClient = await agent(site)
    found = await a.request("search", q=HOSTILE_CALLER.lstrip("+86"), limit=5)
    (hit,) = found["customers"]
    assert {f["flag"] for f in hit["flags"]} == {"vip", "blacklist"} and "grade" in hit


async def test_the_flows_blacklist_policy_overrides_the_queues(tmp_path: Path) -> None:
    """The queue would route the caller elsewhere; the flow they came through refuses them."""
    from tests.gateway.gw_harness import DEMO

    flows = tmp_path / "flows"
    flows.mkdir()
    text = (DEMO / "flows" / "main.yaml").read_text(encoding="utf-8")
    (flows / "main.yaml").write_text(text.replace("fallback: {queue: general}\n",
                                                  "fallback: {queue: general}\n"
                                                  "blacklist: {action: refuse, message: cti/closed}\n"),
                                     encoding="utf-8")
    async with app_site(tmp_path, acd_yaml=_with_blacklist("{action: route, queue: complaints}"),
                        flows_dir=flows) as site:
        assert site.server.flows.get("main").blacklist is not None
        a = await agent(site, queues=("vip", "complaints"))
        chan = site.call(HOSTILE_CALLER, "vip")
        await site.until(lambda: chan.hungup or chan.dead, "the refused caller's line dropped")
        rows = await site.until(lambda: site.crm_rows("SELECT body FROM journal WHERE kind = 'call.refused'"),
                                "the refusal journaled")
        assert json.loads(rows[0]["body"])["message"] == "cti/closed"
        assert not [m for m in a.drain() if m["type"] == "offer"]


async def test_a_visit_settled_without_a_call(site: AppSite) -> None:
    cid = _customer_of(site, PLAIN_CALLER)
    fid = await site.server.crm.add_follow_up(
        cid, FollowUpRequest(FollowUpKind.VISIT, datetime.now(UTC), AGENT1, "3-day visit"))
    a = await agent(site)
    b = await agent(site, "agent2", AGENT2, ("support",))
    boss = await supervisor(site)
    assert (await boss.request("follow_up_close", follow_up_id=fid, status="done"))["code"] == "forbidden"
    theirs = await b.request("follow_up_close", follow_up_id=fid, status="done")
    assert (theirs["code"], theirs["reason"]) == ("refused", "not_yours")
    done = await a.request("follow_up_close", follow_up_id=fid, status="done", notes="visited")
    assert done["type"] == "result"
    again = await a.request("follow_up_close", follow_up_id=fid, status="cancelled")
    assert (again["reason"], site.crm_rows("SELECT status FROM follow_ups WHERE id = ?", fid)[0][0]) == (
        "conflict", "done")
