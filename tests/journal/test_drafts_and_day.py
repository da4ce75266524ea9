"""Wrap-up drafts and the agents' figures of the day, folded from facts through the real projector
(router included), kept across checkpoints; and checkpoints written before they existed still load."""

from __future__ import annotations

import json

import pytest

from acd import events as ev
from ctiserver.consoles.numbers import format_number
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector
from tests.journal.test_records import Centre


@pytest.fixture
def centre() -> Centre:
    c = Centre()
    c(ev.AgentLoggedIn("a"))
    return c


def test_a_draft_is_kept_on_its_call_when_the_wrap_up_reaches_its_maximum(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(30)(ev.AgentCallEnded("a", "c1"))
    centre.at(31)(f.WrapUpDraft("c1", "a", "", "half"))
    centre.at(32)(ev.WrapUpHeld("a", "c1"))
    centre.at(40)(f.WrapUpDraft("c1", "a", "follow_up", "half written"))
    assert centre.p.drafts.open["c1"].caller_name == "Li Lei"
    centre.at(100)(f.Heartbeat())  # past wrap_up_s (60 after the end): still in wrap-up, held
    assert centre.p.router.agent_view("a", centre.now).state == "wrap_up"
    centre.at(30 + 240)(f.Heartbeat())  # the maximum: 4 x 60 s
    assert centre.p.router.agent_view("a", centre.now).state == "available"
    kept = centre.p.drafts.kept["c1"]
    assert (kept.agent_id, kept.disposition, kept.notes, kept.why, kept.queue) == (
        "a", "follow_up", "half written", "wrap-up maximum reached", "support")
    assert "c1" not in centre.p.drafts.open

    # Survives a checkpoint; a later save removes it.
    again, problems = Projector.load(centre.p.dump(("<test>", CONFIG_TEXT)))
    assert problems == [] and again.drafts.kept["c1"] == kept
    centre.at(300)(f.WrapUpSaved("c1", "a", "resolved", "done"))
    assert "c1" not in centre.p.drafts.kept


def test_a_saved_wrap_up_leaves_no_draft(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(30)(ev.AgentCallEnded("a", "c1"))
    centre.at(31)(f.WrapUpDraft("c1", "a", "", "typing"))
    centre.at(32)(ev.WrapUpHeld("a", "c1"))
    centre.at(40)(f.WrapUpSaved("c1", "a", "resolved", "typed"))
    centre.at(41)(ev.WrapUpDone("a"))
    assert centre.p.drafts.open == {} and centre.p.drafts.kept == {}


def test_agent_figures_of_the_day(centre: Centre) -> None:
    centre.at(1).connected("c1")  # available 0 -> 1, answered at 1
    centre.at(31)(ev.AgentCallEnded("a", "c1"))
    centre.at(41)(ev.WrapUpDone("a"))  # handled: 40 s from the answer to the end of wrap-up
    figures = centre.p.stats.agents.figures("a", centre.now + 40)  # 40 s more available
    assert figures.answered == 1 and figures.aht_s == pytest.approx(40.0)
    assert figures.occupancy_pct == pytest.approx(100 * 40 / (40 + 1 + 40), abs=0.5)
    again, _ = Projector.load(centre.p.dump(("<test>", CONFIG_TEXT)))
    assert again.stats.agents.figures("a", centre.now + 40) == figures


def test_a_checkpoint_from_before_drafts_and_day_figures_loads(centre: Centre) -> None:
    centre.at(1).connected("c1")
    centre.at(30)(ev.AgentCallEnded("a", "c1"))
    data = json.loads(centre.p.dump(("<test>", CONFIG_TEXT)))
    del data["drafts"], data["agent_day"]
    for agent in data["router"]["agents"].values():
        del agent["wrap_held"]
    old, problems = Projector.load(json.dumps(data))
    assert problems == [] and old.drafts.kept == {} and old.stats.agents.agents == {}
    assert old.router.agent_view("a", centre.now).state == "wrap_up"
    assert not old.router.agent_view("a", centre.now).wrap_held


def test_old_journal_facts_still_decode_and_new_ones_round_trip() -> None:
    kind, text = f.encode(ev.WrapUpHeld("a", "c1"))
    assert kind == "acd.wrap_up_held" and f.decode(kind, text) == ev.WrapUpHeld("a", "c1")
    assert f.decode("call.wrapup_draft", '{"call_id":"c1","agent_id":"a"}') == f.WrapUpDraft("c1", "a", "", "")
    assert f.decode("acd.wrap_up_done", '{"agent_id":"a"}') == ev.WrapUpDone("a")


@pytest.mark.parametrize(("raw", "shown"), [
    ("8613453233942", "+86 134 5323 3942"), ("+8613800000001", "+86 138 0000 0001"),
    ("13800138000", "+86 138 0013 8000"), ("+14155552671", "+1 415-555-2671"), ("1001", "1001"),
    ("", ""), ("anonymous", "anonymous"),
])
def test_numbers_as_people_read_them(raw: str, shown: str) -> None:
    assert format_number(raw) == shown


# The same queues and agents as tests.journal.test_records.config(), as the text a checkpoint stores.
CONFIG_TEXT = """\
skills: [billing, sales, tech, korean, english]
pause_reasons: [break, lunch, training]
queues:
  - {name: support, skills: {tech: 1}, wrap_up_s: 60}
  - {name: sales, skills: {sales: 1}, wrap_up_s: 60}
agents:
  - {id: a, name: Agent a, skills: {tech: 1}, queues: [support], endpoint: PJSIP/a}
  - {id: b, name: Agent b, skills: {tech: 1, sales: 1}, queues: [support, sales], endpoint: PJSIP/b}
"""
