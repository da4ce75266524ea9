"""Outbound dialing modes: how many lines to dial, which agent takes an answered call, when to abandon.

Pure and event-fed like the router: `Pacer.handle(event, now)` takes what happened (agents freeing up,
lines dialled, answered, failed, connected, ended) with the time passed in, and returns decisions (dial
N more lines, connect this call to that agent, abandon that call with the recorded message, what to do
with an answering machine). No clock is read, nothing is awaited; `next_due()` says when to call
`handle(Tick(), now)` for the 2-second deadlines. Which contact a line dials is the campaign's business:
the pacer only counts lines.

Modes (docs/outbound.md):

* preview: the pacer never dials. It hands the next card to a free agent (`PreviewContact`); the agent
  dials it (`LineDialled` with the agent's id) and the answered call is theirs: nothing to abandon.
* progressive: one line per free agent, never more lines out than free agents.
* predictive: dials ahead of the agents: lines are added while the expected excess of live answers
  (lines out x measured answer rate) over the agents free by then (free now, plus each busy agent's
  chance of finishing, from their elapsed time) stays under an aim, which each abandon lowers and each
  connect raises so the abandons settle at a target under the cap; at 90 % of the cap it dials
  progressive until back at the target. Under all of it, the guarantee below.

The cap is a property of this bookkeeping, not a hope. An answered call is abandoned when no agent takes
it within `connect_within_s` (2 s: FTC TSR and Ofcom). The rate is abandoned / live answered over the
campaign's window (the last 24 hours: Ofcom's period, and every FTC 30-day period is made of such days).
Before any line is dialled the pacer checks the worst case: every line without a free agent answered by
a person and abandoned, every other one answered by a machine (which costs the campaign's estimate of
AMD false positives, as Ofcom asks). A line is dialled only if that worst case keeps the window at or
under the cap; when the margin runs out predictive dials no more than progressive, which has no such
risk. What the pacer cannot prevent is an agent it counted on leaving (pause, logout) while lines are out:
those abandons are counted like the others and the pacer stays progressive until it is back under.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

DialMode = Literal["preview", "progressive", "predictive"]
MachineAction = Literal["message", "hang_up"]
LineFailure = Literal["no-answer", "busy", "failed", "congestion"]
AnsweredBy = Literal["human", "machine"]

MODES: tuple[DialMode, ...] = ("preview", "progressive", "predictive")
MACHINE_ACTIONS: tuple[MachineAction, ...] = ("message", "hang_up")
LINE_FAILURES: tuple[LineFailure, ...] = ("no-answer", "busy", "failed", "congestion")


@dataclass(frozen=True, slots=True)
class PacingConfig:
    """One campaign's dialing settings, checked once (`ValueError` naming the field)."""

    campaign: str
    mode: DialMode = "predictive"
    abandon_cap: float = 0.03  # FTC TSR safe harbor and Ofcom: 3 % of live answered calls
    window_s: float = 86_400.0  # Ofcom's 24 hours; see the module's docstring
    connect_within_s: float = 2.0  # an answered call not with an agent by then is abandoned
    abandon_message: str = "abandoned-call"  # the recorded message (seller's name and number)
    machine_action: MachineAction = "hang_up"  # "hang_up": the campaign retries later
    machine_message: str = "machine-message"  # left on the machine when machine_action is "message"
    # Ofcom: a reasoned estimate of live calls AMD took for machines, counted as abandons. 0 without AMD
    # or where the rule (FTC) leaves machine answers out.
    amd_false_positive_share: float = 0.0
    ring_timeout_s: float = 25.0  # FTC: ring at least 15 s (or four rings) before giving up
    amd_max_s: float = 5.0  # longest AMD() analysis after answer (its totalAnalysisTime)
    max_lines: int = 200  # trunk lines the campaign may hold at once
    # Predictive aims its abandons at target_share x cap, spread over the day, so the worst-case check
    # above it rarely has to cut; at throttle_share x cap it dials progressive until back at the target.
    target_share: float = 0.8
    throttle_share: float = 0.9
    aggressiveness_step: float = 0.03  # how fast the aim follows the abandons: per live answer
    # Priors until the campaign has measured its own: replaced as outcomes come in.
    answer_rate_prior: float = 0.2
    handle_prior_s: float = 180.0
    wrap_up_prior_s: float = 15.0
    answer_delay_prior_s: float = 12.0
    # How many recent outcomes the measurements keep: enough to be steady, few enough to follow a list.
    measure_lines: int = 400
    measure_calls: int = 200

    def __post_init__(self) -> None:
        problems = []
        if not self.campaign:
            problems.append("campaign: must not be empty")
        if self.mode not in MODES:
            problems.append(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if self.machine_action not in MACHINE_ACTIONS:
            problems.append(f"machine_action: {self.machine_action!r} is not one of {', '.join(MACHINE_ACTIONS)}")
        if not 0.0 <= self.abandon_cap < 1.0:
            problems.append(f"abandon_cap: {self.abandon_cap} is not a share in [0, 1)")
        if not 0.0 <= self.amd_false_positive_share <= 1.0:
            problems.append(f"amd_false_positive_share: {self.amd_false_positive_share} is not a share in [0, 1]")
        if not 0.0 < self.answer_rate_prior <= 1.0:
            problems.append(f"answer_rate_prior: {self.answer_rate_prior} is not a share in (0, 1]")
        for name in ("window_s", "connect_within_s", "handle_prior_s", "answer_delay_prior_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}: {getattr(self, name)} must be above 0")
        for name in ("amd_max_s", "wrap_up_prior_s"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}: {getattr(self, name)} must not be negative")
        if not self.ring_timeout_s >= 15:
            problems.append(f"ring_timeout_s: {self.ring_timeout_s} is under the 15 s a line must ring (FTC)")
        if not 0.0 < self.target_share <= self.throttle_share <= 1.0:
            problems.append(f"target_share {self.target_share} and throttle_share {self.throttle_share}: "
                            "need 0 < target_share <= throttle_share <= 1")
        if not 0.0 < self.aggressiveness_step < 1.0:
            problems.append(f"aggressiveness_step: {self.aggressiveness_step} is not in (0, 1)")
        for name in ("max_lines", "measure_lines", "measure_calls"):
            if not getattr(self, name) >= 1:
                problems.append(f"{name}: {getattr(self, name)} must be at least 1")
        if problems:
            raise ValueError(f"campaign {self.campaign!r} pacing: " + "; ".join(problems))


# ---------------------------------------------------------------- events (inputs)


@dataclass(frozen=True, slots=True)
class AgentReady:
    """The agent is free for this campaign's calls (logged in, unpaused)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentAway:
    """The agent is not taking this campaign's calls any more (pause, logout, another queue's call)."""

    agent_id: str
    reason: str = "away"


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    agent_id: str


@dataclass(frozen=True, slots=True)
class LineDialled:
    """A line went out. `agent_id`: the preview agent who dialled it (the answer is theirs)."""

    call_id: str
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class LinesNotDialled:
    """`count` lines of a `Dial` decision were not dialled (list empty, outside the calling window)."""

    count: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LineAnswered:
    """Answered, with AMD()'s verdict (NOTSURE is reported as human: a person may be there)."""

    call_id: str
    answered_by: AnsweredBy = "human"


