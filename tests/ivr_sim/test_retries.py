"""No-input and no-match retries over the simulator: silence, wrong keys, random keys for minutes; each ends
in the node's on_fail after ``retries + 1`` attempts, and the transfer really reaches the agent's phone."""

from __future__ import annotations

import random

from ivr_flows.steps import Hangup, Transfer
from pbxsim.people import CallerBehaviour

from .conftest import KNOWN_NUMBER, UNKNOWN_NUMBER
from .rig import IvrRig, events

LINE = "8000"


def menu_events(result_path: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(e, v) for n, e, v in result_path if n == "main_menu"]


async def test_silence_retries_then_agent(rig: IvrRig) -> None:
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(hangup_after_connect=1.0))
    result = await call.result()
    assert result.outcome == Transfer("2001", False)
    assert menu_events(events(result)) == [("node", "menu"), ("no_input", ""), ("no_input", ""),
                                           ("no_input", ""), ("retries_exhausted", "2")]
    assert call.sent.count("WAIT FOR DIGIT 3000") == 3
    assert call.sent.count("STREAM FILE custom/no-input 1234509") == 2
    assert call.sent[-1] == "EXEC Goto cti-dial,2001,1"
    await call.ended()
    assert [p.split("-")[0] for p in call.witness.connected_to] == ["PJSIP/2001"]  # on_fail: the agent answered


async def test_wrong_keys_retries_then_agent(rig: IvrRig) -> None:
    # keys only when the IVR waits for a digit (not over the prompts), so each wrong key meets WAIT FOR DIGIT
    call = rig.call(LINE, KNOWN_NUMBER,
                    CallerBehaviour(keys=("7", "8", "*"), press_on_prompt=False, hangup_after_connect=1.0))
    result = await call.result()
    assert result.outcome == Transfer("2001", False)
    assert menu_events(events(result)) == [("node", "menu"), ("no_match", "7"), ("no_match", "8"),
                                           ("no_match", "*"), ("retries_exhausted", "2")]
    assert call.sent.count("STREAM FILE custom/no-match 1234509") == 2
    await call.ended()
    assert len(call.witness.connected_to) == 1


async def test_random_keys_for_minutes_get_bounded_attempts(rig: IvrRig) -> None:
    rnd = random.Random(7)
    keys = tuple("".join(rnd.choice("678*#") for _ in range(rnd.randint(1, 4))) for _ in range(300))
    call = rig.call(LINE, KNOWN_NUMBER, CallerBehaviour(keys=keys, key_delay=0.1, hangup_after_connect=1.0))
    result = await call.result()
    assert result.outcome == Transfer("2001", False)
    assert len(call.sent) < 20
    assert [e for e, _ in menu_events(events(result))].count("no_match") + \
        [e for e, _ in menu_events(events(result))].count("no_input") == 3
    await call.ended()


async def test_collect_retries_exhausted_continue_unidentified(rig: IvrRig) -> None:
    # too short, fails Luhn, fails Luhn again: on_fail returns from the sub-flow unidentified; 9 = goodbye
    call = rig.call(LINE, UNKNOWN_NUMBER, CallerBehaviour(keys=("12#", "79927398710#", "1234567#", "9")))
    result = await call.result()
    assert result.outcome == Hangup("flow")
    ev = events(result)
    assert [(e, v) for n, e, v in ev if n == "identify.ask"] == [
        ("node", "collect"), ("no_match", "12"), ("no_match", "*******8710"), ("no_match", "***4567"),
        ("retries_exhausted", "2")]
    assert ("identify.by_account", "node", "lookup") not in ev
    assert result.variables.get("customer_id", "") == "" and result.variables["account"] == ""
    assert call.sent.count('STREAM FILE custom/invalid ""') == 2
