"""Transfers move the call in the one owner of who has which call (the ACD router): the target is busy at
once and offered nothing else, the first agent goes to wrap-up, the caller is never dropped, and every
agent's part of the call has its CRM row with an end."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from acd import events as ev
from ctiserver.callmodel import events as ce
from ctiserver.gateway.backend import Refused, TransferTarget

from .queues import TEST_QUEUES
from .stack import Stack, agent_principal, running_stack
from .test_call_records import SUPPORT, connected_call

# 1003 serves sales only: the queue a caller is transferred to.
QUEUES = TEST_QUEUES + """\
  - {id: "1003", name: Li Lei, skills: {sales: 5}, queues: [sales], endpoint: PJSIP/1003}
"""


def rows(st: Stack, call_id: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(st.tmp / "crm.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM interactions WHERE root_call_id = ? ORDER BY segment", (call_id,)).fetchall()
    finally:
        con.close()


def bridged_with(st: Stack, caller_line: str) -> list[str]:
    """The names of the channels bridged with the caller on the simulator (the PBX's truth)."""
    snap = st.sim.snapshot()
    me = snap.by_name().get(caller_line)
    if me is None or me.bridge is None:
        return []
    return [n for n in snap.bridges[me.bridge] if n != caller_line]


async def all_parts_ended(st: Stack, call_id: str, parts: int) -> list[sqlite3.Row]:
    await st.until(lambda: len(rows(st, call_id)) == parts and all(r["ended_at"] for r in rows(st, call_id)),
                   what=f"{parts} rows with their ends")
    return rows(st, call_id)


async def test_blind_transfer_to_an_agent(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1002")) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138081")
        st.login("1002")
        phases: list[str] = []
        st.server.bus.subscribe(ce.CallPhaseChanged,
                                lambda e: phases.append(e.new.value) if e.call_id == call_id else None)
        await st.console.blind_transfer(agent_principal("1001"), call_id, TransferTarget("agent", "1002"))
        # The target is reserved at once: a caller arriving now is not handed to them.
        assert st.agent_state("1002") in ("reserved", "on_call")
        assert st.agent_state("1001") == "wrap_up"
        other = st.place_call("13800138082", SUPPORT)
        other_call = await st.until(lambda: st.call_id_of(other), what="second caller known")
        await st.until(lambda: st.call_state(other_call) == "waiting", what="second caller waiting")
        await st.until(lambda: st.agent_state("1002") == "on_call", what="1002 answered the transfer")
        await st.until(lambda: any(n.startswith("PJSIP/1002-") for n in bridged_with(st, line)),
                       what="the caller bridged with 1002")
        assert st.call_state(other_call) == "waiting"  # never offered to the busy 1002
        view = st.server.projector.router.call_view(call_id)
        assert view is not None and view.agent_id == "1002"
        st.hang_up(line)
        first, second = await all_parts_ended(st, call_id, 2)
        assert (first["agent"], first["transferred_to"], second["agent"], second["hung_up_by"]) == (
            "1001", "agent:1002", "1002", "caller")
        assert second["answered_at"] >= first["ended_at"]
        # While 1002's phone rang the call was offered to 1002 (not "on hold"), and the ring is journaled.
        assert "offered" in phases and phases.index("offered") < phases.index("connected"), phases
        with sqlite3.connect(st.tmp / "crm.db") as con:
            rang = con.execute("SELECT count(*) FROM journal WHERE kind = 'acd.offer_ringing' AND call_id = ? "
                               "AND agent_id = '1002'", (call_id,)).fetchone()
        assert rang == (1,)


async def test_a_transfer_to_a_busy_agent_is_refused_and_the_caller_stays(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1002")) as st:
        st.login("1001", "1002")
        line, call_id = await connected_call(st, "13800138083")
        await connected_call(st, "13800138084")
        agent = st.server.projector.router.call_view(call_id).agent_id  # type: ignore[union-attr]
        busy = "1002" if agent == "1001" else "1001"
        with pytest.raises(Refused, match="not available"):
            await st.console.blind_transfer(agent_principal(agent), call_id, TransferTarget("agent", busy))
        assert st.agent_state(agent) == "on_call" and bridged_with(st, line)


async def test_blind_transfer_to_a_queue(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1003")) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138085")
        await st.console.blind_transfer(agent_principal("1001"), call_id, TransferTarget("queue", "sales"))
        assert st.agent_state("1001") == "wrap_up"
        await st.until(lambda: st.call_state(call_id) == "waiting", what="the caller waits in sales")
        assert st.server.projector.router.call_view(call_id).queue == "sales"  # type: ignore[union-attr]
        st.server.queueing.command(ev.AgentLoggedIn("1003", "PJSIP/1003", None))
        await st.until(lambda: st.agent_state("1003") == "on_call", what="1003 takes the caller")
        await st.until(lambda: any(n.startswith("PJSIP/1003-") for n in bridged_with(st, line)),
                       what="the caller bridged with 1003")
        st.hang_up(line)
        first, second = await all_parts_ended(st, call_id, 2)
        assert (first["transferred_to"], first["queue"], second["agent"], second["queue"]) == (
            "queue:sales", "sales", "1003", "sales")
        await st.until(lambda: any(f"|{call_id}|support|1001|TRANSFER|sales|queue|" in ln
                                   for ln in st.queue_log().splitlines()), what="TRANSFER in the queue_log")


async def test_attended_transfer_completed(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1002")) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138086")
        st.login("1002")
        await st.console.attended_transfer(agent_principal("1001"), call_id, TransferTarget("agent", "1002"))
        assert st.agent_state("1002") in ("reserved", "on_call")
        await st.until(lambda: st.agent_state("1002") == "on_call", what="1002 answers the consultation")
        # The caller is on hold meanwhile; the two agents talk.
        await st.until(lambda: st.phase(call_id) == "on_hold", what="caller on hold")
        assert st.agent_state("1001") == "on_hold"
        await st.console.complete_transfer(agent_principal("1001"), call_id)
        await st.until(lambda: any(n.startswith("PJSIP/1002-") for n in bridged_with(st, line)),
                       what="the caller bridged with 1002")
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="1001 in wrap-up")
        assert st.server.projector.router.call_view(call_id).agent_id == "1002"  # type: ignore[union-attr]
        st.hang_up(line)
        first, second = await all_parts_ended(st, call_id, 2)
        assert (first["agent"], first["transferred_to"], second["agent"], second["hung_up_by"]) == (
            "1001", "agent:1002", "1002", "caller")


async def test_attended_transfer_cancelled_brings_the_caller_back(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1002")) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138087")
        st.login("1002")
        await st.console.attended_transfer(agent_principal("1001"), call_id, TransferTarget("agent", "1002"))
        await st.until(lambda: st.agent_state("1002") == "on_call", what="1002 answers the consultation")
        await st.console.cancel_transfer(agent_principal("1001"), call_id)
        await st.until(lambda: st.agent_state("1002") == "available", what="1002 back to work")
        await st.until(lambda: any(n.startswith("PJSIP/1001-") for n in bridged_with(st, line)),
                       what="the caller back with 1001")
        assert st.agent_state("1001") == "on_call"
        st.hang_up(line)
        (row,) = await all_parts_ended(st, call_id, 1)
        assert (row["agent"], row["transferred_to"], row["hung_up_by"]) == ("1001", "", "caller")


async def test_the_consulted_agent_hanging_up_gives_the_caller_back_to_the_first_agent(tmp_path: Path) -> None:
    """The colleague an agent consults hangs up instead of taking the call: the first agent's leg must not
    go down with the consultation's bridge, and the caller, on hold meanwhile, comes back to the first
    agent; nobody is left alone on hold music."""
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001", "1002")) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138089")
        st.login("1002")
        await st.console.attended_transfer(agent_principal("1001"), call_id, TransferTarget("agent", "1002"))
        await st.until(lambda: st.agent_state("1002") == "on_call", what="1002 answers the consultation")
        (colleague,) = [c for c in st.sim.world.channels.values() if c.name.startswith("PJSIP/1002-") and not c.dead]
        (first,) = [c for c in st.sim.world.channels.values() if c.name.startswith("PJSIP/1001-") and not c.dead]
        st.sim.world.queue_hangup(colleague, 16)  # 1002's phone sends BYE
        await st.until(lambda: any(n.startswith("PJSIP/1001-") for n in bridged_with(st, line)),
                       what="the caller back with 1001")
        assert st.agent_state("1001") == "on_call" and st.agent_state("1002") == "available"
        assert st.server.queueing.consulting(call_id) is None
        st.hang_up(line)
        (row,) = await all_parts_ended(st, call_id, 1)
        assert (row["agent"], row["transferred_to"], row["hung_up_by"]) == ("1001", "", "caller")
        # 1001's leg still has its place in [cti-hold], where it loops: the server ends it.
        await st.until(lambda: first.dead, what="1001's leg ended with the call")


