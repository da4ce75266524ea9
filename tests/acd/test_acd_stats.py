"""Live queue statistics folded from the router's own decisions."""

from __future__ import annotations

import pytest

from acd import events as ev
from acd.stats import LiveStats
from tests.acd.acd_helpers import Driver, agent, make_config


def test_queue_statistics_from_a_small_day() -> None:
    cfg = make_config([{"name": "billing", "skills": {"billing": 1}, "wrap_up_s": 10, "short_abandon_s": 5,
                        "service_level": {"percent": 80, "within_s": 20}, "announce_every_s": 0,
                        "max_wait_s": 100, "on_max_wait": "voicemail"}],
                      [agent("a", ["billing"], billing=1), agent("b", ["billing"], billing=1)])
    drv = Driver(cfg)
    stats = LiveStats(cfg)
    drv.at(0).login("a")
    drv.at(0).enqueue("fast", "billing")  # answered after 4 s
    drv.at(4)(ev.OfferAnswered("fast", "a"))
    drv.at(5).enqueue("short", "billing")
    drv.at(7)(ev.CallerHungUp("short"))  # short abandon (2 s)
    drv.at(8).enqueue("slow", "billing")
    drv.at(9).enqueue("gone", "billing")
    drv.at(24)(ev.AgentCallEnded("a", "fast"))  # talk 20 s; wrap-up 24..34
    drv.at(25)(ev.CallerHungUp("gone"))  # abandon after 16 s
    drv.tick(34.0)  # a free: 'slow' offered, waited 26 s
    drv.at(38)(ev.OfferAnswered("slow", "a"))  # answered after 30 s: outside the 20 s target
    drv.at(40).enqueue("late", "billing")
    drv.at(50).login("b")  # b takes 'late' at once
    stats.observe(drv.log)
    snap = stats.snapshot(60.0)["billing"]
    assert snap.calls_waiting == 1  # 'late' is ringing b
    assert snap.longest_wait_s == 20.0
    assert (snap.answered, snap.abandoned, snap.short_abandoned) == (2, 1, 1)
    assert snap.service_level_pct == pytest.approx(100 / 3)  # 1 in target / (2 answered + 1 abandon)
    assert snap.asa_s == pytest.approx((4 + 30) / 2)
    assert snap.aht_s == pytest.approx(20 + 10)
    assert snap.agents_by_state == {"on_call": 1, "reserved": 1}
    # a: busy 0..60 except available 34..34 (0 s); b: reserved 50..60
    assert snap.occupancy_pct == pytest.approx(100.0)


def test_timeouts_are_counted_apart() -> None:
    cfg = make_config([{"name": "q", "skills": {"sales": 1}, "max_wait_s": 30, "on_max_wait": "voicemail",
                        "announce_every_s": 0}], [agent("a", ["q"], sales=1)])
    drv = Driver(cfg)
    stats = LiveStats(cfg)
    drv.at(0).enqueue("c1", "q")
    drv.tick(31)
    drv.at(31).login("a")
    drv.tick(41)
    stats.observe(drv.log)
    snap = stats.snapshot(41.0)["q"]
    assert (snap.timed_out, snap.abandoned, snap.calls_waiting) == (1, 0, 0)
    assert snap.service_level_pct is None
    assert snap.occupancy_pct == pytest.approx(0.0)


def test_agents_by_state_count_each_agent_once() -> None:
    cfg = make_config([{"name": "q1", "skills": {"sales": 1}}, {"name": "q2", "skills": {"sales": 1}}],
                      [agent("a", ["q1", "q2"], sales=1), agent("b", ["q1", "q2"], sales=1),
                       agent("c", ["q1"], sales=1)])
    drv = Driver(cfg)
    drv.at(0).login("a", "b")
    drv.at(1)(ev.AgentPaused("b", "break"))
    stats = LiveStats(cfg)
    stats.observe(drv.log)
    assert stats.agents_by_state() == {"available": 1, "paused": 1, "logged_out": 1}
    assert stats.snapshot(2.0)["q1"].agents_by_state == {"available": 1, "paused": 1}  # per queue
    stats.observe(drv.at(3)(ev.AgentLoggedOut("a")))
    assert stats.agents_by_state() == {"paused": 1, "logged_out": 2}
