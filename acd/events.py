"""Inputs of the router: what happened, as frozen slotted dataclasses.

Time is never inside an event: `Router.handle(event, now)` receives it explicitly
(monotonic seconds), so replays and tests control the clock.

Two families: call-side facts reported by the PBX (through the call model) and agent
commands from the console. Agent commands may be refused; PBX facts never are, but a
stale one (second hang-up of the same call) is answered with a `Refusal` for the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# ---------------------------------------------------------------- caller side


@dataclass(frozen=True, slots=True)
class CallEnqueued:
    """A caller enters a queue (IVR `queue` node). `priority` comes from the IVR; `vip` and
    `grade` from the CRM; `sticky_agent_id` is the caller's last agent from CRM history.
    `skills`: extra skills this caller needs on top of the queue's (the flow's `skills: [korean]`):
    only agents holding each of them (level >= 1) are offered the call."""

    call_id: str
    queue: str
    priority: int = 0
    caller_num: str = ""
    sticky_agent_id: str | None = None
    vip: bool = False
    grade: str | None = None
    skills: tuple[str, ...] = ()  # last, with a default: journals written before it still decode
    site: str = ""  # the PBX the caller is on: no offers while it cannot be reached
    # A callback whose time came (booked: the web, a supervisor): a virtual caller from the start, to be
    # dialled on this number when an agent takes it.
    callback_number: str | None = None


@dataclass(frozen=True, slots=True)
class CallLeftQueue:
    """The flow took the caller out of the queue (key for voicemail, transfer...).
    `reason` is free text for the log; 'abandoned' counts as an abandon in statistics, and a reason
    starting with 'lost' (e.g. 'lost: PBX restart') is a call the system ended: nobody's abandon."""

    call_id: str
    reason: str = "left"


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """The caller pressed the callback key: the call keeps its place as a virtual caller
    (no channel any more) and is offered to an agent when its turn comes."""

    call_id: str
    number: str | None = None  # defaults to the caller's number


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller's channel is gone, in any state (waiting, ringing an agent, connected)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class OfferRinging:
    """The agent's phone started ringing for this offer (screen-pop moment)."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    call_id: str
    agent_id: str


# "cancelled": withdrawn by the CTI or lost with the PBX (link down, restart), no fault of the agent.
OfferFailure = Literal["no-answer", "busy", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class OfferFailed:
    """The agent leg did not answer (OriginateResponse Reason 3 is no-answer, see capture 05). Only a
    ring-no-answer or a busy phone puts the agent in not_responding; the other reasons are not theirs."""

    call_id: str
    agent_id: str
    reason: OfferFailure = "no-answer"


@dataclass(frozen=True, slots=True)
class HoldStarted:
    call_id: str


@dataclass(frozen=True, slots=True)
class HoldEnded:
    call_id: str


HungUpBy = Literal["caller", "agent", "unknown"]


@dataclass(frozen=True, slots=True)
class AgentCallEnded:
    """The agent's part of a connected call ended: wrap-up starts. `hung_up_by` comes from the facts of
    the hang-up (whose channel asked first); "unknown" when the end was not seen (link down, restart)."""

    agent_id: str
    call_id: str
    hung_up_by: HungUpBy = "agent"
    # An end nobody saw (link down, server down): it happened after this time, before the event's. Talk
    # time counts to it, never to the moment the end was found.
    not_before: float | None = None


@dataclass(frozen=True, slots=True)
class TransferToQueue:
    """The agent sends the caller to a queue: the agent's part ends, the caller waits in `queue` keeping
    the age of the first entry (priority aging)."""

    call_id: str
    agent_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class TransferToAgent:
    """Blind transfer to another agent, who must be available: reserved at once, so nobody else can
    offer them a call while their phone rings; the first agent's part ends."""

    call_id: str
    agent_id: str
    target_agent_id: str