async def test_a_caller_hanging_up_on_hold_ends_the_agents_leg_too(tmp_path: Path) -> None:
    """On hold the agent's leg waits in [cti-hold] for the caller, in a loop: when the caller hangs up, the
    server ends it (the agent's phone does not stay in a silent call)."""
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001",)) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138090")
        await st.console.hold(agent_principal("1001"), call_id)
        await st.until(lambda: st.call_state(call_id) == "held", what="the call held")
        (phone,) = [c for c in st.sim.world.channels.values() if c.name.startswith("PJSIP/1001-") and not c.dead]
        st.hang_up(line)
        await st.until(lambda: phone.dead, what="the agent's leg ended")
        assert st.agent_state("1001") == "wrap_up"


async def test_a_caller_hanging_up_after_an_unhold_ends_the_agents_leg_too(tmp_path: Path) -> None:
    """Un-hold bridges the legs again with AMI Bridge, which leaves the agent's leg its place in [cti-hold]:
    when the caller hangs up later, that leg goes on there and waits again, in a loop (seen on Asterisk
    22.10.1 with a PJSIP phone: Goto, then Wait(3600) again). The server ends it."""
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001",)) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138091")
        await st.console.hold(agent_principal("1001"), call_id)
        await st.until(lambda: st.call_state(call_id) == "held", what="the call held")
        await st.console.unhold(agent_principal("1001"), call_id)
        await st.until(lambda: any(n.startswith("PJSIP/1001-") for n in bridged_with(st, line)),
                       what="the caller back with 1001")
        (phone,) = [c for c in st.sim.world.channels.values() if c.name.startswith("PJSIP/1001-") and not c.dead]
        st.hang_up(line)
        await st.until(lambda: phone.dead, what="the agent's leg ended")
        assert st.agent_state("1001") == "wrap_up"


