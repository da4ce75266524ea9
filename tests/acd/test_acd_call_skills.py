"""Extra skills a caller needs on top of the queue's (`CallEnqueued.skills`, the flow's `skills: [korean]`):
offered only to agents who hold each of them, inside the queue's own levels and relaxation stages; the
caller stays in the queue for positions, timers, statistics and the queue_log."""

from __future__ import annotations

import json
from typing import Any

from acd import decisions as d
from acd import events as ev
from acd.router import Router
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers, refusals


def queue(name: str, skills: dict[str, int], **kw: Any) -> dict[str, Any]:
    return {"name": name, "skills": skills, "announce_every_s": 0, **kw}


def sales_config(**kw: Any) -> Any:
    return make_config(
        [queue("sales", {"sales": 1}, wrap_up_s=5, **kw), queue("general", {"english": 1}, wrap_up_s=5)],
        [agent("en", ["sales", "general"], sales=5, english=5),
         agent("ko", ["sales"], sales=2, korean=3),
         agent("ko2", ["sales", "general"], sales=1, korean=1, english=1)])


def test_a_korean_caller_waits_for_a_korean_agent_while_others_take_plain_callers() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    assert offers(drv.at(1).enqueue("k1", "sales", skills=("korean",))) == []  # en is free but lacks korean
    view = drv.router.call_view("k1")
    assert view is not None and (view.queue, view.state, view.skills) == ("sales", "waiting", ("korean",))
    # A plain caller behind them is not held up by them.
    assert offers(drv.at(2).enqueue("p1", "sales")) == [("p1", "en")]
    assert offers(drv.at(3)(ev.AgentLoggedIn("ko"))) == [("k1", "ko")]
    assert drv.state("ko") == "reserved" and drv.state("en") == "reserved"


def test_an_agent_freeing_up_skips_callers_needing_a_skill_they_lack() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en", "ko")
    drv.busy("en")
    drv.busy("ko")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))  # first in line
    drv.at(2).enqueue("p1", "sales")
    assert offers(drv.at(3).free("en")) == [("p1", "en")]
    assert offers(drv.at(4).free("ko")) == [("k1", "ko")]


def test_the_pool_is_filled_from_agents_already_waiting() -> None:
    # ko is idle before any Korean caller exists: the first one is offered to them at once.
    drv = Driver(sales_config())
    drv.at(0).login("en", "ko")
    assert offers(drv.at(5).enqueue("k1", "sales", skills=("korean",))) == [("k1", "ko")]


def test_several_extra_skills_are_all_required() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("ko", "ko2")
    # ko has korean but no english; ko2 has both.
    assert offers(drv.at(1).enqueue("k1", "sales", skills=("korean", "english"))) == [("k1", "ko2")]
    assert offers(drv.at(2).enqueue("k2", "sales", skills=("english", "korean"))) == []
    view = drv.router.call_view("k2")
    assert view is not None and view.skills == ("english", "korean")


def test_a_skill_the_queue_already_requires_adds_nothing() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    assert offers(drv.at(1).enqueue("c1", "sales", skills=("sales",))) == [("c1", "en")]


def test_relaxation_stages_apply_with_the_extra_skills() -> None:
    cfg = make_config(
        [queue("billing", {"billing": 5}, escalation=[{"after_s": 10, "min_levels": {"billing": 2}}])],
        [agent("expert", ["billing"], billing=9), agent("junior_ko", ["billing"], billing=2, korean=1),
         agent("senior_ko", ["billing"], billing=5, korean=4)])
    drv = Driver(cfg)
    drv.at(0).login("expert", "junior_ko")
    assert offers(drv.at(1).enqueue("k1", "billing", skills=("korean",))) == []  # junior not at stage 0
    assert offers(drv.tick(11.0)) == [("k1", "junior_ko")]  # relaxed (10 s after entry): billing 2, korean
    drv(ev.OfferAnswered("k1", "junior_ko"))
    assert offers(drv.at(12).enqueue("k2", "billing", skills=("korean",))) == []
    assert offers(drv.at(13)(ev.AgentLoggedIn("senior_ko"))) == [("k2", "senior_ko")]
    assert drv.state("expert") == "available"  # never offered a Korean caller


def test_overflow_goes_only_to_agents_of_the_other_queue_with_the_extra_skills() -> None:
    cfg = make_config(
        [queue("billing", {"billing": 5}, escalation=[{"after_s": 30, "also_offer_to": ["general"]}]),
         queue("general", {"english": 1})],
        [agent("b", ["billing"], billing=5), agent("g_en", ["general"], english=3),
         agent("g_ko", ["general"], english=1, korean=2)])
    drv = Driver(cfg)
    drv.at(0).login("b", "g_en")
    drv.busy("b")
    drv.at(1).enqueue("k1", "billing", skills=("korean",))
    assert offers(drv.tick(31.0)) == []  # g_en lacks korean
    out = drv.at(32)(ev.AgentLoggedIn("g_ko"))
    assert offers(out) == [("k1", "g_ko")]
    assert of_type(out, d.Offer)[0].via_queue == "general"


