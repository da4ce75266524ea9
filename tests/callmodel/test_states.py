from pathlib import Path

import pytest

from ctiserver.callmodel.states import CallPhase, IllegalTransition, check_transition, mermaid_diagram


def test_doc_diagram_is_generated_from_the_table():
    doc = (Path(__file__).parents[2] / "docs" / "call-model.md").read_text()
    assert mermaid_diagram() in doc


def test_ended_is_final():
    for phase in CallPhase:
        if phase is not CallPhase.ENDED:
            with pytest.raises(IllegalTransition):
                check_transition(CallPhase.ENDED, phase)


def test_on_hold_needs_a_connection_first():
    with pytest.raises(IllegalTransition):
        check_transition(CallPhase.IVR, CallPhase.ON_HOLD)
    check_transition(CallPhase.CONNECTED, CallPhase.ON_HOLD)