async def test_an_agents_leg_left_waiting_in_hold_while_the_link_was_down_is_ended_at_the_resync(
        tmp_path: Path) -> None:
    """The caller hangs up after an un-hold while the AMI link is down: nobody saw it, and the agent's leg
    waits in [cti-hold] in a loop. The resync finds the call over and ends that leg too."""
    async with running_stack(tmp_path, acd=QUEUES, agents=("1001",)) as st:
        st.login("1001")
        line, call_id = await connected_call(st, "13800138092")
        await st.console.hold(agent_principal("1001"), call_id)
        await st.until(lambda: st.call_state(call_id) == "held", what="the call held")
        await st.console.unhold(agent_principal("1001"), call_id)
        await st.until(lambda: any(n.startswith("PJSIP/1001-") for n in bridged_with(st, line)),
                       what="the caller back with 1001")
        (phone,) = [c for c in st.sim.world.channels.values() if c.name.startswith("PJSIP/1001-") and not c.dead]
        await st.sim.stop_ami()
        await st.until(lambda: not st.pbx.link.is_up, what="link down")
        st.hang_up(line)
        await st.until(lambda: line not in st.sim.snapshot().by_name(), what="the caller gone")
        assert not phone.dead  # waiting in [cti-hold] again
        await st.sim.start()
        await st.until(lambda: st.pbx.link.is_up, timeout=15, what="link back")
        await st.until(lambda: phone.dead, what="the agent's leg ended")
        assert st.agent_state("1001") == "wrap_up"
