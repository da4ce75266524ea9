"""CRM write-back end to end: a known customer calls, the IVR identifies them, an agent talks to them, the
agent saves the wrap-up from the console, and the CRM (the SQLite file on disk) holds it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmstore.model import NewCustomer, Outcome
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from ctiserver.gateway.backend import FollowUpForm, Refused, WrapUpForm
from pbxsim.people import CallerBehaviour

from .queues import TEST_QUEUES
from .stack import agent_principal, running_stack, settle

SUPERVISOR = Viewer("e2e", CrmRole.SUPERVISOR)


async def test_wrap_up_saved_from_the_console_is_in_the_crm(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001", "1002")) as st:
        crm = st.server.crm
        customer = await crm.create_customer(NewCustomer(name="Zhao Lei", phones=("13800138051",)))
        st.login("1001")
        a = st.place_call("13800138051", CallerBehaviour(keys=("", "2"), patience=10_000))
        a_call = await st.until(lambda: st.call_id_of(a), what="A known")
        await st.until(lambda: st.phase(a_call) == "connected", what="A connected")
        rec = st.server.projector.records.get(a_call)
        assert rec is not None and rec.customer_id == customer  # the IVR's lookup found the caller
        # Talks for a second, then hangs up. (CallerBehaviour.hangup_after_connect would be the natural
        # way, but the simulator only honours it after Dial, not after the CTI's AMI Bridge.)
        await asyncio.sleep(1.0)
        st.hang_up(a)
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="A hung up: wrap-up")

        # Another agent may not wrap up 1001's call.
        with pytest.raises(Refused):
            await st.console.save_wrapup(agent_principal("1002"), a_call, WrapUpForm("resolved"))

        due = datetime.now(UTC) + timedelta(days=1)
        notes = "Refund approved; 退款已批准 — customer will check tomorrow"
        await st.console.save_wrapup(
            agent_principal("1001"),
            a_call,
            WrapUpForm("resolved", notes, FollowUpForm("callback", due, "confirm the refund arrived")),
        )
        assert st.agent_state("1001") == "available"  # saving ends the wrap-up

        row = await crm.interaction(a_call, SUPERVISOR)
        assert row is not None
        assert (row.outcome, row.disposition, row.notes, row.agent, row.queue, row.customer_id) == (
            Outcome.ANSWERED,
            "resolved",
            notes,
            "1001",
            "support",
            customer,
        )
        assert row.answered_at is not None and row.ended_at is not None
        assert 0.5 < row.talk_s < 5 and row.wait_s >= 0 and row.hold_s == 0
        assert "main_menu:key=2" in row.ivr_path
        follow_ups = await crm.due_follow_ups(until=due + timedelta(minutes=1))
        assert [(f.customer_id, f.kind.value, f.owner, f.source_call_id) for f in follow_ups] == [
            (customer, "callback", "1001", a_call)
        ]

        # Saving again (a console retry) updates the same interaction, never a second one.
        await st.console.save_wrapup(agent_principal("1001"), a_call, WrapUpForm("follow_up", notes))
        # Durable on disk: another connection to the SQLite file sees one row with the latest disposition.
        with sqlite3.connect(tmp_path / "crm.db") as db:
            rows = db.execute(
                "SELECT disposition, agent, outcome FROM interactions WHERE call_id = ?", (a_call,)
            ).fetchall()
        assert rows == [("follow_up", "1001", "answered")]
        history = await crm.interactions(customer, SUPERVISOR)
        assert [i.call_id for i in history] == [a_call]
        await settle(st)


async def test_post_call_survey_after_the_agent_hangs_up(tmp_path: Path) -> None:
    """The demo flow has a survey: after the agent hangs up the caller goes on to the CTI's after-call
    step (CTI_AFTER_CALL set at the bridge), answers 4, and the score lands on the call in the CRM."""
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        # greeting (nothing), menu "2" (support), the hold music (nothing), then the survey question: 4
        a = st.place_call("13800138061", CallerBehaviour(keys=("", "2", "", "4"), patience=10_000))
        a_call = await st.until(lambda: st.call_id_of(a), what="A known")
        await st.until(lambda: st.phase(a_call) == "connected", what="A connected")
        agent_leg = st.server.queueing.agent_leg(a_call)
        assert agent_leg is not None
        await st.pbx.control.hangup(agent_leg)  # the agent hangs up
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="wrap-up")
        await st.until(lambda: st.phase(a_call) is None, what="the caller's line ended after the survey")
        await st.console.save_wrapup(agent_principal("1001"), a_call, WrapUpForm("resolved"))

        async def scored() -> bool:
            row = await st.server.crm.interaction(a_call, SUPERVISOR)
            return row is not None and row.survey_score == 4

        await st.until_async(scored, what="survey score 4 in the CRM")
        commands = st.tap.agi_commands(a)
        assert commands.count("GET DATA demo/rate-1-to-5 5000 1") == 1  # answered at the first asking
