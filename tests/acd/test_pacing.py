"""The outbound pacer (acd/pacing.py): each dialing mode's decisions, the 2-second rule, the abandonment
cap it holds in its own bookkeeping, machines per campaign, and nonsense refused without harm.

Everything runs on the real Pacer with time passed in; no clock, no timing."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from acd import pacing as p


class Driver:
    """Plays the dialer edge: keeps the pacer's `Dial` asks and reports lines back as told."""

    def __init__(self, **config: Any) -> None:
        self.pacer = p.Pacer(p.PacingConfig(campaign="c1", **config))
        self.now = 0.0
        self.asked = 0
        self.log: list[p.Decision] = []
        self.earlier: list[p.Decision] = []

    def __call__(self, event: p.Event, at: float | None = None) -> list[p.Decision]:
        if at is not None:
            self.now = at
        out = self.pacer.handle(event, self.now)
        self.asked += sum(x.count for x in out if isinstance(x, p.Dial))
        self.log += out
        return out

    def later(self, seconds: float = 1.0) -> Driver:
        self.now += seconds
        return self

    def dial(self, call_id: str, agent_id: str | None = None) -> list[p.Decision]:
        if agent_id is None:
            self.asked = max(0, self.asked - 1)
        return self(p.LineDialled(call_id, agent_id))

    def decline(self) -> None:
        if self.asked:
            count, self.asked = self.asked, 0
            self(p.LinesNotDialled(count, "list empty"))

    def ready(self, *agents: str) -> list[p.Decision]:
        return [x for agent in agents for x in self(p.AgentReady(agent))]


def of(kind: type, decisions: list[p.Decision]) -> list[Any]:
    return [x for x in decisions if isinstance(x, kind)]


def dialled(decisions: list[p.Decision]) -> int:
    return sum(x.count for x in of(p.Dial, decisions))


def connect_through(d: Driver, agent: str, k: int, misses: int = 3) -> None:
    """One contact reached by `agent` (the only free agent) after `misses` lines nobody answered."""
    for j in range(misses):
        d.later().dial(f"n{k}-{j}")
        d.later()(p.LineFailed(f"n{k}-{j}", "no-answer"))
    d.later().dial(f"h{k}")
    (connect,) = of(p.Connect, d.later()(p.LineAnswered(f"h{k}", "human")))
    assert connect.agent_id == agent
    d.later()(p.CallConnected(f"h{k}", agent))
    d.later(100)(p.HandleEnded(f"h{k}"))
    d.later(10)(p.WrapUpEnded(agent))


def abandon_through(d: Driver, agent: str, k: int) -> p.Abandon:
    """An abandon the pacer could not prevent: its only agent leaves while the line rings."""
    d.later().dial(f"x{k}")
    d.later()(p.AgentAway(agent, "break"))
    answered = d.now + 1
    d.later()(p.LineAnswered(f"x{k}", "human"))
    (abandon,) = of(p.Abandon, d(p.Tick(), at=answered + 2.0))
    d.later()(p.AgentReady(agent))
    return abandon


def no_nonsense(d: Driver) -> None:
    assert of(p.Refusal, d.log) == [] and of(p.Ignored, d.log) == []


# ---------------------------------------------------------------- configuration


def test_a_bad_configuration_names_every_bad_field() -> None:
    with pytest.raises(ValueError) as caught:
        p.PacingConfig(campaign="c1", mode="auto", abandon_cap=1.5, ring_timeout_s=10,  # type: ignore[arg-type]
                       machine_action="voicemail", max_lines=0)  # type: ignore[arg-type]
    text = str(caught.value)
    for field in ("mode", "abandon_cap", "ring_timeout_s", "machine_action", "max_lines"):
        assert field in text, field
    assert "15 s" in text  # why a ring timeout is too short


def test_the_defaults_are_the_rules() -> None:
    config = p.PacingConfig(campaign="c1")
    assert (config.abandon_cap, config.connect_within_s, config.window_s) == (0.03, 2.0, 86_400.0)
    assert config.ring_timeout_s >= 15


# ---------------------------------------------------------------- preview


