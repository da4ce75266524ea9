"""The post-call survey after an inbound call runs the same survey flow as the survey campaigns: the
line's flow names it (`after_call`), the caller stays on the line when the agent hangs up, and the
answers are kept with the customer (survey_responses, campaign "") besides the call's satisfaction score,
as a projection of the journal (a replay writes them again)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from crmstore.model import NewCustomer
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import open_store
from ctiserver.projections.replay import replay
from pbxsim.people import CallerBehaviour

from .queues import TEST_QUEUES
from .stack import running_stack

EXAMPLE = Path(__file__).parents[2] / "ivr_flows" / "examples" / "satisfaction_survey_en.yaml"
MAIN = """\
flow: main
language: en-US
after_call: satisfaction_survey_en
start: agent
nodes:
  agent: {type: queue, queue: support}
"""


async def test_the_inbound_caller_answers_the_survey_flow_after_the_agent_hangs_up(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(MAIN, encoding="utf-8")
    shutil.copy(EXAMPLE, flows / EXAMPLE.name)
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",), flows_dir=flows) as st:
        crm = st.server.crm
        customer = await crm.create_customer(NewCustomer(name="Dan", phones=("13800138062",)))
        st.login("1001")
        # the hold music (nothing), then the survey: 4, then yes
        a = st.place_call("13800138062", CallerBehaviour(keys=("", "4", "1"), patience=10_000))
        a_call = await st.until(lambda: st.call_id_of(a), what="A known")
        await st.until(lambda: st.phase(a_call) == "connected", what="A connected")
        agent_leg = st.server.queueing.agent_leg(a_call)
        assert agent_leg is not None
        await st.pbx.control.hangup(agent_leg)  # the agent hangs up; the caller stays for the survey
        await st.until(lambda: st.phase(a_call) is None, what="the caller's line ended after the survey")

        async def answered() -> list[tuple[str, str, str, int | None]]:
            rows = await crm.survey_responses(customer_id=customer)
            return [(r.call_id, r.question, r.answer, r.customer_id) for r in rows] if len(rows) == 2 else []

        assert await st.until_async(answered, what="two answers in the CRM") == [
            (a_call, "satisfaction", "4", customer), (a_call, "recommend", "yes", customer)]
        assert [r.campaign for r in await crm.survey_responses(customer_id=customer)] == ["", ""]
        commands = [c for c in st.tap.agi_commands(a) if c.startswith("GET DATA")]
        assert commands == ["GET DATA cs/en/survey-1-to-5 5000 1", "GET DATA cs/en/survey-recommend 5000 1"]

        async def scored() -> bool:
            row = await crm.interaction(a_call, Viewer("sup", CrmRole.SUPERVISOR))
            return row is not None and row.survey_score == 4

        await st.until_async(scored, what="the call's satisfaction score 4")
        live = [(r.call_id, r.question, r.answer, r.customer_id, r.at)
                for r in await crm.survey_responses(customer_id=customer)]
        await st.server.journal.durable(st.server.journal.last_seq, timeout=5)

    # The answers are a projection of the journal: replayed into a copy that lost them, they come back the same.
    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "crm.db", copy)
    with sqlite3.connect(copy) as con:
        con.execute("DELETE FROM survey_responses")
    source, into = await open_store(f"sqlite:///{tmp_path / 'crm.db'}"), await open_store(f"sqlite:///{copy}")
    try:
        await replay(source, into=into, queue_log=tmp_path / "queue_log.replayed")
        again = [(r.call_id, r.question, r.answer, r.customer_id, r.at)
                 for r in await into.survey_responses(customer_id=customer)]
    finally:
        await into.close()
        await source.close()
    assert again == live
