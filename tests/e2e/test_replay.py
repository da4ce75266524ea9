"""Replaying the journal reproduces the CRM interaction rows, the queue_log and the day's statistics
exactly: a simulated busy stretch (abandons, answers, agents and callers hanging up, transfers, wrap-ups
saved and timed out, a server restart in the middle), then the journal replayed into a copy of the CRM
with its call history emptied, and into a new queue_log."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from crmstore.store import open_store
from ctiserver.gateway.backend import Refused, TransferTarget, WrapUpForm
from ctiserver.projections.replay import replay
from ctiserver.reports.engine import Query, run_report
from pbxsim.people import CallerBehaviour

from .stack import DEMO, Stack, agent_principal, running_stack

AGENTS = ("1001", "1002", "1003", "1004")
QUEUES = """\
priority_aging_per_s: 1.0
skills: [sales, support, complaints, english]
pause_reasons: [break]
queues:
  - {name: vip, skills: {support: 1}, ring_timeout_s: 10, wrap_up_s: 1, announce_every_s: 0}
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 10, wrap_up_s: 1, announce_every_s: 0}
  - {name: support, skills: {support: 1}, ring_timeout_s: 10, wrap_up_s: 1, announce_every_s: 0,
     short_abandon_s: 0.2}
  - {name: complaints, skills: {complaints: 1}, ring_timeout_s: 10, wrap_up_s: 1, announce_every_s: 0}
  - {name: general, skills: {english: 1}, ring_timeout_s: 10, wrap_up_s: 1, announce_every_s: 0}
