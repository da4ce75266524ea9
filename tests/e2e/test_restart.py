"""kill -9 of the server process in the middle of a busy moment, then a restart on the same journal.

The site: the PBX simulator in this process, `ctiserver run` as a child process (pbxsim.site), a SQLite CRM
on disk. 20 callers wait, 5 agents talk, 3 are in wrap-up, and one more call is talking when the server is
killed and ends while it is down. After the restart nothing may be lost or told twice: waiting callers keep
their places, talking agents keep their calls and get no other offer, consoles resume without a login, the
wrap-ups can be saved, the day's figures go on, and each call gets exactly one CRM row and one queue_log end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from ctiserver.gateway.auth import hash_password
from pbxsim.people import CallerBehaviour
from pbxsim.site import ProcessSite, SiteConfig
from tests.gateway.gw_client import ConsoleClient

AGENTS = [f"20{n:02d}" for n in range(1, 10)]  # 2001-2005 talk, 2006 talks and ends while down, 2007-2009 wrap up
TALKING, ENDS_WHILE_DOWN, WRAPPING = AGENTS[:5], AGENTS[5], AGENTS[6:]
PASSWORD = "agent-pass-1"
QUEUES = """\
skills: [support]
pause_reasons: [break]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 3600, ring_timeout_s: 20, announce_every_s: 0}
agents:
""" + "".join(f'  - {{id: "{a}", name: Agent {a}, skills: {{support: 1}}, queues: [support]}}\n' for a in AGENTS)
FLOW = """\
flow: main
language: en-US
fallback: {queue: support}
start: wait
nodes:
  wait: {type: queue, queue: support}
"""
# A caller the CTI lost waits this long (virtual seconds) in [cti-fallback] before the operator is dialled.
SLOW_FALLBACK = {"CTI_FALLBACK_WAIT": "100000"}


def _site(tmp: Path) -> ProcessSite:
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    secret = hash_password(PASSWORD, n=2**10)
    accounts = [{"username": f"agent{a}", "role": "agent", "agent_id": a, "password_hash": secret} for a in AGENTS]
    accounts.append({"username": "boss", "role": "supervisor", "password_hash": secret})
    # Checkpoints every 40 facts: the restart reads the last checkpoint and replays only the facts after it.
    journal = {"journal": {"checkpoint_facts": 40}}
    return ProcessSite(tmp, SiteConfig(QUEUES, flows, accounts, extra=journal), sim_globals=SLOW_FALLBACK)


async def until(predicate, what: str, timeout: float = 20.0, monitor: Monitor | None = None):  # type: ignore[no-untyped-def]
    """Poll `predicate`; with a monitor, read the supervisor's pushes before each look."""
    deadline = time.monotonic() + timeout
    while True:
        if monitor is not None:
            await monitor.settle(0.05)
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f" (monitor: {monitor.wallboard}, {monitor.agents})" if monitor is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{seen}")
        await asyncio.sleep(0.05)


async def _agent(site: ProcessSite, agent_id: str) -> ConsoleClient:
    console = await ConsoleClient.open(site.ws_url)
    await console.login(f"agent{agent_id}", PASSWORD)
    reply = await console.request("agent_login", extension=agent_id, queues=["support"])
    assert reply["type"] == "result", reply
    return console


def _talking_call(console: ConsoleClient) -> str | None:
    for m in reversed(console.seen):
        if m["type"] == "call_state" and m["call"]["state"] in ("talking", "held"):
            return str(m["call"]["call_id"])
    return None