def test_preview_never_dials_on_its_own() -> None:
    d = Driver(mode="preview")
    cards = of(p.PreviewContact, d.ready("a1", "a2"))
    assert [c.agent_id for c in cards] == ["a1", "a2"]
    for t in range(1, 600, 7):
        d(p.Tick(), at=float(t))
    assert dialled(d.log) == 0
    assert len(of(p.PreviewContact, d.log)) == 2  # one card each, until they dial or skip
    no_nonsense(d)


def test_a_preview_call_is_its_agents_and_never_abandoned() -> None:
    d = Driver(mode="preview")
    d.ready("a1", "a2")
    d.later().dial("c1", agent_id="a1")
    d.later()(p.LineAnswered("c1", "human"))
    for t in range(1, 30):  # nobody else free, long past 2 s: still the agent's call
        assert of(p.Abandon, d(p.Tick(), at=d.now + 1)) == []
    assert of(p.Connect, d.log) == []
    assert d.pacer.status().abandoned == 0 and d.pacer.status().live_answered == 0
    d.later(60)(p.HandleEnded("c1"))
    (card,) = of(p.PreviewContact, d.later(10)(p.WrapUpEnded("a1")))
    assert card.agent_id == "a1"
    assert dialled(d.log) == 0
    no_nonsense(d)


def test_a_skipped_preview_card_brings_the_next_one() -> None:
    d = Driver(mode="preview")
    d.ready("a1")
    (card,) = of(p.PreviewContact, d.later()(p.AgentReady("a1")))
    assert card.agent_id == "a1"


def test_a_preview_line_with_no_agent_is_refused() -> None:
    d = Driver(mode="preview")
    d.ready("a1")
    (refusal,) = of(p.Refusal, d.dial("c1"))
    assert "agent" in refusal.reason
    assert d.pacer.status().lines_out == 0


def test_an_unanswered_preview_line_frees_its_agent_for_the_next_card() -> None:
    d = Driver(mode="preview")
    d.ready("a1")
    d.later().dial("c1", agent_id="a1")
    (card,) = of(p.PreviewContact, d.later(25)(p.LineFailed("c1", "no-answer")))
    assert card.agent_id == "a1"


# ---------------------------------------------------------------- progressive


def test_progressive_dials_exactly_one_line_per_free_agent() -> None:
    d = Driver(mode="progressive")
    assert [dialled(d.ready(a)) for a in ("a1", "a2", "a3")] == [1, 1, 1]
    for call in ("c1", "c2", "c3"):
        assert dialled(d.later().dial(call)) == 0
    assert d.pacer.status().lines_out == 3
    # Answered: the agent free longest takes it; two lines for two free agents, nothing more to dial.
    out = d.later()(p.LineAnswered("c1", "human"))
    assert [(c.call_id, c.agent_id) for c in of(p.Connect, out)] == [("c1", "a1")]
    assert dialled(out) == 0
    # A line that failed is replaced, one for one.
    assert dialled(d.later()(p.LineFailed("c2", "busy"))) == 1
    # A fourth agent: one more line.
    assert dialled(d.later()(p.AgentReady("a4"))) == 1
    no_nonsense(d)


def test_progressive_never_has_more_lines_out_than_free_agents_whatever_the_answer_rate() -> None:
    d = Driver(mode="progressive")
    d.ready(*(f"a{i}" for i in range(5)))
    for k in range(40):  # a list that almost never answers: still one line per free agent
        while d.asked:
            d.later().dial(f"c{k}-{d.asked}")
        status = d.pacer.status()
        assert status.lines_out <= status.agents_free
        for call in [f"c{k}-{i}" for i in range(1, 6)]:
            d.later()(p.LineFailed(call, "no-answer"))
    no_nonsense(d)


# ---------------------------------------------------------------- predictive and the cap


def history(abandons: int, connects: int = 97) -> Driver:
    """A predictive campaign with one agent: `connects` contacts reached at a 25 % answer rate, then
    `abandons` abandons; then nine more agents come ready at once (their Dial asks are returned)."""
    d = Driver(mode="predictive")
    d.ready("a0")
    for k in range(connects):
        connect_through(d, "a0", k)
    for k in range(abandons):
        abandon_through(d, "a0", k)
    d.decline()
    d.earlier = d.log
    d.log = []
    d.later().ready(*(f"a{i}" for i in range(1, 10)))
    return d


