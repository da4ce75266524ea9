"""A blacklisted caller refused by the queue's policy, as a real Asterisk 22.10.1 took it: the refusal
prompt, then AGI HANGUP. A prompt that is not on the PBX answers at once (result=-1 endpos=0, capture 14):
the caller must still hear something before the line drops, and the supervisors must learn the file is
missing. Whole calls through the simulator and the real server."""

from __future__ import annotations

import json
from pathlib import Path

from ctiserver.ivr.service import REFUSAL_FALLBACK
from pbxsim import wire
from tests.gateway.gw_harness import ACD_YAML, HOSTILE_CALLER, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent, supervisor


def _refusing(prompt: str) -> str:
    return ACD_YAML.replace(
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}",
        "  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60,\n"
        f"     blacklist: {{action: refuse, message: {prompt}}}}}")


async def _refused_call(site: AppSite) -> list[str]:
    """A blacklisted VIP (the demo flow sends VIPs to vip) calls; the AGI commands run on their line."""
    commands: list[str] = []

    def agi(pairs: wire.Pairs) -> None:
        fields = dict(pairs)
        if fields.get("Event") == "AGIExecStart" and fields.get("CallerIDNum") == HOSTILE_CALLER:
            commands.append(fields.get("Command", ""))
    site.sim.world.listeners.append(agi)
    chan = site.call(HOSTILE_CALLER, "vip")
    await site.until(lambda: chan.dead, "the refused caller's line dropped")
    await site.until(lambda: site.crm_rows("SELECT 1 FROM journal WHERE kind = 'call.ended'"), "the end journaled")
    return commands[:commands.index("HANGUP") + 1]  # then the script's own end: SET VARIABLE IVR_DONE


async def test_a_missing_refusal_prompt_falls_back_and_alerts(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=_refusing("cti/closed")) as site:
        assert not site.sim.sounds.exists("cti/closed")
        a = await agent(site, queues=("vip",))
        boss = await supervisor(site)
        commands = await _refused_call(site)
        refusal = commands[commands.index('STREAM FILE cti/closed ""'):]
        assert refusal == ['STREAM FILE cti/closed ""', "CHANNEL STATUS", f'STREAM FILE {REFUSAL_FALLBACK} ""',
                           "HANGUP"], commands
        alert = (await boss.wait_for(lambda m: m["type"] == "alert" and m["alert"]["subject"] == "cti/closed"))
        assert alert["alert"]["metric"] == "prompt_missing"
        facts = [json.loads(r["body"]) for r in site.crm_rows("SELECT body FROM journal WHERE kind = 'pbx.prompt_missing'")]
        assert [(b["prompt"], b["where"]) for b in facts] == [("cti/closed", "blacklist refusal of queue vip")]
        assert not [m for m in a.drain() if m["type"] == "offer"]


async def test_a_refusal_prompt_that_plays_is_all_the_caller_hears(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=_refusing("demo/goodbye")) as site:
        assert site.sim.sounds.exists("demo/goodbye")
        commands = await _refused_call(site)
        assert commands[commands.index('STREAM FILE demo/goodbye ""'):] == ['STREAM FILE demo/goodbye ""', "HANGUP"]
        assert site.crm_rows("SELECT 1 FROM journal WHERE kind = 'pbx.prompt_missing'") == []


async def test_a_refused_caller_is_recorded_as_refused_not_as_self_service(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=_refusing("demo/goodbye")) as site:
        await _refused_call(site)
        rows = await site.until(lambda: site.crm_rows(
            "SELECT outcome, queue FROM interactions WHERE ended_at IS NOT NULL AND call_id IN"
            " (SELECT json_extract(body, '$.call_id') FROM journal WHERE kind = 'call.refused')"),
            "the refused call's row")
        assert [(r["outcome"], r["queue"]) for r in rows] == [("refused", "vip")]
