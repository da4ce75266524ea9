"""The campaign dialer: one pacer per running campaign, fed from the PBX and the ACD; its decisions carried out.

The pacer (acd/pacing.py) decides how many lines, which agent, when to abandon; the campaign store decides
which contact (calling windows, retries, do-not-call, re-checked by `begin_attempt` at dial time). This
service is the edge between them and the PBX:

* Dial(n): the next n contacts, each begun as an attempt, originated customer-first through the trunk into
  `[cti-dialer]` (AMD() there; its verdict comes back as the UserEvent AMDResult, capture 15);
* Connect(call, agent): the agent's leg originated into `[cti-agent-ready]` and bridged with the line, as the
  ACD does for inbound callers;
* Abandon: the line is redirected to the recorded message; HandleMachine: to the machine message, or hung up;
* PreviewContact: the card goes to the agent's console; the agent dials it (`preview_dial`) or skips it.

Every step is a journaled fact (`dialer.*`), and every attempt's outcome is recorded with the campaign. A
crash leaves attempts open: they are settled at the next start from what the journal says of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from acd import decisions as d
from acd import events as ev
from acd import pacing as pc
from acd.router import Router
from acd.states import AgentState
from crmstore.campaign_plans import AttemptResult, StoredCampaign
from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import AttemptOutcome, ContactState, DialRefused, is_right_party
from crmstore.errors import CrmError
from crmstore.journal import read_rows_between

from ..ami.errors import AmiError
from ..ami.protocol import Message
from ..bus import EventBus
from ..calls.service import CallsService, LineAgentLeg, Pbx
from ..control import InvalidValue
from ..journal import facts as f
from ..projections.recorder import Recorder
from .outcomes import answered_by, failed_line, settled_outcome
from .settings import DialerSettings
from .survey import CONTEXT as SURVEY_CONTEXT
from .survey import is_survey, originate_variables, survey_lines

log = logging.getLogger(__name__)

CALL_PREFIX = "dial-"  # the call ids of campaign lines
# The ACD's states of an agent on one of our lines or in its wrap-up.
_OCCUPIED = (AgentState.ON_CALL.value, AgentState.ON_HOLD.value, AgentState.WRAP_UP.value)

Push = Callable[[str, str, Mapping[str, object]], None]
_MIN_RING_S = 0.2  # an Originate needs a Timeout above 0


@dataclass(frozen=True, slots=True)
class PreviewOffered:
    """A preview card was pushed to an agent's console (published on the bus)."""

    campaign: str
    agent_id: str
    contact_id: int
    number: str
    name: str


@dataclass(slots=True)
class _Line:
    call_id: str
    campaign: str
    contact: ContactState
    attempt_id: int
    pbx: Pbx
    agent_id: str = ""  # preview: the agent who dialled; otherwise the agent it was connected to
    channel: str = ""  # the answered line's channel, once the Originate succeeded
    agent_leg: str = ""
    phase: str = "ringing"  # ringing, up (answered, AMD running), waiting, connecting, talking, closing
    outcome: AttemptOutcome | None = None
    amd: str = ""
    gone: bool = False  # the line hung up before we knew it was answered
    cause: int | None = None  # its HangupRequest's Cause, read before the OriginateResponse (busy: 17)
    claimed: bool = False  # the ACD has agent_id on this call (OutboundStarted): nobody offers them a call


@dataclass(frozen=True, slots=True)
class Handled:
    """A campaign call an agent had: the attempt their wrap-up's disposition belongs to."""

    campaign: str
    attempt_id: int
    agent_id: str
    number: str


@dataclass(slots=True)
class _Run:
    stored: StoredCampaign
    pacer: pc.Pacer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: dict[str, bool] = field(default_factory=dict)  # what the pacer was last told of each agent
    busy: set[str] = field(default_factory=set)  # agents on one of our lines or in its wrap-up
    wrapping: set[str] = field(default_factory=set)  # agents the pacer has in wrap-up: freed when the ACD frees them
    cards: dict[str, ContactState] = field(default_factory=dict)  # preview cards on agents' consoles
    skipped: set[int] = field(default_factory=set)  # cards passed on: shown after the others
    held: int = 0  # lines the pacer asked for that the list could not give yet
    dry_until: float = 0.0  # the list gave less than asked: ask it again at the next poll

    @property
    def name(self) -> str:
        return self.stored.campaign.name

    @property
    def queue(self) -> str:
        return self.stored.campaign.queue


