"""docs/acd.md shows the state diagrams generated from the transition tables, and its YAML example loads."""

from __future__ import annotations

import re
from pathlib import Path

from acd.config import parse_config
from acd.states import AGENT_TRANSITIONS, STATES_BEGIN, STATES_END, render_state_docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "acd.md"


def test_state_diagrams_are_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    generated = text.split(STATES_BEGIN, 1)[1].split(STATES_END, 1)[0]
    assert generated.strip() == render_state_docs().strip(), (
        "docs/acd.md is stale: run `python -m acd.states docs/acd.md`")


def test_every_agent_transition_is_drawn() -> None:
    text = DOC.read_text(encoding="utf-8")
    for (src, trigger), dst in AGENT_TRANSITIONS.items():
        assert re.search(rf"{src.value} --> {dst.value}: [^\n]*\b{trigger}\b", text), (src, trigger)


def test_yaml_example_in_the_doc_is_valid() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = parse_config(example, source="docs/acd.md")
    assert cfg.queue("billing").escalation
