"""Call records and their CRM rows, folded from facts through the real projector (router included). Pure:
facts in, rows out, no database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from acd import decisions as d
from acd import events as ev
from ctiserver.crm_history.records import rows
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector
from tests.acd.acd_helpers import agent, make_config


def config():  # type: ignore[no-untyped-def]
    return make_config([{"name": "support", "skills": {"tech": 1}, "wrap_up_s": 60},
                        {"name": "sales", "skills": {"sales": 1}, "wrap_up_s": 60}],
                       [agent("a", ["support"], tech=1), agent("b", ["support", "sales"], tech=1, sales=1)])


class Centre:
    """A projector fed facts at chosen times, as the recorder feeds it."""

    def __init__(self) -> None:
        self.p = Projector(config())
        self.seq: Iterator[int] = itertools.count(1)
        self.now = 1_800_000_000.0

    def at(self, t: float) -> Centre:
        self.now = 1_800_000_000.0 + t
        return self

    def __call__(self, body: object) -> list[d.Decision]:
        return self.p.apply(f.Fact(next(self.seq), self.now, body))

    def connected(self, call_id: str, agent_id: str = "a") -> None:
        self(f.CallArrived(call_id, "pbx1", "PJSIP/pstn-1", "13800138000", "Li Lei", "5551000"))
        self(f.IvrStep(call_id, "menu", "key", "2"))
        out = self(ev.CallEnqueued(call_id, "support", caller_num="13800138000"))
        assert [(x.call_id, x.agent_id) for x in out if isinstance(x, d.Offer)] == [(call_id, agent_id)]
        self(ev.OfferAnswered(call_id, agent_id))

    def rows(self, call_id: str):  # type: ignore[no-untyped-def]
        rec = self.p.records.get(call_id)
        assert rec is not None
        return rows(rec)


@pytest.fixture
def centre() -> Centre:
    c = Centre()
    c(ev.AgentLoggedIn("a"))
    return c


@pytest.mark.parametrize("wrap_first", [True, False])
def test_agent_hangs_up_first_in_either_order_of_wrap_up_and_caller_end(centre: Centre, wrap_first: bool) -> None:
    centre.at(1).connected("c1")
    centre.at(40)(ev.AgentCallEnded("a", "c1", "agent"))  # the caller stays on for the survey
    steps = [lambda: centre.at(45)(f.WrapUpSaved("c1", "a", "resolved", "fine")),
             lambda: centre.at(50)(f.CallEnded("c1", 16, "Normal Clearing", "agent"))]
    for step in (steps if wrap_first else steps[::-1]):
        step()
    (row,) = centre.rows("c1")
    assert (row.started_at, row.answered_at, row.ended_at, row.call_ended_at) == (
        1_800_000_001.0, 1_800_000_001.0, 1_800_000_040.0, 1_800_000_050.0)
    assert (row.disposition, row.notes, row.hung_up_by, row.end_inferred) == ("resolved", "fine", "agent", 0)
    assert row.ivr_path == '["menu:key=2"]' and row.talk_s == 39.0


def test_no_row_before_anything_ended(centre: Centre) -> None:
    centre.at(1).connected("c1")
    assert centre.rows("c1") == []


def test_an_end_not_seen_is_inferred_with_its_bounds(centre: Centre) -> None:
    centre.at(1).connected("c1")
    # Found gone at 30 s, last seen alive at 12 s: the times count to 12 s, never to the moment found.
    centre.at(30)(f.CallEnded("c1", 0, "", "unknown", False, 1_800_000_012.0, "server_down"))
    centre.at(30)(ev.AgentCallEnded("a", "c1", "unknown", 1_800_000_012.0))
    (row,) = centre.rows("c1")
    assert (row.end_inferred, row.ended_at, row.end_not_after, row.hung_up_by, row.end_cause) == (
        1, 1_800_000_012.0, 1_800_000_030.0, "unknown", None)
    assert (row.call_ended_at, row.talk_s) == (1_800_000_012.0, 11.0)


def test_an_unseen_end_found_from_the_agents_leg_first_is_bounded_too(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(30)(ev.AgentCallEnded("a", "c1", "unknown", 1_800_000_012.0))
    centre.at(30)(f.CallEnded("c1", 0, "", "unknown", False, 1_800_000_012.0, "link_down"))
    (row,) = centre.rows("c1")
    assert (row.ended_at, row.end_not_after, row.talk_s, row.end_inferred) == (
        1_800_000_012.0, 1_800_000_030.0, 11.0, 1)
    line = next(x for x in centre.p.queue_log.take() if "|COMPLETE" in x)
    assert line.rstrip().endswith("|COMPLETECALLER|0|11|1|unknown")  # talk time to the bound, side unknown


def test_exactly_one_end_per_call(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(5)(f.CallEnded("c1", 16, "Normal Clearing", "caller"))
    centre.at(6)(f.CallEnded("c1", 0, "", "unknown", False, 5.0, "link_down"))  # a late inference
    (row,) = centre.rows("c1")
    assert (row.end_inferred, row.call_ended_at, row.hung_up_by) == (0, 1_800_000_005.0, "caller")


def test_a_transfer_gives_each_agent_part_its_row(centre: Centre) -> None:
    centre(ev.AgentLoggedIn("b", queues=("support",)))
    centre.at(1).connected("c1")
    centre.at(20)(ev.TransferToAgent("c1", "a", "b"))
    centre.at(22)(ev.OfferAnswered("c1", "b"))
    centre.at(25)(f.WrapUpSaved("c1", "a", "transferred", "to billing"))
    centre.at(60)(ev.AgentCallEnded("b", "c1", "caller"))
    centre.at(60)(f.CallEnded("c1", 16, "Normal Clearing", "caller"))
    first, second = centre.rows("c1")
    assert (first.call_id, first.agent, first.ended_at, first.transferred_to, first.disposition) == (
        "c1", "a", 1_800_000_020.0, "agent:b", "transferred")
    assert (second.call_id, second.segment, second.agent, second.answered_at, second.ended_at) == (
        "c1/2", 2, "b", 1_800_000_022.0, 1_800_000_060.0)
    assert second.hung_up_by == "caller" and first.hung_up_by == ""


def test_an_abandon_is_one_row_without_an_agent(centre: Centre) -> None:
    centre(ev.AgentLoggedOut("a"))
    centre.at(1)(f.CallArrived("c2", "pbx1", "PJSIP/pstn-2", "13800138001", "", "5551000"))
    centre.at(2)(ev.CallEnqueued("c2", "support"))
    centre.at(9)(ev.CallerHungUp("c2"))
    centre.at(9)(f.CallEnded("c2", 16, "Normal Clearing", "caller"))
    (row,) = centre.rows("c2")
    assert (row.outcome, row.agent, row.wait_s, row.answered_at) == ("abandoned", "", 7.0, None)


def test_records_survive_a_checkpoint(centre: Centre) -> None:
    centre.at(1).connected("c1")
    restored, problems = Projector.load(centre.p.dump(("<test>", config_text())))
    assert problems == []
    assert restored.records.dump() == centre.p.records.dump()
    assert restored.router.dump() == centre.p.router.dump()


def config_text() -> str:
    import yaml

    from tests.acd.acd_helpers import agent as a

    doc = {"priority_aging_per_s": 0.0, "skills": ["billing", "sales", "tech", "korean", "english"],
           "pause_reasons": ["break", "lunch", "training"],
           "queues": [{"name": "support", "skills": {"tech": 1}, "wrap_up_s": 60},
                      {"name": "sales", "skills": {"sales": 1}, "wrap_up_s": 60}],
           "agents": [{"endpoint": "PJSIP/a", **a("a", ["support"], tech=1)},
                      {"endpoint": "PJSIP/b", **a("b", ["support", "sales"], tech=1, sales=1)}]}
    return yaml.safe_dump(doc, sort_keys=False)


def settle(centre: Centre, call_id: str, t: float, agent_id: str = "a") -> None:
    """The agent hangs up, the caller's leg ends, the agent is done with the wrap-up."""
    centre.at(t)(ev.AgentCallEnded(agent_id, call_id, "agent"))
    centre.at(t + 1)(f.CallEnded(call_id, 16, "Normal Clearing", "agent"))
    centre.at(t + 2)(ev.WrapUpDone(agent_id))


