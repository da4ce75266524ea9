"""A caller hanging up in the middle of a node (the simulator's ``patience``): the run ends with
CallerHungUp(node) and the path so far, the FastAGI session is closed without IVR_DONE, nothing is left on
the PBX, and nothing is saved for the half-finished node.

Virtual timings (prompts.py): custom/welcome 4.3 s, other prompts 2 s, custom/enter-account 3.3 s,
custom/leave-message 2.1 s, beep 0.43 s. Each patience falls well inside its node's window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_flows.steps import CallerHungUp
from pbxsim.people import CallerBehaviour

from .conftest import KNOWN_NUMBER, UNKNOWN_NUMBER, make_rig, synthesize
from .rig import NIGHT, IvrRig, events

LINE = "8000"


@pytest.fixture
async def slow_rig(tmp_path: Path) -> AsyncIterator[IvrRig]:
    # A slower clock than the other tests: a virtual second is 50 ms, so the IVR's round trips cannot move
    # a hang-up from one node into the next.
    r = await make_rig(tmp_path, time_scale=0.05)
    yield r
    await r.close()


async def hung_up(rig: IvrRig, caller: str, behaviour: CallerBehaviour) -> tuple[object, list[tuple[str, str, str]]]:
    call = rig.call(LINE, caller, behaviour)
    result = await call.result()
    await call.ended()
    assert call.session is not None and not call.session.done_marked  # no IVR_DONE: the caller is gone
    assert call.chan.hangup_cause == 0  # a SIP BYE during AGI ends 0 Unknown (capture 17, step 3)
    await rig.sim.wait_idle(5.0)  # nothing left on the PBX
    assert rig.server.active_sessions == 0
    return result, events(result)


async def test_hang_up_during_a_prompt(slow_rig: IvrRig) -> None:
    result, ev = await hung_up(slow_rig, KNOWN_NUMBER, CallerBehaviour(patience=2.0))  # welcome: 0-4.3 s
    assert result.outcome == CallerHungUp("greet")  # type: ignore[attr-defined]
    assert ev == [("entry", "node", "branch"), ("entry", "branch", "default -> greet"),
                  ("greet", "node", "play"), ("greet", "hangup", "caller")]


async def test_hang_up_while_the_menu_waits_for_a_key(slow_rig: IvrRig) -> None:
    # welcome 4.3 + menu prompt 2.0; WAIT FOR DIGIT from 6.3 to 9.3 s
    result, ev = await hung_up(slow_rig, KNOWN_NUMBER, CallerBehaviour(patience=7.8))
    assert result.outcome == CallerHungUp("main_menu")  # type: ignore[attr-defined]
    assert ("identify.by_number", "lookup", "found 2") in ev  # the path so far is kept
    assert ev[-2:] == [("main_menu", "node", "menu"), ("main_menu", "hangup", "caller")]


async def test_hang_up_while_typing_an_account(slow_rig: IvrRig) -> None:
    # welcome 4.3, enter-account 3.3 (interrupted by the first key at ~4.6 s); the caller types slowly
    behaviour = CallerBehaviour(keys=("7992739",), key_delay=1.0, patience=8.0)
    result, ev = await hung_up(slow_rig, UNKNOWN_NUMBER, behaviour)
    assert result.outcome == CallerHungUp("identify.ask")  # type: ignore[attr-defined]
    assert ev[-1] == ("identify.ask", "hangup", "caller")
    assert not any(e == "collected" for _, e, _ in ev)


async def test_hang_up_while_leaving_a_voicemail(slow_rig: IvrRig, voice_dir: Path) -> None:
    slow_rig.clock = NIGHT
    wav = synthesize("I want to complain about the delivery of my order", voice_dir, voice="en")
    # welcome 4.3, leave-message 2.1, beep 0.43: recording from 6.8 s; the caller talks from 7.3 s
    result, ev = await hung_up(slow_rig, KNOWN_NUMBER, CallerBehaviour(utterance=wav, patience=8.3))
    assert result.outcome == CallerHungUp("closed")  # type: ignore[attr-defined]
    # Hanging up instead of pressing '#' is how most callers end a message: it is saved all the same.
    assert ev[-3:] == [("closed", "node", "voicemail"), ("closed", "hangup", "caller"),
                       ("closed", "note", "saved after hang-up")]
    call = next(iter(slow_rig.calls.values()))
    interaction = await slow_rig.history(call)
    assert interaction is not None and interaction.recording_ref.endswith(".wav")
    assert call.witness.recordings == 1 and call.sent[-2].startswith("RECORD FILE ")
    # capture 03: result=-1 from the interrupted command, then HANGUP + 511 on the CHANNEL STATUS probe
    assert call.sent[-1] == "CHANNEL STATUS"