def test_an_agent_freeing_up_takes_an_overflowing_caller_needing_their_skill() -> None:
    cfg = make_config(
        [queue("billing", {"billing": 5}, escalation=[{"after_s": 30, "also_offer_to": ["general"]}]),
         queue("general", {"english": 1})],
        [agent("b", ["billing"], billing=5), agent("g_ko", ["general"], english=1, korean=2)])
    drv = Driver(cfg)
    drv.at(0).login("b", "g_ko")
    drv.busy("b")
    drv.busy("g_ko")
    drv.at(1).enqueue("k1", "billing", skills=("korean",))
    drv.tick(31.0)
    assert offers(drv.at(40).free("g_ko")) == [("k1", "g_ko")]


def test_positions_and_estimated_waits_count_every_caller_of_the_queue() -> None:
    cfg = make_config([{"name": "sales", "skills": {"sales": 1}, "announce_every_s": 30, "default_handle_s": 60}],
                      [agent("en", ["sales"], sales=3)])
    drv = Driver(cfg)
    drv.at(0).login("en")
    drv.busy("en")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    drv.at(2).enqueue("p1", "sales")
    assert [(a.call_id, a.position) for a in of_type(drv.tick(32.0), d.Announce)] == [("k1", 1), ("p1", 2)]
    # en frees up and takes p1 (k1 needs korean): k1 is still first in line, alone.
    assert offers(drv.at(40).free("en")) == [("p1", "en")]
    assert drv.router.call_view("k1").position == 1  # type: ignore[union-attr]
    # The queue_log names the queue, as for any caller of it.
    lines = [x.line() for x in of_type(drv.log, d.QueueLogEntry) if x.call_id == "k1"]
    assert lines == ["1|k1|sales|NONE|ENTERQUEUE|||1"]


def test_the_queues_deadline_applies_to_a_caller_nobody_can_take() -> None:
    drv = Driver(sales_config(max_wait_s=60, on_max_wait="voicemail"))
    drv.at(0).login("en")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    out = drv.tick(61.0)
    assert of_type(out, d.TimeoutAction) == [d.TimeoutAction("k1", "sales", "voicemail", None)]
    assert drv.router.call_view("k1") is None and drv.state("en") == "available"


def test_a_timeout_move_keeps_the_extra_skills() -> None:
    drv = Driver(sales_config(max_wait_s=60, on_max_wait="queue:general"))
    drv.at(0).login("en")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    assert offers(drv.tick(61.0)) == []  # moved to general, where en serves, but en still lacks korean
    view = drv.router.call_view("k1")
    assert view is not None and (view.queue, view.skills) == ("general", ("korean",))
    assert offers(drv.at(62)(ev.AgentLoggedIn("ko2"))) == [("k1", "ko2")]


def test_unknown_extra_skill_is_ignored_with_a_warning_not_refused() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    out = drv.at(1).enqueue("k1", "sales", skills=("klingon", "sales"))
    assert not refusals(out)
    ignored = of_type(out, d.Ignored)
    assert len(ignored) == 1 and "klingon" in ignored[0].reason
    assert offers(out) == [("k1", "en")]
    assert drv.router.call_view("k1").skills == ("sales",)  # type: ignore[union-attr]


def test_the_sticky_agent_must_hold_the_extra_skills_too() -> None:
    drv = Driver(sales_config(sticky_window_s=30))
    drv.at(0).login("en", "ko")
    drv.busy("ko")
    # The caller's last agent was en, who does not speak Korean: no offer to en, no window for en.
    out = drv.at(1).enqueue("k1", "sales", sticky_agent_id="en", skills=("korean",))
    assert offers(out) == []
    assert drv.router.call_view("k1").sticky_agent_id is None  # type: ignore[union-attr]
    assert offers(drv.at(2).free("ko")) == [("k1", "ko")]


def test_a_logged_out_holder_leaves_the_pool_and_rejoins_at_login() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("ko", "en")
    drv.busy("en")
    assert offers(drv.at(1).enqueue("k1", "sales", skills=("korean",))) == [("k1", "ko")]
    drv(ev.OfferFailed("k1", "ko", "cancelled"))  # back at the head; ko available again and re-offered
    assert drv.state("ko") == "reserved"
    drv(ev.AgentLoggedOut("ko"))  # the ringing offer is cancelled, k1 waits
    assert drv.router.call_view("k1").state == "waiting"  # type: ignore[union-attr]
    assert offers(drv.at(2).enqueue("k2", "sales", skills=("korean",))) == []
    out = drv.at(3)(ev.AgentLoggedIn("ko"))
    assert offers(out) == [("k1", "ko")]