def test_predictive_dials_ahead_of_free_agents_within_the_worst_case_margin() -> None:
    d = history(abandons=0, connects=100)
    status = d.pacer.status()
    assert (status.live_answered, status.abandoned, status.agents_free) == (100, 0, 10)
    # 10 free agents, a 25 % list: the model wants far more; the worst case (every extra line a person
    # nobody takes) allows floor(0.03 x 100 / 0.97) = 3 extra lines and no more.
    assert d.asked == 13
    assert of(p.PacingChanged, d.log) == []


def test_predictive_throttles_to_progressive_when_the_window_reaches_the_cap() -> None:
    d = history(abandons=3)
    assert d.pacer.abandon_rate() == pytest.approx(0.03)
    assert d.asked == 10  # one line per free agent
    assert d.pacer.status().throttled
    (change,) = of(p.PacingChanged, d.earlier + d.log)  # announced once, when the third abandon came in
    assert change.throttled and change.abandon_rate == pytest.approx(0.03)


def test_the_margin_shrinks_with_each_abandon_below_the_throttle() -> None:
    d = history(abandons=2, connects=98)
    assert d.pacer.abandon_rate() == pytest.approx(0.02)
    assert not d.pacer.status().throttled
    assert d.asked == 11  # floor((0.03 x 100 - 2) / 0.97) = 1 extra line


def test_a_throttled_campaign_comes_back_once_the_window_is_at_the_target() -> None:
    d = Driver(mode="predictive", window_s=3600)
    d.ready("a0")
    for k in range(97):
        connect_through(d, "a0", k)
    for k in range(3):
        abandon_through(d, "a0", k)
    assert d.pacer.status().throttled
    (change,) = [x for x in of(p.PacingChanged, d.log) if x.throttled]
    assert change.abandon_rate >= 0.9 * 0.03
    d.log.clear()
    # An hour on, the old abandons have left the window (so have the connects): back to predictive.
    d.decline()
    d(p.Tick(), at=d.now + 3600)
    assert not d.pacer.status().throttled
    assert [x.throttled for x in of(p.PacingChanged, d.log)] == [False]


def test_the_window_keeps_only_its_own_period() -> None:
    d = Driver(mode="progressive", window_s=600)
    d.ready("a0")
    connect_through(d, "a0", 0, misses=0)
    abandon_through(d, "a0", 0)
    assert d.pacer.abandon_rate() == pytest.approx(0.5)  # one abandon, two live answers
    d.decline()
    d(p.Tick(), at=d.now + 601)
    assert (d.pacer.abandon_rate(), d.pacer.status().live_answered) == (0.0, 0.0)


def test_connects_made_while_the_margin_holds_dialing_back_do_not_build_up_aggressiveness() -> None:
    """Early in the day the worst-case margin, not the aim, limits predictive: crediting those connects
    would leave the aim far too bold by the time the margin is there (abandons then bunch up)."""
    d = Driver(mode="predictive")
    d.ready(*(f"a{i}" for i in range(10)))
    for i in range(10):
        d.dial(f"c{i}")
    for i in range(5):
        (connect,) = of(p.Connect, d.later()(p.LineAnswered(f"c{i}", "human")))
        d(p.CallConnected(f"c{i}", connect.agent_id))
    assert d.pacer.status().aggressiveness == 1.0
    for agent in ("a5", "a6", "a7", "a8", "a9"):  # the free ones leave: c5 has nobody
        d(p.AgentAway(agent))
    d.later()(p.LineAnswered("c5", "human"))
    assert [x.call_id for x in of(p.Abandon, d.later(2)(p.Tick()))] == ["c5"]
    assert d.pacer.status().aggressiveness < 1.0  # an abandon always counts


def test_a_fresh_campaign_dials_no_more_than_progressive() -> None:
    """No live answers in the window yet: a single abandon would be over 3 %, so nothing extra."""
    d = Driver(mode="predictive")
    assert dialled(d.ready(*(f"a{i}" for i in range(10)))) == 10


