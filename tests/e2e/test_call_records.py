"""Every answered call gets exactly one CRM row with its times, whoever hangs up first and whenever the
wrap-up is saved; who hung up comes from the facts of the hang-up; ends nobody saw are marked inferred."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from ctiserver.gateway.backend import WrapUpForm
from pbxsim.channels import Channel
from pbxsim.people import CallerBehaviour

from .queues import TEST_QUEUES
from .stack import Stack, agent_principal, running_stack

SUPPORT = CallerBehaviour(keys=("", "2"), patience=10_000)  # greeting, then "2" in the menu: support
# Support, then after the agent hangs up the survey asks twice (no answer, then 4): the caller stays a while.
SUPPORT_THEN_SLOW_SURVEY = CallerBehaviour(keys=("", "2", "", "", "4"), patience=10_000)


def rows(st: Stack, call_id: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(st.tmp / "crm.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM interactions WHERE root_call_id = ? ORDER BY segment", (call_id,)).fetchall()
    finally:
        con.close()


def ends_in_queue_log(st: Stack, call_id: str) -> list[str]:
    return [ln for ln in st.queue_log().splitlines() if f"|{call_id}|" in ln and "|COMPLETE" in ln]


def agent_phone(st: Stack, agent_id: str) -> Channel:
    chans = [c for c in st.sim.world.channels.values() if not c.dead and c.name.startswith(f"PJSIP/{agent_id}-")]
    assert len(chans) == 1, chans
    return chans[0]


async def connected_call(st: Stack, caller: str, behaviour: CallerBehaviour = SUPPORT) -> tuple[str, str]:
    line = st.place_call(caller, behaviour)
    call_id = await st.until(lambda: st.call_id_of(line), what="call known")
    await st.until(lambda: st.phase(call_id) == "connected", what="connected")
    return line, call_id


async def settled_rows(st: Stack, call_id: str, *, wait_for_call_end: bool = True) -> list[sqlite3.Row]:
    def done() -> bool:
        got = rows(st, call_id)
        return bool(got) and all(r["ended_at"] for r in got) and (
            not wait_for_call_end or all(r["call_ended_at"] for r in got))
    await st.until(done, what=f"the rows of {call_id}")
    return rows(st, call_id)


async def test_agent_hangs_up_first_wrap_up_saved_while_the_caller_is_still_on(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        _line, call_id = await connected_call(st, "13800138071", SUPPORT_THEN_SLOW_SURVEY)
        st.sim.world.queue_hangup(agent_phone(st, "1001"), 16)  # the agent's phone sends BYE
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="wrap-up")
        await st.until(lambda: st.phase(call_id) == "ivr", what="the caller in the survey")
        # The wrap-up is saved while the caller is still on the line, answering the survey.
        await st.console.save_wrapup(agent_principal("1001"), call_id, WrapUpForm("resolved", "early"))
        (row,) = rows(st, call_id)
        assert row["ended_at"] and row["call_ended_at"] is None and row["disposition"] == "resolved"
        await st.until(lambda: st.phase(call_id) is None, timeout=15, what="the caller's leg ended")
        (row,) = await settled_rows(st, call_id)
        assert row["started_at"] <= row["answered_at"] <= row["ended_at"] < row["call_ended_at"]
        assert (row["hung_up_by"], row["end_inferred"], row["disposition"], row["survey_score"]) == (
            "agent", 0, "resolved", 4)
        await st.until(lambda: len(ends_in_queue_log(st, call_id)) == 1, what="one queue_log end")
        assert "|COMPLETEAGENT|" in ends_in_queue_log(st, call_id)[0]


async def test_agent_hangs_up_first_caller_leaves_before_the_wrap_up(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138072")
        st.sim.world.queue_hangup(agent_phone(st, "1001"), 16)
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="wrap-up")
        if st.sim.channel(line) is not None:
            st.hang_up(line)
        await st.until(lambda: st.phase(call_id) is None, what="the call ended")
        (row,) = await settled_rows(st, call_id)
        assert row["disposition"] == "" and row["hung_up_by"] == "agent"
        await st.console.save_wrapup(agent_principal("1001"), call_id, WrapUpForm("follow_up", "late"))
        (row,) = rows(st, call_id)
        assert (row["disposition"], row["notes"], row["hung_up_by"]) == ("follow_up", "late", "agent")
        assert row["started_at"] and row["answered_at"] and row["ended_at"] and row["call_ended_at"]


async def test_who_hung_up_is_read_from_the_hang_up_itself(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        # The caller hangs up (the trunk sends BYE: HangupRequest on the caller's channel first).
        line, by_caller = await connected_call(st, "13800138073")
        st.hang_up(line)
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="wrap-up")
        await st.ready("1001")
        # The agent hangs up from the console (an AMI Hangup: no request event, the agent leg's own Hangup).
        _line, by_agent = await connected_call(st, "13800138074")
        await st.console.hangup(agent_principal("1001"), by_agent)
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="wrap-up")
        for call_id, side, verb in ((by_caller, "caller", "COMPLETECALLER"), (by_agent, "agent", "COMPLETEAGENT")):
            (row,) = await settled_rows(st, call_id, wait_for_call_end=False)
            assert row["hung_up_by"] == side
            await st.until(lambda call_id=call_id: len(ends_in_queue_log(st, call_id)) == 1, what="queue_log end")
            assert f"|{verb}|" in ends_in_queue_log(st, call_id)[0]


async def test_a_call_that_ends_while_ami_is_away_is_inferred_with_bounds(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138075")
        await asyncio.sleep(0.3)
        await st.sim.stop_ami()
        down_at = time.time()
        await asyncio.sleep(0.3)
        st.hang_up(line)
        await asyncio.sleep(0.5)
        back_at = time.time()
        await st.sim.start()
        await st.until(lambda: st.pbx.link.connects == 2 and st.pbx.link.is_up, timeout=15, what="link back")
        (row,) = await settled_rows(st, call_id)
        assert (row["end_inferred"], row["hung_up_by"], row["end_cause"]) == (1, "unknown", None)
        # The end lies between the last moment seen alive (the link going down) and the resync; the times
        # count to the first, so an outage never lengthens a call.
        assert down_at - 0.5 < row["ended_at"] <= down_at + 0.5 and back_at <= row["end_not_after"]
        assert row["call_ended_at"] == row["ended_at"]
        assert row["talk_s"] <= down_at + 0.5 - row["answered_at"]
        await st.until(lambda: len(ends_in_queue_log(st, call_id)) == 1, what="one queue_log end")
        assert ends_in_queue_log(st, call_id)[0].endswith("|unknown")


async def test_a_pbx_restart_ends_calls_with_cause_unknown_not_normal_clearing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        _line, talking = await connected_call(st, "13800138076")
        waiting_line = st.place_call("13800138077", SUPPORT)
        waiting = await st.until(lambda: st.call_id_of(waiting_line), what="second caller known")
        await st.until(lambda: st.call_state(waiting) == "waiting", what="second caller waiting")
        before = time.time()
        await st.sim.restart_pbx()
        await st.until(lambda: st.pbx.link.connects == 2 and st.pbx.link.is_up, timeout=15, what="link back")
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="the agent's call ended")
        (row,) = await settled_rows(st, talking)
        assert (row["end_inferred"], row["hung_up_by"], row["end_cause"]) == (1, "unknown", None)
        assert before <= row["ended_at"] <= row["end_not_after"]
        (left,) = await settled_rows(st, waiting)
        assert (left["outcome"], left["end_inferred"], left["hung_up_by"]) == ("lost", 1, "unknown")
        stats = st.server.projector.stats.live.snapshot(st.now())["support"]
        assert stats.abandoned + stats.short_abandoned == 0  # a restart is nobody's abandon
        con = sqlite3.connect(st.tmp / "crm.db")
        kinds = [k for (k,) in con.execute("SELECT kind FROM journal ORDER BY seq")]
        assert "pbx.restarting" in kinds
        await st.until(lambda: len(ends_in_queue_log(st, talking)) == 1, what="one queue_log end")
        assert ends_in_queue_log(st, talking)[0].endswith("|unknown")
