"""The ACD router: a pure state machine. `Router(config).handle(event, now) -> list[Decision]`.

Indexes, so no event scans all agents x all calls:

* per queue and per *level stage* (the queue's required levels, then each relaxation step),
  a heap of available agents qualified at that stage, ordered by the queue's policy;
* per queue and per level stage, a heap of routable calls at that stage, and per queue an
  overflow heap of calls from other queues that are "also offered" to it;
* per agent, a heap of calls waiting for them inside a sticky window.

A call at stage s is served by the top of agent heap (queue, s). An agent whose best
qualification for queue q is stage m looks at call heaps (q, m..last) and, at stage 0, the
overflow heap of q. Entries are invalidated lazily by a global version counter.

A caller who needs extra skills (`CallEnqueued.skills`, e.g. korean in the shared sales queue) is
routed in a derived *pool* of the queue: the same stages, each also requiring the extra skills at
level 1. A pool has its own agent, call and overflow heaps (same keys as the queue's); it is created
when its first caller arrives, filled from the queue's logged-in members who hold the skills, and
from then on agents are indexed into every pool they belong to, as into their queues. The queue stays
the caller's queue for everything else: its line (positions), timers, statistics and queue_log.

Effective priority = base priority + aging x wait. The aging rate is global, so the order
between two waiting calls never changes with time: the heap key `aging*entered - base` is
static and comparable across queues ("pick by priority, then by wait" across queues).
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from acd import decisions as d
from acd import events as ev
from acd.config import SYSTEM_PAUSE_REASONS, AcdConfig, AgentConfig, QueueConfig, TimeoutActionSpec, meets
from acd.heaps import LazyHeap
from acd.states import AgentState, CallState, agent_next, call_next

A = AgentState
C = CallState

_BUSY = frozenset({A.RESERVED, A.ON_CALL, A.ON_HOLD, A.WRAP_UP})
_STAFFED = frozenset({A.AVAILABLE, A.RESERVED, A.ON_CALL, A.ON_HOLD, A.WRAP_UP})
_IN_LINE = frozenset({C.WAITING, C.CALLBACK})
_OFFERED = frozenset({C.OFFERED, C.RINGING})
_TALKING = frozenset({C.CONNECTED, C.HELD})
_NAME = {s: s.value for s in (*AgentState, *CallState)}  # Enum.value is a slow descriptor on the hot path
_RECENT_ENDED = 10_000
LOST = "lost"  # CallLeftQueue reasons starting so: the system ended the call, nobody abandoned  # ended call ids remembered to swallow duplicate hang-ups quietly

AgentEntry = tuple[tuple[Any, ...], int, str]
CallEntry = tuple[tuple[Any, ...], int, str]


class _Pool:
    """The routing indexes of one requirement per level stage: a queue's own (the queue's runtime is
    its own pool) or a queue's with a caller's extra skills (see the module docstring)."""

    __slots__ = ("agent_heaps", "call_heaps", "cfg", "extras", "name", "order", "overflow_heap")

    def __init__(self, cfg: QueueConfig, extras: tuple[str, ...], order: tuple[int, tuple[str, ...]],
                 n_stages: int, agent_live: Callable[[AgentEntry], bool],
                 call_live: Callable[[CallEntry], bool]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.extras = extras  # sorted; () for the queue itself
        # An agent scans their pools in this fixed order: a router restored from a checkpoint creates
        # them in another order, and must still pick the same `via` for a call two pools both show.
        self.order = order
        self.agent_heaps: list[LazyHeap[AgentEntry]] = [LazyHeap(agent_live) for _ in range(n_stages)]
        self.call_heaps: list[LazyHeap[CallEntry]] = [LazyHeap(call_live) for _ in range(n_stages)]
        self.overflow_heap: LazyHeap[CallEntry] = LazyHeap(call_live)


def _pool_order(pool: _Pool) -> tuple[int, tuple[str, ...]]:
    return pool.order


class _Agent:
    __slots__ = (
        "answered_at",
        "busy_s",
        "call_id",
        "call_queue",
        "calls_answered",
        "cfg",
        "endpoint",
        "id",
        "idle_since",
        "leg_id",
        "login_at",
        "min_stage",
        "occupancy",
        "ordinal",
        "outbound",
        "pause_reason",
        "pending_pause",
        "pools",
        "queues",
        "rr_last",
        "score",
        "since",
        "state",
        "sticky",
        "version",
        "wrap_held",
        "wrap_s",
        "wrap_token",
    )

    def __init__(self, cfg: AgentConfig, ordinal: int, is_live: Callable[[CallEntry], bool]) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.ordinal = ordinal
        self.state = A.LOGGED_OUT
        self.since = 0.0
        self.endpoint = ""
        self.queues: tuple[str, ...] = ()
        self.min_stage: dict[str, int] = {}  # queue -> first level stage this agent meets
        self.pools: list[_Pool] = []  # extra-skill pools of their queues they qualify for, in _pool_order
        self.score: dict[str, int] = {}  # queue -> sum of levels in the queue's skills
        self.version = 0
        self.idle_since = 0.0
        self.call_id: str | None = None
        self.call_queue: str | None = None
        self.pending_pause: str | None = None
        self.pause_reason: str | None = None
        self.answered_at = 0.0
        self.calls_answered = 0
        self.busy_s = 0.0
        self.login_at = 0.0
        self.rr_last: dict[str, int] = {}
        self.occupancy = 0.0
        self.sticky: LazyHeap[CallEntry] = LazyHeap(is_live)
        self.wrap_token = 0
        self.wrap_held = False  # the wrap-up form is open: the queue's maximum ends it, not wrap_up_s
        self.leg_id = ""  # the ChannelId of this agent's leg for call_id (offer or consultation)
        self.outbound = False  # call_id is the agent's own outbound call: its time is no queue's handle time
        self.wrap_s: float | None = None  # this wrap-up's own length (a campaign's), else the queue's


class _Call:
    __slots__ = (
        "agent_id",
        "answered_at",
        "base",
        "callback_number",
        "caller_num",
        "consult",
        "entered_at",
        "entry",
        "first_enq",
        "head",
        "id",
        "key",
        "leg_id",
        "level_stage",
        "next_step",
        "offered_at",
        "orig_position",
        "overflow",
        "pending_action",
        "pool",
        "queue",
        "seq",
        "site",
        "skills",
        "state",
        "sticky_agent",
        "version",
        "virtual",
    )

    def __init__(self, call_id: str, pool: _Pool, base: int, now: float, seq: int, caller_num: str,
                 skills: tuple[str, ...] = ()) -> None:
        self.id = call_id
        self.queue = pool.cfg
        self.pool = pool  # where it is routed: its queue, or the queue's pool for its extra skills
        self.skills = skills  # extra skills the caller needs (known ones, sorted)
        self.site = ""  # the PBX the caller is on
        self.state = C.NEW
        self.base = base
        self.first_enq = now  # priority aging runs from the first queue entry, across moves
        self.entered_at = now  # escalation runs from entry into the current queue
        self.seq = seq
        self.version = 0
        self.next_step = 0
        self.level_stage = 0
        self.overflow: tuple[str, ...] = ()
        self.caller_num = caller_num
        self.callback_number: str | None = None
        self.sticky_agent: str | None = None
        self.head = 1  # 0 = put back at the head after ring-no-answer
        self.entry = 0
        self.agent_id: str | None = None
        self.pending_action: TimeoutActionSpec | None = None
        self.answered_at = 0.0
        self.key: tuple[Any, ...] = ()
        self.virtual = False
        self.leg_id = ""  # ChannelId of the agent leg of the current offer or connection
        self.offered_at = 0.0
        self.orig_position = 0  # position when the caller entered the queue (queue_log fields)
        self.consult: str | None = None  # agent consulted by call.agent_id (attended transfer)


class _QueueRuntime(_Pool):
    __slots__ = (
        "handle_times",
        "implied",
        "line",
        "members",
        "pools",
        "rr_counter",
        "staffed",
        "stages",
        "step_overflow",
        "step_stage",
    )

    def __init__(self, cfg: QueueConfig, ordinal: int, agent_live: Callable[[AgentEntry], bool],
                 call_live: Callable[[CallEntry], bool]) -> None:
        stages = cfg.level_stages()
        super().__init__(cfg, (), (ordinal, ()), len(stages), agent_live, call_live)
        self.stages = stages
        # Skills every stage requires (at level >= 1 by construction): as extra skills they add nothing.
        self.implied = frozenset(s for s in stages[0] if all(st.get(s, 0) >= 1 for st in stages))
        self.pools: dict[tuple[str, ...], _Pool] = {}  # extra skills -> pool, created on first use
        self.members: dict[str, _Agent] = {}  # logged-in agents qualified for this queue (fill new pools)
        self.step_stage: list[int] = []
        self.step_overflow: list[tuple[str, ...]] = []
        stage, overflow = 0, cast(tuple[str, ...], ())
        for step in cfg.escalation:
            if step.min_levels:
                stage += 1
            overflow = overflow + tuple(q for q in step.also_offer_to if q not in overflow)
            self.step_stage.append(stage)
            self.step_overflow.append(overflow)
        self.line: list[tuple[Any, ...]] = []  # sorted keys of calls in line, for positions
        self.handle_times: deque[float] = deque(maxlen=50)
        self.staffed = 0
        self.rr_counter = 0


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    state: str
    since: float
    time_in_state_s: float
    endpoint: str
    queues: tuple[str, ...]
    call_id: str | None
    pause_reason: str | None
    pending_pause: str | None
    calls_answered: int
    leg_id: str = ""  # ChannelId of the agent's latest leg (ringing, on a call, or just ended)
    wrap_held: bool = False  # in wrap-up with the form open (see WrapUpHeld)
    call_queue: str | None = None  # the queue of the call being handled or wrapped up
    wrap_up_s: float | None = None  # in wrap-up of its own length (a campaign's): that length


@dataclass(frozen=True, slots=True)
class CallView:
    call_id: str
    queue: str
    state: str
    agent_id: str | None
    entered_at: float
    position: int | None  # None when not in line (offered or connected)
    level_stage: int
    overflow: tuple[str, ...]
    sticky_agent_id: str | None
    virtual: bool
    leg_id: str = ""
    consult_agent_id: str | None = None
    skills: tuple[str, ...] = ()  # extra skills the caller needs on top of the queue's


class Router:
    """Feed it events with the current monotonic time; carry out the decisions it returns."""

    def __init__(self, config: AcdConfig) -> None:
        self.config = config
        self._aging = config.priority_aging_per_s
        self._pause_reasons = frozenset(config.pause_reasons) | frozenset(SYSTEM_PAUSE_REASONS)
        self._skills = frozenset(config.skills)
        self._now = float("-inf")
        self._version = 0
        self._seq = 0
        self._offers = 0  # numbers the agent legs (Offer.leg_id)
        self._calls: dict[str, _Call] = {}
        self._recent_ended: OrderedDict[str, None] = OrderedDict()
        self._down: set[str] = set()  # sites (PBXes) that cannot be steered now: their callers wait
        self._timers: list[tuple[float, int, str, str, int, int]] = []
        self._agents = {a.id: _Agent(a, i, self._call_live) for i, a in enumerate(config.agents)}
        self._queues = {q.name: _QueueRuntime(q, i, self._agent_live, self._call_live)
                        for i, q in enumerate(config.queues)}
        self._handlers: dict[type, Callable[[Any, float, list[d.Decision]], None]] = {
            ev.CallEnqueued: self._on_enqueued,
            ev.CallLeftQueue: self._on_left_queue,
            ev.CallbackRequested: self._on_callback_requested,
            ev.CallerHungUp: self._on_caller_hung_up,
            ev.OfferRinging: self._on_offer_ringing,
            ev.OfferAnswered: self._on_offer_answered,
            ev.OfferFailed: self._on_offer_failed,
            ev.HoldStarted: self._on_hold,
            ev.HoldEnded: self._on_hold,
            ev.AgentCallEnded: self._on_agent_call_ended,
            ev.TransferToQueue: self._on_transfer_to_queue,
            ev.TransferToAgent: self._on_transfer_to_agent,
            ev.TransferOut: self._on_transfer_out,
            ev.ConsultStarted: self._on_consult_started,
            ev.ConsultEnded: self._on_consult_ended,
            ev.CallMoved: self._on_call_moved,
            ev.AgentLoggedIn: self._on_logged_in,
            ev.AgentLoggedOut: self._on_logged_out,
            ev.AgentReady: self._on_ready,
            ev.AgentPaused: self._on_paused,
            ev.WrapUpDone: self._on_wrap_up_done,
            ev.WrapUpHeld: self._on_wrap_up_held,
            ev.OutboundStarted: self._on_outbound_started,
            ev.OutboundEnded: self._on_outbound_ended,
            ev.SiteUnavailable: self._on_site_unavailable,
            ev.SiteAvailable: self._on_site_available,
            ev.Tick: lambda event, now, out: None,
        }

    # ================================================================ public API

    def handle(self, event: ev.Event, now: float) -> list[d.Decision]:
        """Apply `event` at monotonic time `now` (timers due by `now` run first)."""
        if now < self._now:
            raise ValueError(f"time went backwards: {now} < {self._now}")
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not an ACD event: {event!r}")
        self._now = now
        out: list[d.Decision] = []
        self._run_timers(now, out)
        handler(event, now, out)
        self._run_timers(now, out)  # zero-length timers started by the event (wrap_up_s: 0)
        return out

    def tick(self, now: float) -> list[d.Decision]:
        return self.handle(ev.Tick(), now)

    def next_due(self) -> float | None:
        """When the next timer falls due: the service can sleep until then, then call tick()."""
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def agent_view(self, agent_id: str, now: float) -> AgentView:
        a = self._agents[agent_id]
        return AgentView(a.id, a.state.value, a.since, now - a.since, a.endpoint, a.queues, a.call_id,
                         a.pause_reason, a.pending_pause, a.calls_answered, a.leg_id,
                         a.state is A.WRAP_UP and a.wrap_held, a.call_queue,
                         a.wrap_s if a.state is A.WRAP_UP else None)

    def call_view(self, call_id: str) -> CallView | None:
        c = self._calls.get(call_id)
        if c is None:
            return None
        return CallView(c.id, c.queue.name, c.state.value, c.agent_id, c.entered_at, self._position(c),
                        c.level_stage, c.overflow, c.sticky_agent, c.virtual, c.leg_id, c.consult, c.skills)

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def call_ids(self) -> list[str]:
        return list(self._calls)

    def reset_day(self) -> None:
        """Zero the 'calls today' counters (fewest_calls policy) at the start of a day."""
        for agent in self._agents.values():
            agent.calls_answered = 0
            if agent.state is A.AVAILABLE:
                self._version += 1
                agent.version = self._version
                self._index_agent(agent)

    # ================================================================ checkpoints

    def dump(self) -> dict[str, Any]:
        """The router's state as plain data (JSON-able), for a journal checkpoint. `Router.load` rebuilds
        an equivalent router: the same decisions for the same events from then on."""
        agents = {}
        for a in self._agents.values():
            if a.state is A.LOGGED_OUT and a.since == 0.0 and not a.calls_answered and not a.rr_last:
                continue  # never seen: the default state
            agents[a.id] = {
                "state": a.state.value, "since": a.since, "endpoint": a.endpoint, "queues": list(a.queues),
                "min_stage": a.min_stage, "score": a.score, "idle_since": a.idle_since, "call_id": a.call_id,
                "call_queue": a.call_queue, "pending_pause": a.pending_pause, "pause_reason": a.pause_reason,
                "answered_at": a.answered_at, "calls_answered": a.calls_answered, "busy_s": a.busy_s,
                "login_at": a.login_at, "rr_last": a.rr_last, "occupancy": a.occupancy,
                "wrap_token": a.wrap_token, "leg_id": a.leg_id, "wrap_held": a.wrap_held,
                "outbound": a.outbound, "wrap_s": a.wrap_s,
            }
        calls = [{
            "id": c.id, "queue": c.queue.name, "state": c.state.value, "base": c.base, "first_enq": c.first_enq,
            "entered_at": c.entered_at, "seq": c.seq, "next_step": c.next_step, "level_stage": c.level_stage,
            "overflow": list(c.overflow), "caller_num": c.caller_num, "callback_number": c.callback_number,
            "sticky_agent": c.sticky_agent, "head": c.head, "entry": c.entry, "agent_id": c.agent_id,
            "pending_action": None if c.pending_action is None else [c.pending_action.kind,
                                                                     c.pending_action.target],
            "answered_at": c.answered_at, "key": list(c.key), "virtual": c.virtual, "leg_id": c.leg_id,
            "offered_at": c.offered_at, "orig_position": c.orig_position, "consult": c.consult,
            "skills": list(c.skills), "site": c.site,
        } for c in self._calls.values()]
        live_timers = [list(t) for t in sorted(self._timers) if self._timer_live(t)]
        return {
            "now": self._now, "seq": self._seq, "offers": self._offers, "calls": calls, "agents": agents,
            "timers": live_timers, "recent_ended": list(self._recent_ended), "down": sorted(self._down),
            "queues": {n: {"handle_times": list(rt.handle_times), "rr_counter": rt.rr_counter}
                       for n, rt in self._queues.items()},
        }

    @classmethod
    def load(cls, config: AcdConfig, data: dict[str, Any]) -> tuple[Router, list[str]]:
        """A router in the state `dump` wrote. Returns it with what could not be restored because the
        configuration changed since (an agent or a queue that no longer exists)."""
        router = cls(config)
        problems: list[str] = []
        router._now = data["now"]
        router._seq = data["seq"]
        router._offers = data["offers"]
        for name, q in data["queues"].items():
            rt = router._queues.get(name)
            if rt is not None:
                rt.handle_times.extend(q["handle_times"])
                rt.rr_counter = q["rr_counter"]
        for agent_id, a in data["agents"].items():
            agent = router._agents.get(agent_id)
            if agent is None:
                problems.append(f"agent {agent_id} is no longer configured; its session is dropped")
                continue
            agent.state = AgentState(a["state"])
            for name in ("since", "endpoint", "idle_since", "call_id", "call_queue", "pending_pause",
                         "pause_reason", "answered_at", "calls_answered", "busy_s", "login_at", "occupancy",
                         "wrap_token", "leg_id"):
                setattr(agent, name, a[name])
            agent.wrap_held = a.get("wrap_held", False)  # checkpoints older than held wrap-ups have none
            agent.outbound = a.get("outbound", False)  # nor outbound calls
            agent.wrap_s = a.get("wrap_s")  # nor wrap-ups of their own length
            agent.queues = tuple(q for q in a["queues"] if q in router._queues)
            agent.min_stage = {q: v for q, v in a["min_stage"].items() if q in router._queues}
            agent.score = {q: v for q, v in a["score"].items() if q in router._queues}
            agent.rr_last = dict(a["rr_last"])
            if agent.state is not A.LOGGED_OUT:
                for q in agent.min_stage:
                    router._queues[q].members[agent.id] = agent
        for c in data["calls"]:
            rt = router._queues.get(c["queue"])
            if rt is None:
                problems.append(f"call {c['id']} was in queue {c['queue']}, which is no longer configured")
                continue
            wanted = tuple(c.get("skills", ()))  # checkpoints older than per-call skills have none
            skills = tuple(s for s in wanted if s in router._skills)
            if len(skills) < len(wanted):
                gone = [s for s in wanted if s not in router._skills]
                problems.append(f"call {c['id']} needed skill(s) {gone}, no longer configured; dropped")
            call = _Call(c["id"], router._pool(rt.name, skills), c["base"], c["first_enq"], c["seq"],
                         c["caller_num"], skills)
            call.state = CallState(c["state"])
            for name in ("entered_at", "next_step", "level_stage", "callback_number", "sticky_agent", "head",
                         "entry", "agent_id", "answered_at", "virtual", "leg_id", "offered_at", "orig_position",
                         "consult"):
                setattr(call, name, c[name])
            call.overflow = tuple(q for q in c["overflow"] if q in router._queues)
            call.site = c.get("site", "")  # checkpoints older than sites have none
            call.key = tuple(c["key"])
            if c["pending_action"] is not None:
                call.pending_action = TimeoutActionSpec(*c["pending_action"])
            router._calls[call.id] = call
        router._recent_ended = OrderedDict.fromkeys(data["recent_ended"])
        router._down = set(data.get("down", ()))
        for t in data["timers"]:
            heapq.heappush(router._timers, tuple(t))  # type: ignore[arg-type]
        # Indexes are derived: lines, heaps and staffed counts are rebuilt from the state.
        for call in router._calls.values():
            if call.state in _IN_LINE:
                bisect.insort(router._queues[call.queue.name].line, call.key)
                router._index_call(call)
        for agent in router._agents.values():
            if agent.state in _STAFFED:
                for q in agent.queues:
                    if q in agent.min_stage:
                        router._queues[q].staffed += 1
            if agent.state is A.AVAILABLE:
                router._version += 1
                agent.version = router._version
                router._index_agent(agent)
        return router, problems

    # ================================================================ liveness of heap entries

    def _agent_live(self, entry: AgentEntry) -> bool:
        agent = self._agents[entry[2]]
        return agent.version == entry[1] and agent.state is A.AVAILABLE

    def _call_live(self, entry: CallEntry) -> bool:
        call = self._calls.get(entry[2])
        return (call is not None and call.version == entry[1] and call.state in _IN_LINE
                and call.site not in self._down)

    def _timer_live(self, timer: tuple[float, int, str, str, int, int]) -> bool:
        _, _, kind, ident, token, extra = timer
        if kind == "wrap":  # extra 0: the queue's wrap_up_s, void while the form is open; 1: its maximum
            agent = self._agents[ident]
            return agent.state is A.WRAP_UP and agent.wrap_token == token and (extra == 1 or not agent.wrap_held)
        call = self._calls.get(ident)
        return call is not None and call.entry == token

    # ================================================================ timers

    def _schedule(self, at: float, kind: str, ident: str, token: int, extra: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (at, self._seq, kind, ident, token, extra))

    def _run_timers(self, now: float, out: list[d.Decision]) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)
            if not self._timer_live(timer):
                continue
            at, _, kind, ident, _, extra = timer
            if kind == "wrap":
                why = "wrap-up maximum reached" if extra == 1 else "wrap-up time over"
                self._finish_wrap_up(self._agents[ident], why, at, out)
                continue
            call = self._calls[ident]
            if kind == "step":
                self._escalate(call, extra, at, out)
            elif kind == "deadline":
                self._deadline(call, call.queue.on_max_wait, at, out)
            elif kind == "sticky":
                self._end_sticky_window(call, at, out)
            elif kind == "announce":
                self._announce(call, at, out)

    def _schedule_call_timers(self, call: _Call, now: float) -> None:
        q = call.queue
        if q.escalation:
            self._schedule(now + q.escalation[0].after_s, "step", call.id, call.entry, 0)
        if q.max_wait_s is not None:
            self._schedule(now + q.max_wait_s, "deadline", call.id, call.entry)
        if q.announce_every_s > 0:
            self._schedule(now + q.announce_every_s, "announce", call.id, call.entry)

    def _escalate(self, call: _Call, index: int, now: float, out: list[d.Decision]) -> None:
        if call.next_step != index:
            return
        rt = self._queues[call.queue.name]
        steps = call.queue.escalation
        step = steps[index]
        call.next_step = index + 1
        if index + 1 < len(steps):
            self._schedule(call.entered_at + steps[index + 1].after_s, "step", call.id, call.entry, index + 1)
        widened = rt.step_stage[index] != call.level_stage or rt.step_overflow[index] != call.overflow
        call.level_stage = rt.step_stage[index]
        call.overflow = rt.step_overflow[index]
        if step.action is not None and self._deadline(call, step.action, now, out):
            return
        if widened and call.state in _IN_LINE and call.sticky_agent is None:
            self._route_call(call, now, out)

    def _deadline(self, call: _Call, action: TimeoutActionSpec, now: float, out: list[d.Decision]) -> bool:
        """Apply a timeout action; returns True if the call left this queue or became virtual."""
        if call.virtual:
            return False  # a callback already ended the caller's wait
        if call.state in _OFFERED:
            call.pending_action = action  # never yank a ringing offer; applied if it fails
            return False
        if call.state is not C.WAITING:
            return False
        self._apply_timeout(call, action, now, out)
        return True

    def _apply_timeout(self, call: _Call, action: TimeoutActionSpec, now: float, out: list[d.Decision]) -> None:
        queue = call.queue.name
        call.pending_action = None
        out.append(d.TimeoutAction(call.id, queue, action.kind, action.target))
        out.append(d.QueueLogEntry(now, call.id, queue, "", "EXITWITHTIMEOUT", self._leaving_fields(call, now)))
        if action.kind == "callback":
            self._make_virtual(call, call.caller_num, "timeout: callback", now, out)
        elif action.kind == "voicemail":
            self._end_call(call, "leave", "timeout: voicemail", now, out)
        else:
            assert action.target is not None
            self._move_to_queue(call, action.target, now, out)

    def _announce(self, call: _Call, now: float, out: list[d.Decision]) -> None:
        if call.virtual or call.state in (C.CONNECTED, C.HELD):
            return
        self._schedule(now + call.queue.announce_every_s, "announce", call.id, call.entry)
        if call.state is C.WAITING:
            position = self._position(call) or 1
            out.append(d.Announce(call.id, call.queue.name, position, self._estimated_wait(call.queue.name, position)))

    def _estimated_wait(self, queue: str, position: int) -> int:
        rt = self._queues[queue]
        times = rt.handle_times
        aht = sum(times) / len(times) if times else rt.cfg.default_handle_s
        return round(position * aht / max(1, rt.staffed))

    def _position(self, call: _Call) -> int | None:
        if call.state not in _IN_LINE:
            return None
        return bisect.bisect_left(self._queues[call.queue.name].line, call.key) + 1

    # ================================================================ routing core

    def _call_key(self, call: _Call) -> tuple[Any, ...]:
        return (call.head, self._aging * call.first_enq - call.base, call.first_enq, call.seq)

    def _agent_key(self, agent: _Agent, queue: str) -> tuple[Any, ...]:
        policy = self._queues[queue].cfg.policy
        if policy == "longest_idle":
            return (agent.min_stage[queue], agent.idle_since, agent.ordinal)
        if policy == "most_skilled":
            return (-agent.score[queue], agent.idle_since, agent.ordinal)
        if policy == "round_robin":
            return (agent.rr_last.get(queue, 0), agent.ordinal)
        if policy == "fewest_calls":
            return (agent.calls_answered, agent.idle_since, agent.ordinal)
        return (agent.occupancy, agent.idle_since, agent.ordinal)  # least_occupied

    def _index_agent(self, agent: _Agent) -> None:
        for q in agent.queues:
            first = agent.min_stage.get(q)
            if first is None:
                continue
            entry = (self._agent_key(agent, q), agent.version, agent.id)
            heaps = self._queues[q].agent_heaps
            for stage in range(first, len(heaps)):
                heaps[stage].push(entry)
        for pool in agent.pools:
            self._index_agent_in(agent, pool)

    def _index_agent_in(self, agent: _Agent, pool: _Pool) -> None:
        # A pool's stages are its queue's plus skills the agent holds: the same first stage, the same key.
        entry = (self._agent_key(agent, pool.name), agent.version, agent.id)
        heaps = pool.agent_heaps
        for stage in range(agent.min_stage[pool.name], len(heaps)):
            heaps[stage].push(entry)

    def _pool(self, queue: str, skills: tuple[str, ...]) -> _Pool:
        """Where a caller of `queue` who needs `skills` (sorted) is routed: the queue itself when its
        every stage requires them already, else the queue's pool for them, created on first use."""
        rt = self._queues[queue]
        if not skills:
            return rt
        extras = tuple(s for s in skills if s not in rt.implied)
        if not extras:
            return rt
        pool = rt.pools.get(extras)
        if pool is None:
            pool = rt.pools[extras] = _Pool(rt.cfg, extras, (rt.order[0], extras), len(rt.stages),
                                            self._agent_live, self._call_live)
            for agent in rt.members.values():
                if _holds(agent, extras):
                    self._join_pool(agent, pool)
        return pool

    def _join_pool(self, agent: _Agent, pool: _Pool) -> None:
        agent.pools.append(pool)
        agent.pools.sort(key=_pool_order)
        if agent.state is A.AVAILABLE:
            self._index_agent_in(agent, pool)

    def _index_call(self, call: _Call) -> None:
        self._version += 1
        call.version = self._version
        entry = (call.key, call.version, call.id)
        if call.sticky_agent is not None:
            self._agents[call.sticky_agent].sticky.push(entry)
            return
        call.pool.call_heaps[call.level_stage].push(entry)
        if call.skills:
            for target in call.overflow:
                self._pool(target, call.skills).overflow_heap.push(entry)
        else:
            for target in call.overflow:
                self._queues[target].overflow_heap.push(entry)

    def _route_call(self, call: _Call, now: float, out: list[d.Decision]) -> None:
        """A call became routable (or routable to more agents): offer it, or index it."""
        if call.site in self._down:
            return  # it keeps its place in line; routed when its site is back
        top = call.pool.agent_heaps[call.level_stage].peek()
        via = call.queue.name
        if top is None:
            for target in call.overflow:
                pool = self._pool(target, call.skills) if call.skills else self._queues[target]
                top = pool.agent_heaps[0].peek()
                if top is not None:
                    via = target
                    break
        if top is None:
            self._index_call(call)
        else:
            self._offer(call, self._agents[top[2]], via, now, out)

    def _route_agent(self, agent: _Agent, now: float, out: list[d.Decision]) -> None:
        """An agent became available: offer the best call they may take, or index them."""
        best = agent.sticky.peek()  # the caller's own agent goes first
        via = self._calls[best[2]].queue.name if best is not None else ""
        if best is None:
            for q in agent.queues:
                first = agent.min_stage.get(q)
                if first is None:
                    continue
                rt = self._queues[q]
                for stage in range(first, len(rt.call_heaps)):
                    top = rt.call_heaps[stage].peek()
                    if top is not None and (best is None or top < best):
                        best, via = top, q
                if first == 0:
                    top = rt.overflow_heap.peek()
                    if top is not None and (best is None or top < best):
                        best, via = top, q
            for pool in agent.pools:  # callers needing extra skills the agent holds
                first = agent.min_stage[pool.name]
                heaps = pool.call_heaps
                for stage in range(first, len(heaps)):
                    top = heaps[stage].peek()
                    if top is not None and (best is None or top < best):
                        best, via = top, pool.name
                if first == 0:
                    top = pool.overflow_heap.peek()
                    if top is not None and (best is None or top < best):
                        best, via = top, pool.name
        if best is None:
            agent.idle_since = now
            self._index_agent(agent)
        else:
            self._offer(self._calls[best[2]], agent, via, now, out)

    def _offer(self, call: _Call, agent: _Agent, via: str, now: float, out: list[d.Decision],
               kind: str = "queue") -> None:
        self._leave_line(call)
        self._move_call(call, "transfer" if kind == "transfer" else "offer", "offered", now, out, agent.id)
        call.agent_id = agent.id
        call.offered_at = now
        rt = self._queues[via]
        rt.rr_counter += 1
        agent.rr_last[via] = rt.rr_counter
        call.leg_id = self._reserve(agent, call, now, out)
        out.append(d.Offer(call.id, agent.id, agent.endpoint, call.queue.name, via, call.queue.ring_timeout_s,
                           call.caller_num, call.callback_number, call.leg_id, kind))  # type: ignore[arg-type]

    def _reserve(self, agent: _Agent, call: _Call, now: float, out: list[d.Decision]) -> str:
        """The agent's phone is about to ring for `call`: returns the leg's ChannelId."""
        self._offers += 1
        agent.call_id = call.id
        agent.call_queue = call.queue.name
        agent.leg_id = f"cti-offer-{self._offers}-{agent.id}"
        self._move_agent(agent, "offer", f"offer {call.id}", now, out)
        return agent.leg_id

    def _enter_line(self, call: _Call) -> None:
        call.key = self._call_key(call)
        bisect.insort(self._queues[call.queue.name].line, call.key)

    def _leave_line(self, call: _Call) -> None:
        line = self._queues[call.queue.name].line
        i = bisect.bisect_left(line, call.key)
        if i < len(line) and line[i] == call.key:
            del line[i]

    # ================================================================ state helpers

    def _move_agent(self, agent: _Agent, trigger: str, reason: str, now: float, out: list[d.Decision]) -> None:
        old = agent.state
        new = agent_next(old, trigger)
        if old in _BUSY:
            agent.busy_s += now - agent.since
        out.append(d.AgentStateChanged(agent.id, _NAME[old], _NAME[new], reason, now, now - agent.since,
                                       agent.queues, agent.call_id, agent.call_queue, agent.leg_id))
        agent.state = new
        agent.since = now
        self._version += 1
        agent.version = self._version
        if (old in _STAFFED) != (new in _STAFFED):
            delta = 1 if new in _STAFFED else -1
            for q in agent.queues:
                if q in agent.min_stage:
                    self._queues[q].staffed += delta

    def _become_available(self, agent: _Agent, trigger: str, reason: str, now: float,
                          out: list[d.Decision]) -> None:
        self._move_agent(agent, trigger, reason, now, out)
        agent.call_id = agent.call_queue = None
        agent.pause_reason = None
        logged = agent.login_at
        agent.occupancy = agent.busy_s / (now - logged) if now > logged else 0.0
        if agent.pending_pause is not None:  # asked while ringing, and the offer was cancelled
            agent.pause_reason, agent.pending_pause = agent.pending_pause, None
            self._move_agent(agent, "pause", agent.pause_reason, now, out)
            self._log_agent(agent, "PAUSE", (agent.pause_reason,), now, out)
            return
        self._route_agent(agent, now, out)

    def _move_call(self, call: _Call, trigger: str, reason: str, now: float, out: list[d.Decision],
                   agent_id: str | None = None) -> None:
        old = call.state
        call.state = call_next(old, trigger)
        out.append(d.CallStateChanged(call.id, call.queue.name, _NAME[old], _NAME[call.state], reason, now,
                                      now - call.entered_at, agent_id))

    def _end_call(self, call: _Call, trigger: str, reason: str, now: float, out: list[d.Decision]) -> None:
        if call.state in _IN_LINE:
            self._leave_line(call)
        self._move_call(call, trigger, reason, now, out, call.agent_id)
        call.entry = -1  # kills its timers
        del self._calls[call.id]
        self._recent_ended[call.id] = None
        if len(self._recent_ended) > _RECENT_ENDED:
            self._recent_ended.popitem(last=False)

    def _make_virtual(self, call: _Call, number: str, reason: str, now: float, out: list[d.Decision]) -> None:
        # Same key, same heap entries: the virtual caller keeps its place in line.
        call.state = call_next(call.state, "callback_requested")
        out.append(d.CallStateChanged(call.id, call.queue.name, "waiting", "callback", reason, now,
                                      now - call.entered_at))
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "EXITWITHKEY",
                                   ("*", *self._leaving_fields(call, now))))
        call.virtual = True
        call.callback_number = number

    def _requeue_at_head(self, call: _Call, reason: str, now: float, out: list[d.Decision]) -> None:
        call.agent_id = None
        call.head = 0
        if call.entry == -1:
            # It had been answered (a blind transfer nobody took): a new wait begins, and with it the queue's
            # announcements, escalation and deadline, counted from now.
            self._seq += 1
            call.entry = self._seq
            call.entered_at = now
            call.next_step = call.level_stage = 0
            call.overflow = ()
            call.pending_action = None
            self._schedule_call_timers(call, now)
        trigger = "requeue_head_callback" if call.virtual else "requeue_head"
        self._move_call(call, trigger, reason, now, out)
        self._enter_line(call)
        if call.pending_action is not None and not call.virtual:
            self._apply_timeout(call, call.pending_action, now, out)
            if call.virtual and self._calls.get(call.id) is call:
                self._route_call(call, now, out)  # now a callback: still needs an agent
        elif call.sticky_agent is None:
            self._route_call(call, now, out)
        else:
            self._index_call(call)

    def _release_agent_offer(self, agent: _Agent, reason: str, now: float, out: list[d.Decision]) -> None:
        """Caller left while the agent was ringing: cancel the agent's leg, agent back to work."""
        call_id = agent.call_id
        assert call_id is not None
        out.append(d.CancelOffer(call_id, agent.id, reason))
        self._become_available(agent, "offer_cancelled", reason, now, out)

    def _move_to_queue(self, call: _Call, target: str, now: float, out: list[d.Decision]) -> None:
        old_queue = call.queue.name
        self._end_call(call, "leave", f"moved to {target}", now, out)
        # The queue's own timeout rule moves the caller: what they need goes with them.
        moved = _Call(call.id, self._pool(target, call.skills), call.base, now, call.seq, call.caller_num,
                      call.skills)
        moved.first_enq = call.first_enq
        moved.site = call.site
        self._seq += 1
        moved.entry = self._seq
        self._recent_ended.pop(call.id, None)
        self._start_waiting(moved, f"moved from {old_queue}", now, out)
        self._route_call(moved, now, out)

    def _start_waiting(self, call: _Call, reason: str, now: float, out: list[d.Decision]) -> None:
        self._calls[call.id] = call
        self._move_call(call, "enqueue", reason, now, out)
        self._enter_line(call)
        call.orig_position = self._position(call) or 1
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "ENTERQUEUE",
                                   ("", call.caller_num, str(call.orig_position))))
        self._schedule_call_timers(call, now)

    def _leaving_fields(self, call: _Call, now: float) -> tuple[str, str, str]:
        """position|origposition|waittime, as app_queue writes them for ABANDON and the EXIT verbs."""
        return (str(self._position(call) or 1), str(call.orig_position or 1), str(round(now - call.entered_at)))

    def _log_agent(self, agent: _Agent, verb: str, data: tuple[str, ...], now: float,
                   out: list[d.Decision]) -> None:
        """Agent lines go once per queue the agent serves: a queue_log line names one queue."""
        for queue in agent.queues:
            out.append(d.QueueLogEntry(now, "NONE", queue, agent.id, verb, data))

    def _end_sticky_window(self, call: _Call, now: float, out: list[d.Decision]) -> None:
        if call.sticky_agent is None:
            return
        call.sticky_agent = None
        if call.state in _IN_LINE:
            self._route_call(call, now, out)

    # ================================================================ caller-side events

    def _on_enqueued(self, e: ev.CallEnqueued, now: float, out: list[d.Decision]) -> None:
        if e.call_id in self._calls:
            out.append(d.Refusal(e, f"call {e.call_id} is already in queue {self._calls[e.call_id].queue.name}"))
            return
        rt = self._queues.get(e.queue)
        if rt is None:
            out.append(d.Refusal(e, f"unknown queue {e.queue!r}"))
            return
        skills = self._known_skills(e, out) if e.skills else ()
        self._seq += 1
        call = _Call(e.call_id, self._pool(e.queue, skills), rt.cfg.priority.base(e.priority, e.vip, e.grade),
                     now, self._seq, e.caller_num, skills)
        call.entry = self._seq
        call.site = e.site
        self._recent_ended.pop(e.call_id, None)
        self._start_waiting(call, "entered queue", now, out)
        if e.callback_number is not None:  # no channel: in line as a callback at once, not offered as a caller
            call.state = call_next(call.state, "callback_requested")
            out.append(d.CallStateChanged(call.id, call.queue.name, "waiting", "callback", "callback due", now, 0.0))
            call.virtual = True
            call.callback_number = e.callback_number
        sticky = self._agents.get(e.sticky_agent_id) if e.sticky_agent_id is not None else None
        if (sticky is not None and sticky.state is not A.LOGGED_OUT and e.queue in sticky.min_stage
                and _holds(sticky, skills)):
            if sticky.state is A.AVAILABLE and call.site not in self._down:
                self._offer(call, sticky, e.queue, now, out)
                return
            if rt.cfg.sticky_window_s > 0:
                call.sticky_agent = sticky.id
                self._schedule(now + rt.cfg.sticky_window_s, "sticky", call.id, call.entry)
                self._index_call(call)
                return
        self._route_call(call, now, out)

    def _known_skills(self, e: ev.CallEnqueued, out: list[d.Decision]) -> tuple[str, ...]:
        """The caller's extra skills, sorted, without the ones the configuration does not know: the flow
        validator checked them against the configuration of its day, which may have changed since. The
        caller is queued all the same (an `Ignored` for the log), never refused for it."""
        wanted = set(e.skills)
        unknown = sorted(wanted - self._skills)
        if unknown:
            out.append(d.Ignored(e, f"unknown skill(s) {unknown} for call {e.call_id}: not required"))
        return tuple(sorted(wanted & self._skills))

    def _on_left_queue(self, e: ev.CallLeftQueue, now: float, out: list[d.Decision]) -> None:
        call = self._calls.get(e.call_id)
        if call is None or call.state in (C.CONNECTED, C.HELD):
            out.append(d.Refusal(e, f"call {e.call_id} is not in a queue"))
            return
        ringing = self._agents[call.agent_id] if call.state in _OFFERED and call.agent_id else None
        if e.reason.startswith(LOST):
            # Ended by the system (a PBX restart, an end nobody saw): app_queue would write ABANDON; the 4th
            # field says it was nobody's choice, as COMPLETECALLER's "unknown" does for a side nobody saw.
            out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "ABANDON",
                                       (*self._leaving_fields(call, now), "lost")))
        else:
            out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "EXITWITHKEY",
                                       ("", *self._leaving_fields(call, now))))
        self._end_call(call, "leave", e.reason, now, out)
        if ringing is not None:  # after the call ended, so the freed agent cannot be handed it again
            self._release_agent_offer(ringing, f"caller left: {e.reason}", now, out)

    def _on_call_moved(self, e: ev.CallMoved, now: float, out: list[d.Decision]) -> None:
        call = self._calls.get(e.call_id)
        if call is None or call.state is not C.WAITING:
            out.append(d.Refusal(e, f"call {e.call_id} is not waiting in a queue"))
            return
        target = e.queue or call.queue.name
        if target not in self._queues:
            out.append(d.Refusal(e, f"unknown queue {target!r}"))
            return
        if target != call.queue.name:
            out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "EXITWITHKEY",
                                       ("", *self._leaving_fields(call, now))))
            self._end_call(call, "leave", f"moved to {target}", now, out)
            # Nobody has spoken with the caller yet: the skills they need go with them.
            self._enter_queue_again(call, target, f"moved from {call.queue.name}", now, out, call.skills)
            call = self._calls[e.call_id]
            if not e.to_head or call.state is not C.WAITING:
                return
        # The head of the line: the same mark a caller gets back after a ring-no-answer.
        self._leave_line(call)
        call.head = 0
        self._enter_line(call)
        self._index_call(call)
        self._route_call(call, now, out)

    def _on_callback_requested(self, e: ev.CallbackRequested, now: float, out: list[d.Decision]) -> None:
        call = self._calls.get(e.call_id)
        if call is None or call.state is not C.WAITING:
            state = call.state.value if call is not None else "unknown"
            out.append(d.Refusal(e, f"callback needs a waiting caller; call {e.call_id} is {state}"))
            return
        self._make_virtual(call, e.number or call.caller_num, "callback requested", now, out)

    def _on_caller_hung_up(self, e: ev.CallerHungUp, now: float, out: list[d.Decision]) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            if e.call_id not in self._recent_ended:
                out.append(d.Refusal(e, f"unknown call {e.call_id}"))
            return
        if call.virtual and call.state not in _TALKING:
            return  # the original channel of a callback request: its place is kept
        if call.state in _TALKING:
            self._finish_call(call, "caller", now, out)
            return
        ringing = self._agents[call.agent_id] if call.state in _OFFERED and call.agent_id else None
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, "", "ABANDON", self._leaving_fields(call, now)))
        self._end_call(call, "leave", "abandoned", now, out)
        if ringing is not None:
            self._release_agent_offer(ringing, "caller hung up", now, out)

    def _offered_to(self, call_id: str, agent_id: str) -> _Call | None:
        call = self._calls.get(call_id)
        if call is None or call.state not in _OFFERED or call.agent_id != agent_id:
            return None
        return call

    def _consulted(self, call_id: str, agent_id: str) -> _Call | None:
        call = self._calls.get(call_id)
        return call if call is not None and call.consult == agent_id else None

    def _on_offer_ringing(self, e: ev.OfferRinging, now: float, out: list[d.Decision]) -> None:
        if self._consulted(e.call_id, e.agent_id) is not None:
            return  # the consulted agent's phone rings; the caller's call does not change
        call = self._offered_to(e.call_id, e.agent_id)
        if call is None or call.state is C.RINGING:
            if call is None:
                out.append(d.Refusal(e, f"call {e.call_id} is not offered to agent {e.agent_id}"))
            return
        self._move_call(call, "ringing", "agent ringing", now, out, e.agent_id)

    def _on_offer_answered(self, e: ev.OfferAnswered, now: float, out: list[d.Decision]) -> None:
        consulted = self._consulted(e.call_id, e.agent_id)
        if consulted is not None:
            agent = self._agents[e.agent_id]
            if agent.state is A.RESERVED:
                agent.answered_at = now
                self._move_agent(agent, "answer", f"consulted on {consulted.id}", now, out)
            return
        call = self._offered_to(e.call_id, e.agent_id)
        if call is None:
            out.append(d.Refusal(e, f"nothing offered to agent {e.agent_id} for call {e.call_id}"))
            return
        agent = self._agents[e.agent_id]
        transferred = call.answered_at > 0  # a blind transfer from a colleague: already answered once
        self._move_call(call, "answer", "answered", now, out, agent.id)
        if not transferred:
            call.answered_at = now
        call.entry = -1  # connected: escalation, deadline and announcements stop
        agent.answered_at = now
        agent.calls_answered += 1
        self._move_agent(agent, "answer", f"answered {call.id}", now, out)
        if not transferred:
            # holdtime counts from entering the queue to the answer, ringing included (app_queue's CONNECT).
            out.append(d.QueueLogEntry(now, call.id, call.queue.name, agent.id, "CONNECT", (
                str(round(now - call.entered_at)), call.leg_id, str(round(now - call.offered_at)))))

    def _on_offer_failed(self, e: ev.OfferFailed, now: float, out: list[d.Decision]) -> None:
        consulted = self._consulted(e.call_id, e.agent_id)
        if consulted is not None:
            consulted.consult = None
            self._offer_failed_agent(self._agents[e.agent_id], consulted, e.reason, now, out, requeue=False)
            return
        call = self._offered_to(e.call_id, e.agent_id)
        if call is None:
            out.append(d.Refusal(e, f"call {e.call_id} is not offered to agent {e.agent_id}"))
            return
        if call.sticky_agent == e.agent_id:
            call.sticky_agent = None
        self._offer_failed_agent(self._agents[e.agent_id], call, e.reason, now, out, requeue=True)

    def _offer_failed_agent(self, agent: _Agent, call: _Call, reason: ev.OfferFailure, now: float,
                            out: list[d.Decision], *, requeue: bool) -> None:
        if reason == "cancelled":
            # Withdrawn by the CTI or lost with the PBX: the agent is not to blame and goes back to work,
            # after the caller is back in line so the freed agent can be handed the call again.
            if requeue:
                self._requeue_at_head(call, "offer cancelled", now, out)
            self._become_available(agent, "cancelled", "offer withdrawn", now, out)
            return
        agent.pending_pause = None
        agent.pause_reason = reason
        self._move_agent(agent, "ring_no_answer", reason, now, out)
        agent.call_id = agent.call_queue = None
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, agent.id, "RINGNOANSWER",
                                   (str(round(1000 * (now - call.offered_at))),)))
        if requeue:
            self._requeue_at_head(call, f"offer failed: {reason}", now, out)

    def _on_hold(self, e: ev.HoldStarted | ev.HoldEnded, now: float, out: list[d.Decision]) -> None:
        holding = isinstance(e, ev.HoldStarted)
        call = self._calls.get(e.call_id)
        wanted = C.CONNECTED if holding else C.HELD
        if call is None or call.state is not wanted or call.agent_id is None:
            out.append(d.Refusal(e, f"call {e.call_id} is not {wanted.value}"))
            return
        trigger = "hold" if holding else "unhold"
        self._move_call(call, trigger, trigger, now, out, call.agent_id)
        agent = self._agents[call.agent_id]
        if agent.state in (A.ON_CALL, A.ON_HOLD):
            self._move_agent(agent, trigger, trigger, now, out)

    def _on_agent_call_ended(self, e: ev.AgentCallEnded, now: float, out: list[d.Decision]) -> None:
        agent = self._agents.get(e.agent_id)
        call = self._calls.get(e.call_id)
        if agent is not None and call is not None and call.consult == agent.id:
            self._end_consult(call, agent, "consulted agent hung up", now, out)
            return
        if agent is None or call is None or call.agent_id != agent.id or call.state not in _TALKING:
            if call is None and e.call_id in self._recent_ended:
                return  # the caller's hang-up got there first
            out.append(d.Refusal(e, f"agent {e.agent_id} is not connected to call {e.call_id}"))
            return
        if call.consult is not None:
            target = self._agents[call.consult]
            if target.state is A.ON_CALL:
                # The transferer hung up while talking to the consulted agent: the transfer completes,
                # as Asterisk completes an attended transfer when the transferer hangs up.
                self._complete_consult(call, agent, target, now, out)
                return
            self._end_consult(call, target, "transferer hung up", now, out)
        self._finish_call(call, e.hung_up_by, now, out, e.not_before)

    def _finish_call(self, call: _Call, hung_up_by: str, now: float, out: list[d.Decision],
                     ended: float | None = None) -> None:
        agent = self._agents[call.agent_id or ""]
        if call.consult is not None:
            self._end_consult(call, self._agents[call.consult], "caller hung up", now, out)
        # app_queue has only COMPLETECALLER and COMPLETEAGENT; an end nobody saw (link down, restart) is
        # written as COMPLETECALLER with a fourth field "unknown", never as the agent's doing.
        verb = "COMPLETEAGENT" if hung_up_by == "agent" else "COMPLETECALLER"
        extra = ("unknown",) if hung_up_by not in ("agent", "caller") else ()
        end = now if ended is None else max(call.answered_at, min(now, ended))
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, agent.id, verb,
                                   self._talk_fields(call, end) + extra))
        self._end_call(call, "end", f"{hung_up_by} hung up", now, out)
        self._start_wrap_up(agent, call, f"{hung_up_by} hung up", now, out)

    def _talk_fields(self, call: _Call, now: float) -> tuple[str, str, str]:
        """holdtime|calltime|origposition of COMPLETE* and TRANSFER lines."""
        return (str(round(call.answered_at - call.entered_at)), str(round(now - call.answered_at)),
                str(call.orig_position or 1))

    def _start_wrap_up(self, agent: _Agent, call: _Call, reason: str, now: float, out: list[d.Decision]) -> None:
        self._move_agent(agent, "call_end", reason, now, out)
        agent.call_queue = call.queue.name
        agent.wrap_token += 1
        agent.wrap_held = False
        self._schedule(now + call.queue.wrap_up_s, "wrap", agent.id, agent.wrap_token)

    # ================================================================ transfers

    def _talking_with(self, e: ev.TransferToQueue | ev.TransferToAgent | ev.TransferOut | ev.ConsultStarted
                      | ev.ConsultEnded, out: list[d.Decision]) -> tuple[_Call, _Agent] | None:
        call = self._calls.get(e.call_id)
        agent = self._agents.get(e.agent_id)
        if call is None or agent is None or call.agent_id != agent.id or call.state not in _TALKING:
            out.append(d.Refusal(e, f"agent {e.agent_id} is not connected to call {e.call_id}"))
            return None
        return call, agent

    def _free_target(self, e: ev.TransferToAgent | ev.ConsultStarted, call: _Call,
                     out: list[d.Decision]) -> _Agent | None:
        target = self._agents.get(e.target_agent_id)
        if target is None:
            out.append(d.Refusal(e, f"unknown agent {e.target_agent_id!r}"))
        elif target.id == e.agent_id:
            out.append(d.Refusal(e, "an agent cannot transfer a call to themselves"))
        elif target.state is not A.AVAILABLE:
            out.append(d.Refusal(e, f"agent {target.id} is not available ({target.state.value})"))
        elif call.consult is not None:
            out.append(d.Refusal(e, f"call {call.id} is already in a consultation with {call.consult}"))
        else:
            return target
        return None

    def _hand_off(self, call: _Call, agent: _Agent, destination: str, context: str, now: float,
                  out: list[d.Decision]) -> None:
        """The first agent's part of a transferred call ends: TRANSFER line, then wrap-up."""
        out.append(d.QueueLogEntry(now, call.id, call.queue.name, agent.id, "TRANSFER",
                                   (destination, context, *self._talk_fields(call, now))))
        self._start_wrap_up(agent, call, f"transferred to {destination}", now, out)

    def _on_transfer_to_queue(self, e: ev.TransferToQueue, now: float, out: list[d.Decision]) -> None:
        talking = self._talking_with(e, out)
        if talking is None:
            return
        call, agent = talking
        if e.queue not in self._queues:
            out.append(d.Refusal(e, f"unknown queue {e.queue!r}"))
            return
        if call.consult is not None:
            out.append(d.Refusal(e, f"call {call.id} is in a consultation: finish it first"))
            return
        self._hand_off(call, agent, e.queue, "queue", now, out)
        self._end_call(call, "end", f"transferred to queue {e.queue}", now, out)
        # The agent has spoken with the caller and chose the queue: the flow's extra skills no longer
        # bind. Sent back to their own queue, the caller still needs what they needed.
        skills = call.skills if e.queue == call.queue.name else ()
        self._enter_queue_again(call, e.queue, f"transferred from {call.queue.name}", now, out, skills)

    def _enter_queue_again(self, call: _Call, queue: str, reason: str, now: float, out: list[d.Decision],
                           skills: tuple[str, ...]) -> None:
        """The same caller in a (new) queue: a new line entry that keeps the first entry's age."""
        moved = _Call(call.id, self._pool(queue, skills), call.base, now, call.seq, call.caller_num, skills)
        moved.first_enq = call.first_enq
        moved.site = call.site
        self._seq += 1
        moved.entry = self._seq
        self._recent_ended.pop(call.id, None)
        self._start_waiting(moved, reason, now, out)
        self._route_call(moved, now, out)

    def _on_transfer_to_agent(self, e: ev.TransferToAgent, now: float, out: list[d.Decision]) -> None:
        talking = self._talking_with(e, out)
        if talking is None:
            return
        call, agent = talking
        target = self._free_target(e, call, out)
        if target is None:
            return
        self._hand_off(call, agent, target.id, "agent", now, out)
        self._offer(call, target, call.queue.name, now, out, kind="transfer")

    def _on_transfer_out(self, e: ev.TransferOut, now: float, out: list[d.Decision]) -> None:
        talking = self._talking_with(e, out)
        if talking is None:
            return
        call, agent = talking
        if call.consult is not None:
            self._end_consult(call, self._agents[call.consult], "transferred out", now, out)
        self._hand_off(call, agent, e.destination, "external", now, out)
        self._end_call(call, "end", f"transferred to {e.destination}", now, out)

    def _on_consult_started(self, e: ev.ConsultStarted, now: float, out: list[d.Decision]) -> None:
        talking = self._talking_with(e, out)
        if talking is None:
            return
        call, _agent = talking
        target = self._free_target(e, call, out)
        if target is None:
            return
        call.consult = target.id
        leg = self._reserve(target, call, now, out)
        out.append(d.Offer(call.id, target.id, target.endpoint, call.queue.name, call.queue.name,
                           call.queue.ring_timeout_s, call.caller_num, None, leg, "consult"))

    def _on_consult_ended(self, e: ev.ConsultEnded, now: float, out: list[d.Decision]) -> None:
        talking = self._talking_with(e, out)
        if talking is None:
            return
        call, agent = talking
        if call.consult is None:
            out.append(d.Refusal(e, f"call {call.id} has no consultation"))
            return
        target = self._agents[call.consult]
        if not e.completed:
            self._end_consult(call, target, "consultation cancelled", now, out)
        elif target.state is not A.ON_CALL:
            out.append(d.Refusal(e, f"agent {target.id} has not answered yet"))
        else:
            self._complete_consult(call, agent, target, now, out)

    def _complete_consult(self, call: _Call, agent: _Agent, target: _Agent, now: float,
                          out: list[d.Decision]) -> None:
        self._hand_off(call, agent, target.id, "agent", now, out)
        call.consult = None
        call.agent_id = target.id
        call.leg_id = target.leg_id
        target.calls_answered += 1
        if call.state is C.HELD:
            self._move_call(call, "consult_done", f"handed to {target.id}", now, out, target.id)
        out.append(d.Handover(call.id, agent.id, target.id, target.leg_id))

    def _end_consult(self, call: _Call, target: _Agent, reason: str, now: float, out: list[d.Decision]) -> None:
        """The consulted agent goes back to work; the caller stays with the first agent."""
        call.consult = None
        if target.state is A.RESERVED:
            out.append(d.CancelOffer(call.id, target.id, reason))
            self._become_available(target, "offer_cancelled", reason, now, out)
        elif target.state in (A.ON_CALL, A.ON_HOLD):
            self._become_available(target, "consult_released", reason, now, out)

    # ================================================================ sites

    def _on_site_unavailable(self, e: ev.SiteUnavailable, now: float, out: list[d.Decision]) -> None:
        # Its waiting callers drop out of the routing heaps (the heaps skip them); their places in line,
        # announcements and deadlines go on. Offers already made fail as "cancelled": no agent's fault.
        self._down.add(e.site)

    def _on_site_available(self, e: ev.SiteAvailable, now: float, out: list[d.Decision]) -> None:
        if e.site not in self._down:
            return
        self._down.discard(e.site)
        waiting = sorted((c for c in self._calls.values() if c.site == e.site and c.state in _IN_LINE),
                         key=lambda c: c.key)
        for call in waiting:  # best first: each takes the best agent free for it
            sticky = self._agents.get(call.sticky_agent) if call.sticky_agent is not None else None
            if sticky is not None:
                if sticky.state is A.AVAILABLE:
                    self._offer(call, sticky, call.queue.name, now, out)
                else:
                    self._index_call(call)
            else:
                self._route_call(call, now, out)

    # ================================================================ agent commands

    def _agent_or_refuse(self, e: ev.AgentCommand, out: list[d.Decision]) -> _Agent | None:
        agent = self._agents.get(e.agent_id)
        if agent is None:
            out.append(d.Refusal(e, f"unknown agent {e.agent_id!r}"))
        return agent

    def _on_logged_in(self, e: ev.AgentLoggedIn, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state is not A.LOGGED_OUT:
            out.append(d.Refusal(e, f"agent {agent.id} is already logged in ({agent.state.value})"))
            return
        endpoint = e.endpoint or agent.cfg.endpoint
        if not endpoint:
            out.append(d.Refusal(e, f"agent {agent.id}: no endpoint given and none configured"))
            return
        queues = agent.cfg.queues if e.queues is None else tuple(dict.fromkeys(e.queues))
        unknown = [q for q in queues if q not in self._queues]
        if unknown:
            out.append(d.Refusal(e, f"unknown queue(s) {unknown}"))
            return
        min_stage: dict[str, int] = {}
        for q in queues:
            stage = next((i for i, required in enumerate(self._queues[q].stages)
                          if meets(agent.cfg.skills, required)), None)
            if stage is not None:
                min_stage[q] = stage
        if e.queues is not None and len(min_stage) < len(queues):
            unfit = [q for q in queues if q not in min_stage]
            out.append(d.Refusal(e, f"agent {agent.id} lacks the skills for queue(s) {unfit}"))
            return
        agent.endpoint = endpoint
        agent.queues = queues
        agent.min_stage = min_stage
        agent.pools = []
        for q in min_stage:
            rt = self._queues[q]
            rt.members[agent.id] = agent
            agent.pools.extend(pool for pool in rt.pools.values() if _holds(agent, pool.extras))
        agent.pools.sort(key=_pool_order)
        agent.score = {q: sum(agent.cfg.skills.get(s, 0) for s in self._queues[q].cfg.skills) for q in min_stage}
        agent.login_at = now
        agent.busy_s = 0.0
        agent.pending_pause = agent.pause_reason = None
        self._log_agent(agent, "AGENTLOGIN", (endpoint,), now, out)
        self._become_available(agent, "login", "logged in", now, out)

    def _on_logged_out(self, e: ev.AgentLoggedOut, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state in (A.LOGGED_OUT, A.ON_CALL, A.ON_HOLD):
            why = "not logged in" if agent.state is A.LOGGED_OUT else "on a call: finish it first"
            out.append(d.Refusal(e, f"agent {agent.id} cannot log out: {why}"))
            return
        call = self._calls.get(agent.call_id or "") if agent.state is A.RESERVED else None
        if call is not None:
            out.append(d.CancelOffer(call.id, agent.id, "agent logged out"))
            if call.consult == agent.id:
                call.consult = None  # a colleague's consultation: the caller stays with them
                call = None
        self._move_agent(agent, "logout", "logged out", now, out)
        agent.call_id = agent.call_queue = agent.pending_pause = agent.pause_reason = None
        for q in agent.min_stage:
            self._queues[q].members.pop(agent.id, None)
        agent.pools = []
        self._log_agent(agent, "AGENTLOGOFF", (agent.endpoint, str(round(now - agent.login_at))), now, out)
        if call is not None:
            if call.sticky_agent == agent.id:
                call.sticky_agent = None
            self._requeue_at_head(call, "agent logged out", now, out)
        stuck = sorted(agent.sticky.live())
        agent.sticky = LazyHeap(self._call_live)
        for _, _, call_id in stuck:
            self._end_sticky_window(self._calls[call_id], now, out)

    def _on_ready(self, e: ev.AgentReady, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state is A.WRAP_UP:
            agent.pending_pause = None
            self._finish_wrap_up(agent, "ready", now, out)
        elif agent.state in (A.PAUSED, A.NOT_RESPONDING):
            self._log_agent(agent, "UNPAUSE", (), now, out)
            self._become_available(agent, "ready", "ready", now, out)
        else:
            out.append(d.Refusal(e, f"agent {agent.id} cannot become ready while {agent.state.value}"))

    def _on_paused(self, e: ev.AgentPaused, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if e.reason not in self._pause_reasons:
            out.append(d.Refusal(e, f"unknown pause reason {e.reason!r}; expected one of {sorted(self._pause_reasons)}"))
            return
        state = agent.state
        if state is A.LOGGED_OUT or (state is A.PAUSED and agent.pause_reason == e.reason):
            why = "not logged in" if state is A.LOGGED_OUT else f"already paused for {e.reason}"
            out.append(d.Refusal(e, f"agent {agent.id} cannot pause: {why}"))
            return
        if state in _BUSY:
            agent.pending_pause = e.reason
            out.append(d.PauseDeferred(agent.id, e.reason, state.value, now))
            return
        if state is A.PAUSED:  # new reason code: a self-loop, still worth a state-change event
            out.append(d.AgentStateChanged(agent.id, "paused", "paused", e.reason, now, now - agent.since,
                                           agent.queues))
            agent.pause_reason = e.reason
            agent.since = now
            return
        agent.pause_reason = e.reason
        self._move_agent(agent, "pause", e.reason, now, out)
        self._log_agent(agent, "PAUSE", (e.reason,), now, out)

    def _on_wrap_up_done(self, e: ev.WrapUpDone, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state is not A.WRAP_UP:
            out.append(d.Refusal(e, f"agent {agent.id} is not in wrap-up ({agent.state.value})"))
            return
        self._finish_wrap_up(agent, "wrap-up done", now, out)

    def _on_wrap_up_held(self, e: ev.WrapUpHeld, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state is not A.WRAP_UP or agent.call_id != e.call_id:
            out.append(d.Refusal(e, f"agent {agent.id} is not wrapping up call {e.call_id} ({agent.state.value})"))
            return
        if agent.wrap_held:
            return
        agent.wrap_held = True
        runtime = self._queues.get(agent.call_queue or "")
        limit = runtime.cfg.wrap_up_limit_s if runtime is not None else 0.0
        if agent.wrap_s is not None:  # a wrap-up of its own length: holding the form never shortens it
            limit = max(limit, agent.wrap_s)
        until = agent.since + limit
        self._schedule(max(until, now), "wrap", agent.id, agent.wrap_token, 1)
        out.append(d.WrapUpExtended(agent.id, e.call_id, until, now))

    # ================================================================ outbound calls

    def _on_outbound_started(self, e: ev.OutboundStarted, now: float, out: list[d.Decision]) -> None:
        """The agent is busy with a call of their own: no offer reaches them until it ends. Its wrap-up
        follows the rules of `queue` (time, maximum while the form is open), but its time counts in no
        queue's handle times: inbound estimates stay inbound."""
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state not in (A.AVAILABLE, A.PAUSED, A.NOT_RESPONDING):
            out.append(d.Refusal(e, f"agent {agent.id} cannot dial out while {agent.state.value}"))
            return
        if agent.state is A.PAUSED and agent.pending_pause is None:
            agent.pending_pause = agent.pause_reason
        agent.pause_reason = None
        agent.call_id, agent.leg_id, agent.outbound = e.call_id, e.call_id, True
        agent.call_queue = e.queue if e.queue in self._queues else None
        agent.answered_at = now
        self._move_agent(agent, "dial_out", "dialling out", now, out)

    def _on_outbound_ended(self, e: ev.OutboundEnded, now: float, out: list[d.Decision]) -> None:
        agent = self._agent_or_refuse(e, out)
        if agent is None:
            return
        if agent.state not in (A.ON_CALL, A.ON_HOLD) or agent.call_id != e.call_id:
            out.append(d.Refusal(e, f"agent {agent.id} is not on outbound call {e.call_id}"))
            return
        self._move_agent(agent, "call_end", f"outbound {e.outcome}", now, out)
        agent.wrap_token += 1
        agent.wrap_held = False
        agent.wrap_s = e.wrap_up_s if e.wrap_up_s is not None and e.wrap_up_s >= 0 else None
        runtime = self._queues.get(agent.call_queue or "")
        length = agent.wrap_s if agent.wrap_s is not None else runtime.cfg.wrap_up_s if runtime is not None else 0.0
        self._schedule(now + length, "wrap", agent.id, agent.wrap_token)

    def _finish_wrap_up(self, agent: _Agent, reason: str, now: float, out: list[d.Decision]) -> None:
        agent.wrap_held = False
        agent.wrap_s = None
        if agent.call_queue is not None and not agent.outbound:
            self._queues[agent.call_queue].handle_times.append(now - agent.answered_at)
        agent.outbound = False
        if agent.pending_pause is not None:
            agent.pause_reason, agent.pending_pause = agent.pending_pause, None
            self._move_agent(agent, "wrap_up_done_pause_pending", agent.pause_reason, now, out)
            agent.call_id = agent.call_queue = None
            self._log_agent(agent, "PAUSE", (agent.pause_reason,), now, out)
            return
        trigger = "ready" if reason == "ready" else "wrap_up_done"
        self._become_available(agent, trigger, reason, now, out)


def _holds(agent: _Agent, skills: tuple[str, ...]) -> bool:
    """The agent has each of the caller's extra skills (any level: they are required at level 1)."""
    levels = agent.cfg.skills
    return all(levels.get(s, 0) >= 1 for s in skills)
