"""Domain events about calls, published by the call model on the bus.

Frozen, slotted, and plain data: they cross from the pure call model to the edges (ACD service, CRM
logging, websocket gateway) and into tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from .callmodel.states import CallPhase


@dataclass(frozen=True, slots=True)
class CallArrived:
    call_id: str
    pbx: str
    channel: str
    uniqueid: str
    caller_num: str
    caller_name: str
    dialed: str
    at: float


@dataclass(frozen=True, slots=True)
class CallPhaseChanged:
    call_id: str
    old: CallPhase
    new: CallPhase
    at: float


@dataclass(frozen=True, slots=True)
class LegRinging:
    """A leg other than the caller's rings (an agent's phone, a transfer target)."""

    call_id: str
    channel: str
    uniqueid: str
    at: float


@dataclass(frozen=True, slots=True)
class CallConnected:
    call_id: str
    peer_channel: str
    peer_uniqueid: str
    at: float


@dataclass(frozen=True, slots=True)
class CallHeld:
    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallResumed:
    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallTransferred:
    call_id: str
    kind: str  # "blind", "attended", "redirect" (a CTI redirect: the connected peer changed)
    from_peer: str
    to_peer: str
    at: float


@dataclass(frozen=True, slots=True)
class LegHungUp:
    call_id: str
    channel: str
    uniqueid: str
    cause: int
    cause_txt: str
    is_caller: bool
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    cause: int
    cause_txt: str
    at: float