def test_a_supervisor_move_keeps_the_extra_skills_and_a_transfer_elsewhere_drops_them() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    drv.at(2)(ev.CallMoved("k1", None, to_head=True))
    assert drv.router.call_view("k1").skills == ("korean",)  # type: ignore[union-attr]
    assert offers(drv.at(3)(ev.CallMoved("k1", "general"))) == []  # en serves general, lacks korean
    view = drv.router.call_view("k1")
    assert view is not None and (view.queue, view.skills) == ("general", ("korean",))
    out = drv.at(4)(ev.AgentLoggedIn("ko2"))
    assert offers(out) == [("k1", "ko2")]
    drv(ev.OfferAnswered("k1", "ko2"))
    # The Korean-speaking agent sends the caller on to sales: their choice, the flow's skills no longer bind.
    out = drv.at(5)(ev.TransferToQueue("k1", "ko2", "sales"))
    assert offers(out) == [("k1", "en")]
    assert drv.router.call_view("k1").skills == ()  # type: ignore[union-attr]


def test_a_transfer_back_to_the_same_queue_keeps_the_extra_skills() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("ko")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    drv(ev.OfferAnswered("k1", "ko"))
    drv.at(2).login("en")
    assert offers(drv.at(3)(ev.TransferToQueue("k1", "ko", "sales"))) == []  # en is free, lacks korean
    assert drv.router.call_view("k1").skills == ("korean",)  # type: ignore[union-attr]


def test_checkpoint_keeps_the_extra_skills_and_decides_the_same() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en", "ko")
    drv.busy("ko")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    data = json.loads(json.dumps(drv.router.dump()))
    restored, problems = Router.load(drv.router.config, data)
    assert problems == []
    assert restored.call_view("k1").skills == ("korean",)  # type: ignore[union-attr]
    call_id = drv.router.agent_view("ko", 1).call_id
    for router in (drv.router, restored):
        router.handle(ev.AgentCallEnded("ko", call_id or ""), 2)
        assert offers(router.handle(ev.WrapUpDone("ko"), 3)) == [("k1", "ko")]


def test_a_checkpoint_from_before_extra_skills_loads() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    drv.busy("en")
    drv.at(1).enqueue("c1", "sales")
    data = json.loads(json.dumps(drv.router.dump()))
    for call in data["calls"]:
        del call["skills"]
    restored, problems = Router.load(drv.router.config, data)
    assert problems == [] and restored.call_view("c1").skills == ()  # type: ignore[union-attr]


def test_a_skill_dropped_from_the_configuration_is_reported_at_load() -> None:
    drv = Driver(sales_config())
    drv.at(0).login("en")
    drv.at(1).enqueue("k1", "sales", skills=("korean",))
    data = json.loads(json.dumps(drv.router.dump()))
    smaller = make_config(
        [queue("sales", {"sales": 1}, wrap_up_s=0), queue("general", {"english": 1}, wrap_up_s=0)],
        [agent("en", ["sales", "general"], sales=5, english=5)], skills=("sales", "english"))
    restored, problems = Router.load(smaller, data)
    assert problems == ["call k1 needed skill(s) ['korean'], no longer configured; dropped"]
    assert restored.call_view("k1").skills == ()  # type: ignore[union-attr]


def test_a_restored_router_scans_the_pools_in_the_same_order() -> None:
    # The caller shows in two pools the agent belongs to: their own queue's and, overflowing, general's.
    # The original router made general's pool first (for a caller since gone); the restored one makes
    # billing's first. Both must offer the same way (via the same queue).
    cfg = make_config(
        [queue("billing", {"billing": 5}, escalation=[{"after_s": 30, "also_offer_to": ["general"]}]),
         queue("general", {"english": 1})],
        [agent("both", ["billing", "general"], billing=5, english=2, korean=1)])
    drv = Driver(cfg)
    drv.at(0).login("both")
    drv.busy("both")
    drv.at(1).enqueue("gone", "general", skills=("korean",))
    drv(ev.CallerHungUp("gone"))
    drv.at(3).enqueue("k1", "billing", skills=("korean",))
    drv.tick(34.0)
    restored, _ = Router.load(cfg, json.loads(json.dumps(drv.router.dump())))
    got = []
    for router in (drv.router, restored):
        router.handle(ev.AgentCallEnded("both", "busy-both"), 35)
        got.append(of_type(router.handle(ev.WrapUpDone("both"), 36), d.Offer))
    assert got[0] == got[1] and [o.call_id for o in got[0]] == ["k1"]
