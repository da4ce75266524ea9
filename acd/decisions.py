"""Outputs of the router: what the service must do, and what happened (for screen pops,
the supervisor monitor, statistics and the append-only queue log).

Actions for call control: `Offer`, `CancelOffer`, `Announce`, `TimeoutAction`.
Domain events: `AgentStateChanged`, `CallStateChanged`, `QueueLogEntry`.
Answers to nonsense: `Refusal` (state is left unchanged).
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


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Hang up the agent's ringing leg (caller gone, agent logged out)."""

    call_id: str
    agent_id: str
    reason: str


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
    """One append-only queue log line, in the spirit of Asterisk's queue_log."""

    at: float
    call_id: str
    queue: str
    agent_id: str
    verb: str
    data: tuple[str, ...] = ()

    def line(self) -> str:
        fields = [f"{self.at:.3f}", self.call_id or "NONE", self.queue or "NONE", self.agent_id or "NONE",
                  self.verb, *self.data]
        return "|".join(fields)


@dataclass(frozen=True, slots=True)
class PauseDeferred:
    """The agent asked for a pause while busy: it starts after wrap-up instead."""

    agent_id: str
    reason: str
    state: str
    at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """`event` made no sense in the current state; nothing changed."""

    event: Event
    reason: str


Decision = (Offer | CancelOffer | Announce | TimeoutAction | AgentStateChanged | CallStateChanged
            | QueueLogEntry | PauseDeferred | Refusal)
