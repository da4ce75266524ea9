"""Unit tests of the pure router: who gets which call, and when."""

from __future__ import annotations

from typing import Any

import pytest

from acd import decisions as d
from acd import events as ev
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers, refusals


def queue(name: str, skills: dict[str, int], **kw: Any) -> dict[str, Any]:
    return {"name": name, "skills": skills, "announce_every_s": 0, **kw}


# ------------------------------------------------------------------ agent choice


def test_longest_idle_among_best_skilled() -> None:
    # 'low' only qualifies after the 30 s relaxation: it ranks below fully qualified agents
    # even when it has been idle longest.
    cfg = make_config(
        [queue("billing", {"billing": 5}, escalation=[{"after_s": 30, "min_levels": {"billing": 2}}])],
        [agent("low", ["billing"], billing=2), agent("a", ["billing"], billing=5),
         agent("b", ["billing"], billing=9)])
    drv = Driver(cfg)
    drv.at(0).login("low")
    drv.at(1).login("a")
    drv.at(2).login("b")
    assert offers(drv.at(3).enqueue("c1", "billing")) == [("c1", "a")]  # idle since 1, before b
    assert offers(drv.enqueue("c2", "billing")) == [("c2", "b")]
    assert offers(drv.enqueue("c3", "billing")) == []  # 'low' is not qualified yet
    assert offers(drv.tick(33.0)) == [("c3", "low")]


