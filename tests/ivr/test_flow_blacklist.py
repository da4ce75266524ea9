"""A flow's blacklist policy (overrides the queue's): read and checked with file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_flows.loader import parse_flow
from ivr_flows.model import FlowBlacklist
from ivr_flows.validator import FlowCatalog, check_files

FLOW = "flow: t\nblacklist: {policy}\nfallback: {{queue: sales}}\nstart: a\nnodes:\n  a: {{type: queue, queue: sales}}\n"
CATALOG = FlowCatalog(queues=frozenset({"sales", "quarantine"}), skills=frozenset(),
                      prompt_names=frozenset({"cti/closed"}))


@pytest.mark.parametrize("policy, expected", [
    ("{action: refuse, message: cti/closed}", FlowBlacklist("refuse", message="cti/closed", pos=(2, 12))),
    ("{action: route, queue: quarantine}", FlowBlacklist("route", queue="quarantine", pos=(2, 12))),
    ("{action: lowest}", FlowBlacklist("lowest", pos=(2, 12))),
])
def test_policies_are_read(tmp_path: Path, policy: str, expected: FlowBlacklist) -> None:
    flow, errors = parse_flow(FLOW.format(policy=policy), "t.yaml")
    assert errors == [] and flow is not None and flow.blacklist == expected
    path = tmp_path / "t.yaml"
    path.write_text(FLOW.format(policy=policy), encoding="utf-8")
    assert check_files([path], CATALOG) == []


@pytest.mark.parametrize("policy, words", [
    ("{action: ban}", "unknown action 'ban'; expected one of refuse, route, lowest"),
    ("{action: refuse}", "blacklist.message: is required with action refuse"),
    ("{action: route}", "blacklist.queue: is required with action route"),
    ("{action: lowest, queue: sales}", "blacklist.queue: does not go with action lowest"),
    ("{action: route, queue: nowhere}", "blacklist: unknown queue 'nowhere'"),
    ("{action: refuse, message: cti/missing}", "blacklist: prompt file 'cti/missing' not found"),
    ("{action: refuse, message: '../etc/x'}", "blacklist: prompt name '../etc/x' has characters outside"),
    ("{colour: red, action: lowest}", "blacklist: unknown field 'colour'"),
])
def test_a_wrong_policy_is_one_line_with_file_line_column(tmp_path: Path, policy: str, words: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(FLOW.format(policy=policy), encoding="utf-8")
    errors = check_files([path], CATALOG)
    assert len(errors) == 1, [str(e) for e in errors]
    assert words in errors[0].message and errors[0].line == 2 and "\n" not in str(errors[0])
    assert str(errors[0]).startswith(f"{path}:2:")
