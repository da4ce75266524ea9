"""Protocol tests with real websocket clients against a running site (see gw_harness.Site)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from ctiserver.gateway.server import GatewayConfig
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import XSS_NAME, MemorySite, memory_site


async def agent(site: MemorySite, name: str = "agent1", extension: str = "1001") -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    reply = await client.request("agent_login", extension=extension, queues=["sales", "vip"])
    assert reply["type"] == "result", reply
    await client.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "available")
    return client


async def supervisor(site: MemorySite, name: str = "super1") -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login(name, site.passwords[name])
    return client


def grid_state(msg: dict, agent_id: str) -> str | None:
    if msg["type"] != "agent_grid_delta":
        return None
    row = msg["agents"].get(agent_id)
    return row.get("state") if row else None


async def test_whole_agent_day(site: MemorySite) -> None:
    boss = await supervisor(site)
    a = await agent(site)
    assert (await a.request("pause", reason="lunch"))["type"] == "result"
    paused = await a.wait_for("agent_state")
    assert (paused["agent"]["state"], paused["agent"]["reason"]) == ("paused", "lunch")
    await boss.wait_for(lambda m: grid_state(m, "agent1") == "paused")
    await a.request("ready")

    offer_id, call_id = await site.ring_agent("agent1", "+8613800000001", "张伟")
    offer = (await a.wait_for("offer"))["offer"]
    assert (offer["offer_id"], offer["call_id"]) == (offer_id, call_id)
    pop = offer["pop"]
    assert pop["customer"]["name"] == "张伟" and {f["flag"] for f in pop["flags"]} >= {"vip"}
    assert offer["ivr_path"] and offer["ivr_said"]

    await site.answer(call_id)
    talking = await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "talking")
    assert talking["call"]["talk_since"] is not None
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and
                        (m["calls"].get(call_id) or {}).get("state") == "talking")

    assert (await a.request("hold", call_id=call_id))["type"] == "result"
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "held")
    assert (await a.request("unhold", call_id=call_id))["type"] == "result"
    reply = await a.request("transfer", call_id=call_id, mode="attended", target_kind="queue", target="vip")
    assert reply["type"] == "result", reply
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "consulting")
    assert (await a.request("transfer_cancel", call_id=call_id))["type"] == "result"
    reply = await a.request("transfer", call_id=call_id, mode="blind", target_kind="number", target="+861012345")
    assert reply["type"] == "result", reply
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "ended")
    await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "wrap_up")

    notes = "<script>alert('x')</script>\n客户满意"
    saved = await a.request("wrapup", call_id=call_id, disposition="resolved", notes=notes,
                            follow_up={"kind": "callback", "due_at": "2030-01-02T10:00:00+08:00", "note": "ok"})
    assert saved["type"] == "wrapup_saved" and saved["call_id"] == call_id
    stored = await site.saved_wrapup(call_id)
    assert stored is not None and stored["disposition"] == "resolved" and stored["notes"] == notes
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and call_id in m["calls"]
                        and m["calls"][call_id] is None)

    assert (await a.request("agent_logout"))["type"] == "result"
    await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "logged_out")
    await boss.wait_for(lambda m: grid_state(m, "agent1") == "logged_out")
    assert (await a.request("logout"))["type"] == "result"
    a.drain()
    with pytest.raises(ConnectionClosed):
        await a.next(2)


async def test_wrapup_failure_loses_nothing(site: MemorySite) -> None:
    a = await agent(site)
    _, call_id = await site.ring_agent("agent1", "+8613800000009")
    await site.answer(call_id)
    await a.request("hangup", call_id=call_id)
    await site.break_next_wrapup()
    failed = await a.request("wrapup", call_id=call_id, disposition="resolved", notes="n")
    assert failed["type"] == "wrapup_failed" and failed["message"]
    assert await site.saved_wrapup(call_id) is None
    ok = await a.request("wrapup", call_id=call_id, disposition="resolved", notes="n")
    assert ok["type"] == "wrapup_saved"


async def test_login_failures(site: MemorySite) -> None:
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


async def test_forged_and_ended_tokens(site: MemorySite) -> None:
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


async def test_expired_token() -> None:
    async with memory_site(GatewayConfig(port=0, token_ttl_s=1)) as site:
        a = await ConsoleClient.open(site.ws_url)
        await a.login("agent2", site.passwords["agent2"])
        await asyncio.sleep(1.2)
        reply = await a.request("ready")
        assert reply["code"] == "token_expired"
        c = await ConsoleClient.open(site.ws_url)
        reply = await c.request("resume", token=a.token, last_seq=0)
        assert reply["code"] == "token_expired"


async def test_role_violations(site: MemorySite) -> None:
    a1 = await agent(site)
    a2 = await agent(site, "agent2", "1002")
    boss = await supervisor(site)
    _, call_id = await site.ring_agent("agent2", "+8613800000003")
    await a2.wait_for("offer")
    for kind, fields in (("hangup", {}), ("hold", {}), ("wrapup", {"disposition": "resolved"}),
                         ("transfer", {"mode": "blind", "target_kind": "agent", "target": "agent1"})):
        reply = await a1.request(kind, call_id=call_id, **fields)
        assert reply["code"] == "not_your_call", (kind, reply)
    others: tuple[tuple[str, dict[str, object]], ...] = (("spy", {"agent_id": "agent2", "mode": "listen"}),
                         ("force_pause", {"agent_id": "agent2"}), ("force_logout", {"agent_id": "agent2"}),
                         ("move_call", {"call_id": call_id, "head": True}))
    for kind, other in others:
        reply = await a1.request(kind, **other)
        assert reply["code"] == "forbidden", (kind, reply)
    for kind, fields in (("hangup", {"call_id": call_id}), ("ready", {}), ("pause", {"reason": "break"}),
                         ("dial", {"number": "100"})):
        reply = await boss.request(kind, **fields)
        assert reply["code"] == "forbidden", (kind, reply)
    # The call is untouched: agent2 can still act on it.
    await site.answer(call_id)
    assert (await a2.request("hangup", call_id=call_id))["type"] == "result"


async def test_supervisor_actions(site: MemorySite) -> None:
    a = await agent(site)
    boss = await supervisor(site)
    for mode in ("listen", "whisper", "barge"):
        assert (await boss.request("spy", agent_id="agent1", mode=mode))["type"] == "result"
    assert [s[3] for s in site.backend.spies] == ["listen", "whisper", "barge"]
    assert site.backend.spies[0][1] == "2001"  # the supervisor's phone from the account
    missing = await boss.request("spy", agent_id="ghost", mode="listen")
    assert missing["code"] == "refused" and missing["reason"] == "not_found"

    assert (await boss.request("force_pause", agent_id="agent1", reason="coaching"))["type"] == "result"
    forced = await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "paused")
    assert forced["agent"]["reason"] == "coaching"

    waiting = await site.add_waiting_call("sales", "+8613800000004")
    await boss.wait_for(lambda m: m["type"] == "call_list_delta" and waiting in m["calls"])
    assert (await boss.request("move_call", call_id=waiting, queue="vip", head=True))["type"] == "result"
    moved = await boss.wait_for(lambda m: m["type"] == "call_list_delta" and
                                (m["calls"].get(waiting) or {}).get("queue") == "vip")
    assert moved["calls"][waiting]["priority"] == 1000

    assert (await boss.request("force_logout", agent_id="agent1"))["type"] == "result"
    await a.wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "logged_out")

    admin = await supervisor(site, "admin1")
    assert (await admin.request("spy", agent_id="agent1", mode="listen", extension="2002"))["type"] == "result"
    no_phone = await admin.request("spy", agent_id="agent1", mode="listen")
    assert no_phone["code"] == "bad_field" and no_phone["field"] == "extension"


async def test_bad_messages_keep_connection(site: MemorySite) -> None:
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
    assert (await a.request("ping"))["type"] == "pong"
    # Over the hard limit the websocket layer closes with 1009.
    await a.ws.send(json.dumps({"type": "search", "q": "x" * 70_000}))
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await a.next(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_flood_is_throttled_and_server_stays_healthy(site: MemorySite) -> None:
    flooder = await agent(site, "agent2", "1002")
    victim = await agent(site)
    payload = json.dumps({"type": "ping"})
    for _ in range(1000):
        await flooder.ws.send(payload)
    # The other agent's pop still arrives promptly while the flood is processed.
    started = time.perf_counter()
    await site.ring_agent("agent1", "+8613800000005")
    await victim.wait_for("offer", timeout=2)
    assert time.perf_counter() - started < 1.0
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


async def test_resume_replays_missed_messages_once(site: MemorySite) -> None:
    a = await agent(site)
    _offer_id, call_id = await site.ring_agent("agent1", "+8613800000006")
    await a.wait_for("offer")
    await a.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "ringing")
    token, last_seq, stream = a.token, a.last_seq, a.stream
    await a.ws.close()
    await site.answer(call_id)  # pushed while the console is away
    await asyncio.sleep(0.05)
    b = await ConsoleClient.open(site.ws_url)
    b.last_seq = last_seq
    reply = await b.request("resume", token=token, last_seq=last_seq, stream=stream)
    assert reply["type"] == "auth_ok" and reply["resumed"] is True
    replayed = [await b.next(2) for _ in range(2)]
    kinds = [(m["type"], m.get("call", {}).get("state") or m.get("agent", {}).get("state")) for m in replayed]
    assert kinds == [("call_state", "talking"), ("agent_state", "on_call")], kinds
    assert all(m["type"] != "offer" for m in b.seen)  # the pop is not shown twice
    with pytest.raises(TimeoutError):
        await b.next(0.3)
    assert (await b.request("hold", call_id=call_id))["type"] == "result"


async def test_resume_too_far_behind_gets_snapshot_with_live_offer() -> None:
    async with memory_site(GatewayConfig(port=0, agent_outbox_items=4)) as site:
        a = await agent(site)
        token, stream = a.token, a.stream
        await a.ws.close()
        for _ in range(3):
            await site.backend.agent_pause(site.gateway.signer.check(token or "", time.time()), "break")
        offer_id, call_id = await site.ring_agent("agent1", "+8613800000007")
        b = await ConsoleClient.open(site.ws_url)
        reply = await b.request("resume", token=token, last_seq=1, stream=stream)
        assert reply["type"] == "auth_ok"
        snap = await b.wait_for("snapshot")
        assert [o["offer_id"] for o in snap["offers"]] == [offer_id]
        assert [c["call_id"] for c in snap["calls"]] == [call_id]
        assert snap["agent"]["state"] == "reserved"
        # A different stream id (server restarted) also means a snapshot, never a wrong replay.
        c = await ConsoleClient.open(site.ws_url)
        await c.request("resume", token=token, last_seq=snap["seq"], stream="00000000")
        assert (await c.wait_for("snapshot"))["seq"] == snap["seq"]


async def test_supervisor_resume_replays_deltas(site: MemorySite) -> None:
    boss = await supervisor(site)
    await agent(site)
    site.gateway.flush_monitor()
    await boss.wait_for("agent_grid_delta")
    token, last_seq, stream = boss.token, boss.last_seq, boss.stream
    await boss.ws.close()
    await site.add_waiting_call("support", "+8613800000008")
    site.gateway.flush_monitor()
    back = await ConsoleClient.open(site.ws_url)
    back.last_seq = last_seq
    await back.request("resume", token=token, last_seq=last_seq, stream=stream)
    delta = await back.wait_for("call_list_delta")
    assert any(row and row.get("queue") == "support" for row in delta["calls"].values())
    assert all(m["type"] != "snapshot" for m in back.seen)


async def test_deltas_only_carry_changes(site: MemorySite) -> None:
    boss = await supervisor(site)
    gw = site.gateway
    await gw.push_wallboard_delta("sales", {"waiting": 7, "sl": 80.0})
    gw.flush_monitor()
    first = await boss.wait_for("wallboard_delta")
    assert first["queues"]["sales"] == {"waiting": 7, "sl": 80.0}
    await gw.push_wallboard_delta("sales", {"waiting": 7, "sl": 81.0})
    await gw.push_wallboard_delta("sales", {"waiting": 8, "sl": 81.0})
    gw.flush_monitor()
    second = await boss.wait_for("wallboard_delta")
    assert second["queues"] == {"sales": {"waiting": 8, "sl": 81.0}}
    await gw.push_wallboard_delta("sales", {"waiting": 8})
    gw.flush_monitor()
    with pytest.raises(TimeoutError):
        await boss.wait_for("wallboard_delta", timeout=0.3)


async def test_search_returns_names_verbatim(site: MemorySite) -> None:
    a = await agent(site)
    found = await a.request("search", q="evil", limit=5)
    assert found["type"] == "search_results"
    found = await a.request("search", q="img", limit=5)
    assert [c["name"] for c in found["customers"]] == [XSS_NAME]
    dialled = await a.request("dial", customer_id=42)
    assert dialled["type"] == "result" and dialled["data"]["call_id"]
    assert (await a.request("hangup", call_id=dialled["data"]["call_id"]))["type"] == "result"


async def test_heartbeat_drops_silent_console() -> None:
    async with memory_site(GatewayConfig(port=0, ping_interval_s=0.2, ping_timeout_s=0.3,
                                                 close_timeout_s=0.3)) as site:
        a = await agent(site)
        assert site.gateway.connection_count() == 1
        await asyncio.sleep(0.6)
        assert site.gateway.connection_count() == 1  # pongs keep it alive
        a.ws.transport.pause_reading()  # a frozen console: pings go unanswered
        for _ in range(40):
            await asyncio.sleep(0.05)
            if site.gateway.connection_count() == 0:
                break
        assert site.gateway.connection_count() == 0


async def test_auth_timeout_closes() -> None:
    async with memory_site(GatewayConfig(port=0, auth_timeout_s=0.3)) as site:
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


async def test_pages_served_with_strict_headers(site: MemorySite) -> None:
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