# ---------------------------------------------------------------- the 2-second rule


def test_an_answered_call_with_no_free_agent_is_abandoned_at_2s_with_the_message() -> None:
    d = Driver(mode="progressive", abandon_message="sorry-we-will-call-back")
    d.ready("a1")
    d.later().dial("c1")
    d.later()(p.AgentAway("a1", "break"))
    d(p.LineAnswered("c1", "human"), at=100.0)
    assert d.pacer.next_due() == 102.0
    assert of(p.Abandon, d(p.Tick(), at=101.99)) == []
    (abandon,) = of(p.Abandon, d(p.Tick(), at=102.0))
    assert (abandon.call_id, abandon.message, abandon.waited_s) == ("c1", "sorry-we-will-call-back", 2.0)
    assert d.pacer.next_due() is None
    assert (d.pacer.status().live_answered, d.pacer.status().abandoned) == (1, 1)


def test_an_agent_freeing_within_2s_takes_the_call() -> None:
    d = Driver(mode="progressive")
    d.ready("a1", "a2")
    d.later().dial("c1")
    d.later().dial("c2")
    (connect,) = of(p.Connect, d(p.LineAnswered("c1", "human"), at=10.0))
    d(p.CallConnected("c1", "a1"))
    d(p.AgentAway("a2", "break"), at=12.0)  # c2 rings for nobody now
    d(p.HandleEnded("c1"), at=20.0)
    assert of(p.Connect, d(p.LineAnswered("c2", "human"), at=30.0)) == []
    (connect,) = of(p.Connect, d(p.WrapUpEnded("a1"), at=31.5))
    assert (connect.call_id, connect.agent_id, connect.waited_s) == ("c2", "a1", 1.5)
    assert of(p.Abandon, d(p.Tick(), at=40.0)) == []
    assert d.pacer.status().abandoned == 0


def test_a_connect_that_fails_puts_the_call_back_first_in_line() -> None:
    d = Driver(mode="progressive")
    d.ready("a1")
    d.later().dial("c1")
    d(p.LineAnswered("c1", "human"), at=10.0)
    # The bridge to a1 never came up (a1 logged out): the call waits again, and its 2 s still count.
    assert of(p.Abandon, d(p.AgentAway("a1", "logout"), at=11.0)) == []
    assert d.pacer.status().waiting == 1
    (abandon,) = of(p.Abandon, d(p.Tick(), at=12.0))
    assert abandon.call_id == "c1"


# ---------------------------------------------------------------- machines


@pytest.mark.parametrize("action", ["message", "hang_up"])
def test_machines_get_the_campaigns_treatment_and_no_agent(action: str) -> None:
    d = Driver(mode="progressive", machine_action=action, machine_message="please-call-us")
    d.ready("a1")
    d.later().dial("c1")
    out = d.later()(p.LineAnswered("c1", "machine"))
    (machine,) = of(p.HandleMachine, out)
    assert (machine.call_id, machine.action, machine.message) == ("c1", action, "please-call-us")
    assert of(p.Connect, out) == []
    assert dialled(out) == 1  # the agent is still free: the next line
    # FTC: a machine is no live answer; neither counted for nor against the cap.
    assert (d.pacer.status().live_answered, d.pacer.status().abandoned) == (0, 0)


def test_ofcom_counts_the_amd_false_positive_estimate_as_abandons() -> None:
    d = Driver(mode="progressive", amd_false_positive_share=0.1)
    d.ready("a1")
    d.later().dial("c1")
    d.later()(p.LineAnswered("c1", "machine"))
    status = d.pacer.status()
    assert (status.live_answered, status.abandoned) == pytest.approx((0.1, 0.1))


# ---------------------------------------------------------------- bad input