def test_longest_idle_counts_from_end_of_last_call() -> None:
    cfg = make_config([queue("billing", {"billing": 3}, wrap_up_s=0)],
                      [agent("a", ["billing"], billing=3), agent("b", ["billing"], billing=3)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.at(1).busy("a")
    drv.at(5).free("a")  # a idle since 5, b since 0
    assert offers(drv.at(6).enqueue("c1", "billing")) == [("c1", "b")]


def test_most_skilled_policy() -> None:
    cfg = make_config([queue("tech", {"tech": 3, "english": 1}, policy="most_skilled")],
                      [agent("mid", ["tech"], tech=6, english=2), agent("top", ["tech"], tech=9, english=2),
                       agent("low", ["tech"], tech=3, english=1)])
    drv = Driver(cfg)
    drv.at(0).login("mid", "top", "low")
    assert offers(drv.at(1).enqueue("c1", "tech")) == [("c1", "top")]
    assert offers(drv.enqueue("c2", "tech")) == [("c2", "mid")]
    assert offers(drv.enqueue("c3", "tech")) == [("c3", "low")]


def test_round_robin_policy_rotates() -> None:
    cfg = make_config([queue("sales", {"sales": 1}, policy="round_robin", wrap_up_s=0)],
                      [agent(x, ["sales"], sales=5) for x in ("a", "b", "c")])
    drv = Driver(cfg)
    drv.at(0).login("a", "b", "c")
    got = []
    for i in range(6):
        out = drv.at(1 + i).enqueue(f"c{i}", "sales")
        (call_id, agent_id), = offers(out)
        got.append(agent_id)
        drv(ev.OfferAnswered(call_id, agent_id))
        drv(ev.AgentCallEnded(agent_id, call_id))  # wrap-up 0: straight back
    assert got == ["a", "b", "c", "a", "b", "c"]


def test_fewest_calls_policy() -> None:
    cfg = make_config([queue("sales", {"sales": 1}, policy="fewest_calls", wrap_up_s=0)],
                      [agent("a", ["sales"], sales=5), agent("b", ["sales"], sales=5)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.at(1).busy("a")
    drv.at(2).free("a")  # a: 1 call, idle since 2
    drv.at(3).login("b")  # b: 0 calls, idle since 3 (a has idled longer)
    assert offers(drv.at(4).enqueue("c1", "sales")) == [("c1", "b")]


def test_least_occupied_policy() -> None:
    cfg = make_config([queue("sales", {"sales": 1}, policy="least_occupied", wrap_up_s=0)],
                      [agent("a", ["sales"], sales=5), agent("b", ["sales"], sales=5)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.at(0).busy("a")
    drv.at(90).free("a")  # a: busy 90 of 90 s
    drv.at(91).busy("b")
    drv.at(92).free("b")  # b: busy 1 of 92 s, idle more recently than a
    assert offers(drv.at(100).enqueue("c1", "sales")) == [("c1", "b")]


def test_agent_without_the_skill_is_never_offered() -> None:
    cfg = make_config([queue("billing", {"billing": 3, "korean": 2}), queue("sales", {"sales": 1})],
                      [agent("a", ["billing", "sales"], billing=9, sales=3), agent("k", ["billing"], billing=3, korean=2)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    assert offers(drv.enqueue("c1", "billing")) == []  # a lacks korean
    drv.at(1).login("k")
    assert offers(drv.log) == [("c1", "k")]


# ------------------------------------------------------------------ call choice


def test_priority_then_wait_when_agent_frees() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, priority={"vip": 100, "grades": {"A": 50}})],
                      [agent("a", ["billing"], billing=5)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.busy("a")
    drv.at(1).enqueue("plain-old", "billing")
    drv.at(2).enqueue("grade-a", "billing", grade="A")
    drv.at(3).enqueue("plain-new", "billing")
    drv.at(4).enqueue("vip", "billing", vip=True)
    drv.at(5).enqueue("ivr-high", "billing", priority=50)  # same base as grade A, waited less
    order = []
    for t in range(6, 11):
        (call_id, _), = offers(drv.at(t).free("a"))
        order.append(call_id)
        drv(ev.OfferAnswered(call_id, "a"))
    assert order == ["vip", "grade-a", "ivr-high", "plain-old", "plain-new"]


def test_anti_starvation_aging_overtakes_priority() -> None:
    # aging 1 point/s: a plain caller who waited 100 s beats a grade-A (50 points) who just came.
    cfg = make_config([queue("billing", {"billing": 1}, priority={"grades": {"A": 50}})],
                      [agent("a", ["billing"], billing=5)], aging=1.0)
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.busy("a")
    drv.at(10).enqueue("plain", "billing")
    drv.at(70).enqueue("gold", "billing", grade="A")  # plain effective 60 vs gold 50
    assert offers(drv.at(71).free("a")) == [("plain", "a")]
    drv2 = Driver(cfg)
    drv2.at(0).login("a")
    drv2.busy("a")
    drv2.at(10).enqueue("plain", "billing")
    drv2.at(40).enqueue("gold", "billing", grade="A")  # plain effective 30 vs gold 50
    assert offers(drv2.at(41).free("a")) == [("gold", "a")]


def test_agent_first_choice_across_queues() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, priority={"vip": 100}), queue("sales", {"sales": 1}),
                       queue("tech", {"tech": 1})],
                      [agent("a", ["billing", "sales"], billing=5, sales=5), agent("t", ["tech"], tech=1)])
    drv = Driver(cfg)
    drv.at(0).login("a", "t")
    drv.busy("a")
    drv.busy("t")
    drv.at(1).enqueue("s-old", "sales")
    drv.at(2).enqueue("b-new", "billing")
    drv.at(3).enqueue("t-oldest", "tech")  # a does not serve tech
    assert offers(drv.at(4).free("a")) == [("s-old", "a")]  # same priority: longest wait wins
    drv(ev.OfferAnswered("s-old", "a"))
    drv.at(5).enqueue("b-vip", "billing", vip=True)
    assert offers(drv.at(6).free("a")) == [("b-vip", "a")]  # priority beats wait across queues


# ------------------------------------------------------------------ escalation and timeouts


def test_escalation_steps_fire_at_their_exact_times() -> None:
    cfg = make_config(
        [queue("billing", {"billing": 4}, max_wait_s=200, on_max_wait="voicemail",
               escalation=[{"after_s": 30, "min_levels": {"billing": 2}}, {"after_s": 60, "also_offer_to": "general"}]),
         queue("general", {"english": 1})],
        [agent("b4", ["billing"], billing=4), agent("b2", ["billing"], billing=2),
         agent("g", ["general"], english=3)])
    drv = Driver(cfg)
    drv.at(0).login("b4")
    drv.busy("b4")
    drv.at(10).enqueue("c1", "billing")
    drv.at(10).login("b2", "g")
    assert offers(drv.log) == [("busy-b4", "b4")]
    assert offers(drv.tick(39.999)) == []
    assert drv.router.next_due() == 40.0
    assert offers(drv.tick(40.0)) == [("c1", "b2")]
    drv(ev.OfferAnswered("c1", "b2"))
    drv.at(50).enqueue("c2", "billing")
    assert offers(drv.tick(109.999)) == []
    assert offers(drv.tick(110.0)) == [("c2", "g")]  # overflow to general at 60 s
    offer, = of_type(drv.log, d.Offer)[-1:]
    assert offer.via_queue == "general" and offer.queue == "billing"


def test_decisions_are_timestamped_at_the_due_time_even_if_ticked_late() -> None:
    cfg = make_config([queue("billing", {"billing": 4}, escalation=[{"after_s": 30, "min_levels": {"billing": 2}}])],
                      [agent("b2", ["billing"], billing=2)])
    drv = Driver(cfg)
    drv.at(0).login("b2")
    drv.enqueue("c1", "billing")
    changed, = [x for x in drv.tick(45.0) if isinstance(x, d.AgentStateChanged)]
    assert changed.at == 30.0


def test_max_wait_voicemail_and_queue_move() -> None:
    cfg = make_config(
        [queue("sales", {"sales": 1}, max_wait_s=60, on_max_wait="queue:general"),
         queue("general", {"english": 1}, max_wait_s=30, on_max_wait="voicemail")],
        [agent("s", ["sales"], sales=1), agent("g", ["general"], english=1)])
    drv = Driver(cfg)
    drv.at(0).login("s", "g")
    drv.busy("s")
    drv.busy("g")
    drv.at(5).enqueue("c1", "sales")
    out = drv.tick(65.0)
    assert of_type(out, d.TimeoutAction) == [d.TimeoutAction("c1", "sales", "queue", "general")]
    view = drv.router.call_view("c1")
    assert view is not None and view.queue == "general" and view.state == "waiting"
    assert drv.tick(94.9) == []
    out = drv.tick(95.0)
    assert of_type(out, d.TimeoutAction) == [d.TimeoutAction("c1", "general", "voicemail", None)]
    assert drv.router.call_view("c1") is None


def test_deadline_while_ringing_waits_for_the_offer_outcome() -> None:
    cfg = make_config([queue("sales", {"sales": 1}, max_wait_s=20, on_max_wait="voicemail")],
                      [agent("s", ["sales"], sales=1)])
    drv = Driver(cfg)
    drv.at(0).login("s")
    drv.at(15).enqueue("c1", "sales")  # s is idle: offered at once
    drv.at(15)(ev.OfferRinging("c1", "s"))
    assert of_type(drv.tick(36.0), d.TimeoutAction) == []  # deadline at 35 while ringing
    out = drv.at(37)(ev.OfferFailed("c1", "s", "no-answer"))
    assert of_type(out, d.TimeoutAction) == [d.TimeoutAction("c1", "sales", "voicemail", None)]


# ------------------------------------------------------------------ sticky, ring-no-answer, callbacks


def test_sticky_agent_gets_the_call_first_within_the_window() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, sticky_window_s=10)],
                      [agent("last", ["billing"], billing=1), agent("other", ["billing"], billing=9)])
    drv = Driver(cfg)
    drv.at(0).login("last", "other")
    assert offers(drv.at(1).enqueue("c1", "billing", sticky_agent_id="last")) == [("c1", "last")]
    drv(ev.OfferAnswered("c1", "last"))
    # last is busy: the next call from a caller of theirs waits up to 10 s for them
    assert offers(drv.at(2).enqueue("c2", "billing", sticky_agent_id="last")) == []
    assert drv.state("other") == "available"
    assert offers(drv.at(5).free("last")) == [("c2", "last")]


def test_sticky_window_expires_to_everyone() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, sticky_window_s=10)],
                      [agent("last", ["billing"], billing=1), agent("other", ["billing"], billing=9)])
    drv = Driver(cfg)
    drv.at(0).login("last", "other")
    drv.busy("last")
    drv.at(1).enqueue("c2", "billing", sticky_agent_id="last")
    assert offers(drv.tick(10.999)) == []
    assert offers(drv.tick(11.0)) == [("c2", "other")]


