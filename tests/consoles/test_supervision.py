"""The supervisors' grid shows who monitors whom (from the journaled spy facts) and each agent's figures of the
day (from the live statistics). Real server, real websocket, the simulator; and the pure parts alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acd.config import parse_config
from acd.decisions import AgentStateChanged
from acd.stats import LiveStats
from ctiserver.journal import facts as f
from ctiserver.supervision.notifier import MonitoringBoard
from tests.gateway.gw_client import Msg
from tests.gateway.gw_harness import ACD_YAML, AGENT1, SUPERVISOR_EXTENSION, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent_state, supervisor

from .test_spy import talking


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path) as s:
        s.sim.world.phones[SUPERVISOR_EXTENSION].answer_after = 0.2
        yield s


def monitored(agent_id: str, present: bool):  # type: ignore[no-untyped-def]
    def test(m: Msg) -> bool:
        row = m.get("agents", {}).get(agent_id) if m["type"] == "agent_grid_delta" else None
        return row is not None and "monitored_by" in row and (row["monitored_by"] is not None) == present
    return test


async def test_the_grid_shows_who_listens_to_whom_until_it_stops(site: AppSite) -> None:
    await talking(site)
    boss = await supervisor(site)
    other = await supervisor(site, "admin1")
    assert (await boss.request("spy", agent_id=AGENT1, mode="whisper"))["type"] == "result"
    for watcher in (boss, other):  # every supervisor sees it
        row = (await watcher.wait_for(monitored(AGENT1, True)))["agents"][AGENT1]
        assert list(row["monitored_by"]) == ["super1"] and row["monitored_by"]["super1"]["mode"] == "whisper"
        assert isinstance(row["monitored_by"]["super1"]["since"], float)
    # A monitor opened now finds it in its snapshot.
    late = await supervisor(site, "admin1")
    snapshot = next(m for m in late.seen if m["type"] == "snapshot")
    assert snapshot["agents"][AGENT1]["monitored_by"]["super1"]["mode"] == "whisper"

    assert (await boss.request("spy_stop"))["data"] == {"stopped": True}
    await boss.wait_for(monitored(AGENT1, False))
    await other.wait_for(monitored(AGENT1, False))


async def test_the_grid_carries_the_agents_figures_of_the_day(site: AppSite) -> None:
    boss = await supervisor(site)
    first = next(m for m in boss.seen if m["type"] == "snapshot")["agents"][AGENT1]
    assert (first["calls_today"], first["aht_s"], first["occupancy_pct"]) == (0, None, None)
    a, call_id = await talking(site)
    assert (await a.request("hangup", call_id=call_id))["type"] == "result"
    await a.wait_for(agent_state("wrap_up"))

    def counted(m: Msg) -> bool:
        row = m.get("agents", {}).get(AGENT1) if m["type"] == "agent_grid_delta" else None
        return bool(row) and row.get("calls_today") == 1 and row.get("aht_s") is not None
    row = (await boss.wait_for(counted))["agents"][AGENT1]
    assert row["occupancy_pct"] is not None and 0 <= row["occupancy_pct"] <= 100


def test_monitoring_board_follows_the_spy_facts() -> None:
    board = MonitoringBoard()
    assert board.apply(f.SupervisorAction("s1", "spy:listen", "1001", "c1"), 10.0) == ["1001"]
    assert board.apply(f.SupervisorAction("s2", "spy:barge", "1001", "c1"), 11.0) == ["1001"]
    assert board.of("1001") == {"s1": {"mode": "listen", "since": 10.0}, "s2": {"mode": "barge", "since": 11.0}}
    # s1 moves to another agent: one spy per supervisor.
    assert board.apply(f.SupervisorAction("s1", "spy:whisper", "1002", "c2"), 12.0) == ["1001", "1002"]
    assert list(board.of("1001")) == ["s2"]
    assert board.apply(f.SupervisorAction("s2", "spy_stop", "1001", "c1:stopped"), 13.0) == ["1001"]
    assert board.of("1001") == {}
    assert board.apply(f.SupervisorAction("s2", "spy_stop", "1001", "c1:stopped"), 14.0) == []
    assert board.apply(f.SupervisorAction("s2", "force_pause", "1001", "lunch"), 15.0) == []


def _move(agent: str, old: str, new: str, at: float, spent: float) -> AgentStateChanged:
    return AgentStateChanged(agent, old, new, "", at, spent, ("sales",))


def test_an_agents_day_counts_answers_handle_time_and_occupancy() -> None:
    stats = LiveStats(parse_config(ACD_YAML))
    stats.observe([_move(AGENT1, "logged_out", "available", 100.0, 0.0),
                   _move(AGENT1, "available", "reserved", 160.0, 60.0),
                   _move(AGENT1, "reserved", "on_call", 170.0, 10.0),
                   _move(AGENT1, "on_call", "on_hold", 230.0, 60.0),
                   _move(AGENT1, "on_hold", "on_call", 250.0, 20.0),
                   _move(AGENT1, "on_call", "wrap_up", 270.0, 20.0),
                   _move(AGENT1, "wrap_up", "available", 290.0, 20.0)])
    day = stats.agent_day(AGENT1, 310.0)
    assert day.answered == 1
    assert day.aht_s == 120.0  # talk 60 + hold 20 + talk 20 + wrap-up 20, one call
    assert day.occupancy_pct == pytest.approx(100.0 * 130 / (130 + 60 + 20))  # the idle 20 s in progress count
    # A checkpoint keeps them; a new day starts them again.
    again = LiveStats(parse_config(ACD_YAML))
    again.load(stats.dump())
    assert again.agent_day(AGENT1, 310.0) == day
    stats.reset_counters(300.0)
    assert stats.agent_day(AGENT1, 310.0).answered == 0
