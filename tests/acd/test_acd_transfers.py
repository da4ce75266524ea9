"""Transfers and consultations move the call in the router, the one owner of who has which call; who hung
up decides the queue_log verb; an offer the system withdrew does not count against the agent."""

from __future__ import annotations

from acd import decisions as d
from acd import events as ev
from acd.stats import LiveStats
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers, refusals


def config():
    return make_config(
        [{"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 30},
         {"name": "sales", "skills": {"sales": 1}, "wrap_up_s": 10}],
        [agent("a", ["billing"], billing=1), agent("b", ["billing", "sales"], billing=1, sales=1),
         agent("c", ["sales"], sales=1)],
    )


def connected(drv: Driver, call_id: str = "c1", who: str = "a") -> None:
    drv.enqueue(call_id, "billing", caller_num="0101")
    assert drv.router.call_view(call_id).agent_id == who  # type: ignore[union-attr]
    drv(ev.OfferAnswered(call_id, who))


def verbs(drv: Driver) -> list[tuple[str, str]]:
    return [(x.agent_id, x.verb) for x in of_type(drv.log, d.QueueLogEntry) if x.call_id not in ("", "NONE")]


def test_offer_carries_the_leg_id_and_the_views_name_it() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    out = drv.at(1).enqueue("c1", "billing")
    (offer,) = of_type(out, d.Offer)
    assert offer.leg_id == "cti-offer-1-a" and offer.kind == "queue"
    assert drv.router.agent_view("a", 1).leg_id == "cti-offer-1-a"
    assert drv.router.call_view("c1").leg_id == "cti-offer-1-a"  # type: ignore[union-attr]


def test_blind_transfer_to_an_agent_reserves_them_at_once() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv)
    drv.at(1).login("b")  # b is free only now, so the call went to a
    out = drv.at(5)(ev.TransferToAgent("c1", "a", "b"))
    assert drv.state("a") == "wrap_up" and drv.state("b") == "reserved"
    (offer,) = of_type(out, d.Offer)
    assert (offer.agent_id, offer.kind) == ("b", "transfer")
    # b cannot be handed another caller while their phone rings for the transfer
    assert offers(drv.at(6).enqueue("c2", "billing")) == []
    drv.at(7)(ev.OfferAnswered("c1", "b"))
    assert drv.state("b") == "on_call"
    assert drv.router.call_view("c1").agent_id == "b"  # type: ignore[union-attr]
    assert ("a", "TRANSFER") in verbs(drv)
    # the transferred call is one answered call, not two
    stats = LiveStats(drv.router.config)
    stats.observe(drv.log)
    assert stats.snapshot(7)["billing"].answered == 1


def test_blind_transfer_to_a_busy_agent_is_refused_and_changes_nothing() -> None:
    drv = Driver(config())
    drv.at(0).login("a", "b")
    connected(drv, "c1", "a")
    connected(drv, "c2", "b")
    out = drv.at(3)(ev.TransferToAgent("c1", "a", "b"))
    assert refusals(out) and "not available" in refusals(out)[0].reason
    assert drv.state("a") == "on_call" and drv.state("b") == "on_call"
    assert refusals(drv(ev.TransferToAgent("c1", "a", "a")))


def test_transfer_to_a_queue_ends_the_agents_part_and_keeps_the_callers_age() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv)
    drv.at(30)(ev.TransferToQueue("c1", "a", "sales"))
    view = drv.router.call_view("c1")
    assert view is not None and (view.queue, view.state) == ("sales", "waiting")
    assert drv.state("a") == "wrap_up"
    drv.at(31).login("c")
    assert drv.router.call_view("c1").agent_id == "c"  # type: ignore[union-attr]
    lines = [x.line() for x in of_type(drv.log, d.QueueLogEntry) if x.call_id == "c1"]
    assert lines[2].startswith("30|c1|billing|a|TRANSFER|sales|queue|")
    assert lines[3] == "30|c1|sales|NONE|ENTERQUEUE||0101|1"