@dataclass(frozen=True, slots=True)
class LineFailed:
    call_id: str
    reason: LineFailure = "no-answer"


@dataclass(frozen=True, slots=True)
class CallConnected:
    """The bridge to the agent the pacer chose is up (confirms a `Connect`)."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class CallAbandoned:
    """The answered person hung up before an agent took the call: an abandon all the same."""

    call_id: str


@dataclass(frozen=True, slots=True)
class HandleEnded:
    """The conversation ended: the agent goes to wrap-up (`WrapUpEnded` frees them)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: run the deadlines due by `now`."""


Event = (AgentReady | AgentAway | WrapUpEnded | LineDialled | LinesNotDialled | LineAnswered | LineFailed
         | CallConnected | CallAbandoned | HandleEnded | Tick)


# ---------------------------------------------------------------- decisions (outputs)


@dataclass(frozen=True, slots=True)
class Dial:
    """Dial `count` more lines of the campaign now; report each with `LineDialled` (or `LinesNotDialled`)."""

    campaign: str
    count: int


@dataclass(frozen=True, slots=True)
class PreviewContact:
    """Show `agent_id` the next contact's card; the agent dials it (or skips: `AgentReady` again)."""

    campaign: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Bridge the answered call to the agent (reserved for it from now)."""

    call_id: str
    agent_id: str
    waited_s: float


@dataclass(frozen=True, slots=True)
class Abandon:
    """No agent within the deadline: play `message` and hang up. Counted in the window."""

    call_id: str
    message: str
    waited_s: float


@dataclass(frozen=True, slots=True)
class HandleMachine:
    """An answering machine (AMD): leave `message` ("message") or hang up for a retry ("hang_up")."""

    call_id: str
    action: MachineAction
    message: str


@dataclass(frozen=True, slots=True)
class PacingChanged:
    """Predictive fell back to progressive (the cap's margin ran out), or came back: for the supervisor."""

    campaign: str
    throttled: bool
    abandon_rate: float
    at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """`event` made no sense here (unknown call, stale repeat, out of order, a count below one): nothing
    changed. Worth a line in the log."""

    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """`event` was applied without the part that made no sense (a line nobody asked for is still a line
    that rings): `reason` says what was left out."""

    event: Event
    reason: str


Decision = Dial | PreviewContact | Connect | Abandon | HandleMachine | PacingChanged | Refusal | Ignored


@dataclass(frozen=True, slots=True)
class PacingStatus:
    """What the supervisor view and reports read."""

    campaign: str
    mode: DialMode
    throttled: bool
    abandon_rate: float  # over the window
    live_answered: float
    abandoned: float
    answer_rate: float  # measured live answers per dialled line
    lines_out: int  # ringing and asked for
    waiting: int  # answered, waiting for an agent
    agents_free: int
    agents_busy: int
    dial_ratio: float  # lines out per free or soon-free agent at the last decision
    aggressiveness: float  # share of the expected free agents predictive dials for


# ---------------------------------------------------------------- bookkeeping


AgentPhase = Literal["free", "preview", "connecting", "talking", "wrap_up", "away"]


@dataclass(slots=True)
class _Agent:
    agent_id: str
    phase: AgentPhase
    since: float
    call_id: str | None = None


CallPhase = Literal["ringing", "waiting", "connecting", "talking"]


@dataclass(slots=True)
class _Line:
    call_id: str
    dialled_at: float
    agent_id: str | None  # preview: the agent who dialled
    phase: CallPhase = "ringing"
    answered_at: float = 0.0


@dataclass(slots=True)
class _Recent:
    """The last `size` durations, kept sorted too: P(done within h | running for e) by bisection."""

    size: int
    order: deque[float] = field(default_factory=deque)
    sorted_: list[float] = field(default_factory=list)
    total: float = 0.0

    def add(self, value: float) -> None:
        self.order.append(value)
        insort(self.sorted_, value)
        self.total += value
        if len(self.order) > self.size:
            old = self.order.popleft()
            del self.sorted_[bisect_right(self.sorted_, old) - 1]
            self.total -= old

    def mean(self, prior: float) -> float:
        # The prior counts as a few observations so the first calls do not swing the pacing.
        n = len(self.order)
        return (self.total + 5 * prior) / (n + 5)

    def done_within(self, elapsed: float, horizon: float, prior: float) -> float:
        """Chance that something running for `elapsed` ends within `horizon` more seconds."""
        n = len(self.sorted_)
        if n < 20:  # too few to trust the shape: memoryless guess around the mean
            return 1.0 - math.exp(-horizon / max(prior - elapsed, horizon, 1.0))
        beyond = n - bisect_right(self.sorted_, elapsed)
        if beyond == 0:  # longer than anything seen: about to end
            return 0.5
        return (beyond - (n - bisect_right(self.sorted_, elapsed + horizon))) / beyond


class Pacer:
    """One campaign's pacing. Feed it events with the current monotonic time; carry out its decisions."""

    def __init__(self, config: PacingConfig) -> None:
        self.config = config
        self._now = float("-inf")
        self._agents: dict[str, _Agent] = {}
        self._lines: dict[str, _Line] = {}
        self._waiting: OrderedDict[str, None] = OrderedDict()  # answered, no agent yet, oldest first
        self._ended: OrderedDict[str, None] = OrderedDict()  # recent call ids: repeats are stale, not unknown
        self._asked = 0  # lines of Dial decisions not reported yet
        self._ringing = 0  # campaign lines (not preview) ringing
        # The window: (time, live answers, abandons); weights are fractional for the AMD estimate.
        self._window: deque[tuple[float, float, float]] = deque()
        self._live = 0.0
        self._abandoned = 0.0
        # Measurements
        self._outcomes: deque[float] = deque()  # 1.0 live answer, else 0.0, per dialled campaign line
        self._live_in_outcomes = 0.0
        self._answer_delay = _Recent(config.measure_calls)
        self._talk = _Recent(config.measure_calls)
        self._wrap = _Recent(config.measure_calls)
        self._throttled = False
        self._dial_ratio = 0.0
        self._aggressiveness = 1.0  # scales the aim; follows the abandons
        self._held_back = False  # the last pacing dialled less than the model wanted
        self._handlers = {
            AgentReady: self._on_ready, WrapUpEnded: self._on_wrap_up_ended, AgentAway: self._on_away,
            LineDialled: self._on_dialled, LinesNotDialled: self._on_not_dialled, LineAnswered: self._on_answered,
            LineFailed: self._on_failed, CallConnected: self._on_connected, CallAbandoned: self._on_abandoned,
            HandleEnded: self._on_handle_ended, Tick: lambda event, out: None,
        }

    # ================================================================ public API

    def handle(self, event: Event, now: float) -> list[Decision]:
        """Apply `event` at monotonic time `now`: deadlines due first, then the event, then the pacing."""
        if not math.isfinite(now):
            raise ValueError(f"campaign {self.config.campaign!r}: time {now!r} is not a number of seconds")
        if now < self._now:
            raise ValueError(f"campaign {self.config.campaign!r}: time went backwards: {now} < {self._now}")
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not a pacing event: {event!r}")
        self._now = now
        out: list[Decision] = []
        self._expire(now)
        self._run_deadlines(now, out)
        handler(event, out)  # type: ignore[operator]
        self._match(now, out)
        self._pace(now, out)
        return out

    def next_due(self) -> float | None:
        """When the oldest waiting call reaches its deadline (call `handle(Tick(), due)` then)."""
        for call_id in self._waiting:
            return self._lines[call_id].answered_at + self.config.connect_within_s
        return None

    def status(self) -> PacingStatus:
        busy = sum(a.phase in ("connecting", "talking", "wrap_up", "preview") for a in self._agents.values())
        return PacingStatus(
            campaign=self.config.campaign, mode=self.config.mode, throttled=self._throttled,
            abandon_rate=self.abandon_rate(), live_answered=self._live, abandoned=self._abandoned,
            answer_rate=self._answer_rate(), lines_out=self._ringing + self._asked, waiting=len(self._waiting),
            agents_free=self._free_count(), agents_busy=busy, dial_ratio=self._dial_ratio,
            aggressiveness=self._aggressiveness)

    def abandon_rate(self) -> float:
        return self._abandoned / self._live if self._live > 0 else 0.0

    # ================================================================ events

    def _agent(self, event: Event, agent_id: str, out: list[Decision]) -> _Agent | None:
        agent = self._agents.get(agent_id)
        if agent is None:
            out.append(Refusal(event, f"agent {agent_id!r} has not been ready for this campaign"))
        return agent

    def _on_ready(self, event: AgentReady, out: list[Decision]) -> None:
        agent = self._agents.get(event.agent_id)
        if agent is None:
            self._agents[event.agent_id] = _Agent(event.agent_id, "free", self._now)
            return
        if agent.phase in ("free", "preview"):  # a preview card skipped: free again for the next one
            agent.phase, agent.since = "free", self._now
            return
        if agent.phase == "away":
            agent.phase, agent.since = "free", self._now
            return
        out.append(Refusal(event, f"agent {event.agent_id!r} is {agent.phase} (call {agent.call_id}): "
                                  "ready only after the call and its wrap-up"))

    def _on_wrap_up_ended(self, event: WrapUpEnded, out: list[Decision]) -> None:
        agent = self._agent(event, event.agent_id, out)
        if agent is None:
            return
        if agent.phase != "wrap_up":
            out.append(Refusal(event, f"agent {event.agent_id!r} is {agent.phase}, not in wrap-up"))
            return
        self._wrap.add(self._now - agent.since)
        agent.phase, agent.since, agent.call_id = "free", self._now, None

    def _on_away(self, event: AgentAway, out: list[Decision]) -> None:
        agent = self._agent(event, event.agent_id, out)
        if agent is None:
            return
        line = self._lines.get(agent.call_id or "")
        if agent.phase == "connecting" and line is not None and line.phase == "connecting":
            # The bridge to this agent did not happen: the call is first in line again, its 2 s
            # still counted from its answer (past them, it is abandoned at once).
            line.phase, line.agent_id = "waiting", None
            self._waiting[line.call_id] = None
            self._waiting.move_to_end(line.call_id, last=False)
            agent.phase, agent.since, agent.call_id = "away", self._now, None
            self._run_deadlines(self._now, out)
            return
        if agent.phase in ("connecting", "talking"):
            out.append(Refusal(event, f"agent {event.agent_id!r} is {agent.phase} on call {agent.call_id}: "
                                      "away after the call"))
            return
        agent.phase, agent.since, agent.call_id = "away", self._now, None

    def _on_dialled(self, event: LineDialled, out: list[Decision]) -> None:
        if event.call_id in self._lines or event.call_id in self._ended:
            out.append(Refusal(event, f"call {event.call_id!r} was already dialled"))
            return
        if event.agent_id is not None:
            agent = self._agent(event, event.agent_id, out)
            if agent is None:
                return
            if agent.phase not in ("free", "preview"):
                out.append(Refusal(event, f"agent {event.agent_id!r} is {agent.phase}: cannot dial a preview"))
                return
            # The agent is on the line while it rings: theirs whatever happens, never abandoned.
            agent.phase, agent.since, agent.call_id = "connecting", self._now, event.call_id
        elif self.config.mode == "preview":
            out.append(Refusal(event, "a preview campaign's lines are dialled by an agent (agent_id missing)"))
            return
        else:
            if self._asked == 0:
                out.append(Ignored(event, f"call {event.call_id!r}: no Dial asked for this line "
                                          "(counted as ringing all the same)"))
            self._asked = max(0, self._asked - 1)
            self._ringing += 1
        self._lines[event.call_id] = _Line(event.call_id, self._now, event.agent_id)

    def _on_not_dialled(self, event: LinesNotDialled, out: list[Decision]) -> None:
        if event.count < 1:
            out.append(Refusal(event, f"count {event.count} is not a number of lines"))
            return
        if event.count > self._asked:
            out.append(Ignored(event, f"{event.count} lines not dialled, but only {self._asked} were asked for "
                                      "(taking back what was asked)"))
        self._asked = max(0, self._asked - event.count)

    def _ringing_line(self, event: LineAnswered | LineFailed, out: list[Decision]) -> _Line | None:
        line = self._lines.get(event.call_id)
        if line is None:
            known = "already ended" if event.call_id in self._ended else "unknown"
            out.append(Refusal(event, f"call {event.call_id!r} is {known}"))
            return None
        if line.phase != "ringing":
            out.append(Refusal(event, f"call {event.call_id!r} was already answered"))
            return None
        return line

    def _on_answered(self, event: LineAnswered, out: list[Decision]) -> None:
        line = self._ringing_line(event, out)
        if line is None:
            return
        if event.answered_by not in ("human", "machine"):
            out.append(Refusal(event, f"answered_by {event.answered_by!r} is neither human nor machine"))
            return
        if line.agent_id is not None:  # preview: the agent is already on it
            line.phase, line.answered_at = "talking", self._now
            agent = self._agents[line.agent_id]
            agent.phase, agent.since = "talking", self._now
            return
        self._ringing -= 1
        if event.answered_by == "machine":
            fp = self.config.amd_false_positive_share
            self._count(live=fp, abandoned=fp)
            self._measure(0.0)
            self._finish(line.call_id)
            out.append(HandleMachine(line.call_id, self.config.machine_action, self.config.machine_message))
            return
        self._count(live=1.0, abandoned=0.0)
        self._measure(1.0)
        self._answer_delay.add(self._now - line.dialled_at)
        line.phase, line.answered_at = "waiting", self._now
        self._waiting[line.call_id] = None

    def _on_failed(self, event: LineFailed, out: list[Decision]) -> None:
        line = self._ringing_line(event, out)
        if line is None:
            return
        if line.agent_id is not None:
            self._agents[line.agent_id].phase = "free"
            self._agents[line.agent_id].since = self._now
            self._agents[line.agent_id].call_id = None
        else:
            self._ringing -= 1
            self._measure(0.0)
        self._finish(line.call_id)

    def _on_connected(self, event: CallConnected, out: list[Decision]) -> None:
        line = self._lines.get(event.call_id)
        if line is None or line.phase != "connecting" or line.agent_id != event.agent_id:
            where = "unknown" if line is None else f"{line.phase} (agent {line.agent_id})"
            out.append(Refusal(event, f"call {event.call_id!r} is {where}: no connect to {event.agent_id!r} "
                                      "was asked"))
            return
        line.phase = "talking"
        agent = self._agents[event.agent_id]
        agent.phase, agent.since = "talking", self._now

    def _on_abandoned(self, event: CallAbandoned, out: list[Decision]) -> None:
        line = self._lines.get(event.call_id)
        if line is None or line.phase != "waiting":
            where = "unknown" if line is None else line.phase
            out.append(Refusal(event, f"call {event.call_id!r} is {where}, not waiting for an agent"))
            return
        self._abandon(line, out, hung_up=True)

    def _on_handle_ended(self, event: HandleEnded, out: list[Decision]) -> None:
        line = self._lines.get(event.call_id)
        if line is None or line.phase not in ("connecting", "talking"):
            where = "unknown" if line is None else line.phase
            out.append(Refusal(event, f"call {event.call_id!r} is {where}, not with an agent"))
            return
        assert line.agent_id is not None
        agent = self._agents[line.agent_id]
        self._talk.add(self._now - agent.since)
        agent.phase, agent.since = "wrap_up", self._now
        self._finish(line.call_id)

    # ================================================================ the answered calls

    def _run_deadlines(self, now: float, out: list[Decision]) -> None:
        # Agents freed by this very event get their chance in `_match` first only if not yet due: the
        # deadline is the rule, and an event at or after it comes too late for this call.
        self._match(now, out)
        while self._waiting:
            call_id = next(iter(self._waiting))
            line = self._lines[call_id]
            if line.answered_at + self.config.connect_within_s > now:
                break
            self._abandon(line, out, hung_up=False)

    def _abandon(self, line: _Line, out: list[Decision], hung_up: bool) -> None:
        del self._waiting[line.call_id]
        self._count(live=0.0, abandoned=1.0)
        self._steer(abandoned=True)
        self._finish(line.call_id)
        if not hung_up:
            out.append(Abandon(line.call_id, self.config.abandon_message, self._now - line.answered_at))

    def _match(self, now: float, out: list[Decision]) -> None:
        """Waiting calls, oldest first, to the agents free longest."""
        while self._waiting:
            agent = self._longest_free()
            if agent is None:
                return
            call_id = next(iter(self._waiting))
            del self._waiting[call_id]
            line = self._lines[call_id]
            line.phase, line.agent_id = "connecting", agent.agent_id
            agent.phase, agent.since, agent.call_id = "connecting", now, call_id
            out.append(Connect(call_id, agent.agent_id, now - line.answered_at))
            self._steer(abandoned=False)

    def _longest_free(self) -> _Agent | None:
        best: _Agent | None = None
        for agent in self._agents.values():
            if agent.phase == "free" and (best is None or agent.since < best.since):
                best = agent
        return best

    def _finish(self, call_id: str) -> None:
        self._lines.pop(call_id, None)
        self._ended[call_id] = None
        if len(self._ended) > 10_000:
            self._ended.popitem(last=False)

    # ================================================================ the window and the measurements

    def _count(self, live: float, abandoned: float) -> None:
        if live or abandoned:
            self._window.append((self._now, live, abandoned))
            self._live += live
            self._abandoned += abandoned

    def _expire(self, now: float) -> None:
        edge = now - self.config.window_s
        while self._window and self._window[0][0] <= edge:
            _, live, abandoned = self._window.popleft()
            self._live -= live
            self._abandoned -= abandoned
        if not self._window:  # no drift from float sums
            self._live = self._abandoned = 0.0

    def _steer(self, abandoned: bool) -> None:
        """Stochastic approximation: each live answer moves the aim so abandons settle at the target
        (one abandon takes back what about 1/target connects gave)."""
        if not abandoned and self._held_back:
            return  # the cap's margin or the throttle held the dialing back, not the aim: no credit
        target = self.config.target_share * self.config.abandon_cap
        step = self.config.aggressiveness_step * ((1.0 if abandoned else 0.0) - target)
        self._aggressiveness = min(4.0, max(0.1, self._aggressiveness - step))

    def _measure(self, live: float) -> None:
        self._outcomes.append(live)
        self._live_in_outcomes += live
        if len(self._outcomes) > self.config.measure_lines:
            self._live_in_outcomes -= self._outcomes.popleft()

    def _answer_rate(self) -> float:
        prior_weight = 20  # lines' worth
        n = len(self._outcomes)
        return (self._live_in_outcomes + prior_weight * self.config.answer_rate_prior) / (n + prior_weight)

    # ================================================================ pacing

    def _free_count(self) -> int:
        return sum(a.phase == "free" for a in self._agents.values())

    def _pace(self, now: float, out: list[Decision]) -> None:
        mode = self.config.mode
        if mode == "preview":
            for agent in self._agents.values():
                if agent.phase == "free":
                    agent.phase, agent.since = "preview", now
                    out.append(PreviewContact(self.config.campaign, agent.agent_id))
            return
        free = self._free_count()
        lines_out = self._ringing + self._asked
        progressive = max(0, free - lines_out - len(self._waiting))
        if mode == "predictive":
            self._throttle(now, out)
        predictive = mode == "predictive" and not self._throttled
        wanted = max(progressive, self._predictive_lines(now, free)) if predictive else progressive
        wanted = min(wanted, self.config.max_lines - lines_out)
        allowed = self._within_cap(now, free, lines_out, wanted)
        self._held_back = mode == "predictive" and (self._throttled or allowed < wanted)
        if allowed > 0:
            self._asked += allowed
            out.append(Dial(self.config.campaign, allowed))

    def _throttle(self, now: float, out: list[Decision]) -> None:
        """Progressive from throttle_share x cap until the window is back at the target (hysteresis: a
        supervisor sees a change, not a flicker)."""
        rate, cap = self.abandon_rate(), self.config.abandon_cap
        if not self._throttled and rate >= self.config.throttle_share * cap:
            self._throttled = True
        elif self._throttled and rate <= self.config.target_share * cap:
            self._throttled = False
        else:
            return
        out.append(PacingChanged(self.config.campaign, self._throttled, rate, now))

    def _predictive_lines(self, now: float, free: int) -> int:
        """Lines to add so the abandons expected from the lines out stay at the aim.

        Over the next answer delay (plus the 2 s), agents expected free are those free now and each busy
        agent's chance of finishing (their elapsed time against the campaign's recent talk and wrap-up
        times); the live answers expected are lines x measured answer rate. With both as normal
        variables, the expected excess of answers over agents is the expected number of abandons; lines
        are added while it stays under aim x expected answers (aim: the target, scaled by the
        aggressiveness that corrects this snapshot's bias from what really happens)."""
        rate = self._answer_rate()
        wrap_mean = self._wrap.mean(self.config.wrap_up_prior_s)
        horizon = self._answer_delay.mean(self.config.answer_delay_prior_s) + self.config.connect_within_s
        soon = spread = 0.0
        for agent in self._agents.values():
            chance = 0.0
            if agent.phase in ("connecting", "talking"):
                # Talk must end early enough to leave the usual wrap-up inside the horizon.
                left = horizon - wrap_mean
                if left > 0:
                    chance = self._talk.done_within(now - agent.since, left, self.config.handle_prior_s)
            elif agent.phase == "wrap_up":
                chance = self._wrap.done_within(now - agent.since, horizon, self.config.wrap_up_prior_s)
            soon += chance
            spread += chance * (1.0 - chance)
        supply = free + soon - len(self._waiting)
        lines_out = self._ringing + self._asked
        self._dial_ratio = (lines_out / supply) if supply > 0 else 0.0
        aim = self._aggressiveness * self.config.target_share * self.config.abandon_cap

        def too_many(lines: int) -> bool:
            answers = lines * rate
            if answers <= 0:
                return False
            sigma = math.sqrt(answers * (1.0 - rate) + spread) or 1e-9
            m = answers - supply
            z = m / sigma
            excess = sigma * math.exp(-z * z / 2) / math.sqrt(2 * math.pi) + m * 0.5 * math.erfc(-z / math.sqrt(2))
            return excess > aim * answers

        low, high = lines_out, lines_out + self.config.max_lines
        if too_many(low + 1):
            return 0
        while high - low > 1:
            mid = (low + high) // 2
            if too_many(mid):
                high = mid
            else:
                low = mid
        return low - lines_out

    def _within_cap(self, now: float, free: int, lines_out: int, wanted: int) -> int:
        """The most of `wanted` new lines whose worst case keeps the window at or under the cap."""
        if wanted <= 0:
            return 0
        live, abandoned = self._live_at_horizon(now), self._abandoned
        cap, fp = self.config.abandon_cap, self.config.amd_false_positive_share
        waiting = len(self._waiting)
        spare = max(0, free - waiting)  # agents left after the waiting calls take theirs
        surplus_waiting = max(0, waiting - free)

        def fits(extra: int) -> bool:
            lines = lines_out + extra
            surplus = max(0, lines - spare)  # answered by a person, nobody to take them: abandoned
            covered = lines - surplus  # an agent each; worst is a machine costing the AMD estimate
            worst_abandoned = abandoned + surplus_waiting + surplus + fp * covered
            worst_live = live + surplus + fp * covered
            return worst_abandoned <= cap * worst_live + 1e-9

        if fits(wanted):
            return wanted
        low, high = 0, wanted
        if not fits(0):
            # Over the cap already (an agent's phone failed with a person waiting, capture 28): no line
            # beyond the free agents, but still one per free agent, as progressive dials; nothing at all
            # would stop the campaign until the window forgets the abandon (docs/outbound.md).
            return min(wanted, max(0, spare - lines_out))
        while high - low > 1:
            mid = (low + high) // 2
            if fits(mid):
                low = mid
            else:
                high = mid
        return low

    def _live_at_horizon(self, now: float) -> float:
        """Live answers still in the window when the lines dialled now have run their course: answers
        about to leave the window cannot be counted on (abandons leaving it are not credited either)."""
        cfg = self.config
        edge = now + cfg.ring_timeout_s + cfg.amd_max_s + cfg.connect_within_s - cfg.window_s
        live = self._live
        for at, weight, _ in self._window:
            if at > edge:
                break
            live -= weight
        return live