def test_a_settled_call_leaves_memory_at_the_next_fact_and_its_agent_is_remembered(centre: Centre) -> None:
    centre.at(1).connected("c1")
    settle(centre, "c1", 40)
    assert centre.p.records.get("c1") is not None  # its last rows are still to be handed over
    (row,) = rows(centre.p.records.get("c1"))  # type: ignore[arg-type]
    assert row.wrapup_s == 2.0 and row.ended_at == 1_800_000_040.0
    centre.at(60)(f.Heartbeat())
    assert centre.p.records.get("c1") is None
    assert centre.p.records.took_part("c1", "a") and not centre.p.records.took_part("c1", "b")
    # a wrap-up saved now goes to the database only: the call's row and its follow-up
    late = f.WrapUpSaved("c1", "a", "callback", "call back tomorrow", "callback", 1_800_090_000.0, "am", "agenta")
    centre.at(70)(late)
    assert centre.p.records.late_wrapups == [late]


def test_a_call_stays_while_its_agent_wraps_up_and_while_it_is_live(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(40)(ev.AgentCallEnded("a", "c1", "agent"))
    centre.at(41)(f.Heartbeat())
    assert centre.p.records.get("c1") is not None  # live: the caller is in the survey
    centre.at(50)(f.CallEnded("c1", 16, "Normal Clearing", "agent"))
    centre.at(51)(f.Heartbeat())
    assert centre.p.records.get("c1") is not None  # ended, but the agent is still wrapping up
    centre.at(60)(f.WrapUpSaved("c1", "a", "resolved", "fine"))
    assert centre.p.records.get("c1").parts[0].disposition == "resolved"  # type: ignore[union-attr]


def test_a_checkpoint_holds_what_is_open_not_the_days_calls(centre: Centre) -> None:
    for n in range(50):
        centre.at(100 * n + 1).connected(f"c{n}")
        settle(centre, f"c{n}", 100 * n + 40)
    centre.at(9000).connected("live")
    data = centre.p.records.dump()
    assert [c["call_id"] for c in data["calls"]] == ["live"]
    assert len(data["recent"]) == 50
    restored, _ = Projector.load(centre.p.dump(("<test>", config_text())))
    assert restored.records.took_part("c7", "a") and restored.records.get("live") is not None
