"""Alerts from the figures: facts go through the real projector (router, statistics, call records), the
evaluator judges what the projector holds, and the alerts it raises or clears go back in as facts, as the
server's timer does. Times are the facts' own: no sleeping."""

from __future__ import annotations

import pytest

from acd import events as ev
from acd.config import parse_config
from ctiserver.alerts.evaluator import AlertEvaluator
from ctiserver.alerts.targets import above, agent_figures, below, judge_queue
from ctiserver.journal import facts as f
from ctiserver.projections.projector import Projector

QUEUES = """\
skills: [sales]
pause_reasons: [break, lunch]
alerts: {raise_after_s: 10, clear_after_s: 30}
agent_targets: {long_call_s: 300, long_wrap_up_s: 20, long_pause_s: 600, long_pause_by_reason_s: {lunch: 1800}}
queues:
  - name: sales
    skills: {sales: 1}
    announce_every_s: 0
    wrap_up_s: 60
    service_level: {percent: 80, within_s: 20}
    targets: {longest_wait_s: 60, abandon_rate_pct: 40, asa_s: 30, min_calls: 100}
agents:
  - {id: "a", skills: {sales: 1}, queues: [sales], endpoint: PJSIP/a}
  - {id: "b", skills: {sales: 1}, queues: [sales], endpoint: PJSIP/b, targets: {long_pause_by_reason_s: {lunch: null}}}
"""


class Centre:
    """The projector fed facts at given times, and the alert timer's evaluator looking at it."""

    def __init__(self, text: str = QUEUES) -> None:
        self.projector = Projector(parse_config(text, "queues.yaml"))
        self.evaluator = AlertEvaluator()
        self.seq = 0
        self.raised: list[f.AlertRaised] = []
        self.cleared: list[f.AlertCleared] = []

    def at(self, when: float, *bodies: object) -> None:
        for body in bodies:
            self.seq += 1
            self.projector.apply(f.Fact(self.seq, when, body))

    def check(self, when: float) -> list[str]:
        """One tick of the alert timer; returns what changed as 'raised metric/queue/agent' lines."""
        self.projector.tick(when)
        p = self.projector
        changes = self.evaluator.evaluate(when, p.config, p.stats.live.snapshot(when),
                                          agent_figures(p.config, p.router, p.records, when), p.alerts)
        self.at(when, *changes)
        out = []
        for c in changes:
            verb = "raised" if isinstance(c, f.AlertRaised) else "cleared"
            (self.raised if isinstance(c, f.AlertRaised) else self.cleared).append(c)  # type: ignore[arg-type]
            out.append(f"{verb} {c.metric}/{c.queue}/{c.agent_id}")
        return out

    def call(self, when: float, call_id: str) -> None:
        self.at(when, f.CallArrived(call_id, "pbx1", f"PJSIP/pstn-{call_id}", "+861000", "", "4000"),
                ev.CallEnqueued(call_id, "sales"))


def test_levels_against_a_target() -> None:
    # Worse when higher: warning past 80% of the target, breach past it.
    assert [above(v, 60) for v in (0, 48, 48.1, 60, 60.1)] == ["ok", "ok", "warning", "warning", "breach"]
    # A service level is judged by its misses: 80% allows 20 points, the warning line is at 16 missed (84%).
    assert [below(v, 80) for v in (100, 84, 83.9, 80, 79.9)] == ["ok", "ok", "warning", "warning", "breach"]
    assert [below(v, 100) for v in (100, 99.9)] == ["ok", "breach"]


def test_a_queue_alert_waits_out_a_short_breach_and_clears_only_back_in_ok() -> None:
    c = Centre()
    c.call(0, "c1")  # nobody logged in: the caller waits
    assert c.check(60) == []  # 60 s is the target itself: warning, not breach
    assert c.check(61) == []  # in breach from here, for less than raise_after_s
    c.at(65, ev.CallerHungUp("c1"))  # the queue empties
    assert c.check(66) == []  # a 5 s breach raised nothing
    c.call(100, "c2")
    assert c.check(161) == []  # a new breach starts counting again
    assert c.check(170.9) == []
    assert c.check(171) == ["raised longest_wait/sales/"]
    alert = c.raised[-1]
    assert (alert.value, alert.threshold, alert.level) == (71.0, 60.0, "critical")
    assert "71 s" in alert.text
    assert c.check(200) == []  # raised once, however long it lasts
    c.at(201, ev.AgentLoggedIn("a"))  # c2 rings a, still waiting
    c.at(202, ev.OfferAnswered("c2", "a"))
    assert c.check(203) == []  # back in ok: the clear waits clear_after_s
    assert c.check(232.9) == []
    assert c.check(233) == ["cleared longest_wait/sales/"]
    assert c.projector.alerts == {}


def test_the_warning_band_neither_raises_nor_clears() -> None:
    c = Centre()
    c.call(0, "c1")
    c.check(61)
    assert c.check(71) == ["raised longest_wait/sales/"]
    c.at(72, ev.CallerHungUp("c1"))
    c.call(80, "c2")  # waits 50 s by 130: above 48 s, the warning line, under the 60 s target
    assert c.check(90) == []  # c2 has waited 10 s: ok, the clock towards clearing starts
    assert c.check(129) == []  # 49 s: warning, the clock stops
    c.at(130, ev.CallerHungUp("c2"))
    assert c.check(131) == []  # ok again, from 131
    assert c.check(160) == []
    assert c.check(161) == ["cleared longest_wait/sales/"]