class DialerService:
    def __init__(
        self,
        settings: DialerSettings,
        campaigns: CampaignStore,
        recorder: Recorder,
        calls: CallsService,
        router: Callable[[], Router],
        bus: EventBus,
        clock: Callable[[], float],
        push: Push | None = None,
        flow_loaded: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.flow_loaded = flow_loaded
        self.campaigns = campaigns
        self.recorder = recorder
        self.calls = calls
        self.router = router
        self.bus = bus
        self.clock = clock
        self.push = push
        self.runs: dict[str, _Run] = {}
        self._unloaded_flow: set[str] = set()  # survey campaigns held back for their flow (logged once)
        self._lines: dict[str, _Line] = {}
        self._handled: dict[str, Handled] = {}  # call id -> the attempt, for the agent's disposition (recent ones)
        self._recording: dict[str, asyncio.Task[None]] = {}  # call id -> its outcome being written
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._telling_acd = False  # one of our facts is being applied: the agents are read after it
        self._sync_missed = False
        bus.subscribe(d.AgentStateChanged, lambda _e: self._sync_all_agents())

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Settle what a crash left open, then listen to the PBX."""
        await self.settle_open_attempts()
        for pbx in self.calls.pbxes.values():
            pbx.link.add_event_handler(self._on_ami)

    async def run(self) -> None:
        """Campaigns refreshed every poll; the pacers' 2-s deadlines run on time."""
        next_poll = 0.0
        try:
            while not self._closing:
                now = self.clock()
                if now >= next_poll:
                    await self._guard(self.refresh())
                    next_poll = self.clock() + self.settings.poll_s
                now = self.clock()
                for run in list(self.runs.values()):
                    due = run.pacer.next_due()
                    if due is not None and due <= now:
                        self._feed(run, pc.Tick())
                dues = [due for r in self.runs.values() if (due := r.pacer.next_due()) is not None]
                wait = max(0.0, min([next_poll, *dues]) - self.clock())
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self.close()

    async def close(self) -> None:
        self._closing = True
        for pbx in self.calls.pbxes.values():
            with contextlib.suppress(ValueError):
                pbx.link.remove_event_handler(self._on_ami)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        if self._closing:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except (AmiError, CrmError, InvalidValue, ValueError, OSError) as e:
            log.error("dialer: %s", e)

    def pacing_status(self, campaign: str) -> pc.PacingStatus | None:
        """The running campaign's pacer figures (the supervisors' panel), None when it does not run."""
        run = self.runs.get(campaign)
        return run.pacer.status() if run is not None else None

    # ------------------------------------------------------------------ campaigns and agents

    async def refresh(self) -> None:
        """Active campaigns with a queue run; paused ones stop dialing; lines the list could not give are
        asked for again."""
        stored = await self.campaigns.all()
        for s in stored:
            name = s.campaign.name
            run = self.runs.get(name)
            if run is None:
                if s.paused:
                    continue
                if is_survey(s) and not s.campaign.flow:
                    log.error("dialer: survey campaign %r names no flow: not dialled", name)
                    continue
                if is_survey(s) and self.flow_loaded is not None and not self.flow_loaded(s.campaign.flow):
                    # The survey entry would hang up on every person who answers (seen on a real PBX when the
                    # example flow's fallback queue was not in queues.yaml): dial once the flow loads.
                    if name not in self._unloaded_flow:
                        log.error("dialer: survey campaign %r: its flow %r is not loaded (see the flow errors "
                                  "at start, `ctiserver flows check`): not dialled", name, s.campaign.flow)
                        self._unloaded_flow.add(name)
                    continue
                self._unloaded_flow.discard(name)
                if not s.campaign.queue and not is_survey(s):
                    log.error("dialer: campaign %r has no queue: nobody to take its calls, not dialled", name)
                    continue
                run = self.runs[name] = _Run(s, pc.Pacer(self._pacing(s)))
                log.info("dialer: campaign %r runs (%s) on queue %r", name, s.campaign.mode.value, s.campaign.queue)
            run.stored = s
        for run in self.runs.values():
            self._sync_agents(run)
            if run.held and not run.stored.paused:
                held, run.held = run.held, 0
                self._feed(run, pc.LinesNotDialled(held, "the list had no contact to dial"))

    def _pacing(self, s: StoredCampaign) -> pc.PacingConfig:
        lines = self.settings.lines_of(s.campaign.name)
        # A survey campaign has no agent to preview a card: its lines are dialled one per free survey line.
        mode = "progressive" if is_survey(s) and s.campaign.mode.value == "preview" else s.campaign.mode.value
        return pc.PacingConfig(
            campaign=s.campaign.name, mode=mode,  # type: ignore[arg-type]
            abandon_cap=s.campaign.abandon_cap, ring_timeout_s=self.settings.ring_timeout_s,
            abandon_message=lines.abandon_message, machine_action=lines.machine_action,
            machine_message=lines.machine_message)

    def _sync_all_agents(self) -> None:
        if self._telling_acd:
            self._sync_missed = True
            return
        for run in self.runs.values():
            self._sync_agents(run)

    def _sync_agents(self, run: _Run) -> None:
        """The pacer hears of the queue's agents as the ACD has them: available is ready, anything else away.
        Agents on our own lines are ours until their wrap-up ends."""
        if is_survey(run.stored):
            self._sync_survey_lines(run)
            return
        router, now = self.router(), self.clock()
        for agent_id in router.agent_ids():
            view = router.agent_view(agent_id, now)
            if agent_id in run.busy:
                if view.state in _OCCUPIED:
                    continue
                # The ACD has freed the agent (the wrap-up is over, saved, or ended by a logout): one owner of
                # "is this agent free", the pacer follows it.
                run.busy.discard(agent_id)
                if agent_id in run.wrapping:
                    run.wrapping.discard(agent_id)
                    run.ready[agent_id] = True
                    self._feed(run, pc.WrapUpEnded(agent_id))
            ready = (not run.stored.paused and run.queue in view.queues
                     and view.state == AgentState.AVAILABLE)
            if ready and not run.ready.get(agent_id):
                run.ready[agent_id] = True
                self._feed(run, pc.AgentReady(agent_id))
            elif not ready and run.ready.get(agent_id):
                run.ready[agent_id] = False
                run.cards.pop(agent_id, None)
                self._feed(run, pc.AgentAway(agent_id, str(view.state)))

    def _sync_survey_lines(self, run: _Run) -> None:
        """A survey campaign's lines are its agents: free unless paused or holding a survey call."""
        for port in survey_lines(run.stored):
            if port in run.busy:
                continue
            ready = not run.stored.paused
            if ready and not run.ready.get(port):
                run.ready[port] = True
                self._feed(run, pc.AgentReady(port))
            elif not ready and run.ready.get(port):
                run.ready[port] = False
                self._feed(run, pc.AgentAway(port, "paused"))

    # ------------------------------------------------------------------ the pacer

    def _feed(self, run: _Run, event: pc.Event) -> None:
        for decision in run.pacer.handle(event, self.clock()):
            self._carry_out(run, decision)
        self._wake.set()

    def _carry_out(self, run: _Run, decision: pc.Decision) -> None:
        match decision:
            case pc.Dial(count=count):
                if self.clock() < run.dry_until or run.stored.paused:
                    run.held += count  # asked again at the next poll
                else:
                    self._spawn(self._dial(run, count), f"dial {run.name}")
            case pc.PreviewContact(agent_id=agent):
                self._spawn(self._preview(run, agent), f"preview {agent}")
            # The line's phase changes here, not in the task: a hang-up read before the task runs must find
            # the line where the pacer has it.
            case pc.Connect(call_id=call_id, agent_id=agent, waited_s=waited):
                if (line := self._lines.get(call_id)) is None:
                    pass
                elif self._claim(run, line, agent):
                    line.phase = "connecting"
                    # The agent's phone may ring only for what is left of the person's 2 s: a phone that
                    # does not answer would otherwise keep them waiting agent_ring_s (capture 27).
                    ring_s = max(_MIN_RING_S, min(self.settings.agent_ring_s,
                                                  run.pacer.config.connect_within_s - waited))
                    self._spawn(self._connect(run, line, agent, ring_s), f"connect {call_id}")
                else:
                    # The ACD has given the agent something else (an inbound offer): the call is first in
                    # line again for the pacer's next agent, its 2 s still running.
                    run.ready[agent] = False
                    self._feed(run, pc.AgentAway(agent, "taken by the ACD"))
            case pc.Abandon(call_id=call_id, message=message, waited_s=waited):
                if (line := self._lines.get(call_id)) is not None:
                    line.phase, line.outcome = "closing", AttemptOutcome.ABANDONED
                    self._spawn(self._abandon(line, message, waited), f"abandon {call_id}")
            case pc.HandleMachine(call_id=call_id, action=action, message=message):
                if (line := self._lines.get(call_id)) is not None:
                    line.phase, line.outcome = "closing", AttemptOutcome.ANSWERING_MACHINE
                    self._spawn(self._machine(line, action, message), f"machine {call_id}")
            case pc.PacingChanged(throttled=throttled, abandon_rate=rate):
                self.recorder.record(f.DialerStep(run.name, "pacing", detail=(
                    f"{'throttled' if throttled else 'predictive'} at abandon rate {rate:.4f}")))
            case pc.Refusal(event=event, reason=reason) | pc.Ignored(event=event, reason=reason):
                log.warning("dialer: campaign %r: %s (%s)", run.name, reason, type(event).__name__)

    # ------------------------------------------------------------------ the agent in the ACD

    def _claim(self, run: _Run, line: _Line, agent_id: str) -> bool:
        """The ACD takes the agent for this line (busy for inbound from now), or refuses: they are not free.
        A survey campaign's lines are its own, not the ACD's."""
        if is_survey(run.stored):
            run.busy.add(agent_id)
            line.agent_id = agent_id
            return True
        if not self._claim_agent(run, line.call_id, agent_id):
            return False
        line.agent_id, line.claimed = agent_id, True
        return True

    def _claim_agent(self, run: _Run, call_id: str, agent_id: str) -> bool:
        run.busy.add(agent_id)
        decisions = self._tell_acd(ev.OutboundStarted(agent_id, call_id, run.queue))
        if any(isinstance(x, d.Refusal) for x in decisions):
            run.busy.discard(agent_id)
            return False
        return True

    def _unclaim(self, run: _Run, line: _Line, outcome: str, wrap_up_s: float | None) -> None:
        """The agent's part of the line is over for the ACD: wrap-up for `wrap_up_s` (None: the campaign's)."""
        if not line.claimed:
            return
        line.claimed = False
        if wrap_up_s is None:
            own = run.stored.campaign.wrap_up_s
            wrap_up_s = float(own) if own is not None else self.settings.wrap_up_s
        self._tell_acd(ev.OutboundEnded(line.agent_id, line.call_id, outcome, "unknown", run.queue, wrap_up_s))

    def _tell_acd(self, body: ev.OutboundStarted | ev.OutboundEnded) -> list[d.Decision]:
        """One of our facts about an agent, applied by the ACD; the agents are read again once it is applied.
        The ACD runs its timers due first (another agent's wrap-up ending) and publishes those changes while
        this agent still reads as before: an agent being claimed would read free and be taken off `busy`,
        then read on a call that is not ours, and the pacer would give their line to a second agent."""
        outer, self._telling_acd = self._telling_acd, True
        try:
            return self.recorder.record(body)
        finally:
            self._telling_acd = outer
            if not outer and self._sync_missed:
                self._sync_missed = False
                self._sync_all_agents()

    async def handled(self, agent_id: str, call_id: str) -> Handled | None:
        """The campaign attempt of a call this agent had (their wrap-up's disposition belongs to it): kept
        since the call ended, else (a restart came between) found in the campaign store by its call id."""
        handled = self._handled.get(call_id)
        if handled is None and call_id.startswith(CALL_PREFIX):
            found = await self.campaigns.attempt_of_call(call_id)
            if found is not None:
                handled = self._handled[call_id] = Handled(found.campaign, found.attempt_id, found.agent, found.e164)
        return handled if handled is not None and handled.agent_id == agent_id else None

    async def dispose(self, agent_id: str, call_id: str, disposition: str, call_back_at: datetime | None) -> str:
        """The agent's disposition for the campaign call: recorded with the attempt (its final outcome, right
        party or not, a call back booked, do-not-call), and journaled. CampaignError when the campaign does not
        offer it or cannot do what it asks; returns what became of the contact."""
        handled = await self.handled(agent_id, call_id)
        if handled is None:
            raise ValueError(f"call {call_id} is not a campaign call of agent {agent_id}")
        writing = self._recording.get(call_id)
        if writing is not None:  # the line's own outcome first
            await asyncio.shield(writing)
        disposed = await self.campaigns.settle_disposition(
            handled.attempt_id, disposition, call_back_at, datetime.fromtimestamp(self.clock(), UTC), agent_id)
        self.recorder.record(f.DialerStep(handled.campaign, "disposition", call_id, agent_id, (
            f"{disposed.disposition.name}: outcome {disposed.outcome.value}, "
            f"{'right party' if disposed.right_party else 'not the right party'}; {disposed.after.why}")))
        return disposed.after.why

    # ------------------------------------------------------------------ dialing

    def _pbx(self) -> Pbx:
        pbxes = self.calls.pbxes
        return pbxes[self.settings.pbx] if self.settings.pbx else next(iter(pbxes.values()))

    def _new_call_id(self) -> str:
        return f"{CALL_PREFIX}{int(self.clock() * 1000):x}-{next(self._ids)}"

    async def _dial(self, run: _Run, count: int) -> None:
        async with run.lock:
            now = datetime.fromtimestamp(self.clock(), UTC)
            shown = {c.contact_id for c in run.cards.values()}
            contacts = [c for c in await self.campaigns.next_contacts(run.name, now, limit=count + len(shown))
                        if c.contact_id not in shown][:count]
            dialled = 0
            for contact in contacts:
                if await self._begin(run, contact, now, agent_id="") is not None:
                    dialled += 1
            if dialled < count:
                run.held += count - dialled
                run.dry_until = self.clock() + self.settings.poll_s

    async def _begin(self, run: _Run, contact: ContactState, now: datetime, agent_id: str) -> _Line | None:
        """The attempt begun (everything checked again), journaled, told to the pacer and originated."""
        call_id = self._new_call_id()
        # A preview agent is the ACD's busy agent before the customer's line is placed.
        if agent_id and not self._claim_agent(run, call_id, agent_id):
            self.recorder.record(f.DialerStep(run.name, "not_dialled", agent_id=agent_id,
                                              detail=f"contact {contact.contact_id}: agent {agent_id} is not free"))
            return None
        try:
            attempt_id = await self.campaigns.begin_attempt(contact.contact_id, now, call_id)
        except DialRefused as refused:
            self.recorder.record(f.DialerStep(run.name, "not_dialled", agent_id=agent_id,
                                              detail=f"contact {contact.contact_id}: {refused}"))
            if agent_id:
                self._tell_acd(ev.OutboundEnded(agent_id, call_id, "cancelled", "unknown", run.queue, 0.0))
            return None
        line = _Line(call_id, run.name, contact, attempt_id, self._pbx(), agent_id=agent_id, claimed=bool(agent_id))
        self._lines[call_id] = line
        self.recorder.record(f.DialerLineDialled(call_id, run.name, contact.contact_id, attempt_id, contact.e164,
                                                 agent_id))
        self._feed(run, pc.LineDialled(call_id, agent_id or None))
        self._spawn(self._originate(run, line), f"originate {call_id}")
        return line

    async def _originate(self, run: _Run, line: _Line) -> None:
        lines = self.settings.lines_of(run.name)
        if line.agent_id:  # preview: the agent is on the line before the customer's phone rings
            leg = await self._agent_leg(line, line.agent_id)
            if leg is None:
                self._fail(run, line, 0)
                return
            line.agent_leg = leg
        try:
            result = await line.pbx.control.originate_agent_leg(
                self.settings.dial_string(line.contact.e164), channel_id=line.call_id,
                caller_id_name=lines.caller_id_name, caller_id_num=lines.caller_id_num,
                ring_timeout_s=self.settings.ring_timeout_s, context=self.settings.context,
                exten="preview" if line.agent_id else "s",
                variables={"CTI_CAMPAIGN": run.name, "CTI_ABANDON_MESSAGE": lines.abandon_message,
                           "CTI_MACHINE_MESSAGE": lines.machine_message,
                           **(originate_variables(run.stored, line.contact) if is_survey(run.stored) else {})})
        except (AmiError, InvalidValue, ValueError) as e:
            log.error("dialer: campaign %r: line %s to %s not placed: %s", run.name, line.call_id,
                      line.contact.e164, e)
            self._fail(run, line, 0)
            return
        if not result.success:
            self._fail(run, line, result.reason)
            return
        line.channel = result.channel
        if line.phase == "ringing":
            line.phase = "up"
        if line.gone:  # hung up between the answer and now
            self._line_gone(line)

    def _fail(self, run: _Run, line: _Line, reason: int) -> None:
        failure, outcome = failed_line(reason, line.cause)
        line.outcome = outcome
        self._feed(run, pc.LineFailed(line.call_id, failure))
        if line.agent_id:
            self._hang_up(line.pbx, line.agent_leg)
            self._unclaim(run, line, outcome.value, 0.0)  # the ACD first: the pacer reads it
            self._release(run, line.agent_id)
        self._finish(line)

    # ------------------------------------------------------------------ what the PBX says

    def _on_ami(self, msg: Message) -> None:
        event = msg.get("Event")
        if event == "UserEvent" and msg.get("UserEvent") == "AMDResult":
            line = self._lines.get(msg.get("Uniqueid", ""))
            if line is not None:
                # The verdict can be read before the Originate's answer is (same batch of events).
                line.channel = line.channel or msg.get("Channel", "")
                self._answered(line, msg.get("AMDSTATUS", ""), msg.get("AMDCAUSE", ""))
        elif event == "HangupRequest":
            # Before the OriginateResponse in every order seen (captures 27 and 28): the cause of a refusal.
            line = self._lines.get(msg.get("Uniqueid", ""))
            if line is not None and line.phase == "ringing" and msg.get("Cause", "").isdigit():
                line.cause = int(msg["Cause"])
        elif event == "Hangup":
            line = self._lines.get(msg.get("Uniqueid", ""))
            if line is not None:
                if not line.channel:
                    line.channel = msg.get("Channel", "")
                if line.phase == "ringing" and line.cause is None and msg.get("Cause", "").isdigit():
                    line.cause = int(msg["Cause"])
                self._line_gone(line)

    def _answered(self, line: _Line, status: str, cause: str) -> None:
        run = self.runs.get(line.campaign)
        if run is None or line.phase not in ("ringing", "up"):
            return
        line.amd = f"{status}/{cause}"
        by = answered_by(status)
        self.recorder.record(f.DialerStep(run.name, "answered", line.call_id, line.agent_id,
                                          f"{by}: {line.amd}"))
        line.phase = "waiting"
        if line.agent_id:  # preview: the agent's leg is up already
            line.phase = "connecting"
            self._spawn(self._bridge_preview(run, line), f"bridge {line.call_id}")
        self._feed(run, pc.LineAnswered(line.call_id, by))

    def _line_gone(self, line: _Line) -> None:
        """The customer's line hung up."""
        run = self.runs.get(line.campaign)
        if line.phase == "ringing" or run is None:
            line.gone = True  # the Originate's answer decides (failure), or its success sees `gone`
            return
        if line.phase == "closing":
            self._finish(line)
            return
        if line.phase == "talking":
            line.outcome = AttemptOutcome.CONNECTED
            self._handle_ended(run, line, "answered")
        elif line.phase == "connecting":
            line.outcome = AttemptOutcome.ABANDONED  # the person left while their agent was being reached
            self._hang_up(line.pbx, line.agent_leg)
            self._handle_ended(run, line, "abandoned")
        elif line.phase == "waiting":
            line.outcome = AttemptOutcome.ABANDONED
            self._feed(run, pc.CallAbandoned(line.call_id))
        else:  # up: hung up during AMD
            line.outcome = AttemptOutcome.NO_ANSWER if line.outcome is None else line.outcome
            self._feed(run, pc.LineFailed(line.call_id, "no-answer"))
        self._finish(line)

    def _handle_ended(self, run: _Run, line: _Line, outcome: str, wrap_up_s: float | None = None) -> None:
        """The agent's call is over: wrap-up in the ACD (the campaign's length unless given); the pacer frees
        them when the ACD does. The attempt is kept for the agent's disposition."""
        self._feed(run, pc.HandleEnded(line.call_id))
        if is_survey(run.stored):  # a survey line is free again at once
            self._feed(run, pc.WrapUpEnded(line.agent_id))
            self._release(run, line.agent_id)
            return
        if line.claimed:
            run.wrapping.add(line.agent_id)
            self._handled[line.call_id] = Handled(run.name, line.attempt_id, line.agent_id, line.contact.e164)
            while len(self._handled) > 1000:
                del self._handled[next(iter(self._handled))]
        self._unclaim(run, line, outcome, wrap_up_s)

    # ------------------------------------------------------------------ decisions

    async def _connect(self, run: _Run, line: _Line, agent_id: str, ring_s: float) -> None:
        if is_survey(run.stored):
            await self._to_survey(run, line, agent_id)
            return
        call_id = line.call_id
        self.recorder.record(f.DialerStep(run.name, "connect", call_id, agent_id))
        # The agent's leg is the line's, as an ACD offer's is its caller's: no call of its own.
        self.bus.publish(LineAgentLeg(call_id, f"{call_id}-agent"))
        leg = await self._agent_leg(line, agent_id, ring_s)
        # The person hung up meanwhile (the wrap-up is under way), or the pacer gave the line to another agent
        # (this one left the ACD while their phone rang): not this agent's call any more.
        if self._lines.get(call_id) is not line or line.agent_id != agent_id:
            if leg is not None:
                self._hang_up(line.pbx, leg)
            return
        if leg is not None and await self._bridge(line, leg):
            line.phase = "talking"
            self.recorder.record(f.DialerStep(run.name, "connected", call_id, agent_id))
            self._feed(run, pc.CallConnected(call_id, agent_id))
            return
        if leg is not None:
            self._hang_up(line.pbx, leg)
        # The agent did not come: the call is first in line again, its 2 s still running. The line lets go
        # of the agent (in the ACD too) before the pacer hears of it: the pacer may give the line to its
        # next agent at once (the ACD freeing this one is read as them ready), and that claim is theirs.
        line.phase = "waiting"
        self._unclaim(run, line, "agent_no_answer", 0.0)
        line.agent_id = ""
        run.busy.discard(agent_id)
        run.ready[agent_id] = False  # read again from the ACD
        self._feed(run, pc.AgentAway(agent_id, "no agent leg"))

    async def _to_survey(self, run: _Run, line: _Line, port: str) -> None:
        """The person goes to the campaign's survey flow; the survey line is theirs until they hang up."""
        self.recorder.record(f.DialerStep(run.name, "survey", line.call_id, port, run.stored.campaign.flow))
        try:
            await line.pbx.control.redirect(line.channel, SURVEY_CONTEXT, "s")
        except (AmiError, InvalidValue, ValueError) as e:
            log.error("dialer: %s to the survey: %s", line.call_id, e)
            self._hang_up(line.pbx, line.channel)  # its hang-up ends the attempt (abandoned) and frees the line
            return
        if self._lines.get(line.call_id) is line:
            line.phase = "talking"
            self._feed(run, pc.CallConnected(line.call_id, port))

    async def _bridge_preview(self, run: _Run, line: _Line) -> None:
        if line.agent_leg and await self._bridge(line, line.agent_leg):
            line.phase = "talking"
            self.recorder.record(f.DialerStep(run.name, "connected", line.call_id, line.agent_id))
            return
        line.phase = "closing"
        self._hang_up(line.pbx, line.channel)

    async def _agent_leg(self, line: _Line, agent_id: str, ring_s: float | None = None) -> str | None:
        view = self.router().agent_view(agent_id, self.clock())
        if not view.endpoint:
            return None
        try:
            result = await line.pbx.control.originate_agent_leg(
                view.endpoint, channel_id=f"{line.call_id}-agent", caller_id_name=line.contact.name,
                caller_id_num=line.contact.e164, ring_timeout_s=ring_s or self.settings.agent_ring_s)
        except (AmiError, InvalidValue, ValueError) as e:
            log.error("dialer: agent %s's leg for %s: %s", agent_id, line.call_id, e)
            return None
        if not result.success:
            return None
        line.agent_leg = result.channel
        return result.channel

    async def _bridge(self, line: _Line, leg: str) -> bool:
        try:
            await line.pbx.control.bridge(line.channel, leg)
        except (AmiError, InvalidValue, ValueError) as e:
            log.error("dialer: bridge %s to %s: %s", line.call_id, leg, e)
            return False
        return True

    async def _abandon(self, line: _Line, message: str, waited_s: float) -> None:
        self.recorder.record(f.DialerStep(line.campaign, "abandon", line.call_id,
                                          detail=f"{message} after {waited_s:.2f} s"))
        if self._lines.get(line.call_id) is line:  # still there to hear it
            await self._send_to(line, "abandon")

    async def _machine(self, line: _Line, action: str, message: str) -> None:
        self.recorder.record(f.DialerStep(line.campaign, "machine", line.call_id, detail=(
            f"message {message}" if action == "message" else "hang_up")))
        if self._lines.get(line.call_id) is not line:
            return
        if action == "message":
            await self._send_to(line, "machine")
        else:
            self._hang_up(line.pbx, line.channel)

    async def _send_to(self, line: _Line, exten: str) -> None:
        try:
            await line.pbx.control.redirect(line.channel, self.settings.context, exten)
        except (AmiError, InvalidValue, ValueError) as e:
            log.error("dialer: %s to %s: %s", line.call_id, exten, e)
            self._hang_up(line.pbx, line.channel)

    def _hang_up(self, pbx: Pbx, channel: str) -> None:
        if channel:
            self._spawn(self._quiet_hangup(pbx, channel), f"hangup {channel}")

    @staticmethod
    async def _quiet_hangup(pbx: Pbx, channel: str) -> None:
        with contextlib.suppress(AmiError):  # gone already: nothing to hang up
            await pbx.control.hangup(channel)

    def _release(self, run: _Run, agent_id: str) -> None:
        """The agent is the ACD's to tell about again."""
        run.busy.discard(agent_id)
        run.ready[agent_id] = True  # the pacer has them free (wrap-up ended, or a preview line failed)
        self._sync_agents(run)

    # ------------------------------------------------------------------ outcomes

    def _finish(self, line: _Line) -> None:
        if self._lines.pop(line.call_id, None) is None:
            return
        run = self.runs.get(line.campaign)
        if run is not None and line.claimed:
            # Ended some other way (a preview line whose bridge failed): the agent is never left busy, in the
            # ACD nor in the pacer.
            self._handle_ended(run, line, (line.outcome or AttemptOutcome.FAILED).value, 0.0)
        task = self._spawn(self._record(line), f"outcome {line.call_id}")
        if task is not None:
            self._recording[line.call_id] = task
            task.add_done_callback(partial(self._written, line.call_id))

    def _written(self, call_id: str, _task: asyncio.Task[None]) -> None:
        self._recording.pop(call_id, None)

    async def _record(self, line: _Line) -> None:
        outcome = line.outcome or AttemptOutcome.FAILED
        self.recorder.record(f.DialerLineEnded(line.call_id, line.campaign, line.attempt_id, outcome.value,
                                               line.agent_id, line.amd))
        await self.campaigns.record_outcome(line.attempt_id, AttemptResult(
            outcome, right_party=is_right_party(outcome.value), call_id=line.call_id, agent=line.agent_id,
            amd=line.amd), datetime.fromtimestamp(self.clock(), UTC))

    async def settle_open_attempts(self) -> list[f.DialerLineEnded]:
        """Attempts a crash left dialling get the outcome the journal supports (connected, machine,
        abandoned, else failed, which the campaign retries)."""
        settled: list[f.DialerLineEnded] = []
        now = self.clock()
        backend = self.campaigns.store.backend
        for attempt in await self.campaigns.open_attempts():
            steps: list[str] = []
            agent = amd = ""
            after = 0
            while True:
                rows = await backend.read(read_rows_between(attempt.started_at - 1, now + 1, after, 1000))
                for seq, _at, kind, call_id, agent_id, body in rows:
                    after = seq
                    if call_id != attempt.call_id or not kind.startswith("dialer."):
                        continue
                    fact = f.decode(kind, body)
                    if isinstance(fact, f.DialerStep):
                        steps.append(fact.step)
                        agent = fact.agent_id or agent
                        amd = fact.detail if fact.step == "answered" else amd
                if len(rows) < 1000:
                    break
            outcome = settled_outcome(steps)
            ended = f.DialerLineEnded(attempt.call_id, attempt.campaign, attempt.attempt_id, outcome.value,
                                      agent, amd, settled=True)
            self.recorder.record(ended)
            await self.campaigns.record_outcome(attempt.attempt_id, AttemptResult(
                outcome, right_party=outcome is AttemptOutcome.CONNECTED, call_id=attempt.call_id, agent=agent,
                amd=amd), datetime.fromtimestamp(now, UTC))
            log.warning("dialer: attempt %d (%s, campaign %r) was left dialling: settled as %s", attempt.attempt_id,
                        attempt.call_id, attempt.campaign, outcome.value)
            settled.append(ended)
        return settled

    # ------------------------------------------------------------------ preview

    async def _preview(self, run: _Run, agent_id: str) -> None:
        async with run.lock:
            if agent_id in run.cards or not run.ready.get(agent_id):
                return
            now = datetime.fromtimestamp(self.clock(), UTC)
            shown = {c.contact_id for c in run.cards.values()}
            found = await self.campaigns.next_contacts(run.name, now, limit=len(shown) + len(run.skipped) + 1)
            contacts = [c for c in found if c.contact_id not in shown and c.contact_id not in run.skipped]
            if not contacts and run.skipped:  # every card left was skipped once: show them again
                run.skipped.clear()
                contacts = [c for c in found if c.contact_id not in shown]
            if not contacts:
                # Nothing to show now: the agent is offered a card again at the next poll.
                run.ready[agent_id] = False
                self._feed(run, pc.AgentAway(agent_id, "no contact to preview"))
                return
            card = contacts[0]
            run.cards[agent_id] = card
        self.recorder.record(f.DialerStep(run.name, "preview", agent_id=agent_id,
                                          detail=f"contact {card.contact_id} {card.e164}"))
        offered = PreviewOffered(run.name, agent_id, card.contact_id, card.e164, card.name)
        if self.push is not None:
            self.push(agent_id, "preview_card", {
                "campaign": run.name, "contact_id": card.contact_id, "number": card.e164, "name": card.name,
                "script": run.stored.campaign.script})
        self.bus.publish(offered)

    async def preview_dial(self, agent_id: str) -> str | None:
        """The agent dials the card on their console: the call id, or None (no card, or refused at dial time:
        the agent gets the next card)."""
        for run in self.runs.values():
            card = run.cards.get(agent_id)
            if card is None:
                continue
            async with run.lock:
                del run.cards[agent_id]
                run.busy.add(agent_id)
                line = await self._begin(run, card, datetime.fromtimestamp(self.clock(), UTC), agent_id)
            if line is None:
                run.busy.discard(agent_id)
                self._feed(run, pc.AgentReady(agent_id))  # the next card
                return None
            return line.call_id
        return None

    def preview_skip(self, agent_id: str) -> bool:
        """The agent passes on the card: the next one comes."""
        for run in self.runs.values():
            card = run.cards.pop(agent_id, None)
            if card is not None:
                run.skipped.add(card.contact_id)
                self.recorder.record(f.DialerStep(run.name, "preview_skipped", agent_id=agent_id,
                                                  detail=f"contact {card.contact_id} {card.e164}"))
                self._feed(run, pc.AgentReady(agent_id))
                return True
        return False
