"""A site (PBX) that cannot be steered: its callers keep their places and are offered to nobody; agents are
not touched; callers on other sites go on; when the site is back its callers are offered best first."""

from __future__ import annotations

import json

from acd import decisions as d
from acd import events as ev
from acd.router import Router
from tests.acd.acd_helpers import Driver, agent, make_config, of_type, offers


def config():  # type: ignore[no-untyped-def]
    return make_config(
        [{"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 30, "announce_every_s": 10,
          "sticky_window_s": 60}],
        [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1), agent("c", ["billing"], billing=1)],
    )


def test_no_offer_while_the_site_is_down_and_places_are_kept() -> None:
    drv = Driver(config())
    drv.at(0).enqueue("c1", "billing", site="pbx1")
    drv.at(1).enqueue("c2", "billing", site="pbx1", priority=5)
    drv.at(2)(ev.SiteUnavailable("pbx1"))
    drv.at(3).enqueue("c3", "billing", site="pbx1")
    drv.at(4).login("a", "b")
    assert offers(drv.log) == [] and drv.state("a") == drv.state("b") == "available"
    assert [drv.router.call_view(c).position for c in ("c2", "c1", "c3")] == [1, 2, 3]  # type: ignore[union-attr]
    assert of_type(drv.tick(12), d.Announce), "the callers still hear their positions"
    assert offers(drv.at(20)(ev.SiteAvailable("pbx1"))) == [("c2", "a"), ("c1", "b")]
    assert drv.router.call_view("c3").position == 1  # type: ignore[union-attr]


def test_other_sites_go_on() -> None:
    drv = Driver(config())
    drv.at(0)(ev.SiteUnavailable("pbx1"))
    drv.at(1).enqueue("down", "billing", site="pbx1")
    drv.at(2).enqueue("up", "billing", site="pbx2")
    drv.at(3).login("a")
    assert offers(drv.log) == [("up", "a")]


def test_an_offer_the_outage_cancels_costs_the_agent_nothing_and_waits_for_the_site() -> None:
    drv = Driver(config())
    drv.at(0).login("a", "b")
    assert offers(drv.at(1).enqueue("c1", "billing", site="pbx1")) == [("c1", "a")]
    drv.at(2)(ev.SiteUnavailable("pbx1"))
    out = drv.at(3)(ev.OfferFailed("c1", "a", "cancelled"))
    assert offers(out) == [] and drv.state("a") == "available" and drv.state("b") == "available"
    assert drv.router.call_view("c1").state == "waiting"  # type: ignore[union-attr]
    assert offers(drv.at(9)(ev.SiteAvailable("pbx1"))) == [("c1", "b")]  # b has been idle longest


def test_a_sticky_caller_waits_for_its_agent_and_the_site() -> None:
    drv = Driver(config())
    drv.at(0).login("a")
    drv.busy("a")
    drv.at(1)(ev.SiteUnavailable("pbx1"))
    drv.at(2).enqueue("c1", "billing", site="pbx1", sticky_agent_id="a")
    assert offers(drv.at(3).free("a")) == []  # a is free, but the site is down
    assert offers(drv.at(4)(ev.SiteAvailable("pbx1"))) == [("c1", "a")]


def test_a_checkpoint_keeps_the_sites_that_are_down() -> None:
    drv = Driver(config())
    drv.at(0)(ev.SiteUnavailable("pbx1"))
    drv.at(1).enqueue("c1", "billing", site="pbx1")
    restored, problems = Router.load(drv.router.config, json.loads(json.dumps(drv.router.dump())))
    assert problems == []
    assert offers(restored.handle(ev.AgentLoggedIn("a"), 2)) == []
    assert offers(restored.handle(ev.SiteAvailable("pbx1"), 3)) == [("c1", "a")]
    assert restored.handle(ev.SiteAvailable("pbx1"), 4) == []  # already up: nothing to do