def test_nonsense_is_refused_with_a_reason_and_changes_nothing() -> None:
    d = Driver(mode="progressive")
    d.ready("a1", "a2")
    d.later().dial("c1")
    d.later().dial("c2")
    d.later()(p.LineAnswered("c1", "human"))
    before = d.pacer.status()
    cases = [
        (p.LinesNotDialled(-1), "count"),
        (p.LinesNotDialled(0), "count"),
        (p.LineAnswered("nope"), "unknown"),
        (p.LineFailed("nope"), "unknown"),
        (p.CallConnected("nope", "a1"), "unknown"),
        (p.HandleEnded("nope"), "unknown"),
        (p.CallAbandoned("nope"), "unknown"),
        (p.LineAnswered("c1", "human"), "already answered"),  # a repeat
        (p.LineFailed("c1", "busy"), "already answered"),  # out of order
        (p.CallConnected("c1", "a2"), "no connect"),  # the wrong agent
        (p.HandleEnded("c2"), "ringing"),  # ended before it was answered
        (p.CallAbandoned("c1"), "not waiting"),  # already with its agent
        (p.WrapUpEnded("a1"), "not in wrap-up"),
        (p.WrapUpEnded("ghost"), "has not been ready"),
        (p.AgentReady("a1"), "ready only after"),
        (p.AgentAway("ghost"), "has not been ready"),
        (p.LineDialled("c2"), "already dialled"),
        (p.LineDialled("c9", agent_id="a1"), "cannot dial"),
    ]
    for event, reason in cases:
        out = d(event)
        refusals = of(p.Refusal, out)
        assert len(refusals) == 1 and reason in refusals[0].reason, (event, out)
        assert refusals[0].event == event
        assert [x for x in out if not isinstance(x, p.Refusal)] == [], event
        assert d.pacer.status() == before, event


def test_a_late_repeat_of_an_ended_call_is_called_stale_not_unknown() -> None:
    d = Driver(mode="progressive")
    d.ready("a1")
    d.later().dial("c1")
    d.later()(p.LineFailed("c1"))
    (refusal,) = of(p.Refusal, d.later()(p.LineAnswered("c1")))
    assert "already ended" in refusal.reason


def test_a_line_nobody_asked_for_still_counts_as_ringing() -> None:
    d = Driver(mode="progressive")
    d.ready("a1")
    d.dial("c1")
    (ignored,) = of(p.Ignored, d.dial("c2"))
    assert "no Dial asked" in ignored.reason
    assert d.pacer.status().lines_out == 2


def test_time_going_backwards_is_an_error_and_changes_nothing() -> None:
    d = Driver(mode="progressive")
    d.ready("a1")
    d(p.Tick(), at=50.0)
    before = d.pacer.status()
    with pytest.raises(ValueError, match="backwards"):
        d.pacer.handle(p.AgentReady("a2"), 49.0)
    with pytest.raises(ValueError, match="not a number"):
        d.pacer.handle(p.AgentReady("a2"), float("nan"))
    with pytest.raises(TypeError, match="not a pacing event"):
        d.pacer.handle("AgentReady a2", 50.0)  # type: ignore[arg-type]
    assert d.pacer.status() == before
    assert dialled(d.pacer.handle(p.AgentReady("a2"), 50.0)) == 1  # and it carries on


# ---------------------------------------------------------------- invariants over random days

STEP = st.sampled_from(["ready", "away", "dial", "decline", "answer", "machine", "fail", "end", "wrap",
                        "tick", "nonsense"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(STEP, st.integers(0, 1_000), st.floats(0.0, 30.0)), max_size=250),
       mode=st.sampled_from(["progressive", "predictive"]), away=st.booleans())
