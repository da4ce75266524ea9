"""Protocol tests with real websocket clients against the real app: the PBX simulator places the calls,
the CTI server's IVR, ACD, call control and CRM handle them (see gw_harness.AppSite)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from ctiserver.control import SpyMode
from ctiserver.gateway.server import GatewayConfig
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import (
    AGENT1,
    AGENT2,
    HOSTILE_CALLER,
    KEY_ACCOUNT_CALLER,
    PLAIN_CALLER,
    SUPERVISOR_EXTENSION,
    VIP_CALLER,
    XSS_NAME,
    AppSite,
    app_site,
)


async def agent(site: AppSite, name: str = "agent1", extension: str = AGENT1,
                queues: tuple[str, ...] = ("sales", "vip")) -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    reply = await client.request("agent_login", extension=extension, queues=list(queues))
    assert reply["type"] == "result", reply
    await client.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    return client


async def supervisor(site: AppSite, name: str = "super1") -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    return client


def grid_state(msg: Msg, agent_id: str) -> str | None:
    if msg["type"] != "agent_grid_delta":
        return None
    row = msg["agents"].get(agent_id)
    return row.get("state") if row else None


def call_state(state: str, call_id: str | None = None) -> Callable[[Msg], bool]:
    return lambda m: (m["type"] == "call_state" and m["call"]["state"] == state
                      and (call_id is None or m["call"]["call_id"] == call_id))


def agent_state(state: str) -> Callable[[Msg], bool]:
    return lambda m: m["type"] == "agent_state" and m["agent"]["state"] == state


async def test_whole_agent_day(site: AppSite) -> None:
    boss = await supervisor(site)
    a = await agent(site)
    assert (await a.request("pause", reason="lunch"))["type"] == "result"
    paused = await a.wait_for("agent_state")
    assert (paused["agent"]["state"], paused["agent"]["reason"]) == ("paused", "lunch")
    await boss.wait_for(lambda m: grid_state(m, AGENT1) == "paused")
    assert (await a.request("ready"))["type"] == "result"
    await a.wait_for(agent_state("available"))

    # A known VIP calls: the demo IVR identifies them and sends them to the vip queue; the pop is the CRM's.
    offer_id, call_id = await site.ring_agent(AGENT1, VIP_CALLER)
    offer = (await a.wait_for("offer"))["offer"]
    assert (offer["offer_id"], offer["call_id"], offer["queue"]) == (offer_id, call_id, "vip")
    customer = site.crm_rows("SELECT c.id, c.name FROM customers c JOIN phones p ON p.customer_id = c.id"
                             " WHERE p.e164 = ?", VIP_CALLER)[0]
    pop = offer["pop"]
    assert (pop["customer"]["id"], pop["customer"]["name"]) == (customer["id"], customer["name"])
    assert offer["caller_name"] == customer["name"]
    assert {f["flag"] for f in pop["flags"]} == {"vip"} and pop["grade"] == "A"
    assert len(pop["interactions"]) == 3  # the seeded history
    assert "vip_queue" in offer["ivr_path"]
    await a.wait_for(agent_state("reserved"))
    await boss.wait_for(lambda m: grid_state(m, AGENT1) == "reserved")

    await site.answer(call_id)
    talking = await a.wait_for(call_state("talking", call_id))
    assert talking["call"]["talk_since"] is not None and talking["call"]["caller"] == VIP_CALLER
    await a.wait_for(agent_state("on_call"))
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and
                        (m["calls"].get(call_id) or {}).get("state") == "talking")

    assert (await a.request("hold", call_id=call_id))["type"] == "result"
    await a.wait_for(call_state("held", call_id))
    assert (await a.request("unhold", call_id=call_id))["type"] == "result"
    await a.wait_for(call_state("talking", call_id))

    # Consult a number (the simulator's trunk answers it), think better of it, then send the caller there.
    reply = await a.request("transfer", call_id=call_id, mode="attended", target_kind="number", target="861012345")
    assert reply["type"] == "result", reply
    consulting = await a.wait_for(call_state("consulting", call_id))
    assert consulting["call"]["consult_target"] == "number:861012345"
    assert (await a.request("transfer_cancel", call_id=call_id))["type"] == "result"
    await a.wait_for(call_state("talking", call_id))
    reply = await a.request("transfer", call_id=call_id, mode="blind", target_kind="number", target="+861012345")
    assert reply["type"] == "result", reply
    await a.wait_for(call_state("ended", call_id))
    await a.wait_for(agent_state("wrap_up"))

    notes = "<script>alert('x')</script>\n客户满意"
    saved = await a.request("wrapup", call_id=call_id, disposition="resolved", notes=notes,
                            follow_up={"kind": "callback", "due_at": "2030-01-02T10:00:00+08:00", "note": "ok"})
    assert saved["type"] == "wrapup_saved" and saved["call_id"] == call_id
    # "saved" means durable, the agent's return to ready included: a crash now loses neither
    assert site.crm_rows("SELECT 1 FROM journal WHERE kind = 'acd.wrap_up_done' AND agent_id = ?", AGENT1)
    stored = await site.saved_wrapup(call_id)
    assert stored is not None and stored["disposition"] == "resolved" and stored["notes"] == notes
    assert stored["agent"] == AGENT1 and stored["customer_id"] == customer["id"]
    assert stored["follow_up"] == {"kind": "callback", "note": "ok", "owner": AGENT1}
    await a.wait_for(agent_state("available"))
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and call_id in m["calls"]
                        and m["calls"][call_id] is None)

    assert (await a.request("agent_logout"))["type"] == "result"
    await a.wait_for(agent_state("logged_out"))
    await boss.wait_for(lambda m: grid_state(m, AGENT1) == "logged_out")
    assert (await a.request("logout"))["type"] == "result"
    a.drain()
    with pytest.raises(ConnectionClosed):
        await a.next(2)


async def test_wrapup_failure_loses_nothing(site: AppSite) -> None:
    a = await agent(site)
    _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    await site.answer(call_id)
    await a.wait_for(call_state("talking", call_id))
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    await a.wait_for(call_state("ended", call_id))
    site.lock_crm()  # another process holds the write lock
    failed = await a.request("wrapup", call_id=call_id, disposition="resolved", notes="first")
    # The agent is told the truth: not durable yet, and why. The notes are kept in the journal's
    # waiting batch, not thrown away.
    assert failed["type"] == "wrapup_failed" and "locked" in failed["message"]
    assert await site.saved_wrapup(call_id) is None
    site.unlock_crm()

    async def written() -> bool:
        stored = await site.saved_wrapup(call_id)
        return stored is not None and stored["notes"] == "first"
    await site.until_async(written, "the kept wrap-up written once the database answers")
    # Saving again (the agent's retry) updates the same row, never a second one.
    ok = await a.request("wrapup", call_id=call_id, disposition="resolved", notes="n")
    assert ok["type"] == "wrapup_saved"
    stored = await site.saved_wrapup(call_id)
    assert stored is not None and stored["notes"] == "n"
    assert len(site.crm_rows("SELECT 1 FROM interactions WHERE call_id = ?", call_id)) == 1


async def test_login_failures(site: AppSite) -> None:
    c = await ConsoleClient.open(site.ws_url)
    for username, password in (("agent1", "wrong"), ("nobody", "x"), ("agent1", "")):
        reply = await c.request("auth", username=username, password=password)
        assert reply["type"] == "error" and reply["code"] in ("auth_failed", "bad_field"), reply
    early = await c.request("ready")
    assert early["code"] == "not_authenticated"
    assert (await c.request("ping"))["type"] == "pong"  # still up
    for _ in range(5):
        await c.send("auth", username="agent1", password="wrong")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await c.next(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_forged_and_ended_tokens(site: AppSite) -> None:
    a = await agent(site)
    token = a.token
    assert token is not None
    body, sig = token.split(".")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    for bad in (f"{forged_body}.{sig}", f"{body}.{sig[:-2]}xx", "abc", f"{body}."):
        c = await ConsoleClient.open(site.ws_url)
        reply = await c.request("resume", token=bad, last_seq=0)
        assert reply["type"] == "error" and reply["code"] == "token_invalid", reply
        await c.close()
    await a.request("logout")
    c = await ConsoleClient.open(site.ws_url)
    reply = await c.request("resume", token=token, last_seq=0)
    assert reply["code"] == "token_invalid"


async def test_expired_token(tmp_path: Path) -> None:
    async with app_site(tmp_path, token_ttl_s=1) as site:
        a = await ConsoleClient.open(site.ws_url)
        await a.login("agent2", site.passwords["agent2"])
        await asyncio.sleep(1.2)
        reply = await a.request("ready")
        assert reply["code"] == "token_expired"
        c = await ConsoleClient.open(site.ws_url)
        reply = await c.request("resume", token=a.token, last_seq=0)
        assert reply["code"] == "token_expired"


async def test_role_violations(site: AppSite) -> None:
    a1 = await agent(site)
    await a1.request("pause", reason="break")  # agent2 is the only one available
    a2 = await agent(site, "agent2", AGENT2)
    boss = await supervisor(site)
    _, call_id = await site.ring_agent(AGENT2, PLAIN_CALLER)
    await a2.wait_for("offer")
    for kind, fields in (("hangup", {}), ("hold", {}), ("wrapup", {"disposition": "resolved"}),
                         ("transfer", {"mode": "blind", "target_kind": "agent", "target": AGENT1})):
        reply = await a1.request(kind, call_id=call_id, **fields)
        assert reply["code"] == "not_your_call", (kind, reply)
    others: tuple[tuple[str, dict[str, object]], ...] = (("spy", {"agent_id": AGENT2, "mode": "listen"}),
                         ("force_pause", {"agent_id": AGENT2}), ("force_logout", {"agent_id": AGENT2}),
                         ("move_call", {"call_id": call_id, "head": True}))
    for kind, other in others:
        reply = await a1.request(kind, **other)
        assert reply["code"] == "forbidden", (kind, reply)
    for kind, fields in (("hangup", {"call_id": call_id}), ("ready", {}), ("pause", {"reason": "break"}),
                         ("dial", {"number": "100"})):
        reply = await boss.request(kind, **fields)
        assert reply["code"] == "forbidden", (kind, reply)
    # The call is untouched: it still rings at agent2, who answers and hangs up.
    await site.answer(call_id)
    await a2.wait_for(call_state("talking", call_id))
    assert (await a2.request("hangup", call_id=call_id))["type"] == "result"
    await a2.wait_for(call_state("ended", call_id))
    assert (await a1.request("wrapup", call_id=call_id, disposition="resolved"))["code"] == "not_your_call"
    assert await site.saved_wrapup(call_id) is None


async def test_supervisor_actions(site: AppSite) -> None:
    a = await agent(site)
    boss = await supervisor(site)
    _, call_id = await site.ring_agent(AGENT1, KEY_ACCOUNT_CALLER)
    await site.answer(call_id)
    await a.wait_for(call_state("talking", call_id))
    # The supervisor's desk phone (from the account) is rung; unanswered, the supervisor is told so.
    unanswered = await boss.request("spy", agent_id=AGENT1, mode="listen")
    assert unanswered["code"] == "refused" and unanswered["reason"] == "no_answer", unanswered
    site.sim.world.phones[SUPERVISOR_EXTENSION].answer_after = 0.2
    # Each answered request is a ChanSpy on the agent's leg (capture 07 C/D), options per mode; one at a
    # time: the next mode replaces the spy call of the last.
    agent_leg = site.server.queueing.agent_leg(call_id)
    for mode in SpyMode:
        assert (await boss.request("spy", agent_id=AGENT1, mode=mode.name.lower()))["type"] == "result"
        spying = await site.until(lambda: _one_spy(site), "one ChanSpy running")
        assert spying == f"{agent_leg},{mode.value}", spying
    missing = await boss.request("spy", agent_id="ghost", mode="listen")
    assert missing["code"] == "refused" and missing["reason"] == "not_found"
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    await a.wait_for(agent_state("wrap_up"))
    idle = await boss.request("spy", agent_id=AGENT1, mode="listen")
    assert idle["code"] == "refused" and idle["reason"] == "invalid_state"

    # Forced pause during wrap-up: it takes effect once the wrap-up is saved.
    assert (await boss.request("force_pause", agent_id=AGENT1, reason="coaching"))["type"] == "result"
    pending = await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["reason"] == "coaching")
    assert pending["agent"]["state"] == "wrap_up"
    assert (await a.request("wrapup", call_id=call_id, disposition="resolved"))["type"] == "wrapup_saved"
    forced = await a.wait_for(agent_state("paused"))
    assert forced["agent"]["reason"] == "coaching"
    await boss.wait_for(lambda m: grid_state(m, AGENT1) == "paused")

    waiting = await site.add_waiting_call("sales", "+8613900000004")
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and
                        (m["calls"].get(waiting) or {}).get("state") == "waiting")
    assert (await boss.request("move_call", call_id=waiting, queue="support", head=True))["type"] == "result"
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and
                        (m["calls"].get(waiting) or {}).get("queue") == "support")
    view = site.server.projector.router.call_view(waiting)
    assert view is not None and view.queue == "support" and view.state == "waiting"

    assert (await boss.request("force_logout", agent_id=AGENT1))["type"] == "result"
    await a.wait_for(agent_state("logged_out"))

    admin = await supervisor(site, "admin1")
    no_phone = await admin.request("spy", agent_id=AGENT1, mode="listen")
    assert no_phone["code"] == "bad_field" and no_phone["field"] == "extension"


def _one_spy(site: AppSite) -> str | None:
    """The data of the one ChanSpy running; None while there is none, or more than one."""
    running = [c.appdata for c in site.sim.world.channels.values() if c.app == "ChanSpy" and not c.dead]
    return running[0] if len(running) == 1 else None


async def test_bad_messages_keep_connection(site: AppSite) -> None:
    a = await agent(site)
    cases = [
        ("{not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"v": 2, "type": "ping"}', "unsupported_version"),
        ('{"type": "pause"}', "bad_field"),
        ('{"type": "pause", "reason": "break", "extra": 1}', "bad_field"),
        ('{"type": "pause", "reason": "break\\r\\nAction: Originate"}', "bad_field"),
        ('{"type": "agent_login", "extension": "1001\\r\\nChannel: x", "queues": ["sales"]}', "bad_field"),
        ('{"type": "agent_login", "extension": "1001", "queues": []}', "bad_field"),
        ('{"type": "transfer", "call_id": "c1", "mode": "blind", "target_kind": "number", "target": "12a"}',
         "bad_field"),
        ('{"type": "dial"}', "bad_field"),
        ('{"type": "wrapup", "call_id": "c", "disposition": "ok", "notes": "a\\u0000b"}', "bad_field"),
        ('{"type": "search", "q": "\\ud800"}', "bad_field"),
        ('{"type": "ping", "id": {"x": 1}}', "bad_field"),
    ]
    for raw, code in cases:
        await a.ws.send(raw)
        reply = await a.wait_for("error")
        assert reply["code"] == code, (raw, reply)
    await a.ws.send(b"\x00\x01binary")
    assert (await a.wait_for("error"))["code"] == "binary_not_supported"
    await a.ws.send(json.dumps({"type": "search", "q": "x" * 20_000, "id": 9}))
    assert (await a.wait_for("error"))["code"] == "too_large"
    # Nothing bad reached the ACD: the agent is still available on the queues it chose.
    view = site.server.projector.router.agent_view(AGENT1, site.server.now())
    assert view.state == "available" and set(view.queues) == {"sales", "vip"}
    assert (await a.request("ping"))["type"] == "pong"
    # Over the hard limit the websocket layer closes with 1009.
    await a.ws.send(json.dumps({"type": "search", "q": "x" * 70_000}))
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await a.next(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_flood_is_throttled_and_server_stays_healthy(site: AppSite) -> None:
    flooder = await agent(site, "agent2", AGENT2, queues=("support",))
    victim = await agent(site)
    payload = json.dumps({"type": "ping"})
    for _ in range(1000):
        await flooder.ws.send(payload)
    # The other agent's pop still arrives promptly while the flood is processed.
    _, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    started = time.perf_counter()
    offer = await victim.wait_for("offer", timeout=2)
    assert offer["offer"]["call_id"] == call_id and time.perf_counter() - started < 1.0
    pongs = errors = 0
    try:
        while True:
            msg = await flooder.next(0.5)
            pongs += msg["type"] == "pong"
            errors += msg["type"] == "error" and msg["code"] == "rate_limited"
    except TimeoutError:
        pass
    assert errors >= 1 and pongs < 200, (pongs, errors)
    await asyncio.sleep(1.0)
    assert (await flooder.request("ping"))["type"] == "pong"


async def test_resume_replays_missed_messages_once(site: AppSite) -> None:
    a = await agent(site)
    _offer_id, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    await a.wait_for("offer")
    await a.wait_for(agent_state("reserved"))
    token, last_seq, stream = a.token, a.last_seq, a.stream
    await a.ws.close()
    await site.answer(call_id)  # pushed while the console is away
    await site.until(lambda: site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "on_call",
                     "the agent on the call")
    await asyncio.sleep(0.1)
    b = await ConsoleClient.open(site.ws_url)
    b.last_seq = last_seq
    reply = await b.request("resume", token=token, last_seq=last_seq, stream=stream)
    assert reply["type"] == "auth_ok" and reply["resumed"] is True
    replayed: list[Msg] = []
    with pytest.raises(TimeoutError):
        while True:
            replayed.append(await b.next(0.3))
    kinds = {(m["type"], m.get("call", {}).get("state") or m.get("agent", {}).get("state")) for m in replayed}
    assert kinds == {("call_state", "talking"), ("agent_state", "on_call")}, replayed
    assert all(m["type"] not in ("offer", "snapshot") for m in b.seen)  # the pop is not shown twice
    assert (await b.request("hold", call_id=call_id))["type"] == "result"
    await b.wait_for(call_state("held", call_id))


async def test_resume_too_far_behind_gets_snapshot_with_live_offer(site: AppSite) -> None:
    await site.use_gateway(GatewayConfig(port=0, agent_outbox_items=4))
    a = await agent(site)
    token, stream = a.token, a.stream
    await a.ws.close()
    other = await ConsoleClient.open(site.ws_url)  # the same agent on a second screen
    await other.login("agent1", site.passwords["agent1"])
    for _ in range(2):
        await other.request("pause", reason="break")
        await other.request("ready")
    offer_id, call_id = await site.ring_agent(AGENT1, PLAIN_CALLER)
    await other.wait_for("offer")
    b = await ConsoleClient.open(site.ws_url)
    reply = await b.request("resume", token=token, last_seq=1, stream=stream)
    assert reply["type"] == "auth_ok"
    snap = await b.wait_for("snapshot")
    assert [o["offer_id"] for o in snap["offers"]] == [offer_id]
    assert snap["offers"][0]["pop"]["customer"]["phones"] == [PLAIN_CALLER]
    assert snap["agent"]["state"] == "reserved"
    # A different stream id (server restarted) also means a snapshot, never a wrong replay.
    c = await ConsoleClient.open(site.ws_url)
    await c.request("resume", token=token, last_seq=snap["seq"], stream="00000000")
    assert (await c.wait_for("snapshot"))["seq"] == snap["seq"]
    # Answered: a console that connects now sees the call, not the offer.
    await site.answer(call_id)
    await other.wait_for(call_state("talking", call_id))
    d = await ConsoleClient.open(site.ws_url)
    await d.request("resume", token=token, last_seq=0, stream="00000000")
    snap = await d.wait_for("snapshot")
    assert snap["offers"] == [] and [c["call_id"] for c in snap["calls"]] == [call_id]


async def test_supervisor_resume_replays_deltas(site: AppSite) -> None:
    boss = await supervisor(site)
    await agent(site)
    await boss.wait_for(lambda m: grid_state(m, AGENT1) == "available")
    token, last_seq, stream = boss.token, boss.last_seq, boss.stream
    await boss.ws.close()
    call_id = await site.add_waiting_call("support", "+8613900000008")
    site.gateway.flush_monitor()
    back = await ConsoleClient.open(site.ws_url)
    back.last_seq = last_seq
    await back.request("resume", token=token, last_seq=last_seq, stream=stream)
    # The replay carries the deltas in order: under load one may show the call before it was queued.
    await back.wait_for(lambda m: m["type"] == "call_list_delta"
                        and (m["calls"].get(call_id) or {}).get("queue") == "support")
    assert all(m["type"] != "snapshot" for m in back.seen)


async def test_wallboard_deltas_only_carry_changes(site: AppSite) -> None:
    boss = await supervisor(site)
    snap = next(m for m in boss.seen if m["type"] == "snapshot")
    assert snap["wallboard"]["support"]["waiting"] == 0
    await site.add_waiting_call("support", "+8613900000001")
    first = await boss.wait_for(lambda m: m["type"] == "wallboard_delta" and
                                m["queues"].get("support", {}).get("waiting") == 1)
    row = first["queues"]["support"]
    assert "answered" not in row and abs(row["oldest_since"] - time.time()) < 5  # unchanged fields: not sent
    # The console ticks the longest wait from oldest_since: while nothing changes, nothing is sent.
    with pytest.raises(TimeoutError):
        await boss.wait_for(lambda m: m["type"] == "wallboard_delta" and "support" in m["queues"], timeout=2.5)


async def test_search_and_click_to_call(site: AppSite) -> None:
    a = await agent(site)
    found = await a.request("search", q="evil", limit=5)
    assert found["type"] == "search_results"
    found = await a.request("search", q="13800000002", limit=5)
    assert [c["name"] for c in found["customers"]] == [XSS_NAME]  # verbatim: escaping is the views' job
    customer_id = found["customers"][0]["id"]
    site.sim.world.phones[AGENT1].answer_after = 0.5  # the agent picks up their phone when it rings
    dialled = await a.request("dial", customer_id=customer_id)
    assert dialled["type"] == "result" and dialled["data"]["call_id"], dialled
    out_id = dialled["data"]["call_id"]
    await site.until(lambda: any(c.name.startswith("PJSIP/trunk-") or "13800000002" in c.name
                                 for c in site.sim.world.channels.values()), "the customer's line dialled")
    assert (await a.request("hangup", call_id=out_id))["type"] == "result"
    await site.until(lambda: all(c.uniqueid != out_id for c in site.sim.world.channels.values()),
                     "the agent's leg hung up")
    gone = await a.request("hangup", call_id=out_id)
    assert gone["code"] == "refused" and gone["reason"] == "not_found"


async def test_heartbeat_drops_silent_console(site: AppSite) -> None:
    gateway = await site.use_gateway(GatewayConfig(port=0, ping_interval_s=0.2, ping_timeout_s=0.3,
                                                   close_timeout_s=0.3))
    a = await agent(site)
    assert gateway.connection_count() == 1
    await asyncio.sleep(0.6)
    assert gateway.connection_count() == 1  # pongs keep it alive
    a.ws.transport.pause_reading()  # a frozen console: pings go unanswered
    await site.until(lambda: gateway.connection_count() == 0, "the silent console dropped", timeout=2)


async def test_auth_timeout_closes(site: AppSite) -> None:
    await site.use_gateway(GatewayConfig(port=0, auth_timeout_s=0.3))
    c = await ConsoleClient.open(site.ws_url)
    with pytest.raises(ConnectionClosed) as closed:
        await c.next(2)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def test_pages_served_with_strict_headers(site: AppSite) -> None:
    base = site.http_url
    for path, ctype in (("/agent", "text/html"), ("/supervisor", "text/html"),
                        ("/static/js/agent.js", "text/javascript"), ("/static/css/console.css", "text/css")):
        status, headers, body = await asyncio.to_thread(_get, base + path)
        assert status == 200 and headers["Content-Type"].startswith(ctype), (path, status, headers)
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        if ctype == "text/html":
            assert b"<script>" not in body and b"onclick" not in body  # no inline script
    for path in ("/static/../../etc/passwd", "/static/%2e%2e/server.py", "/nope"):
        status, _, _ = await asyncio.to_thread(_get, base + path)
        assert status == 404, path
    status, headers, _ = await asyncio.to_thread(_get, base + "/")
    assert status == 302 and headers["Location"] == "/agent"


async def test_hostile_caller_pop_is_data(site: AppSite) -> None:
    """Names, notes and flag reasons with HTML reach the console verbatim as JSON strings."""
    a = await agent(site)
    _, call_id = await site.ring_agent(AGENT1, HOSTILE_CALLER)
    offer = (await a.wait_for("offer"))["offer"]
    pop = offer["pop"]
    assert offer["caller_name"] == XSS_NAME and pop["customer"]["name"] == XSS_NAME
    assert {f["flag"]: f["reason"] for f in pop["flags"]} == {"vip": "top 1% revenue",
                                                               "blacklist": "abusive <b>twice</b>"}
    assert [t["subject"] for t in pop["open_tickets"]] == ["late delivery <x>"]
    assert pop["interactions"][0]["notes"] == "asked about <invoice>"
    assert offer["queue"] == "vip" and call_id