@dataclass(frozen=True, slots=True)
class TransferOut:
    """The caller leaves the ACD for an outside number (blind, or an attended transfer completed)."""

    call_id: str
    agent_id: str
    destination: str


@dataclass(frozen=True, slots=True)
class ConsultStarted:
    """Attended transfer to another agent: the target is reserved and rung; the caller waits on hold
    with the first agent, who stays on the call until `ConsultEnded`."""

    call_id: str
    agent_id: str
    target_agent_id: str


@dataclass(frozen=True, slots=True)
class ConsultEnded:
    """`completed`: the consulted agent takes the caller and the first agent's part ends; otherwise the
    consulted agent is released and the caller stays with the first agent."""

    call_id: str
    agent_id: str
    completed: bool


@dataclass(frozen=True, slots=True)
class CallMoved:
    """A supervisor moves a waiting caller to another queue (`queue`), or to the head of the line."""

    call_id: str
    queue: str | None = None
    to_head: bool = False


# ---------------------------------------------------------------- agent commands


@dataclass(frozen=True, slots=True)
class AgentLoggedIn:
    """Binds the agent to a phone endpoint (e.g. PJSIP/1001). `endpoint=None` uses the agent's
    configured default; `queues=None` uses the configured membership."""

    agent_id: str
    endpoint: str | None = None
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AgentLoggedOut:
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentReady:
    """The agent is available (from paused, not-responding, or ending wrap-up early)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentPaused:
    """Pause with a configured reason code. On a call it is deferred to after wrap-up."""

    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class WrapUpDone:
    agent_id: str


@dataclass(frozen=True, slots=True)
class WrapUpHeld:
    """The agent's wrap-up form for `call_id` is open with work in it: the wrap-up lasts until it is saved
    or the queue's `wrap_up_max_s`, not the queue's `wrap_up_s`; no offer meanwhile."""

    agent_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class SiteUnavailable:
    """The PBX `site` cannot be steered (its AMI link is down): its callers keep their places, nobody is
    offered one of them (an Originate there would fail at once, agent after agent) until it is back."""

    site: str


@dataclass(frozen=True, slots=True)
class SiteAvailable:
    """The PBX `site` can be steered again: its waiting callers are routed, best first."""

    site: str


@dataclass(frozen=True, slots=True)
class OutboundStarted:
    """The agent dials out (click-to-call, a callback dialled agent first): busy from now, no offers, until
    `OutboundEnded`. `queue` names whose wrap-up rule applies after ("": no wrap-up time, ready at once
    unless the agent holds the form open). An agent paused before dialling goes back to that pause."""

    agent_id: str
    call_id: str
    queue: str = ""


@dataclass(frozen=True, slots=True)
class OutboundEnded:
    """The agent's outbound call ended (`outcome`: answered, busy, no_answer, failed, agent_no_answer,
    cancelled): wrap-up starts, by the rules of the queue the call started with. `queue` repeats it for
    the record; the router keeps its own."""

    agent_id: str
    call_id: str
    outcome: str = "answered"
    hung_up_by: HungUpBy = "unknown"
    queue: str = ""
    # The wrap-up's own length (a campaign's), in place of the queue's `wrap_up_s`; the queue's maximum
    # while the form is open still applies. None: the queue's rule.
    wrap_up_s: float | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Only advances the clock: escalations, wrap-up expiry, announcements, deadlines."""


CallEvent = (CallEnqueued | CallLeftQueue | CallbackRequested | CallerHungUp | OfferRinging | OfferAnswered
             | OfferFailed | HoldStarted | HoldEnded | AgentCallEnded | TransferToQueue | TransferToAgent
             | TransferOut | ConsultStarted | ConsultEnded | CallMoved)
AgentCommand = (AgentLoggedIn | AgentLoggedOut | AgentReady | AgentPaused | WrapUpDone | WrapUpHeld
                | OutboundStarted | OutboundEnded)
SiteEvent = SiteUnavailable | SiteAvailable
Event = CallEvent | AgentCommand | SiteEvent | Tick
