"""Flows may give nodes a label (what the node means to people), used by the agent's screen pop to tell the
reason for the call in words."""

from __future__ import annotations

from pathlib import Path

from ivr_flows.loader import parse_flow
from ivr_flows.validator import check_files

HEAD = "flow: t\nstart: a\nnodes:\n"
DEMO = Path(__file__).parents[2] / "ctiserver" / "demo" / "flows" / "main.yaml"


def test_labels_per_language_or_for_all() -> None:
    flow, errors = parse_flow(HEAD + "  a: {type: play, prompts: [x], next: b, label: {en: Billing, zh-CN: 账单}}\n"
                                     "  b: {type: hangup, label: Goodbye}\n  c: {type: hangup}\n", "t.yaml")
    assert flow is not None and errors == []
    assert flow.node_labels() == {"a": {"en": "Billing", "zh-CN": "账单"}, "b": {"": "Goodbye"}}


def test_a_bad_label_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    p.write_text(HEAD + "  a:\n    type: hangup\n    label: {english: Bye}\n", encoding="utf-8")
    errors = check_files([p], None)
    assert len(errors) == 1 and "'english' is not a language code" in errors[0].message
    assert errors[0].line == 6


def test_the_demo_flow_labels_its_queues() -> None:
    flow, errors = parse_flow(DEMO.read_text(encoding="utf-8"), str(DEMO))
    assert flow is not None and errors == []
    assert flow.node_labels()["complaints"] == {"en": "Complaint", "zh": "投诉"}
