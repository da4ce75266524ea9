"""Alerts on targets reach the supervisors, are journaled, and outlive a restart: real websocket clients
against the real app (PBX simulator, IVR, ACD, SQLite journal), with targets short enough to be met in a
test; the alert timer looks every 0.1 s."""

from __future__ import annotations

import json
from pathlib import Path

from crmstore.journal import read_rows
from ctiserver.app import CtiServer
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import ACD_YAML, AGENT1, PLAIN_CALLER, AppSite, app_site

# Quick targets: a caller waiting over a second in sales is a breach, at once; an agent's pause over a
# second too. (The simulator runs at TIME_SCALE; the server's clock is the wall's.)
TARGETS_YAML = ACD_YAML.replace(
    "pause_reasons: [break, lunch, training, coaching, supervisor]\n",
    "pause_reasons: [break, lunch, training, coaching, supervisor]\n"
    "alerts: {raise_after_s: 0, clear_after_s: 0}\n"
    "agent_targets: {long_pause_s: 1}\n",
).replace(
    "  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}\n",
    "  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60,\n"
    "     targets: {longest_wait_s: 1}}\n",
)


def alert_of(metric: str, level: str | None = None) -> object:
    return lambda m: m["type"] == "alert" and m["alert"]["metric"] == metric \
        and (level is None or m["alert"]["level"] == level)


async def alert_facts(server: CtiServer) -> list[tuple[str, dict[str, object]]]:
    journal = server.recorder.journal
    await journal.durable(journal.last_seq, 10)
    rows = await server.crm.read_plan(read_rows(0, 1_000_000))
    return [(row[2], json.loads(row[5])) for row in rows if row[2].startswith("alert.")]


async def supervisor(site: AppSite) -> tuple[ConsoleClient, Msg]:
    client = await ConsoleClient.open(site.ws_url)
    reply = await client.request("auth", username="super1", password=site.passwords["super1"])
    assert reply["type"] == "auth_ok", reply
    return client, await client.wait_for("snapshot")


async def test_a_queue_alert_is_raised_pushed_journaled_and_cleared(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=TARGETS_YAML, alert_every_s=0.1) as site:
        boss, snapshot = await supervisor(site)
        assert snapshot["alerts"] == []
        assert snapshot["wallboard"]["sales"]["targets"] == {"service_level": 80.0, "longest_wait": 1.0}
        call_id = await site.add_waiting_call("sales", PLAIN_CALLER)  # nobody serves sales
        raised = (await boss.wait_for(alert_of("longest_wait", "critical"), timeout=10))["alert"]
        assert (raised["queue"], raised["subject"], raised["threshold"]) == ("sales", "", 1.0)
        assert raised["value"] >= 1.0 and "waited" in raised["text"]  # shown rounded: 1.04 s is 1.0
        level = await boss.wait_for(lambda m: m["type"] == "wallboard_delta"
                                    and (m["queues"].get("sales") or {}).get("levels", {}).get("longest_wait")
                                    == "breach")
        assert level["queues"]["sales"]["levels"]["service_level"] is None  # no call counted yet
        site.hang_up_caller(call_id)  # the queue is empty again: the longest wait is back to 0
        cleared = (await boss.wait_for(alert_of("longest_wait", "cleared"), timeout=10))["alert"]
        assert cleared["queue"] == "sales"
        facts = await alert_facts(site.server)
        assert [(kind, body["metric"], body["queue"]) for kind, body in facts] == [
            ("alert.raised", "longest_wait", "sales"), ("alert.cleared", "longest_wait", "sales")]
        _, later = await supervisor(site)
        assert later["alerts"] == []


async def test_an_agents_long_pause_alerts_until_the_agent_is_back(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=TARGETS_YAML, alert_every_s=0.1) as site:
        boss, _ = await supervisor(site)
        agent = await ConsoleClient.open(site.ws_url)
        await agent.login("agent1", site.passwords["agent1"])
        assert (await agent.request("agent_login", extension=AGENT1, queues=["sales"]))["type"] == "result"
        assert (await agent.request("pause", reason="lunch"))["type"] == "result"
        raised = (await boss.wait_for(alert_of("long_pause", "warning"), timeout=10))["alert"]
        assert (raised["queue"], raised["subject"], raised["threshold"]) == ("", AGENT1, 1.0)
        assert "(lunch)" in raised["text"]
        assert (await agent.request("ready"))["type"] == "result"
        cleared = (await boss.wait_for(alert_of("long_pause", "cleared"), timeout=10))["alert"]
        assert cleared["subject"] == AGENT1
        facts = await alert_facts(site.server)
        assert [(kind, body["agent_id"]) for kind, body in facts] == [("alert.raised", AGENT1),
                                                                      ("alert.cleared", AGENT1)]


async def test_an_alert_in_force_outlives_a_restart(tmp_path: Path) -> None:
    async with app_site(tmp_path, acd_yaml=TARGETS_YAML, alert_every_s=0.1) as site:
        boss, _ = await supervisor(site)
        await site.add_waiting_call("sales", PLAIN_CALLER)
        raised = (await boss.wait_for(alert_of("longest_wait", "critical"), timeout=10))["alert"]
        await boss.close()
        # The server goes and comes back on the same journal: the caller is still waiting, the alert is the
        # one raised before (not a second one), and a supervisor sees it in the snapshot.
        settings = site.server.settings
        await site.server.stop()
        server = CtiServer(settings)
        await server.start()
        try:
            site.server = server
            site.sim.world.agi_host_override = ("127.0.0.1", server.agi_port)
            _, snapshot = await supervisor(site)
            alerts = snapshot["alerts"]
            assert [(a["metric"], a["queue"], a["level"]) for a in alerts] == [("longest_wait", "sales", "critical")]
            assert alerts[0]["value"] == raised["value"]
            facts = await alert_facts(server)
            assert [kind for kind, _ in facts] == ["alert.raised"]
        finally:
            await server.stop()
