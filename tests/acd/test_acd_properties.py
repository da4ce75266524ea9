"""Invariants of the router over random event sequences (hypothesis stateful testing).

After every handle(): no call is lost, no call is offered to two agents, no agent holds two
offers, no call is offered to an agent lacking one of the caller's extra skills, no qualified
available agent idles while a call they qualify for waits (extra skills included), escalation
stages match the clock, a call's extra skills are the ones it should still carry, and a refused
event changes nothing. The eligibility oracle below is
a brute-force reading of the configuration, independent of the router's indexes.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig, meets
from acd.router import CallView, Router
from tests.acd.acd_helpers import make_config, of_type

CONFIG: AcdConfig = make_config(
    [
        {"name": "qa", "skills": {"billing": 3}, "sticky_window_s": 5, "wrap_up_s": 2, "max_wait_s": 60,
         "on_max_wait": "queue:qc", "announce_every_s": 9,
         "escalation": [{"after_s": 10, "min_levels": {"billing": 1}}, {"after_s": 20, "also_offer_to": ["qc"]}],
         "priority": {"vip": 30, "grades": {"A": 10}}},
        {"name": "qb", "skills": {"sales": 2, "tech": 1}, "policy": "most_skilled", "wrap_up_s": 0,
         "max_wait_s": 40, "on_max_wait": "voicemail", "announce_every_s": 7,
         "escalation": [{"after_s": 15, "also_offer_to": ["qa"]}]},
        {"name": "qc", "skills": {"english": 1}, "policy": "round_robin", "wrap_up_s": 1, "max_wait_s": 50,
         "on_max_wait": "callback", "sticky_window_s": 3},
        {"name": "qd", "skills": {"tech": 2}, "policy": "fewest_calls", "wrap_up_s": 3,
         "escalation": [{"after_s": 8, "min_levels": {"tech": 1}}, {"after_s": 30, "action": "voicemail"}]},
        {"name": "qe", "skills": {"korean": 1}, "policy": "least_occupied", "wrap_up_s": 1},
    ],
    [
        {"id": "a1", "skills": {"billing": 5, "english": 2}, "queues": ["qa", "qc"]},
        {"id": "a2", "skills": {"billing": 1, "sales": 3, "tech": 1}, "queues": ["qa", "qb"]},
        {"id": "a3", "skills": {"sales": 2, "tech": 3, "korean": 2}, "queues": ["qb", "qd", "qe"]},
        {"id": "a4", "skills": {"english": 1, "tech": 1, "korean": 1}, "queues": ["qc", "qd", "qe"]},
        {"id": "a5", "skills": {"billing": 3, "sales": 2, "tech": 2, "english": 4}, "queues": ["qa", "qb", "qc"]},
        {"id": "a6", "skills": {"tech": 2}, "queues": ["qd"]},
    ],
    aging=0.5,
)
AGENTS = [a.id for a in CONFIG.agents]
QUEUES = [q.name for q in CONFIG.queues]
# Extra skills a flow may ask for; "bogus" is unknown to the configuration (ignored, never refused).
EXTRA_SKILLS = [(), (), ("korean",), ("english",), ("english", "korean"), ("sales",), ("billing", "korean"),
                ("bogus", "korean")]
WAITING = ("waiting", "callback")
OFFERED = ("offered", "ringing")


def expected_stage(view: CallView, now: float) -> tuple[int, tuple[str, ...]]:
    stage, overflow = 0, tuple[str, ...]()
    for step in CONFIG.queue(view.queue).escalation:
        if step.after_s <= now - view.entered_at:
            stage += 1 if step.min_levels else 0
            overflow += tuple(q for q in step.also_offer_to if q not in overflow)
    return stage, overflow


def holds_extras(agent_id: str, view: CallView) -> bool:
    skills = CONFIG.agent(agent_id).skills
    return all(skills.get(s, 0) >= 1 for s in view.skills)


def eligible(agent_id: str, agent_queues: tuple[str, ...], view: CallView) -> bool:
    if view.sticky_agent_id is not None:
        return agent_id == view.sticky_agent_id
    if not holds_extras(agent_id, view):
        return False
    skills = CONFIG.agent(agent_id).skills
    queue = CONFIG.queue(view.queue)
    if view.queue in agent_queues and meets(skills, queue.level_stages()[view.level_stage]):
        return True
    return any(q in agent_queues and meets(skills, CONFIG.queue(q).skills) for q in view.overflow)


class RouterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router(CONFIG)
        self.now = 0.0
        self.next_call = 0
        self.live_calls: dict[str, str] = {}  # call -> state, as told by CallStateChanged decisions
        self.outstanding: dict[str, str] = {}  # call -> agent, from Offer until its outcome
        self.consults: dict[str, str] = {}  # call -> consulted agent, from its Offer until released
        self.offers_seen = 0
        self.extras: dict[str, tuple[str, ...]] = {}  # call -> the extra skills it should carry
        self.site_of: dict[str, str] = {}  # call -> its PBX
        self.sites_down: set[str] = set()
        # A router restored from a checkpoint of this one: from then on it must decide exactly the same.
        self.shadow: Router | None = None

    # ------------------------------------------------------------ plumbing

    def send(self, event: ev.Event) -> list[d.Decision]:
        before = self.snapshot()
        out = self.router.handle(event, self.now)
        if self.shadow is not None:
            assert self.shadow.handle(event, self.now) == out
        refused = [x for x in out if isinstance(x, d.Refusal)]
        if refused:
            assert out == refused, out  # a refusal comes alone...
            assert self.snapshot() == before  # ...and changes nothing
        self.follow(out)
        return out

    def snapshot(self) -> Any:
        return ([self.router.agent_view(a, 0.0) for a in AGENTS],
                sorted((c, self.router.call_view(c)) for c in self.router.call_ids()))

    def follow(self, out: list[d.Decision]) -> None:
        for x in out:
            if isinstance(x, d.CallStateChanged):
                if x.new == "ended":
                    assert self.live_calls.pop(x.call_id, None) is not None
                else:
                    self.live_calls[x.call_id] = x.new
                if x.new in ("waiting", "callback", "connected"):
                    self.outstanding.pop(x.call_id, None)
            elif isinstance(x, d.CancelOffer):
                if self.consults.get(x.call_id) == x.agent_id:
                    del self.consults[x.call_id]
                else:
                    assert self.outstanding.pop(x.call_id, None) == x.agent_id
            elif isinstance(x, d.Offer) and x.kind == "consult":
                assert x.call_id not in self.consults
                self.consults[x.call_id] = x.agent_id
            elif isinstance(x, d.Offer):
                assert x.call_id not in self.outstanding, f"{x.call_id} offered twice"
                view = self.router.call_view(x.call_id)
                if x.kind == "queue" and view is not None:
                    assert holds_extras(x.agent_id, view), (x, view.skills)
                    assert self.site_of[x.call_id] not in self.sites_down, f"{x.call_id} offered, its site down"
                assert x.agent_id not in self.outstanding.values(), f"{x.agent_id} holds two offers"
                self.outstanding[x.call_id] = x.agent_id
                self.offers_seen += 1
        # an offer ends with an answer, a failure or a CancelOffer: never silently
        assert all(c in self.live_calls for c in self.outstanding), (self.outstanding, out)
        # a consultation ends with the call handed over, cancelled, or the caller gone
        for call_id in list(self.consults):
            view = self.router.call_view(call_id)
            if view is None or view.consult_agent_id != self.consults[call_id]:
                del self.consults[call_id]

    def calls_in(self, *states: str) -> list[str]:
        return sorted(c for c, s in self.live_calls.items() if s in states)

    # ------------------------------------------------------------ caller side

    @rule(queue=st.sampled_from(QUEUES), priority=st.integers(0, 20), vip=st.booleans(),
          grade=st.sampled_from([None, "A", "B"]), sticky=st.sampled_from([None, *AGENTS]),
          skills=st.sampled_from(EXTRA_SKILLS), site=st.sampled_from(["pbx1", "pbx1", "pbx2"]))
    def enqueue(self, queue: str, priority: int, vip: bool, grade: str | None, sticky: str | None,
                skills: tuple[str, ...], site: str) -> None:
        self.next_call += 1
        call_id = f"c{self.next_call}"
        self.site_of[call_id] = site
        out = self.send(ev.CallEnqueued(call_id, queue, priority, "0100", sticky, vip, grade, skills, site))
        assert bool(of_type(out, d.Ignored)) == ("bogus" in skills)
        self.extras[call_id] = tuple(sorted(s for s in skills if s != "bogus"))

    @rule(site=st.sampled_from(["pbx1", "pbx2"]), up=st.booleans())
    def site_link(self, site: str, up: bool) -> None:
        if up:
            self.sites_down.discard(site)
        else:
            self.sites_down.add(site)
        self.send(ev.SiteAvailable(site) if up else ev.SiteUnavailable(site))

    @precondition(lambda self: self.live_calls)
    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        self.send(ev.CallerHungUp(data.draw(st.sampled_from(sorted(self.live_calls)))))

    @precondition(lambda self: self.calls_in("waiting"))
    @rule(data=st.data())
    def callback(self, data: st.DataObject) -> None:
        self.send(ev.CallbackRequested(data.draw(st.sampled_from(self.calls_in("waiting")))))

    @precondition(lambda self: self.calls_in("waiting"))
    @rule(data=st.data(), queue=st.sampled_from([None, *QUEUES]), to_head=st.booleans())
    def supervisor_moves(self, data: st.DataObject, queue: str | None, to_head: bool) -> None:
        self.send(ev.CallMoved(data.draw(st.sampled_from(self.calls_in("waiting"))), queue, to_head))

    @precondition(lambda self: self.calls_in(*WAITING, *OFFERED))
    @rule(data=st.data())
    def leave_queue(self, data: st.DataObject) -> None:
        self.send(ev.CallLeftQueue(data.draw(st.sampled_from(self.calls_in(*WAITING, *OFFERED))), "abandoned"))

    @precondition(lambda self: self.outstanding or self.consults)
    @rule(data=st.data(), consult=st.booleans(),
          outcome=st.sampled_from(["ringing", "answer", "answer", "no-answer", "busy", "cancelled"]))
    def offer_outcome(self, data: st.DataObject, consult: bool, outcome: str) -> None:
        pending = self.consults if (consult and self.consults) or not self.outstanding else self.outstanding
        call_id = data.draw(st.sampled_from(sorted(pending)))
        agent_id = pending[call_id]
        if outcome == "ringing":
            self.send(ev.OfferRinging(call_id, agent_id))
        elif outcome == "answer":
            self.send(ev.OfferAnswered(call_id, agent_id))
        else:
            self.send(ev.OfferFailed(call_id, agent_id, outcome))  # type: ignore[arg-type]

    @precondition(lambda self: self.calls_in("connected", "held"))
    @rule(data=st.data(), what=st.sampled_from(["agent-end", "hold", "unhold", "unknown-end", "consulted-ends"]),
          side=st.sampled_from(["caller", "agent", "unknown"]))
    def connected_call(self, data: st.DataObject, what: str, side: str) -> None:
        call_id = data.draw(st.sampled_from(self.calls_in("connected", "held")))
        view = self.router.call_view(call_id)
        assert view is not None and view.agent_id is not None
        if what == "agent-end":
            self.send(ev.AgentCallEnded(view.agent_id, call_id, side))  # type: ignore[arg-type]
        elif what == "consulted-ends":
            self.send(ev.AgentCallEnded(view.consult_agent_id or view.agent_id, call_id, "agent"))
        elif what == "unknown-end":
            self.send(ev.AgentCallEnded(view.agent_id, call_id, "unknown"))
        else:
            self.send(ev.HoldStarted(call_id) if what == "hold" else ev.HoldEnded(call_id))

    @precondition(lambda self: self.calls_in("connected", "held"))
    @rule(data=st.data(), what=st.sampled_from(["queue", "agent", "out", "consult", "complete", "cancel"]),
          to=st.sampled_from([*AGENTS, *QUEUES]))
    def transfer(self, data: st.DataObject, what: str, to: str) -> None:
        call_id = data.draw(st.sampled_from(self.calls_in("connected", "held")))
        view = self.router.call_view(call_id)
        assert view is not None and view.agent_id is not None
        event: ev.Event
        if what == "queue":
            event = ev.TransferToQueue(call_id, view.agent_id, to)
        elif what == "agent":
            event = ev.TransferToAgent(call_id, view.agent_id, to)
        elif what == "out":
            event = ev.TransferOut(call_id, view.agent_id, "5551234")
        elif what == "consult":
            event = ev.ConsultStarted(call_id, view.agent_id, to)
        else:
            event = ev.ConsultEnded(call_id, view.agent_id, what == "complete")
        out = self.send(event)
        if what == "queue" and to != view.queue and not of_type(out, d.Refusal):
            self.extras[call_id] = ()  # the agent chose another queue: the flow's skills no longer bind

    @rule()
    def checkpoint(self) -> None:
        """Dump the router as a journal checkpoint would (through JSON) and restore it beside."""
        data = json.loads(json.dumps(self.router.dump()))
        self.shadow, problems = Router.load(CONFIG, data)
        assert problems == []
        assert self.shadow.dump() == data

    @rule(call=st.sampled_from(["c1", "c2", "nope"]), agent=st.sampled_from(AGENTS))
    def nonsense_offer_answer(self, call: str, agent: str) -> None:
        self.send(ev.OfferAnswered(call, agent))

    # ------------------------------------------------------------ agent side

    @rule(agent=st.sampled_from(AGENTS), queues=st.sampled_from([None, ("qa",), ("qb", "qd"), ("qc", "qe")]))
    def login(self, agent: str, queues: tuple[str, ...] | None) -> None:
        self.send(ev.AgentLoggedIn(agent, f"PJSIP/{agent}", queues))

    @rule(agent=st.sampled_from(AGENTS), command=st.sampled_from(["logout", "ready", "ready", "wrap", "pause"]),
          reason=st.sampled_from(["break", "lunch"]))
    def agent_command(self, agent: str, command: str, reason: str) -> None:
        event: ev.Event
        if command == "logout":
            event = ev.AgentLoggedOut(agent)
        elif command == "ready":
            event = ev.AgentReady(agent)
        elif command == "wrap":
            event = ev.WrapUpDone(agent)
        else:
            event = ev.AgentPaused(agent, reason)
        self.send(event)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 9.0, 16.0, 45.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.send(ev.Tick())

    # ------------------------------------------------------------ invariants

    @invariant()
    def no_call_lost(self) -> None:
        assert sorted(self.router.call_ids()) == sorted(self.live_calls)
        for call_id, state in self.live_calls.items():
            view = self.router.call_view(call_id)
            assert view is not None and view.state == state

    @invariant()
    def extra_skills_follow_the_caller(self) -> None:
        for call_id in self.live_calls:
            view = self.router.call_view(call_id)
            assert view is not None and view.skills == self.extras[call_id], (call_id, view)

    @invariant()
    def offers_are_one_to_one(self) -> None:
        reserved = {}
        consulted = {}
        for agent_id in AGENTS:
            view = self.router.agent_view(agent_id, self.now)
            if view.state == "reserved" and self.consults.get(view.call_id or "") == agent_id:
                consulted[view.call_id] = agent_id
            elif view.state == "reserved":
                assert view.call_id is not None
                reserved[view.call_id] = agent_id
        assert reserved == self.outstanding
        assert set(consulted.items()) <= set(self.consults.items())
        for call_id in self.calls_in(*OFFERED):
            call = self.router.call_view(call_id)
            assert call is not None and reserved.get(call_id) == call.agent_id

    @invariant()
    def escalation_follows_the_clock(self) -> None:
        for call_id in self.calls_in(*WAITING, *OFFERED):
            view = self.router.call_view(call_id)
            assert view is not None
            assert (view.level_stage, view.overflow) == expected_stage(view, self.now)
            deadline = CONFIG.queue(view.queue).max_wait_s
            if deadline is not None and view.state == "waiting" and not view.virtual:
                assert self.now - view.entered_at < deadline

    @invariant()
    def no_qualified_agent_idles_while_a_call_waits(self) -> None:
        waiting = [self.router.call_view(c) for c in self.calls_in(*WAITING)
                   if self.site_of.get(c) not in self.sites_down]
        for agent_id in AGENTS:
            agent = self.router.agent_view(agent_id, self.now)
            if agent.state != "available":
                continue
            for view in waiting:
                assert view is not None
                assert not eligible(agent_id, agent.queues, view), (agent_id, view)

    @invariant()
    def positions_are_a_permutation(self) -> None:
        by_queue: dict[str, list[int]] = {}
        for call_id in self.calls_in(*WAITING):
            view = self.router.call_view(call_id)
            assert view is not None and view.position is not None
            by_queue.setdefault(view.queue, []).append(view.position)
        for positions in by_queue.values():
            assert sorted(positions) == list(range(1, len(positions) + 1))


RouterMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestRouterMachine = RouterMachine.TestCase