def test_sticky_agent_logged_out_means_no_window() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, sticky_window_s=10)],
                      [agent("last", ["billing"], billing=1), agent("other", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("other")
    assert offers(drv.at(1).enqueue("c1", "billing", sticky_agent_id="last")) == [("c1", "other")]


def test_ring_no_answer_requeues_at_head_and_pauses_agent() -> None:
    cfg = make_config([queue("billing", {"billing": 1})],
                      [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.busy("b")
    drv.at(1).enqueue("first", "billing")  # offered to a
    drv.at(2).enqueue("second", "billing")
    drv.at(3).enqueue("third", "billing")
    out = drv.at(16)(ev.OfferFailed("first", "a", "no-answer"))
    assert drv.state("a") == "not_responding"
    assert offers(out) == []
    view = drv.router.call_view("first")
    assert view is not None and view.position == 1 and view.state == "waiting"
    assert offers(drv.at(17).free("b")) == [("first", "b")]


def test_head_of_queue_beats_higher_priority_after_no_answer() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, priority={"vip": 100})],
                      [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.busy("b")
    drv.at(1).enqueue("plain", "billing")
    drv.at(2).enqueue("vip", "billing", vip=True)
    drv.at(16)(ev.OfferFailed("plain", "a", "busy"))
    assert offers(drv.at(17).free("b")) == [("plain", "b")]


def test_caller_hangs_up_while_agent_rings() -> None:
    cfg = make_config([queue("billing", {"billing": 1})], [agent("a", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.at(1).enqueue("c1", "billing")
    drv(ev.OfferRinging("c1", "a"))
    drv.at(2).enqueue("c2", "billing")
    out = drv.at(3)(ev.CallerHungUp("c1"))
    assert of_type(out, d.CancelOffer) == [d.CancelOffer("c1", "a", "caller hung up")]
    assert offers(out) == [("c2", "a")]  # the agent is straight back at work
    assert drv.router.call_view("c1") is None


def test_agent_hangs_up_starts_wrap_up_then_available() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, wrap_up_s=20)], [agent("a", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.at(1).enqueue("c1", "billing")
    drv.at(2)(ev.OfferAnswered("c1", "a"))
    drv.at(3)(ev.HoldStarted("c1"))
    assert drv.state("a") == "on_hold"
    drv.at(4)(ev.HoldEnded("c1"))
    drv.at(10)(ev.AgentCallEnded("a", "c1"))
    assert drv.state("a") == "wrap_up"
    assert drv.at(10)(ev.CallerHungUp("c1")) == []  # the second hang-up is expected, and quiet
    drv.tick(29.9)
    assert drv.state("a") == "wrap_up"
    drv.tick(30.0)
    assert drv.state("a") == "available"


def test_callback_keeps_place_and_survives_hangup() -> None:
    cfg = make_config([queue("billing", {"billing": 1})], [agent("a", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.busy("a")
    drv.at(1).enqueue("c1", "billing", caller_num="0101111")
    drv.at(2).enqueue("c2", "billing")
    drv.at(3)(ev.CallbackRequested("c1"))
    assert drv.at(4)(ev.CallerHungUp("c1")) == []  # the original channel goes; the place stays
    view = drv.router.call_view("c1")
    assert view is not None and view.position == 1 and view.virtual
    out = drv.at(5).free("a")
    offer, = of_type(out, d.Offer)
    assert (offer.call_id, offer.callback_number) == ("c1", "0101111")


def test_timeout_callback_makes_a_virtual_caller() -> None:
    cfg = make_config([queue("billing", {"billing": 1}, escalation=[{"after_s": 60, "action": "callback"}])],
                      [agent("a", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.busy("a")
    drv.at(1).enqueue("c1", "billing", caller_num="0102222")
    out = drv.tick(61)
    assert of_type(out, d.TimeoutAction) == [d.TimeoutAction("c1", "billing", "callback", None)]
    view = drv.router.call_view("c1")
    assert view is not None and view.virtual and view.position == 1


def test_announcements_position_and_estimated_wait() -> None:
    cfg = make_config([{"name": "billing", "skills": {"billing": 1}, "announce_every_s": 30, "default_handle_s": 120}],
                      [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.busy("a")
    drv.busy("b")
    drv.at(1).enqueue("c1", "billing")
    drv.at(2).enqueue("c2", "billing")
    out = drv.tick(32.0)
    assert of_type(out, d.Announce) == [d.Announce("c1", "billing", 1, 60), d.Announce("c2", "billing", 2, 120)]
    assert [a.call_id for a in of_type(drv.tick(62.0), d.Announce)] == ["c1", "c2"]


@pytest.mark.parametrize("policy", ["longest_idle", "most_skilled", "round_robin", "fewest_calls",
                                    "least_occupied"])
def test_every_policy_serves_every_waiting_call(policy: str) -> None:
    cfg = make_config([queue("q", {"sales": 2}, policy=policy, wrap_up_s=0)],
                      [agent(f"a{i}", ["q"], sales=2 + i) for i in range(3)])
    drv = Driver(cfg)
    drv.at(0).login("a0", "a1", "a2")
    got = offers(drv.enqueue("c0", "q") + drv.enqueue("c1", "q") + drv.enqueue("c2", "q")
                 + drv.enqueue("c3", "q"))
    assert sorted(a for _, a in got) == ["a0", "a1", "a2"]
    assert not refusals(drv.log)
    for call_id, agent_id in got:
        drv(ev.OfferAnswered(call_id, agent_id))
    assert offers(drv.at(1)(ev.AgentCallEnded(got[0][1], got[0][0]))) == [("c3", got[0][1])]


def test_agent_freeing_up_takes_a_call_overflowing_into_their_queue() -> None:
    cfg = make_config([queue("billing", {"billing": 5}, escalation=[{"after_s": 60, "also_offer_to": "general"}]),
                       queue("general", {"english": 1})],
                      [agent("b", ["billing"], billing=5), agent("g", ["general"], english=2)])
    drv = Driver(cfg)
    drv.at(0).login("b", "g")
    drv.busy("b")
    drv.busy("g")
    drv.at(1).enqueue("c1", "billing")
    drv.tick(61.0)
    drv.at(62).enqueue("g1", "general")
    assert offers(drv.at(70).free("g")) == [("c1", "g")]  # waited longer than g1, same priority


def test_reset_day_zeroes_fewest_calls_counters() -> None:
    cfg = make_config([queue("sales", {"sales": 1}, policy="fewest_calls", wrap_up_s=0)],
                      [agent("a", ["sales"], sales=5), agent("b", ["sales"], sales=5)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.at(1).busy("b", "x1")
    drv.at(2).free("b")
    drv.at(3).busy("b", "x2")
    drv.at(4).free("b")  # b: 2 calls, idle since 4
    drv.at(5).busy("a")
    drv.at(6).free("a")  # a: 1 call, idle since 6
    drv.router.reset_day()
    assert offers(drv.at(7).enqueue("c1", "sales")) == [("c1", "b")]  # 0 calls each: longest idle wins
    assert drv.router.agent_view("a", 7.0).calls_answered == 0


def test_queue_log_lines() -> None:
    cfg = make_config([queue("billing", {"billing": 1})], [agent("a", ["billing"], billing=1)])
    drv = Driver(cfg)
    drv.at(0).login("a")
    drv.at(1.5).enqueue("c1", "billing", caller_num="0101234")
    drv.at(3)(ev.OfferAnswered("c1", "a"))
    lines = [x.line() for x in of_type(drv.log, d.QueueLogEntry)]
    # Asterisk's grammar (tests/captures 16): epoch seconds, one queue per line, ENTERQUEUE url|caller|position,
    # CONNECT holdtime|bridged leg|ringtime.
    assert lines == ["0|NONE|billing|a|AGENTLOGIN|PJSIP/a", "1|c1|billing|NONE|ENTERQUEUE||0101234|1",
                     "3|c1|billing|a|CONNECT|2|cti-offer-1-a|2"]
