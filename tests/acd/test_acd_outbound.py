"""An agent's own outbound call (click-to-call, a callback dialled agent first) in the ACD: busy while it
lasts, no inbound offer meanwhile, wrap-up after by the queue's rule, a pause taken before comes back."""

from __future__ import annotations

from acd import decisions as d
from acd import events as ev
from acd.router import Router
from acd.states import AGENT_TRANSITIONS, AgentState

from .acd_helpers import Driver, agent, make_config, of_type, offers, refusals
from .test_acd_routing import queue


def _driver(wrap_up_s: float = 20.0) -> Driver:
    cfg = make_config([queue("sales", {"sales": 1}, wrap_up_s=wrap_up_s)],
                      [agent("a1", ["sales"], sales=1), agent("a2", ["sales"], sales=1)])
    drv = Driver(cfg)
    drv.login("a1")
    return drv


def test_outbound_call_keeps_inbound_offers_away_then_wraps_up_by_the_queue_rule() -> None:
    drv = _driver()
    assert not refusals(drv(ev.OutboundStarted("a1", "cti-out-1-a1", "sales")))
    assert drv.state("a1") == "on_call"
    assert offers(drv.at(1).enqueue("c1", "sales")) == []  # the only agent is on their own call
    out = drv.at(30)(ev.OutboundEnded("a1", "cti-out-1-a1", "answered", "agent", "sales"))
    assert drv.state("a1") == "wrap_up"
    assert [x.new for x in of_type(out, d.AgentStateChanged)] == ["wrap_up"]
    assert offers(drv.tick(49.9)) == []
    assert offers(drv.tick(50.0)) == [("c1", "a1")]  # 20 s of wrap-up, then the waiting caller


def test_outbound_from_a_pause_returns_to_the_pause() -> None:
    drv = _driver(wrap_up_s=0)
    drv(ev.AgentPaused("a1", "lunch"))
    drv.at(1)(ev.OutboundStarted("a1", "cti-out-2-a1", "sales"))
    drv.at(5)(ev.OutboundEnded("a1", "cti-out-2-a1", "busy", "unknown", "sales"))
    view = drv.router.agent_view("a1", 5)
    assert (view.state, view.pause_reason) == ("paused", "lunch")


def test_outbound_refused_while_ringing_or_on_a_call() -> None:
    drv = _driver()
    drv.enqueue("c1", "sales")
    out = drv(ev.OutboundStarted("a1", "cti-out-3-a1", "sales"))
    assert refusals(out) and drv.state("a1") == "reserved"
    assert refusals(drv(ev.OutboundEnded("a2", "cti-out-9-a2")))  # not on that call: nothing moves


def test_outbound_end_of_another_call_is_refused() -> None:
    drv = _driver()
    drv(ev.OutboundStarted("a1", "cti-out-4-a1"))
    assert refusals(drv(ev.OutboundEnded("a1", "cti-out-5-a1")))
    assert drv.state("a1") == "on_call"
    drv(ev.OutboundEnded("a1", "cti-out-4-a1", "no_answer"))
    assert drv.state("a1") == "available"  # no queue named: no wrap-up time


def test_dial_out_is_in_the_transition_table() -> None:
    assert AGENT_TRANSITIONS[(AgentState.AVAILABLE, "dial_out")] is AgentState.ON_CALL
    assert AGENT_TRANSITIONS[(AgentState.PAUSED, "dial_out")] is AgentState.ON_CALL


def test_outbound_survives_a_checkpoint() -> None:
    drv = _driver()
    drv(ev.OutboundStarted("a1", "cti-out-6-a1", "sales"))
    router, problems = Router.load(drv.router.config, drv.router.dump())
    assert not problems
    assert router.agent_view("a1", 0).call_id == "cti-out-6-a1"
    out = router.handle(ev.OutboundEnded("a1", "cti-out-6-a1", "answered", "agent", "sales"), 3)
    assert not refusals(out) and router.agent_view("a1", 3).state == "wrap_up"


def test_a_callback_enters_the_line_virtual_and_is_offered_with_its_number() -> None:
    drv = _driver()
    drv(ev.OutboundStarted("a1", "cti-out-7-a1", "sales"))  # nobody free yet
    out = drv.enqueue("cb-1-1", "sales", caller_num="+8613966667777", callback_number="+8613966667777")
    changes = [(x.old, x.new) for x in of_type(out, d.CallStateChanged)]
    assert changes == [("new", "waiting"), ("waiting", "callback")]
    view = drv.router.call_view("cb-1-1")
    assert view is not None and view.virtual and view.state == "callback"
    drv.at(5)(ev.OutboundEnded("a1", "cti-out-7-a1", "answered", "agent", "sales"))
    [offer] = of_type(drv.tick(25.0), d.Offer)
    assert (offer.call_id, offer.callback_number) == ("cb-1-1", "+8613966667777")


def test_an_outbound_wrap_up_of_its_own_length_replaces_the_queue_rule_and_survives_a_checkpoint() -> None:
    drv = _driver(wrap_up_s=20.0)
    drv(ev.OutboundStarted("a1", "dial-1", "sales"))
    drv.at(10)(ev.OutboundEnded("a1", "dial-1", "answered", "unknown", "sales", wrap_up_s=5.0))
    assert drv.router.agent_view("a1", 10).wrap_up_s == 5.0
    router, problems = Router.load(drv.router.config, drv.router.dump())
    assert not problems and router.agent_view("a1", 12).wrap_up_s == 5.0
    assert drv.enqueue("c1", "sales") and offers(drv.tick(14.9)) == []
    assert offers(drv.tick(15.0)) == [("c1", "a1")]  # 5 s, not the queue's 20
    assert drv.router.agent_view("a1", 15).wrap_up_s is None


def test_holding_the_form_open_never_shortens_a_wrap_up_of_its_own_length() -> None:
    drv = _driver(wrap_up_s=20.0)  # the queue's maximum with the form open: 120 s
    drv(ev.OutboundStarted("a1", "dial-2", "sales"))
    drv.at(10)(ev.OutboundEnded("a1", "dial-2", "answered", "unknown", "sales", wrap_up_s=300.0))
    drv.at(11)(ev.WrapUpHeld("a1", "dial-2"))
    drv.enqueue("c1", "sales")
    assert offers(drv.tick(200.0)) == []  # past the queue's 120 s, inside the campaign's 300
    assert offers(drv.tick(310.0)) == [("c1", "a1")]
