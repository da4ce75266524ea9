"""A prompt the PBX cannot play reaches the supervisors as an alert, once per prompt, and is journaled:
real websocket clients against the real app, the PBX simulator answering missing prompts as capture 14."""

from __future__ import annotations

import json
from collections import Counter

from crmstore.journal import read_rows
from pbxsim import wire
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import PLAIN_CALLER, AppSite


def prompt_alert(prompt: str) -> object:
    return lambda m: m["type"] == "alert" and m["alert"]["metric"] == "prompt_missing" \
        and m["alert"]["subject"] == prompt


async def prompt_facts(site: AppSite) -> list[dict[str, str]]:
    journal = site.server.recorder.journal
    await journal.durable(journal.last_seq, 10)
    rows = await site.server.crm.read_plan(read_rows(0, 1_000_000))
    return [json.loads(row[5]) for row in rows if row[2] == "pbx.prompt_missing"]


async def supervisor(site: AppSite) -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login("super1", site.passwords["super1"])
    return client


async def test_missing_hold_music_alerts_supervisors_once(site: AppSite) -> None:
    site.sim.sounds.remove("cti/hold-music")
    moh: Counter[str] = Counter()

    def count_moh(pairs: wire.Pairs) -> None:
        fields = dict(pairs)
        if fields.get("Event") == "MusicOnHoldStart":
            moh[fields.get("Channel", "")] += 1
    site.sim.world.listeners.append(count_moh)
    boss = await supervisor(site)

    # Two callers wait in a queue nobody serves: each piece of hold music fails and Asterisk's music on
    # hold (SET MUSIC ON default) plays instead, again and again.
    calls = [await site.add_waiting_call("sales", number) for number in ("+8613900000021", "+8613900000022")]
    alert = (await boss.wait_for(prompt_alert("cti/hold-music")))["alert"]
    assert (alert["queue"], alert["level"]) == ("", "warning")
    assert "queue" in alert["text"]
    await site.until(lambda: len(moh) >= 2 and all(n >= 2 for n in moh.values()),
                     "both callers on music on hold twice")
    for call_id in calls:  # still waiting: the missing file cost nobody the call
        view = site.server.projector.router.call_view(call_id)
        assert view is not None and view.state == "waiting"
    later = [m for m in await boss.collect(0.3) if m["type"] == "alert"]
    assert later == []  # once per prompt, however many callers met it
    assert [(f["prompt"], f["where"]) for f in await prompt_facts(site)] == [("cti/hold-music", "queue")]

    # A supervisor who connects now sees it in the snapshot.
    other = await ConsoleClient.open(site.ws_url)
    reply = await other.request("auth", username="super1", password=site.passwords["super1"])
    assert reply["type"] == "auth_ok"
    snapshot = await other.wait_for("snapshot")
    assert [(a["metric"], a["subject"]) for a in snapshot["alerts"]] == [("prompt_missing", "cti/hold-music")]


async def test_missing_ivr_prompt_alerts_supervisors(site: AppSite) -> None:
    site.sim.sounds.remove("demo/welcome", "demo/main-menu")
    boss = await supervisor(site)
    call_id = await site.add_waiting_call("sales", PLAIN_CALLER)  # the menu's key 1 still reaches sales
    msgs: list[Msg] = [await boss.wait_for(prompt_alert(p)) for p in ("demo/welcome", "demo/main-menu")]
    assert "flow main, node greeting" in msgs[0]["alert"]["text"]
    facts = await prompt_facts(site)
    assert [(f["prompt"], f["where"], f["call_id"]) for f in facts] == [
        ("demo/welcome", "flow main, node greeting", call_id), ("demo/main-menu", "flow main, node main_menu", call_id)]
