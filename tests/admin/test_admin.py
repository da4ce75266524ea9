"""Administration through the console protocol, on the real app with its configuration in files: every change
is checked by the start-up loaders, written whole, in force without a restart, journaled and audited; a bad
one is refused in one line with nothing written; only the admin role may send these commands."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from ctiserver.gateway.schema import ADMIN_MESSAGES
from ctiserver.journal import facts as f
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import AGENT1, AGENT2, PLAIN_CALLER, AppSite
from tests.gateway.test_gateway_protocol import agent, supervisor

from .admin_site import HOURS_FLOW, QUEUES_YAML, admin_site

# A valid message of each admin command: the role check comes before anything is looked at.
SAMPLES = {
    "admin_overview": {},
    "admin_user_set": {"username": "x1", "role": "agent", "password": "pw-123456"},
    "admin_user_delete": {"username": "agent2"},
    "admin_agent_set": {"agent_id": AGENT2, "skills": [{"skill": "sales", "level": 1}], "queues": ["sales"]},
    "admin_pause_reasons_set": {"reasons": ["break"]},
    "admin_calendar_set": {"flow": "hours_line", "calendar": "office",
                           "hours": [{"days": "mon-fri", "ranges": ["09:00-18:00"]}]},
    "admin_audit": {},
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with admin_site(tmp_path) as s:
        yield s


async def admin(site: AppSite) -> ConsoleClient:
    return await supervisor(site, "admin1")


def facts_of(site: AppSite, kind: type) -> list[object]:
    got: list[object] = []
    site.server.bus.subscribe(kind, got.append)
    return got


def test_every_admin_command_has_a_sample() -> None:
    assert set(SAMPLES) == ADMIN_MESSAGES


async def test_agents_and_supervisors_are_refused_every_admin_command(site: AppSite, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in (tmp_path / "cti.yaml", tmp_path / "queues.yaml")}
    a = await agent(site)
    boss = await supervisor(site)
    for client, role in ((a, "agent"), (boss, "supervisor")):
        for kind, fields in SAMPLES.items():
            reply = await client.request(kind, **fields)
            assert (reply["type"], reply["code"]) == ("error", "forbidden"), (role, kind, reply)
            assert reply["message"] == f"a {role} may not send {kind}"
    assert {p.name: p.read_bytes() for p in (tmp_path / "cti.yaml", tmp_path / "queues.yaml")} == before


async def test_agent_given_a_queue_is_offered_its_calls_without_a_restart(site: AppSite, tmp_path: Path) -> None:
    changes = facts_of(site, f.AdminChanged)
    configs = facts_of(site, f.AcdConfigLoaded)
    boss = await admin(site)
    overview = (await boss.request("admin_overview"))["data"]
    assert {a["id"]: a["queues"] for a in overview["agents"]}[AGENT2] == ["vip", "sales", "support", "general"]
    assert "password_hash" not in str(overview["users"])

    reply = await boss.request("admin_agent_set", agent_id=AGENT2,
                               skills=[{"skill": "sales", "level": 5}, {"skill": "support", "level": 5},
                                       {"skill": "english", "level": 5}, {"skill": "complaints", "level": 4}],
                               queues=["vip", "sales", "support", "complaints", "general"])
    assert (reply["type"], reply["data"]) == ("result", {"created": False}), reply
    written = (tmp_path / "queues.yaml").read_text(encoding="utf-8")
    assert written.startswith("# Queues of the administration tests.\n")
    assert site.server.projector.config.agent(AGENT2).skills["complaints"] == 4
    assert [c.source for c in configs] == [str(tmp_path / "queues.yaml")]  # type: ignore[attr-defined]
    assert [(c.user, c.action, c.target) for c in changes] == [("admin1", "agent_set", AGENT2)]  # type: ignore[attr-defined]
    assert not list(tmp_path.glob(".*.tmp"))
    # A checkpoint taken now holds the file in force, not the one the server started with.
    site.server.recorder.checkpoint()

    def checkpointed() -> str | None:
        rows = site.crm_rows("SELECT state FROM journal_checkpoints ORDER BY seq DESC LIMIT 1")
        return rows[0]["state"] if rows else None
    state = json.loads(await site.until(checkpointed, "a checkpoint"))
    assert state["acd"] == [str(tmp_path / "queues.yaml"), written]

    # Agent 1002 logs in to complaints (the server did not restart) and gets the complaints caller.
    await agent(site, "agent2", AGENT2, queues=("complaints",))
    _, call_id = await site.ring_agent(AGENT2, PLAIN_CALLER, queue="complaints")
    assert site.server.projector.router.call_view(call_id).queue == "complaints"  # type: ignore[union-attr]

    audit = await boss.request("admin_audit", action="admin:agent_set")
    (entry,) = audit["data"]["entries"]
    assert (entry["actor"], entry["role"]) == ("admin1", "admin")
    assert entry["detail"].startswith(f"{AGENT2}: skills sales=5") and "complaints" in entry["detail"]
    rows = site.crm_rows("SELECT actor, action FROM audit_log WHERE action LIKE 'admin:%'")
    assert [tuple(r) for r in rows] == [("admin1", "admin:agent_set")]


async def test_a_change_that_leaves_a_queue_nobody_can_serve_is_refused(site: AppSite, tmp_path: Path) -> None:
    changes = facts_of(site, f.AdminChanged)
    boss = await admin(site)
    reply = await boss.request("admin_agent_set", agent_id=AGENT1,
                               skills=[{"skill": "sales", "level": 5}, {"skill": "support", "level": 5}],
                               queues=["vip", "sales", "support", "general"])
    assert (reply["type"], reply["code"], reply["reason"]) == ("error", "refused", "queue_unserved"), reply
    assert reply["message"].startswith("queue complaints: skills: no configured agent can ever serve this queue")
    assert "\n" not in reply["message"]
    assert (tmp_path / "queues.yaml").read_text(encoding="utf-8") == QUEUES_YAML
    assert site.server.projector.config.agent(AGENT1).skills["complaints"] == 5
    assert changes == [] and not list(tmp_path.glob(".*.tmp"))
    # An unknown skill or queue is refused the same way.
    bad = await boss.request("admin_agent_set", agent_id=AGENT2, skills=[{"skill": "karate", "level": 3}],
                             queues=["sales"])
    assert bad["code"] == "refused" and "karate" in bad["message"]
    # Not an admin's field: the schema refuses a level out of range before anything is read.
    out_of_range = await boss.request("admin_agent_set", agent_id=AGENT2, skills=[{"skill": "sales", "level": 11}],
                                      queues=["sales"])
    assert (out_of_range["code"], out_of_range["field"]) == ("bad_field", "skills[0].level")
    assert (tmp_path / "queues.yaml").read_text(encoding="utf-8") == QUEUES_YAML


async def test_users_and_passwords(site: AppSite, tmp_path: Path) -> None:
    boss = await admin(site)
    created = await boss.request("admin_user_set", username="super2", role="supervisor", password="first-pass-1",
                                 display_name="王主管", extension="2002", language="zh")
    assert (created["type"], created["data"]["created"]) == ("result", True), created
    cti = (tmp_path / "cti.yaml").read_text(encoding="utf-8")
    assert "super2" in cti and "first-pass-1" not in cti and "王主管" in cti
    assert cti.startswith("# The site of the administration tests.\n")
    other = await ConsoleClient.open(site.ws_url)
    await other.login("super2", "first-pass-1")

    # A new password ends the user's sessions; the old password no longer works, the new one does.
    changed = await boss.request("admin_user_set", username="super2", role="supervisor", password="second-pass-2")
    assert changed["data"]["created"] is False
    with pytest.raises(ConnectionClosed) as closed:
        await other.ws.recv()
        await other.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    old = await ConsoleClient.open(site.ws_url)
    assert (await old.request("auth", username="super2", password="first-pass-1"))["code"] == "auth_failed"
    await (await ConsoleClient.open(site.ws_url)).login("super2", "second-pass-2")

    # A new user needs a password; you cannot delete yourself nor change your own role; the last admin stays.
    nopass = await boss.request("admin_user_set", username="agent9", role="agent")
    assert (nopass["code"], nopass["message"]) == ("refused", "a new user needs a password")
    short = await boss.request("admin_user_set", username="agent9", role="agent", password="1234567")
    assert (short["code"], short["message"]) == ("refused", "a password has at least 8 characters")
    assert (await boss.request("admin_user_delete", username="admin1"))["message"] == \
        "you cannot delete your own account"
    assert (await boss.request("admin_user_set", username="admin1", role="agent"))["message"] == \
        "you cannot change your own role"
    assert (await boss.request("admin_user_delete", username="nobody"))["reason"] == "not_found"
    before = (tmp_path / "cti.yaml").read_bytes()
    assert (tmp_path / "cti.yaml").read_bytes() == before

    deleted = await boss.request("admin_user_delete", username="super2")
    assert deleted["type"] == "result"
    gone = await ConsoleClient.open(site.ws_url)
    assert (await gone.request("auth", username="super2", password="second-pass-2"))["code"] == "auth_failed"
    actions = [r["action"] for r in site.crm_rows("SELECT action FROM audit_log WHERE actor = 'admin1' ORDER BY id")]
    assert actions == ["admin:user_set", "admin:user_set", "admin:user_delete"]


async def test_pause_reasons_reach_the_next_login(site: AppSite, tmp_path: Path) -> None:
    boss = await admin(site)
    reply = await boss.request("admin_pause_reasons_set", reasons=["break", "lunch", "meeting", "supervisor"])
    assert reply["type"] == "result", reply
    a = await ConsoleClient.open(site.ws_url)
    ok = await a.login("agent1", site.passwords["agent1"])
    assert ok["config"]["pause_reasons"] == ["break", "lunch", "meeting", "supervisor"]
    assert (await a.request("agent_login", extension=AGENT1, queues=["sales"]))["type"] == "result"
    assert (await a.request("pause", reason="meeting"))["type"] == "result"
    assert "meeting" in (tmp_path / "queues.yaml").read_text(encoding="utf-8")


async def test_business_hours_and_holidays(site: AppSite, tmp_path: Path) -> None:
    boss = await admin(site)
    flow_file = tmp_path / "flows" / "hours_line.yaml"
    (cal,) = (await boss.request("admin_overview"))["data"]["calendars"]
    assert cal == {"flow": "hours_line", "name": "office", "timezone": "Asia/Shanghai",
                   "hours": [{"days": "mon-fri", "ranges": ["09:00-18:00"]}], "holidays": ["2026-10-01"]}
    reply = await boss.request("admin_calendar_set", flow="hours_line", calendar="office",
                               hours=[{"days": "mon-fri", "ranges": ["08:00-20:00"]},
                                      {"days": "sat", "ranges": ["09:00-12:00", "13:00-15:00"]}],
                               holidays=["2026-10-01", "2026-10-02"])
    assert reply["type"] == "result", reply
    loaded = site.server.flows.get("hours_line").calendars["office"]
    assert len(loaded.hours) == 6 and len(loaded.holidays) == 2
    written = flow_file.read_text(encoding="utf-8")

    for bad, why in (({"timezone": "Mars/Olympus"}, "unknown time zone"),
                     ({"hours": [{"days": "mon", "ranges": ["18:00-09:00"]}]}, "ends before it starts")):
        fields = {"flow": "hours_line", "calendar": "office", "hours": [{"days": "mon", "ranges": ["09:00-17:00"]}],
                  **bad}
        refused = await boss.request("admin_calendar_set", **fields)
        assert refused["code"] == "refused" and why in refused["message"], refused
        assert flow_file.read_text(encoding="utf-8") == written
    assert (await boss.request("admin_calendar_set", flow="nope", calendar="office", hours=[]))["reason"] == \
        "not_found"
    assert HOURS_FLOW.splitlines()[0] == written.splitlines()[0]


async def test_admin_commands_refused_when_the_server_has_no_files(tmp_path: Path) -> None:
    from tests.gateway.gw_harness import app_site
    async with app_site(tmp_path) as site:
        boss = await admin(site)
        reply = await boss.request("admin_pause_reasons_set", reasons=["break"])
        assert (reply["code"], reply["reason"]) == ("refused", "not_configured")
        assert AGENT1 in {a["id"] for a in (await boss.request("admin_overview"))["data"]["agents"]}


async def test_a_new_agent_appears_on_the_supervisors_grid(site: AppSite) -> None:
    boss = await supervisor(site)
    root = await admin(site)
    reply = await root.request("admin_agent_set", agent_id="1003", name="周岚 Zhou Lan",
                               skills=[{"skill": "sales", "level": 3}], queues=["sales"])
    assert (reply["type"], reply["data"]) == ("result", {"created": True}), reply
    row = (await boss.wait_for(lambda m: m["type"] == "agent_grid_delta" and "1003" in m["agents"]))["agents"]["1003"]
    assert (row["name"], row["state"], row["queues"]) == ("周岚 Zhou Lan", "logged_out", [])
    assert site.server.projector.config.agent("1003").queues == ("sales",)


async def test_audit_log_filters(site: AppSite) -> None:
    boss = await admin(site)
    assert (await boss.request("admin_pause_reasons_set", reasons=["break", "supervisor"]))["type"] == "result"
    mine = (await boss.request("admin_audit", actor="admin1"))["data"]["entries"]
    assert [(e["action"], e["detail"]) for e in mine] == [("admin:pause_reasons_set",
                                                            "pause_reasons: break, supervisor")]
    assert (await boss.request("admin_audit", actor="nobody"))["data"]["entries"] == []
    assert (await boss.request("admin_audit", action="admin:pause_reasons_set", since="2000-01-01",
                               until="2000-01-02"))["data"]["entries"] == []
    assert len((await boss.request("admin_audit", action="admin:pause_reasons_set", since="2000-01-01T00:00Z"))
               ["data"]["entries"]) == 1
    everything = (await boss.request("admin_audit", limit=1000))["data"]["entries"]
    assert len(everything) > 1 and everything[0]["action"] == "admin:pause_reasons_set"  # newest first
    bad = await boss.request("admin_audit", since="2026-13-45")
    assert (bad["code"], bad["reason"]) == ("refused", "invalid_value")
    wrong = await boss.request("admin_audit", since="yesterday")
    assert (wrong["code"], wrong["field"]) == ("bad_field", "since")


async def test_a_file_the_server_cannot_write_is_one_line_and_stays(site: AppSite, tmp_path: Path) -> None:
    boss = await admin(site)
    # Where the temporary file would go there is a directory (tests run as root: permissions would not stop it).
    (tmp_path / f".queues.yaml.admin-{os.getpid()}.tmp").mkdir()
    reply = await boss.request("admin_pause_reasons_set", reasons=["break", "supervisor"])
    assert (reply["code"], reply["reason"]) == ("refused", "unavailable"), reply
    assert reply["message"].startswith("cannot write queues.yaml: ")
    assert (tmp_path / "queues.yaml").read_text(encoding="utf-8") == QUEUES_YAML
    assert site.server.projector.config.pause_reasons == ("break", "lunch", "training", "coaching", "supervisor")
