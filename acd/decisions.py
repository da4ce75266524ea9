"""Outputs of the router: what the service must do, and what happened (for screen pops,
the supervisor monitor, statistics and the append-only queue log).

Actions for call control: `Offer`, `CancelOffer`, `Announce`, `TimeoutAction`.
Domain events: `AgentStateChanged`, `CallStateChanged`, `QueueLogEntry`.
Answers to nonsense: `Refusal` (state is left unchanged), `Ignored` (the event was applied without
the part that made no sense).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from acd.events import Event


@dataclass(frozen=True, slots=True)
class Offer:
    """Reserve `agent_id` and ring `endpoint`; report OfferRinging/OfferAnswered/OfferFailed.
    For a virtual (callback) caller, ring the agent first, then dial `callback_number`."""

    call_id: str
    agent_id: str
    endpoint: str
    queue: str
    via_queue: str  # the queue whose membership qualified the agent (differs on overflow)
    ring_timeout_s: float
    caller_num: str
    callback_number: str | None = None
    # The ChannelId to originate the agent's leg with: chosen here so a replay of the router names the
    # same leg, and a restarted server knows which channel is whose.
    leg_id: str = ""
    # "queue": a caller from the line; "transfer": a blind transfer from another agent; "consult": the
    # first agent wants to speak to this one before handing the caller over.
    kind: Literal["queue", "transfer", "consult"] = "queue"


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Hang up the agent's ringing leg (caller gone, agent logged out)."""

    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Handover:
    """An attended transfer completed: bridge the caller with `to_agent`'s leg (`leg_id`) and let the
    first agent's leg go."""

    call_id: str
    from_agent: str
    to_agent: str
    leg_id: str


@dataclass(frozen=True, slots=True)
class Announce:
    call_id: str
    queue: str
    position: int  # 1 = next in line
    estimated_wait_s: int


@dataclass(frozen=True, slots=True)
class TimeoutAction:
    """A deadline ended the wait. `callback`: the call is now a virtual caller keeping its
    place (hang up the caller after confirming); `voicemail`: send the caller to voicemail
    (the call has left the ACD); `queue`: the router already moved the call to `target`."""

    call_id: str
    queue: str
    action: Literal["callback", "voicemail", "queue"]
    target: str | None


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    agent_id: str
    old: str
    new: str
    reason: str
    at: float
    time_in_old_s: float
    queues: tuple[str, ...]  # queues the agent serves in this session (for per-queue counts)
    call_id: str | None = None
    queue: str | None = None  # queue of the call involved, if any
    leg_id: str = ""  # the agent's leg for that call (the offer a console shows is named by it)


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    call_id: str
    queue: str
    old: str
    new: str
    reason: str
    at: float
    waited_s: float  # since the caller entered this queue
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One queue_log line in Asterisk's grammar (tests/captures 16): epoch seconds, call id, one queue,
    agent, verb and the verb's fields, as app_queue fills them."""

    at: float
    call_id: str
    queue: str
    agent_id: str
    verb: str
    data: tuple[str, ...] = ()

    def line(self) -> str:
        # app_queue always writes at least one (possibly empty) data field: "UNPAUSE|", "ADDMEMBER|".
        fields = [str(int(self.at)), self.call_id or "NONE", self.queue or "NONE", self.agent_id or "NONE",
                  self.verb, *(self.data or ("",))]
        return "|".join(fields)


@dataclass(frozen=True, slots=True)
class PauseDeferred:
    """The agent asked for a pause while busy: it starts after wrap-up instead."""

    agent_id: str
    reason: str
    state: str
    at: float


@dataclass(frozen=True, slots=True)
class WrapUpExtended:
    """The agent's wrap-up now lasts until `until` (the queue's maximum) unless saved before."""

    agent_id: str
    call_id: str
    until: float
    at: float


@dataclass(frozen=True, slots=True)
class Ignored:
    """`event` was applied, but part of it made no sense and was left out (an extra skill the
    configuration does not know): worth a warning in the log, not a refusal of the caller."""

    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """`event` made no sense in the current state; nothing changed."""

    event: Event
    reason: str


Decision = (Offer | CancelOffer | Handover | Announce | TimeoutAction | AgentStateChanged | CallStateChanged
            | QueueLogEntry | PauseDeferred | WrapUpExtended | Ignored | Refusal)