class Monitor:
    """The supervisor's view, kept up to date from the snapshot and the deltas."""

    def __init__(self, console: ConsoleClient) -> None:
        self.console = console
        self.agents: dict[str, dict[str, object]] = {}
        self.calls: dict[str, dict[str, object]] = {}
        self.wallboard: dict[str, dict[str, object]] = {}
        self.apply(list(console.seen))  # the snapshot the login already read

    def apply(self, messages: list[dict[str, object]]) -> None:
        for m in messages:
            if m["type"] == "snapshot":
                self.agents, self.calls = dict(m["agents"]), dict(m["call_list"])  # type: ignore[call-overload]
                self.wallboard = dict(m["wallboard"])  # type: ignore[call-overload]
            for table, kind, key in ((self.agents, "agent_grid_delta", "agents"),
                                     (self.calls, "call_list_delta", "calls"),
                                     (self.wallboard, "wallboard_delta", "queues")):
                if m["type"] == kind:
                    for k, row in m[key].items():  # type: ignore[attr-defined]
                        if row is None:
                            table.pop(k, None)
                        else:
                            table.setdefault(k, {}).update(row)

    async def settle(self, seconds: float = 0.3) -> None:
        self.apply(await self.console.collect(seconds))

    def state(self, agent_id: str) -> object:
        return self.agents.get(agent_id, {}).get("state")


def _phones_in_use(site: ProcessSite, agent_id: str) -> int:
    return sum(1 for c in site.sim.world.channels.values()
               if not c.dead and c.name.startswith(f"PJSIP/{agent_id}-"))