agents:
""" + "".join(f'  - {{id: "{a}", name: Agent {a}, skills: {{sales: 5, support: 5, complaints: 5, english: 5}}, '
              f'queues: [vip, sales, support, complaints, general], endpoint: PJSIP/{a}}}\n' for a in AGENTS)
COLUMNS = "call_id, root_call_id, segment, customer_id, direction, outcome, caller, dialed, started_at, answered_at, " \
          "ended_at, queue, agent, wait_s, talk_s, hold_s, wrapup_s, disposition, notes, ivr_path, recording_ref, " \
          "survey_score, hung_up_by, end_cause, end_inferred, end_not_after, call_ended_at, transferred_to"


def history(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT {COLUMNS} FROM interactions ORDER BY call_id").fetchall()


async def traffic(st: Stack, rng: random.Random, calls: int) -> None:
    """Callers arrive; some give up waiting, some talk until they hang up, some agents hang up first."""
    for n in range(calls):
        menu = rng.choice(["1", "2", "2", "3"])
        st.place_call(f"1380013{n:04d}", CallerBehaviour(keys=("", menu), patience=rng.choice([0.5, 3.0, 10_000])))
        await asyncio.sleep(rng.uniform(0.05, 0.3))


async def hang_up_talkers(st: Stack, rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.2)
        for run in list(st.sim.callers):
            chan = run.chan
            if not chan.dead and chan.bridge is not None and rng.random() < 0.15:
                run.hang_up()


async def agents_at_work(st: Stack, rng: random.Random, stop: asyncio.Event) -> None:
    """Now and then an agent transfers the caller to another queue, or saves the wrap-up early."""
    while not stop.is_set():
        await asyncio.sleep(0.25)
        router = st.server.projector.router
        for a in AGENTS:
            view = router.agent_view(a, st.now())
            who = agent_principal(a)
            try:
                if view.state == "on_call" and view.call_id and rng.random() < 0.05:
                    await st.console.blind_transfer(who, view.call_id, TransferTarget("queue", "general"))
                elif view.state == "wrap_up" and view.call_id and rng.random() < 0.5:
                    await st.console.save_wrapup(who, view.call_id, WrapUpForm("resolved", f"by {a}"))
            except Refused:
                pass  # the call moved on meanwhile: what an agent sees too


async def test_replaying_the_journal_reproduces_rows_queue_log_and_statistics(tmp_path: Path) -> None:
    rng = random.Random(7)
    async with running_stack(tmp_path, acd=QUEUES, agents=AGENTS) as st:
        for a in AGENTS:
            st.sim.add_agent_phone(a, answer_after=rng.choice([0.5, 1.0]), talk_time=rng.choice([None, 40.0]))
        st.login(*AGENTS)
        stop = asyncio.Event()
        helpers = [asyncio.create_task(hang_up_talkers(st, rng, stop)),
                   asyncio.create_task(agents_at_work(st, rng, stop))]
        await traffic(st, rng, 25)
        await st.restart_server()  # the projections go on from the journal
        await st.pbx.link.wait_up(10)
        await traffic(st, rng, 25)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*helpers)
        for run in list(st.sim.callers):
            run.hang_up()
        await st.until(lambda: not st.pbx.model.live_calls(), timeout=40,
                       what=lambda: f"every call ended: {[(c.call_id, c.phase, list(c.legs)) for c in st.pbx.model.live_calls()]}"
                            f" sim: {[(ch.name, ch.state) for ch in st.sim.world.channels.values()]}")
        await st.until(lambda: all(st.agent_state(a) == "available" for a in AGENTS), timeout=20,
                       what="every wrap-up over")
        server = st.server
        await wallboard_equals_the_report(st)
    live_rows = history(tmp_path / "crm.db")
    live_log = (tmp_path / "queue_log").read_text()
    live_stats = server.projector.stats.live.dump()
    answered = sum(1 for r in live_rows if r[5] == "answered")
    abandoned = sum(1 for r in live_rows if r[5] == "abandoned")
    assert answered >= 10 and abandoned >= 3 and any(r[27] for r in live_rows)  # a busy hour, not an idle one
    assert all(r[10] for r in live_rows)  # every row has its end

    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "crm.db", copy)
    with sqlite3.connect(copy) as con:
        con.execute("DELETE FROM interactions")
    source = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    into = await open_store(f"sqlite:///{copy}")
    try:
        done = await replay(source, into=into, queue_log=tmp_path / "queue_log.replayed")
    finally:
        await into.close()
        await source.close()
    assert history(copy) == live_rows
    assert (tmp_path / "queue_log.replayed").read_text() == live_log
    assert done.projector.stats.live.dump() == live_stats


async def wallboard_equals_the_report(st: Stack) -> None:
    """Live and historical agree: today's wallboard figures (LiveStats, carried over the restart) equal the
    report of today (the closed intervals in the database plus the open one in the server)."""
    server = st.server
    await server.journal.flush()
    now = st.now()
    tz = datetime.now().astimezone().tzinfo
    first = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    query = Query("inbound-summary", first, first + timedelta(days=1), "total")
    report = await run_report(server.crm, query, server.projector.config, live=server.projector.intervals, now=now)
    wallboard = server.projector.stats.live.snapshot(now)
    compared = 0
    for row in report.rows:
        live = wallboard[row["queue"]]
        assert (row["answered"], row["abandoned"] - row["short_abandoned"], row["short_abandoned"]) == (
            live.answered, live.abandoned, live.short_abandoned), row["queue"]
        assert row["service_level"] == (None if live.service_level_pct is None
                                         else round(live.service_level_pct, 1)), row["queue"]
        assert row["asa"] == (None if live.asa_s is None else round(live.asa_s, 1)), row["queue"]
        compared += row["answered"] + row["abandoned"]
    assert compared >= 10


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctiserver.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


async def test_journal_replay_command(tmp_path: Path) -> None:
    """`ctiserver journal replay --config`: the operator's way to rebuild a lost queue_log or check a copy."""
    async with running_stack(tmp_path, acd=QUEUES, agents=AGENTS) as st:
        st.sim.add_agent_phone("1001", answer_after=0.5, talk_time=1.0)
        st.login("1001")
        for n in range(3):
            st.place_call(f"1380099{n:04d}", CallerBehaviour(keys=("", "2"), patience=10_000))
        await st.until(lambda: st.queue_log().count("|COMPLETE") == 3, timeout=30, what="three calls served")
        await st.until(lambda: st.agent_state("1001") == "available", timeout=10, what="the wrap-up over")
    (tmp_path / "queues.yaml").write_text(QUEUES)
    cfg = tmp_path / "cti.yaml"
    cfg.write_text(f"""
pbx: [{{name: pbx1, host: 127.0.0.1, port: 5038, username: cti, secret: s}}]
crm: {{url: "sqlite:///{tmp_path / 'crm.db'}"}}
ivr: {{flows_dir: {DEMO / 'flows'}, default_flow: main}}
acd: {{queues_file: queues.yaml}}
security: {{token_secret: "0123456789abcdef0123"}}
""")
    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "crm.db", copy)
    with sqlite3.connect(copy) as con:
        con.execute("DELETE FROM interactions")
    res = await asyncio.to_thread(_cli, "journal", "replay", "--config", str(cfg), "--into", f"sqlite:///{copy}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "call history rows written" in res.stdout and "support: answered 3" in res.stdout and "3 call history rows" in res.stdout, res.stdout
    assert (tmp_path / "queue_log.replayed").read_text() == (tmp_path / "queue_log").read_text()
    assert history(copy) == history(tmp_path / "crm.db")

    missing = await asyncio.to_thread(_cli, "journal", "replay", "--config", str(cfg),
                                      "--queue-log", str(tmp_path / "no" / "such" / "folder" / "ql"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