def test_service_level_abandon_rate_and_asa_wait_for_min_calls() -> None:
    c = Centre(QUEUES.replace("min_calls: 100", "min_calls: 2"))
    c.call(0, "c1")
    c.at(30, ev.CallerHungUp("c1"))  # abandoned after 30 s: service level 0%, abandon rate 100%
    snap = c.projector.stats.live.snapshot(31)["sales"]
    levels = {j.metric: j.level for j in judge_queue(c.projector.config.queue("sales"), snap)}
    assert levels == {"service_level": None, "abandon_rate": None, "longest_wait": "ok", "asa": None}
    assert c.check(31) == [] and c.check(100) == []
    c.at(100, ev.AgentLoggedIn("a"))
    c.call(101, "c2")
    c.at(141, ev.OfferAnswered("c2", "a"))  # answered after 40 s
    c.check(142)
    # Two calls count for the service level and the abandon rate; one answer is not enough for the ASA.
    assert sorted(c.check(152)) == ["raised abandon_rate/sales/", "raised service_level/sales/"]
    sl = next(a for a in c.raised if a.metric == "service_level")
    assert (sl.value, sl.threshold) == (0.0, 80.0)


def test_agent_alerts_follow_the_call_the_pause_and_the_wrap_up() -> None:
    c = Centre()
    c.at(0, ev.AgentLoggedIn("a"), ev.AgentLoggedIn("b"))
    c.at(1, ev.AgentPaused("b", "lunch"))  # b's own targets: no limit on lunch
    c.call(10, "c1")
    agent = c.projector.router.call_view("c1").agent_id  # type: ignore[union-attr]
    assert agent == "a"
    c.at(11, ev.OfferAnswered("c1", "a"))
    c.at(200, ev.HoldStarted("c1"))
    c.at(250, ev.HoldEnded("c1"))  # a hold does not restart the call's clock
    assert c.check(311) == []
    assert c.check(311.5) == ["raised long_call//a"]  # 300.5 s since the answer
    assert "on one call" in c.raised[-1].text and c.raised[-1].level == "warning"
    assert c.check(320) == []
    c.at(330, ev.AgentCallEnded("a", "c1"))  # wrap-up starts: the call's alert is over at once
    assert c.check(330) == ["cleared long_call//a"]
    assert c.check(351) == ["raised long_wrap_up//a"]
    c.at(352, ev.AgentPaused("a", "break"))  # deferred after wrap-up ...
    c.at(353, ev.WrapUpDone("a"))  # ... and starts now: the break's limit is the site's 600 s
    assert c.check(353) == ["cleared long_wrap_up//a"]
    assert c.check(953) == []
    assert c.check(954) == ["raised long_pause//a"]
    assert "(break)" in c.raised[-1].text
    assert c.check(5000) == []  # b has been at lunch for hours: no limit for b's lunch
    c.at(5001, ev.AgentReady("a"))
    assert c.check(5001) == ["cleared long_pause//a"]


def test_alerts_in_force_come_back_from_a_checkpoint_and_are_not_raised_twice() -> None:
    c = Centre()
    c.call(0, "c1")
    c.check(61)
    assert c.check(71) == ["raised longest_wait/sales/"]
    text = c.projector.dump(("queues.yaml", QUEUES))
    restored, problems = Projector.load(text)
    assert problems == []
    assert list(restored.alerts) == ["longest_wait|sales|"]
    at, alert = restored.alerts["longest_wait|sales|"]
    assert at == 71 and alert == c.raised[0]
    # A restarted server: a fresh evaluator over the restored projector.
    again = Centre()
    again.projector, again.seq = restored, c.seq
    assert again.check(100) == []  # still in breach: raised already
    again.at(101, ev.CallerHungUp("c1"))
    assert again.check(102) == []
    assert again.check(132) == ["cleared longest_wait/sales/"]


def test_a_queue_or_target_removed_clears_its_alerts_at_once() -> None:
    c = Centre()
    c.call(0, "c1")
    c.check(61)
    assert c.check(71) == ["raised longest_wait/sales/"]
    without = QUEUES.replace("longest_wait_s: 60, ", "")
    c.at(72, f.AcdConfigLoaded("queues.yaml", without))
    assert c.check(73) == ["cleared longest_wait/sales/"]


@pytest.mark.parametrize("formula", ["abandons_ignored", "abandons_count"])
def test_the_alert_judges_the_service_level_by_the_queues_formula(formula: str) -> None:
    c = Centre(QUEUES.replace("within_s: 20}", f"within_s: 20, formula: {formula}}}").replace("min_calls: 100",
                                                                                             "min_calls: 1"))
    c.at(0, ev.AgentLoggedIn("a"))
    c.call(1, "c1")
    c.at(2, ev.OfferAnswered("c1", "a"))  # within 20 s
    c.at(3, ev.AgentCallEnded("a", "c1"), ev.WrapUpDone("a"), ev.AgentPaused("a", "break"))
    c.call(4, "c2")
    c.at(5, ev.CallerHungUp("c2"))  # a short abandon
    c.call(6, "c3")
    c.at(36, ev.CallerHungUp("c3"))  # an abandon
    c.check(37)
    changes = c.check(47)
    # Ignoring abandons the queue is at 100%; counting them, at 1 / 3.
    assert ("raised service_level/sales/" in changes) == (formula == "abandons_count")
