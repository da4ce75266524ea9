"""The blacklist policy of a queue: read from queues.yaml with one-line errors, applied as a pure routing input."""

from __future__ import annotations

import pytest

from acd.blacklist import LOWEST_PRIORITY, BlacklistPolicy, Refuse, admit, refusal_prompts
from acd.config import parse_config
from acd.errors import AcdConfigError
from acd.events import CallEnqueued

BASE = """\
skills: [sales]
pause_reasons: [break]
queues:
  - name: sales
    skills: {{sales: 1}}
    blacklist: {policy}
  - name: quarantine
    skills: {{sales: 1}}
agents:
  - {{id: "1", skills: {{sales: 1}}, queues: [sales, quarantine]}}
"""
ENTRY = CallEnqueued("c1", "sales", priority=5, caller_num="+8613800000002", sticky_agent_id="1", vip=True,
                     grade="A")


@pytest.mark.parametrize("policy, expected", [
    ("{action: refuse, message: cti/closed}", BlacklistPolicy("refuse", message="cti/closed")),
    ("{action: route, queue: quarantine}", BlacklistPolicy("route", queue="quarantine")),
    ("{action: lowest}", BlacklistPolicy("lowest")),
])
def test_policies_are_read(policy: str, expected: BlacklistPolicy) -> None:
    config = parse_config(BASE.format(policy=policy), "queues.yaml")
    assert config.queue("sales").blacklist == expected and config.queue("quarantine").blacklist is None


@pytest.mark.parametrize("policy, field, words", [
    ("{action: ban}", "blacklist.action", "unknown action 'ban'; expected one of refuse, route, lowest"),
    ("{message: x}", "blacklist.action", "is required"),
    ("{action: refuse}", "blacklist.message", "is required with action refuse"),
    ("{action: route}", "blacklist.queue", "is required with action route"),
    ("{action: route, queue: nowhere}", "blacklist.queue", "unknown queue nowhere"),
    ("{action: route, queue: sales}", "blacklist.queue", "routes the caller to the same queue"),
    ("{action: lowest, queue: quarantine}", "blacklist.queue", "does not go with action lowest"),
    ("{action: refuse, message: 'a b;c'}", "blacklist.message", "is not a prompt name"),
    ("[refuse]", "blacklist", "expected a mapping"),
    ("{action: refuse, message: x, colour: red}", "blacklist.colour", "unknown field"),
])
def test_a_wrong_policy_is_one_line_naming_file_line_queue_field(policy: str, field: str, words: str) -> None:
    with pytest.raises(AcdConfigError) as info:
        parse_config(BASE.format(policy=policy), "queues.yaml")
    (issue,) = info.value.issues
    assert (issue.field, issue.queue, issue.line) == (field, "sales", 6)
    assert words in issue.message and "\n" not in str(issue)
    assert str(issue).startswith("queues.yaml:6: queue 'sales' field")


def test_only_blacklisted_callers_are_touched() -> None:
    for policy in (None, BlacklistPolicy("refuse", message="m"), BlacklistPolicy("lowest")):
        assert admit(policy, ENTRY, blacklisted=False) is ENTRY
    assert admit(None, ENTRY, blacklisted=True) is ENTRY


def test_refuse_route_lowest() -> None:
    assert admit(BlacklistPolicy("refuse", message="cti/closed"), ENTRY, True) == Refuse("cti/closed", "sales")
    routed = admit(BlacklistPolicy("route", queue="quarantine"), ENTRY, True)
    assert isinstance(routed, CallEnqueued) and routed.queue == "quarantine" and routed.priority == 5
    lowest = admit(BlacklistPolicy("lowest"), ENTRY, True)
    assert isinstance(lowest, CallEnqueued)
    assert (lowest.priority, lowest.vip, lowest.grade, lowest.sticky_agent_id) == (LOWEST_PRIORITY, False, None, None)
    assert lowest.queue == "sales" and lowest.caller_num == ENTRY.caller_num


def test_the_router_offers_a_lowest_priority_caller_after_everyone() -> None:
    from acd.router import Router

    config = parse_config(BASE.format(policy="{action: lowest}"), "queues.yaml")
    router = Router(config)
    from acd import events as ev

    router.handle(ev.AgentLoggedIn("1", "PJSIP/1", None), 0.0)
    router.handle(ev.AgentPaused("1", "break"), 0.0)
    bad = admit(config.queue("sales").blacklist, ENTRY, True)
    assert isinstance(bad, CallEnqueued)
    router.handle(bad, 1.0)
    router.handle(CallEnqueued("c2", "sales", caller_num="+8613800000003"), 600.0)  # ten minutes later
    decisions = router.handle(ev.AgentReady("1"), 601.0)
    offers = [d for d in decisions if type(d).__name__ == "Offer"]
    assert [o.call_id for o in offers] == ["c2"]


def test_refusal_prompts_are_the_sounds_to_check_at_start() -> None:
    config = parse_config(BASE.format(policy="{action: refuse, message: cti/closed}"), "queues.yaml")
    assert refusal_prompts((q.name, q.blacklist) for q in config.queues) == {
        "cti/closed": "blacklist refusal of queue sales"}
    assert refusal_prompts([("sales", BlacklistPolicy("lowest")), ("x", None)]) == {}
