"""Transfers done by the CTI and who hung up, end to end through the PBX simulator. The paths are the ones
tried on Asterisk 22.10.1 with PJSIP phones (capture 17): what went wrong there must not pass here."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from ctiserver.gateway.backend import TransferTarget
from pbxsim.people import CallerBehaviour

from .queues import TEST_QUEUES
from .stack import Stack, agent_principal, running_stack

SUPERVISOR = Viewer("e2e", CrmRole.SUPERVISOR)
SUPPORT = CallerBehaviour(keys=("", "2"), patience=10_000)  # greeting, then "2" in the menu: support


def _bridged_to(st: Stack, channel: str) -> str | None:
    snap = st.sim.snapshot()
    me = snap.by_name().get(channel)
    if me is None or me.bridge is None:
        return None
    others = [n for n in snap.bridges.get(me.bridge, ()) if n != channel]
    return others[0] if others else None


async def _connected_to_1001(st: Stack) -> tuple[str, str, str]:
    """A caller connected to agent 1001: (caller channel, call id, the agent's leg)."""
    st.login("1001")
    caller = st.place_call("13800138021", SUPPORT)
    call_id = await st.until(lambda: st.call_id_of(caller), what="call known")
    await st.until(lambda: st.call_state(call_id) == "connected", what="caller connected")
    leg = await st.until(lambda: _bridged_to(st, caller), what="caller bridged")
    return caller, call_id, leg


async def test_cancelled_consultation_gives_the_caller_back_to_the_first_agent(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001", "1002")) as st:
        caller, call_id, first = await _connected_to_1001(st)
        st.login("1002")
        await st.console.attended_transfer(agent_principal("1001"), call_id, TransferTarget("agent", "1002"))
        consulted = await st.until(
            lambda: (p := _bridged_to(st, first)) is not None and p.startswith("PJSIP/1002-") and p,
            what="the first agent bridged with the consulted one")
        assert _bridged_to(st, caller) is None, "the caller is on hold meanwhile"

        await st.console.cancel_transfer(agent_principal("1001"), call_id)
        # Asterisk: the first agent's leg was pulled out of its Wait by the consultation's Bridge; had the
        # consulted leg been hung up first, it would have left the bridge and hung itself up, leaving the
        # caller on hold music with nobody.
        await st.until(lambda: _bridged_to(st, caller) == first, what="the caller back with the first agent")
        await st.until(lambda: consulted not in st.sim.snapshot().by_name(), what="the consulted leg gone")
        assert st.call_state(call_id) == "connected"
        assert st.agent_state("1001") == "on_call"


STRAIGHT_TO_SUPPORT = """\
flow: main
language: en-US
fallback: {queue: support}
start: q
nodes:
  q: {type: queue, queue: support}
"""


async def test_the_agents_hang_up_button_ends_the_call_on_the_agents_side(tmp_path: Path) -> None:
    """The console's hang-up is an AMI Hangup of the agent's leg: Asterisk shows no request on it, and the
    caller's own dialplan hang-up comes before the agent leg's Hangup (capture 17, step 4)."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(STRAIGHT_TO_SUPPORT)  # no survey: the caller's dialplan hangs up at once
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",), flows_dir=flows) as st:
        _caller, call_id, _leg = await _connected_to_1001(st)
        await st.console.hangup(agent_principal("1001"), call_id)
        await st.until(lambda: "COMPLETE" in st.queue_log(), what="the end in the queue_log")
        [end] = [line.split("|")[4] for line in st.queue_log().splitlines() if "|COMPLETE" in line]
        assert end == "COMPLETEAGENT"
        await st.until_async(lambda: st.server.crm.interaction(call_id, SUPERVISOR), what="the CRM row")
        await st.until(lambda: _hung_up_by(st, call_id), what="the CRM row ended")
        assert _hung_up_by(st, call_id) == "agent"


def _hung_up_by(st: Stack, call_id: str) -> str:
    with contextlib.closing(sqlite3.connect(st.tmp / "crm.db")) as db:
        row = db.execute("SELECT hung_up_by FROM interactions WHERE call_id = ? AND ended_at IS NOT NULL",
                         (call_id,)).fetchone()
    return row[0] if row else ""