def test_transfer_out_takes_the_call_out_of_the_acd() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv)
    drv.at(9)(ev.TransferOut("c1", "a", "5551234"))
    assert drv.router.call_view("c1") is None and drv.state("a") == "wrap_up"
    assert verbs(drv)[-1] == ("a", "TRANSFER")


def test_consultation_completes_to_the_consulted_agent() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv)
    drv.at(1).login("b")
    drv.at(2)(ev.HoldStarted("c1"))
    out = drv.at(3)(ev.ConsultStarted("c1", "a", "b"))
    (offer,) = of_type(out, d.Offer)
    assert offer.kind == "consult" and drv.state("b") == "reserved"
    assert drv.router.call_view("c1").consult_agent_id == "b"  # type: ignore[union-attr]
    assert refusals(drv(ev.ConsultEnded("c1", "a", True)))  # b has not answered yet
    drv.at(4)(ev.OfferAnswered("c1", "b"))
    assert drv.state("b") == "on_call" and drv.state("a") == "on_hold"
    out = drv.at(10)(ev.ConsultEnded("c1", "a", True))
    (handover,) = of_type(out, d.Handover)
    assert (handover.from_agent, handover.to_agent, handover.leg_id) == ("a", "b", offer.leg_id)
    view = drv.router.call_view("c1")
    assert view is not None and (view.agent_id, view.state, view.consult_agent_id) == ("b", "connected", None)
    assert drv.state("a") == "wrap_up"
    drv.at(20)(ev.AgentCallEnded("b", "c1", "caller"))
    assert drv.state("b") == "wrap_up"
    assert verbs(drv)[-2:] == [("a", "TRANSFER"), ("b", "COMPLETECALLER")]


def test_consultation_cancelled_or_refused_leaves_the_caller_with_the_first_agent() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv)
    drv.at(1).login("b")
    drv.at(2)(ev.ConsultStarted("c1", "a", "b"))
    drv.at(3)(ev.OfferAnswered("c1", "b"))
    drv.at(4)(ev.ConsultEnded("c1", "a", False))
    assert drv.state("b") == "available" and drv.state("a") == "on_call"
    # ringing consult, cancelled: the offer is withdrawn
    drv.at(5)(ev.ConsultStarted("c1", "a", "b"))
    out = drv.at(6)(ev.ConsultEnded("c1", "a", False))
    assert [(x.call_id, x.agent_id) for x in of_type(out, d.CancelOffer)] == [("c1", "b")]
    assert drv.state("b") == "available"
    # a consulted agent who does not answer is not_responding; the caller stays with a
    drv.at(7)(ev.ConsultStarted("c1", "a", "b"))
    drv.at(8)(ev.OfferFailed("c1", "b", "no-answer"))
    assert drv.state("b") == "not_responding" and drv.router.call_view("c1").agent_id == "a"  # type: ignore[union-attr]


def test_transferer_hanging_up_completes_or_abandons_the_consultation() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    connected(drv, "c1")
    drv.at(1).login("b")
    drv.at(2)(ev.ConsultStarted("c1", "a", "b"))
    drv.at(3)(ev.OfferAnswered("c1", "b"))
    out = drv.at(4)(ev.AgentCallEnded("a", "c1", "agent"))
    assert of_type(out, d.Handover) and drv.router.call_view("c1").agent_id == "b"  # type: ignore[union-attr]
    # while the consulted phone still rings, the transferer's hang-up ends the call for them both
    drv.at(5).login("c")
    drv.at(6)(ev.TransferToQueue("c1", "b", "sales"))
    drv.at(7)(ev.OfferAnswered("c1", "c"))
    drv.at(36)(ev.WrapUpDone("b"))
    drv.at(37)(ev.ConsultStarted("c1", "c", "b"))
    out = drv.at(38)(ev.AgentCallEnded("c", "c1", "agent"))
    assert [x.agent_id for x in of_type(out, d.CancelOffer)] == ["b"]
    assert drv.state("b") == "available" and drv.state("c") == "wrap_up"


