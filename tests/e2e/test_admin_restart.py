"""An administrator's change made through `ctiserver run` is in its files: after a kill -9 and a restart the
server starts from them (and from a checkpoint taken after the change), so the change holds.

The site: the PBX simulator in this process, `ctiserver run` as a child process with its own cti.yaml and
queues.yaml, a SQLite CRM on disk."""

from __future__ import annotations

from pathlib import Path

import yaml

from ctiserver.gateway.auth import hash_password
from pbxsim.people import CallerBehaviour
from pbxsim.site import ProcessSite, SiteConfig
from tests.gateway.gw_client import ConsoleClient

PASSWORD = "site-pass-1"
QUEUES = """\
skills: [support, sales]
pause_reasons: [break]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 5, ring_timeout_s: 600, announce_every_s: 0}
  - {name: sales, skills: {sales: 1}, wrap_up_s: 5, ring_timeout_s: 600, announce_every_s: 0}
agents:
  - {id: "3001", name: Agent 3001, skills: {support: 1, sales: 1}, queues: [support, sales]}
  - {id: "3002", name: Agent 3002, skills: {support: 1}, queues: [support]}
"""
FLOW = """\
flow: main
language: en-US
fallback: {queue: support}
start: wait
nodes:
  wait: {type: queue, queue: sales}
"""


async def test_an_admin_change_survives_a_kill_and_a_restart(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    secret = hash_password(PASSWORD, n=2**10)
    accounts = [{"username": "a3001", "role": "agent", "agent_id": "3001", "password_hash": secret},
                {"username": "a3002", "role": "agent", "agent_id": "3002", "password_hash": secret},
                {"username": "root", "role": "admin", "password_hash": secret}]
    site = ProcessSite(tmp_path, SiteConfig(QUEUES, flows, accounts, extra={"journal": {"checkpoint_facts": 5}}))
    await site.start()
    try:
        admin = await ConsoleClient.open(site.ws_url)
        await admin.login("root", PASSWORD)
        given = await admin.request("admin_agent_set", agent_id="3002",
                                    skills=[{"skill": "support", "level": 1}, {"skill": "sales", "level": 2}],
                                    queues=["support", "sales"])
        assert given["type"] == "result", given
        created = await admin.request("admin_user_set", username="boss", role="supervisor", password="boss-pass-1")
        assert created["type"] == "result", created
        on_disk = yaml.safe_load((tmp_path / "queues.yaml").read_text(encoding="utf-8"))
        assert on_disk["agents"][1]["queues"] == ["support", "sales"]

        site.kill()
        site._write_config = lambda: tmp_path / "cti.yaml"  # type: ignore[method-assign]  # restart on the files as they are
        await site.start_server()

        boss = await ConsoleClient.open(site.ws_url)
        await boss.login("boss", "boss-pass-1")  # the account the administrator created
        overview = (await (await _admin(site)).request("admin_overview"))["data"]
        assert {a["id"]: a["queues"] for a in overview["agents"]}["3002"] == ["support", "sales"]

        # Agent 3002 serves sales now: a sales caller rings their phone.
        site.sim.add_agent_phone("3002", answer_after=None)
        agent = await ConsoleClient.open(site.ws_url)
        await agent.login("a3002", PASSWORD)
        assert (await agent.request("agent_login", extension="3002", queues=["sales"]))["type"] == "result"
        site.sim.place_call("5551000", "13800138000", "Caller", CallerBehaviour(patience=100_000))
        offer = await agent.wait_for("offer", timeout=20)
        assert offer["offer"]["queue"] == "sales"
        log = site.log.read_text(encoding="utf-8")
        assert "Traceback" not in log, log[-3000:]
    finally:
        await site.close()


async def _admin(site: ProcessSite) -> ConsoleClient:
    client = await ConsoleClient.open(site.ws_url)
    await client.login("root", PASSWORD)
    return client


