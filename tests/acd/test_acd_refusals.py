"""Commands that make no sense get a clear Refusal and change nothing; a pause on a call waits for wrap-up."""

from __future__ import annotations

from typing import Any

import pytest

from acd import decisions as d
from acd import events as ev
from acd.router import Router
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers, refusals


def setup() -> Driver:
    cfg = make_config([{"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 30, "announce_every_s": 0},
                       {"name": "sales", "skills": {"sales": 1}}],
                      [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1), agent("s", ["sales"], sales=1),
                       {"id": "noend", "skills": {"billing": 1}, "queues": ["billing"], "endpoint": None}])
    drv = Driver(cfg)
    drv.at(0).login("a")
    return drv


def snapshot(router: Router) -> Any:
    return ([router.agent_view(a, 0.0) for a in router.agent_ids()],
            [router.call_view(c) for c in router.call_ids()])


@pytest.mark.parametrize(("event", "needle"), [
    (ev.OfferAnswered("nothing", "a"), "nothing offered to agent a"),
    (ev.OfferFailed("nothing", "a"), "not offered"),
    (ev.OfferRinging("nothing", "a"), "not offered"),
    (ev.WrapUpDone("a"), "not in wrap-up"),
    (ev.AgentReady("a"), "cannot become ready while available"),
    (ev.AgentPaused("a", "nap"), "unknown pause reason 'nap'"),
    (ev.AgentLoggedIn("a"), "already logged in"),
    (ev.AgentLoggedIn("ghost"), "unknown agent 'ghost'"),
    (ev.AgentLoggedIn("b", queues=("nowhere",)), "unknown queue"),
    (ev.AgentLoggedIn("noend"), "no endpoint"),
    (ev.AgentLoggedIn("b", queues=("billing", "sales")), "lacks the skills for queue(s) ['sales']"),
    (ev.AgentLoggedOut("b"), "not logged in"),
    (ev.AgentPaused("b", "break"), "not logged in"),
    (ev.CallEnqueued("x", "nowhere"), "unknown queue 'nowhere'"),
    (ev.CallbackRequested("nothing"), "callback needs a waiting caller"),
    (ev.CallLeftQueue("nothing"), "not in a queue"),
    (ev.CallerHungUp("nothing"), "unknown call"),
    (ev.HoldStarted("nothing"), "not connected"),
    (ev.AgentCallEnded("a", "nothing"), "not connected"),
])
def test_nonsense_is_refused_and_changes_nothing(event: ev.Event, needle: str) -> None:
    drv = setup()
    before = snapshot(drv.router)
    out = drv.at(1)(event)
    refusal, = refusals(out)
    assert out == [refusal] and refusal.event == event
    assert needle in refusal.reason
    assert snapshot(drv.router) == before


def test_answer_by_the_wrong_agent_is_refused() -> None:
    drv = setup()
    drv.at(0).login("b")
    drv.at(1).enqueue("c1", "billing")  # offered to a (idle longest)
    refusal, = refusals(drv.at(2)(ev.OfferAnswered("c1", "b")))
    assert "nothing offered to agent b" in refusal.reason
    assert drv.state("a") == "reserved" and drv.state("b") == "available"


def test_logout_while_on_call_is_refused() -> None:
    drv = setup()
    drv.busy("a")
    refusal, = refusals(drv.at(2)(ev.AgentLoggedOut("a")))
    assert "finish it first" in refusal.reason
    assert drv.state("a") == "on_call"


def test_pause_on_a_call_is_deferred_to_after_wrap_up() -> None:
    drv = setup()
    drv.busy("a")
    out = drv.at(5)(ev.AgentPaused("a", "lunch"))
    assert of_type(out, d.PauseDeferred) == [d.PauseDeferred("a", "lunch", "on_call", 5)]
    assert drv.state("a") == "on_call"
    drv.at(10).enqueue("c2", "billing")
    drv.at(20)(ev.AgentCallEnded("a", "busy-a"))
    assert drv.state("a") == "wrap_up"
    out = drv.tick(50.0)
    view = drv.router.agent_view("a", 50.0)
    assert (view.state, view.pause_reason) == ("paused", "lunch")
    assert offers(out) == []  # the waiting c2 is not offered to a pausing agent
    assert offers(drv.at(60)(ev.AgentReady("a"))) == [("c2", "a")]


def test_console_lost_is_a_pause_reason_without_being_configured() -> None:
    # The server's own reason (ctiserver.consoles.presence): not in pause_reasons, accepted all the same,
    # and deferred on a call like any pause.
    drv = setup()
    assert "console_lost" not in drv.router.config.pause_reasons
    drv.busy("a")
    out = drv.at(5)(ev.AgentPaused("a", "console_lost"))
    assert of_type(out, d.PauseDeferred) == [d.PauseDeferred("a", "console_lost", "on_call", 5)]
    drv.at(20)(ev.AgentCallEnded("a", "busy-a"))
    drv.tick(50.0)
    view = drv.router.agent_view("a", 50.0)
    assert (view.state, view.pause_reason) == ("paused", "console_lost")


def test_ready_during_wrap_up_ends_it_early() -> None:
    drv = setup()
    drv.busy("a")
    drv.at(20)(ev.AgentCallEnded("a", "busy-a"))
    drv.at(25)(ev.AgentReady("a"))
    view = drv.router.agent_view("a", 25.0)
    assert (view.state, view.since) == ("available", 25.0)
    assert drv.tick(50.0) == []  # the old wrap-up timer is dead


def test_logout_while_ringing_cancels_the_offer_and_keeps_the_callers_place() -> None:
    drv = setup()
    drv.at(1).enqueue("c1", "billing")
    drv.at(2).enqueue("c2", "billing")
    out = drv.at(3)(ev.AgentLoggedOut("a"))
    assert of_type(out, d.CancelOffer) == [d.CancelOffer("c1", "a", "agent logged out")]
    assert drv.state("a") == "logged_out"
    view = drv.router.call_view("c1")
    assert view is not None and view.position == 1
    drv.at(4).login("b")
    assert offers(drv.log)[-1] == ("c1", "b")


def test_not_responding_agent_needs_ready() -> None:
    drv = setup()
    drv.at(1).enqueue("c1", "billing")
    drv.at(16)(ev.OfferFailed("c1", "a", "no-answer"))
    assert drv.state("a") == "not_responding"
    assert offers(drv.at(17)(ev.AgentPaused("a", "break"))) == []
    assert drv.state("a") == "paused"
    assert offers(drv.at(18)(ev.AgentReady("a"))) == [("c1", "a")]


def test_time_cannot_go_backwards() -> None:
    drv = setup()
    drv.tick(10.0)
    with pytest.raises(ValueError, match="backwards"):
        drv.router.tick(9.0)


def test_pause_while_ringing_applies_when_the_caller_hangs_up() -> None:
    drv = setup()
    drv.at(1).enqueue("c1", "billing")
    drv.at(2)(ev.AgentPaused("a", "break"))
    drv.at(3).enqueue("c2", "billing")
    out = drv.at(4)(ev.CallerHungUp("c1"))
    assert offers(out) == []  # c2 is not offered to an agent who asked for a break
    assert drv.router.agent_view("a", 4.0).pause_reason == "break"
    assert drv.state("a") == "paused"
