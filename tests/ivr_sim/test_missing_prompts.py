"""Prompts missing on the PBX, over the simulator (which answers as capture 14 shows): the flow goes on as if
each prompt had played, the caller can still answer a question whose prompt is missing, and every missing
prompt is logged and journaled once however many callers meet it."""

from __future__ import annotations

import json
import logging

import pytest

from crmstore.journal import read_rows
from ivr_flows.steps import CallerHungUp, Hangup
from pbxsim.people import CallerBehaviour

from .conftest import ACCOUNT, KNOWN_NUMBER, UNKNOWN_NUMBER
from .rig import IvrRig, events

LINE = "8000"


async def prompt_facts(rig: IvrRig) -> list[dict[str, str]]:
    await rig.recorder.journal.durable(rig.recorder.journal.last_seq, 10)
    rows = await rig.crm.read_plan(read_rows(0, 100_000))
    return [json.loads(row[5]) for row in rows if row[2] == "pbx.prompt_missing"]


async def test_a_missing_menu_is_not_a_hang_up(rig: IvrRig, caplog: pytest.LogCaptureFixture) -> None:
    rig.delete_prompts("custom/welcome", "custom/main-menu")
    caplog.set_level(logging.ERROR, "ctiserver.ivr.prompts")
    calls = [rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=("1", "5", "9"))) for _ in range(2)]
    for call in calls:
        result = await call.result()
        # The caller went through the whole menu by keys, although they never heard it.
        assert result.outcome == Hangup("flow")
        assert [e for e in events(result) if e[1] == "key"] == [("main_menu", "key", k) for k in "159"]
        missing = [e for e in events(result) if e[1] == "prompt_missing"]
        assert missing == [("greet", "prompt_missing", "custom/welcome")] + \
            [("main_menu", "prompt_missing", "custom/main-menu")] * 3
        # Each -1 was checked with CHANNEL STATUS before going on (capture 14: the channel is up).
        assert call.sent[:3] == ['STREAM FILE custom/welcome ""', "CHANNEL STATUS",
                                 "STREAM FILE custom/main-menu 1234509"]
        assert call.witness.prompts == ["vm-goodbye"]  # the only prompt the PBX could play
    # Two callers met each prompt; each is journaled once, with the first caller who met it.
    facts = await prompt_facts(rig)
    assert [(f["prompt"], f["where"]) for f in facts] == [
        ("custom/welcome", "flow service_line, node greet"), ("custom/main-menu", "flow service_line, node main_menu")]
    assert {f["call_id"] for f in facts} <= {c.chan.uniqueid for c in calls}
    logged = [r.getMessage() for r in caplog.records if r.name == "ctiserver.ivr.prompts"]
    assert len(logged) == 2 and "custom/welcome" in logged[0] and "custom/main-menu" in logged[1]


async def test_a_question_whose_prompt_is_missing_is_still_answered(rig: IvrRig) -> None:
    rig.delete_prompts("custom/enter-account")
    call = rig.call(LINE, UNKNOWN_NUMBER, CallerBehaviour(keys=(f"{ACCOUNT}#", "9")))
    result = await call.result()
    assert result.outcome == Hangup("flow")
    assert result.variables["account"] == ACCOUNT
    assert ("identify.ask", "collected", "*******8713") in events(result)
    # GET DATA of a missing prompt returns at once without keys: the question is asked again over a beep.
    assert call.sent[call.sent.index("GET DATA custom/enter-account 3000 12"):][:3] == [
        "GET DATA custom/enter-account 3000 12", "CHANNEL STATUS", "GET DATA beep 3000 12"]
    assert [f["prompt"] for f in await prompt_facts(rig)] == ["custom/enter-account"]


async def test_a_hang_up_is_still_a_hang_up(rig: IvrRig) -> None:
    # The same result=-1 from a caller who hangs up during a prompt: CHANNEL STATUS gets HANGUP + 511.
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(patience=1.0))
    result = await call.result()
    assert result.outcome == CallerHungUp("greet")
    assert not [e for e in events(result) if e[1] == "prompt_missing"]
    assert await prompt_facts(rig) == []