async def test_kill_9_with_callers_waiting_agents_talking_and_wrapping_up(tmp_path: Path) -> None:
    site = _site(tmp_path)
    await site.start()
    try:
        for a in AGENTS:
            site.sim.add_agent_phone(a, answer_after=0.5)
        consoles = {a: await _agent(site, a) for a in AGENTS}
        boss = await ConsoleClient.open(site.ws_url)
        await boss.login("boss", PASSWORD)
        monitor = Monitor(boss)

        # Nine callers reach the nine agents.
        for i in range(len(AGENTS)):
            site.sim.place_call("5551000", f"1380013{i:04d}", f"Caller {i}", CallerBehaviour(patience=100_000))
        calls: dict[str, str] = {}
        for a, console in consoles.items():
            await console.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "talking", 15)
            calls[a] = _talking_call(console) or ""
        assert len(set(calls.values())) == 9
        for a in WRAPPING:
            _hang_up(site, calls[a])
        for a in WRAPPING:
            await consoles[a].wait_for(lambda m: m["type"] == "agent_state" and m["agent"]["state"] == "wrap_up")
        # Twenty callers wait: nobody is free.
        waiting_lines = [site.sim.place_call("5551000", f"1390013{i:04d}", f"Waiting {i}",
                                             CallerBehaviour(patience=100_000)).name for i in range(20)]

        def twenty_waiting() -> bool:
            return monitor.wallboard.get("support", {}).get("waiting") == 20

        await until(twenty_waiting, "20 callers waiting", 30, monitor)
        await monitor.settle()
        order_before = sorted((row["position"], cid) for cid, row in monitor.calls.items() if row.get("state") == "waiting")
        answered_before = monitor.wallboard["support"]["answered"]
        assert answered_before == 9 and len(order_before) == 20

        # kill -9; while the server is down the sixth talking call ends.
        killed_at = time.time()
        site.kill()
        _hang_up(site, calls[ENDS_WHILE_DOWN])
        await asyncio.sleep(0.5)
        restarted_at = time.time()
        await site.start_server()

        # Consoles resume with their tokens: no new login.
        resumed = {}
        for a, console in consoles.items():
            again = await ConsoleClient.open(site.ws_url)
            reply = await again.request("resume", token=console.token, last_seq=console.last_seq, stream=console.stream)
            assert reply["type"] == "auth_ok" and reply["resumed"] is True, reply
            snap = await again.wait_for("snapshot")
            resumed[a] = (again, snap)
        for a in TALKING:
            snap = resumed[a][1]
            assert snap["agent"]["state"] == "on_call", (a, snap["agent"])
            assert [c["call_id"] for c in snap["calls"]] == [calls[a]]
        boss2 = await ConsoleClient.open(site.ws_url)
        reply = await boss2.request("resume", token=boss.token, last_seq=boss.last_seq, stream=boss.stream)
        assert reply["type"] == "auth_ok" and reply["resumed"] is True, reply
        monitor = Monitor(boss2)

        # The waiting callers are taken back from the dialplan's fallback, in their places.
        await until(twenty_waiting, "20 callers waiting again", 40, monitor)
        await monitor.settle()
        order_after = sorted((row["position"], cid) for cid, row in monitor.calls.items() if row.get("state") == "waiting")
        assert order_after == order_before
        assert all(site.sim.channel(name) is not None for name in waiting_lines)  # no caller lost
        # The day's figures go on from where they were.
        assert monitor.wallboard["support"]["answered"] == answered_before
        # The call that ended while the server was down: the agent is in wrap-up for it.
        await until(lambda: monitor.state(ENDS_WHILE_DOWN) == "wrap_up", "2006 in wrap-up", monitor=monitor)
        for a in TALKING:
            assert monitor.state(a) == "on_call"
            assert _phones_in_use(site, a) == 1  # never double-booked

        # The three wrap-ups can be saved; the agents take the next callers.
        for a in WRAPPING:
            console = resumed[a][0]
            reply = await console.request("wrapup", call_id=calls[a], disposition="resolved", notes=f"note {a}")
            assert reply["type"] == "wrapup_saved", reply
        await until(lambda: all(monitor.state(a) == "on_call" for a in WRAPPING),
                    "the freed agents take the next callers", monitor=monitor)
        for a in TALKING:
            assert monitor.state(a) == "on_call" and _phones_in_use(site, a) == 1

        # The five talking calls end after the restart.
        for a in TALKING:
            _hang_up(site, calls[a])
        await until(lambda: all(monitor.state(a) == "wrap_up" for a in TALKING), "the five in wrap-up",
                    monitor=monitor)
        assert await site.stop_server() == 0
    finally:
        await site.close()

    con = sqlite3.connect(site.db)
    con.row_factory = sqlite3.Row
    assert con.execute("SELECT COUNT(*) FROM journal_checkpoints").fetchone()[0] >= 1
    assert "facts replayed after checkpoint" in site.log.read_text()
    for a in (*TALKING, *WRAPPING, ENDS_WHILE_DOWN):
        rows = con.execute("SELECT * FROM interactions WHERE root_call_id = ?", (calls[a],)).fetchall()
        assert len(rows) == 1, (a, [dict(r) for r in rows])
        row = rows[0]
        assert row["agent"] == a and row["answered_at"] and row["ended_at"] and row["started_at"], dict(row)
        if a == ENDS_WHILE_DOWN:
            assert (row["end_inferred"], row["hung_up_by"]) == (1, "unknown")
            # Last seen alive: the killed server's last fact (a heartbeat every 2 s at least); first seen
            # gone: the restarted server's resync.
            assert killed_at - 2.5 < row["ended_at"] <= killed_at < restarted_at < row["end_not_after"]
        else:
            assert (row["end_inferred"], row["hung_up_by"]) == (0, "caller")
    for a in WRAPPING:
        row = con.execute("SELECT disposition, notes FROM interactions WHERE call_id = ?", (calls[a],)).fetchone()
        assert tuple(row) == ("resolved", f"note {a}")
    lines = site.queue_log.read_text().splitlines()
    for a in (*TALKING, *WRAPPING, ENDS_WHILE_DOWN):
        ends = [ln for ln in lines if f"|{calls[a]}|" in ln and "|COMPLETE" in ln]
        assert len(ends) == 1, (a, ends)
        assert ends[0].endswith("|unknown") == (a == ENDS_WHILE_DOWN)


def _hang_up(site: ProcessSite, call_id_or_channel: str) -> None:
    for run in site.sim.callers:
        if run.chan.uniqueid == call_id_or_channel or run.chan.name == call_id_or_channel or \
                run.chan.linkedid == call_id_or_channel:
            run.hang_up()
            return
    raise AssertionError(f"no caller for {call_id_or_channel}")
