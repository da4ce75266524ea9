"""A wrap-up whose form is open outlives the queue's wrap_up_s: no offer to that agent until it is saved
or the queue's maximum is reached."""

from __future__ import annotations

import pytest

from acd import decisions as d
from acd import events as ev
from acd.errors import AcdConfigError
from acd.router import Router
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers, refusals


def _support(**extra: object) -> Driver:
    cfg = make_config([{"name": "support", "skills": {"tech": 1}, "wrap_up_s": 15, **extra}],
                      [agent("a", ["support"], tech=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.at(1).enqueue("c1", "support")
    drv.at(2)(ev.OfferAnswered("c1", "a"))
    drv.at(10)(ev.AgentCallEnded("a", "c1"))
    return drv


def test_open_form_holds_the_agent_past_wrap_up_s_while_a_caller_waits() -> None:
    drv = _support(wrap_up_max_s=60)
    out = drv.at(12)(ev.WrapUpHeld("a", "c1"))
    assert of_type(out, d.WrapUpExtended) == [d.WrapUpExtended("a", "c1", 70.0, 12.0)]
    assert drv.router.agent_view("a", 12).wrap_held
    assert offers(drv.at(20).enqueue("c2", "support")) == []
    out = drv.tick(40)  # past wrap_up_s (25): still wrapping up, the caller is not offered
    assert drv.state("a") == "wrap_up" and offers(out) == []
    out = drv.tick(70)  # the maximum: the wrap-up ends and the waiting caller is offered at once
    assert drv.state("a") == "reserved"
    ended = [x for x in of_type(out, d.AgentStateChanged) if x.old == "wrap_up"]
    assert ended[0].reason == "wrap-up maximum reached" and ended[0].call_id == "c1"
    assert offers(out) == [("c2", "a")]


def test_saving_ends_a_held_wrap_up_and_the_caller_is_offered() -> None:
    drv = _support()
    drv.at(11)(ev.WrapUpHeld("a", "c1"))
    drv.at(12).enqueue("c2", "support")
    drv.tick(100)
    assert drv.state("a") == "wrap_up"
    out = drv.at(101)(ev.WrapUpDone("a"))
    assert offers(out) == [("c2", "a")]


def test_default_maximum_is_four_times_wrap_up_at_least_two_minutes() -> None:
    drv = _support()
    out = drv.at(11)(ev.WrapUpHeld("a", "c1"))
    assert of_type(out, d.WrapUpExtended)[0].until == 10 + 120
    assert drv.at(12)(ev.WrapUpHeld("a", "c1")) == []  # twice: once is enough, nothing new
    drv.tick(129.9)
    assert drv.state("a") == "wrap_up"
    drv.tick(130)
    assert drv.state("a") == "available"


def test_held_wrap_up_of_another_call_or_outside_wrap_up_is_refused() -> None:
    drv = _support()
    assert refusals(drv.at(11)(ev.WrapUpHeld("a", "other")))
    drv.at(12)(ev.WrapUpDone("a"))
    assert refusals(drv.at(13)(ev.WrapUpHeld("a", "c1")))
    assert drv.state("a") == "available"


def test_without_a_held_form_wrap_up_s_still_applies() -> None:
    drv = _support()
    drv.tick(24.9)
    assert drv.state("a") == "wrap_up"
    drv.tick(25)
    assert drv.state("a") == "available"


def test_held_wrap_up_survives_a_checkpoint() -> None:
    drv = _support(wrap_up_max_s=50)
    drv.at(11)(ev.WrapUpHeld("a", "c1"))
    router, problems = Router.load(drv.router.config, drv.router.dump())
    assert problems == []
    router.tick(40)
    assert router.agent_view("a", 40).state == "wrap_up"
    router.tick(60)
    assert router.agent_view("a", 60).state == "available"


def test_maximum_below_wrap_up_s_is_a_config_error() -> None:
    with pytest.raises(AcdConfigError, match="wrap_up_max_s"):
        make_config([{"name": "support", "skills": {"tech": 1}, "wrap_up_s": 30, "wrap_up_max_s": 10}],
                    [agent("a", ["support"], tech=1)])
