"""Targets in the queues file: the service level's formula, a queue's targets, the agents' (site defaults,
overridden per agent) and the alerts' timing; every mistake one line with file, line and field. And the
live service level computed by each queue's own formula."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from acd import events as ev
from acd.config import AgentTargets, AlertTiming, QueueTargets, ServiceLevel, load_config, parse_config
from acd.errors import AcdConfigError, ConfigIssue
from acd.stats import LiveStats
from tests.acd.acd_helpers import Driver, agent, make_config

EXAMPLE = Path(__file__).resolve().parents[2] / "acd" / "examples" / "queues.yaml"

TARGETS = """\
skills: [billing, english]
pause_reasons: [break, lunch, training]
alerts: {raise_after_s: 15, clear_after_s: 45}
agent_targets:
  long_call_s: 600
  long_wrap_up_s: 120
  long_pause_s: 900
  long_pause_by_reason_s: {lunch: 3600, console_lost: 60}
queues:
  - name: billing
    skills: {billing: 1}
    service_level: {percent: 90, within_s: 15, formula: abandons_count}
    targets: {abandon_rate_pct: 5, longest_wait_s: 60, asa_s: 20, min_calls: 3}
  - name: general
    skills: {english: 1}
agents:
  - {id: "1", skills: {billing: 2}, queues: [billing]}
  - id: "2"
    skills: {english: 1}
    queues: [general]
    targets: {long_call_s: 1200, long_wrap_up_s: null, long_pause_by_reason_s: {lunch: 2700, training: null}}
"""


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(AcdConfigError) as info:
        parse_config(textwrap.dedent(text), source="queues.yaml")
    return list(info.value.issues)


def test_targets_load_into_typed_objects() -> None:
    cfg = parse_config(TARGETS)
    billing, general = cfg.queue("billing"), cfg.queue("general")
    assert billing.service_level == ServiceLevel(90, 15, "abandons_count")
    assert billing.targets == QueueTargets(abandon_rate_pct=5, longest_wait_s=60, asa_s=20, min_calls=3)
    # Unset: the service level as before, and no other target.
    assert general.service_level == ServiceLevel(80, 20, "short_abandons_excluded")
    assert general.targets == QueueTargets()
    assert cfg.alerts == AlertTiming(15, 45)
    site = cfg.agent("1").targets
    assert (site.long_call_s, site.long_wrap_up_s, site.long_pause_s) == (600, 120, 900)
    assert (site.pause_limit("break"), site.pause_limit("lunch"), site.pause_limit("console_lost")) == (900, 3600, 60)
    own = cfg.agent("2").targets
    assert (own.long_call_s, own.long_wrap_up_s, own.long_pause_s) == (1200, None, 900)  # null drops the site's
    assert (own.pause_limit("lunch"), own.pause_limit("training"), own.pause_limit("break")) == (2700, None, 900)
    assert own.pause_limit("console_lost") == 60  # the site's per-reason limits carry over


def test_without_targets_nothing_is_judged_but_the_service_level() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.agent_targets == AgentTargets()
    assert all(a.targets == AgentTargets() for a in cfg.agents)
    assert cfg.queue("billing").targets == QueueTargets()


@pytest.mark.parametrize(("replace", "by", "line", "field", "needle"), [
    ("formula: abandons_count", "formula: all_calls", 12, "service_level.formula", "unknown service level formula"),
    ("abandon_rate_pct: 5", "abandon_rate_pct: 150", 13, "targets.abandon_rate_pct", "(0, 100]"),
    ("longest_wait_s: 60", "longest_wait_s: 0", 13, "targets.longest_wait_s", "must be > 0"),
    ("asa_s: 20", "asa_s: soon", 13, "targets.asa_s", "expected a number"),
    ("min_calls: 3", "min_calls: 0", 13, "targets.min_calls", "between 1 and"),
    ("min_calls: 3", "min_call: 3", 13, "targets.min_call", "unknown field"),
    ("long_call_s: 600", "long_call_s: -5", 5, "agent_targets.long_call_s", "must be > 0"),
    ("long_pause_by_reason_s: {lunch: 3600, console_lost: 60}", "long_pause_by_reason_s: {nap: 60}", 8,
     "agent_targets.long_pause_by_reason_s.nap", "unknown pause reason 'nap'"),
    ("long_wrap_up_s: 120", "long_wrapup_s: 120", 6, "agent_targets.long_wrapup_s", "unknown field"),
    ("clear_after_s: 45", "clear_after_s: -1", 3, "alerts.clear_after_s", "must be >= 0"),
    ("long_call_s: 1200", "long_call_s: forever", 21, "agents[2].targets.long_call_s", "expected a number"),
    ("training: null", "holiday: 10", 21, "agents[2].targets.long_pause_by_reason_s.holiday", "unknown pause reason"),
])
def test_a_bad_target_is_one_line_of_the_file(replace: str, by: str, line: int, field: str, needle: str) -> None:
    assert replace in TARGETS
    issue, = issues_of(TARGETS.replace(replace, by))
    assert (issue.line, issue.field) == (line, field), issue
    assert needle in issue.message, issue
    assert str(issue).startswith(f"queues.yaml:{line}:") and "\n" not in str(issue)


# ---- the service level by each formula, from the same calls


def _day(formula: str | None) -> float | None:
    sl: dict[str, object] = {"percent": 80, "within_s": 20}
    if formula is not None:
        sl["formula"] = formula
    cfg = make_config([{"name": "q", "skills": {"sales": 1}, "short_abandon_s": 5, "service_level": sl,
                        "announce_every_s": 0}], [agent("a", ["q"], sales=1)])
    drv = Driver(cfg)
    drv.at(0).enqueue("fast", "q")
    drv.at(1).enqueue("short", "q")
    drv.at(3)(ev.CallerHungUp("short"))  # a short abandon: 2 s
    drv.at(4).enqueue("long", "q")
    drv.at(34)(ev.CallerHungUp("long"))  # an abandon after 30 s
    drv.at(40).login("a")  # 'fast' rings a after 40 s: outside the target
    drv.at(41)(ev.OfferAnswered("fast", "a"))
    drv.at(42).enqueue("quick", "q")
    drv.at(50)(ev.AgentCallEnded("a", "fast"))
    drv.at(50)(ev.WrapUpDone("a"))
    drv.at(52)(ev.OfferAnswered("quick", "a"))  # answered after 10 s: within
    stats = LiveStats(cfg)
    stats.observe(drv.log)
    snap = stats.snapshot(60.0)["q"]
    assert (snap.answered, snap.answered_in_target, snap.abandoned, snap.short_abandoned) == (2, 1, 1, 1)
    assert snap.offered == 4
    return snap.service_level_pct


def test_the_service_level_follows_the_queues_formula() -> None:
    assert _day("abandons_count") == pytest.approx(100 * 1 / 4)  # 1 within / (2 answered + 2 abandoned)
    assert _day("abandons_ignored") == pytest.approx(100 * 1 / 2)  # 1 within / 2 answered
    assert _day("short_abandons_excluded") == pytest.approx(100 * 1 / 3)  # 1 / (2 + 2 - 1 short)
    assert _day(None) == _day("short_abandons_excluded")  # the default is the formula of before