def test_random_days_keep_the_books_and_the_cap(steps: list[tuple[str, int, float]], mode: str,
                                                away: bool) -> None:
    """Any order of events, nonsense included: no exception, every call ends up in one place, no agent
    gets two calls, every connect within 2 s of the answer, every abandon at 2 s; and unless an agent
    left while lines were out, the window never goes over the cap."""
    d = Driver(mode=mode, amd_false_positive_share=0.02)
    agents = [f"a{i}" for i in range(6)]
    ringing: list[str] = []
    waiting: dict[str, float] = {}  # answered at
    busy: dict[str, str] = {}  # agent -> call
    wrapping: list[str] = []
    calls = 0
    left_with_lines_out = False
    for kind, pick, dt in steps:
        d.later(dt)
        if kind == "ready":
            d(p.AgentReady(agents[pick % len(agents)]))
        elif kind == "away" and away:
            agent = agents[pick % len(agents)]
            left_with_lines_out |= bool(ringing or d.asked)
            d(p.AgentAway(agent))
            if agent in wrapping:
                wrapping.remove(agent)
        elif kind == "dial" and d.asked:
            calls += 1
            ringing.append(f"c{calls}")
            d.dial(f"c{calls}")
        elif kind == "decline":
            d.decline()
        elif kind in ("answer", "machine", "fail") and ringing:
            call = ringing.pop(pick % len(ringing))
            if kind == "fail":
                d(p.LineFailed(call, "no-answer"))
            else:
                d(p.LineAnswered(call, "human" if kind == "answer" else "machine"))
                if kind == "answer":
                    waiting[call] = d.now
        elif kind == "end" and busy:
            agent = sorted(busy)[pick % len(busy)]
            d(p.HandleEnded(busy.pop(agent)))
            wrapping.append(agent)
        elif kind == "wrap" and wrapping:
            d(p.WrapUpEnded(wrapping.pop(pick % len(wrapping))))
        elif kind == "nonsense":
            d([p.LineAnswered("zz"), p.LinesNotDialled(-pick), p.HandleEnded("zz"), p.WrapUpEnded("zz"),
               p.CallConnected("zz", "a0")][pick % 5])
        else:
            d(p.Tick())
        due = d.pacer.next_due()
        if due is not None and due <= d.now + 30:
            d(p.Tick(), at=max(d.now, due))
        while d.log:
            decisions, d.log = d.log, []
            for x in decisions:
                if isinstance(x, p.Connect):
                    assert x.call_id in waiting and x.agent_id not in busy
                    assert x.waited_s < 2.0
                    del waiting[x.call_id]
                    busy[x.agent_id] = x.call_id
                    d(p.CallConnected(x.call_id, x.agent_id))
                elif isinstance(x, p.Abandon):
                    assert x.call_id in waiting and x.waited_s >= 2.0
                    del waiting[x.call_id]
                elif isinstance(x, p.Refusal):  # the driver knows its calls: only agents' moves may be off
                    assert getattr(x.event, "call_id", "zz") == "zz" and x.reason, x
        status = d.pacer.status()
        assert status.lines_out == len(ringing) + d.asked
        assert status.waiting == len(waiting)
        assert min(status.lines_out, status.waiting, status.agents_free, status.agents_busy) >= 0
        if not left_with_lines_out:
            assert status.abandoned <= 0.03 * status.live_answered + 1e-9


def test_over_the_cap_a_free_agent_still_gets_a_line_as_in_progressive() -> None:
    """Capture 28: an agent's phone did not answer, the first person of the day was abandoned (1 of 1 live
    answered, over any cap). The agent ready again must still get a line (none beyond the free agents);
    the pacer dialled nothing more until the window forgot the abandon."""
    for mode in ("progressive", "predictive"):
        pacer = p.Pacer(p.PacingConfig("c", mode=mode))  # type: ignore[arg-type]
        assert pacer.handle(p.AgentReady("a"), 0.0) == [p.Dial("c", 1)]
        pacer.handle(p.LineDialled("l1"), 0.0)
        assert [type(x) for x in pacer.handle(p.LineAnswered("l1", "human"), 5.0)] == [p.Connect]
        pacer.handle(p.AgentAway("a", "no agent leg"), 5.1)  # its phone was not picked up
        assert any(isinstance(x, p.Abandon) for x in pacer.handle(p.Tick(), 7.2))
        assert pacer.abandon_rate() > pacer.config.abandon_cap
        assert pacer.handle(p.AgentReady("a"), 9.0) == [p.Dial("c", 1)], mode
        pacer.handle(p.LineDialled("l2"), 9.0)
        out = pacer.handle(p.AgentReady("b"), 9.5) + pacer.handle(p.Tick(), 10.0)
        assert sum(x.count for x in out if isinstance(x, p.Dial)) == 1, mode  # b's line, none beyond