def test_who_hung_up_picks_the_queue_log_verb() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    for n, side in enumerate(["caller", "agent", "unknown"], 1):
        call_id = f"c{n}"
        connected(drv, call_id)
        drv.at(n * 10)(ev.AgentCallEnded("a", call_id, side))  # type: ignore[arg-type]
        drv.at(n * 10 + 1)(ev.WrapUpDone("a"))
    ends = [x for x in of_type(drv.log, d.QueueLogEntry) if x.verb.startswith("COMPLETE")]
    assert [(x.verb, x.data[3:]) for x in ends] == [
        ("COMPLETECALLER", ()), ("COMPLETEAGENT", ()), ("COMPLETECALLER", ("unknown",))]
    # the caller's own hang-up while connected is the caller's
    connected(drv, "c9")
    drv.at(50)(ev.CallerHungUp("c9"))
    assert of_type(drv.log, d.QueueLogEntry)[-1].verb == "COMPLETECALLER"


def test_an_offer_withdrawn_by_the_system_does_not_penalize_the_agent() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    drv.at(1).enqueue("c1", "billing")
    out = drv.at(2)(ev.OfferFailed("c1", "a", "cancelled"))
    assert not [x for x in of_type(out, d.QueueLogEntry) if x.verb == "RINGNOANSWER"]
    # back in line first, then the agent is free again: the same pair is tried again at once
    assert offers(out) == [("c1", "a")] and drv.state("a") == "reserved"
    out = drv.at(3)(ev.OfferFailed("c1", "a", "no-answer"))
    assert drv.state("a") == "not_responding"
    assert [x.data for x in of_type(out, d.QueueLogEntry) if x.verb == "RINGNOANSWER"] == [("1000",)]


def test_a_supervisor_moves_a_waiting_caller_to_another_queue_or_to_the_head() -> None:
    drv = Driver(config())
    drv.at(0).enqueue("c1", "billing")
    drv.at(1).enqueue("c2", "billing")
    drv.at(2)(ev.CallMoved("c2", None, True))
    assert drv.router.call_view("c2").position == 1  # type: ignore[union-attr]
    assert drv.router.call_view("c1").position == 2  # type: ignore[union-attr]
    drv.at(3)(ev.CallMoved("c1", "sales"))
    view = drv.router.call_view("c1")
    assert view is not None and (view.queue, view.position) == ("sales", 1)
    assert refusals(drv(ev.CallMoved("c1", "nowhere")))
    drv.at(4).login("c")
    assert drv.router.call_view("c1").agent_id == "c"  # type: ignore[union-attr]
    assert refusals(drv(ev.CallMoved("c1", "billing")))  # no longer waiting


def test_a_transferred_caller_nobody_takes_waits_again_with_the_queues_timers() -> None:
    """A blind transfer to an agent who does not answer puts the caller back at the head of the line; from
    then on it is a waiting caller like any other: announcements, escalation and the deadline run again,
    counted from its return (not from its first entry, hours of talk ago)."""
    drv = Driver(make_config(
        [{"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 300, "announce_every_s": 20, "max_wait_s": 60,
          "on_max_wait": "voicemail", "escalation": [{"after_s": 15, "also_offer_to": ["sales"]}]},
         {"name": "sales", "skills": {"sales": 1}}],
        [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1), agent("c", ["sales"], sales=1)],
    ))
    drv.at(0).login("a")
    connected(drv)
    drv.at(1).login("b")
    drv.at(500)(ev.TransferToAgent("c1", "a", "b"))
    drv.at(510)(ev.OfferFailed("c1", "b", "no-answer"))
    view = drv.router.call_view("c1")
    assert view is not None and view.state == "waiting" and view.position == 1
    assert of_type(drv.tick(531), d.Announce), "announcements resume"
    drv.at(540).login("c")  # only after escalation does a sales agent qualify
    assert drv.state("c") == "reserved" and drv.router.call_view("c1").agent_id == "c"  # type: ignore[union-attr]
    drv.at(545)(ev.OfferFailed("c1", "c", "no-answer"))
    timeout = of_type(drv.tick(571), d.TimeoutAction)
    assert [(t.call_id, t.action) for t in timeout] == [("c1", "voicemail")]
