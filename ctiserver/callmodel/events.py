"""Domain events about calls, published by the call model on the bus.

Frozen, slotted, and plain data: they cross from the pure call model to the edges (ACD service, CRM
logging, websocket gateway) and into tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .states import CallPhase


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


# Who ended the caller's connection with its party: read from the facts of the hang-up (whose channel
# asked first: HangupRequest, SoftHangupRequest, or the Hangup itself), never from which Hangup event
# happens to arrive first. "unknown" when the end was not seen or the PBX ended it (restart).
HungUpBy = Literal["caller", "agent", "unknown"]


@dataclass(frozen=True, slots=True)
class LegHungUp:
    call_id: str
    channel: str
    uniqueid: str
    cause: int
    cause_txt: str
    is_caller: bool
    at: float
    hung_up_by: HungUpBy = "unknown"
    observed: bool = True  # False: found gone at a resync (the AMI link was down)
    not_before: float | None = None  # for an end not observed: last seen alive
    reason: str = ""  # "", "pbx_restart", "link_down"


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    cause: int
    cause_txt: str
    at: float
    hung_up_by: HungUpBy = "unknown"
    observed: bool = True
    not_before: float | None = None
    reason: str = ""  # "", "pbx_restart", "link_down"


@dataclass(frozen=True, slots=True)
class PbxContactChanged:
    """The PBX's own view of a phone's registration (AMI ContactStatus, res_pjsip): a contact of ``endpoint``
    registered (NonQualified, then Reachable once qualified), went Unreachable, or was Removed (unregistered,
    expired, or its websocket closed: a browser that died). Capture 30."""

    pbx: str
    endpoint: str
    uri: str
    status: str
    at: float


@dataclass(frozen=True, slots=True)
class PbxContactsListed:
    """Every contact the PBX has, listed when the AMI link (re)connects (PJSIPShowContacts: ContactList events,
    then ContactListComplete; capture 33). Endpoints with no contact in it have none on that PBX: a phone that
    went while nobody was watching (the CTI restarting, the link down)."""

    pbx: str
    contacts: tuple[PbxContactChanged, ...]  # status: Reachable, Unreachable, NonQualified or Unknown
    at: float


@dataclass(frozen=True, slots=True)
class PbxShutdown:
    """Asterisk announced it is shutting down or restarting (AMI Shutdown event)."""

    pbx: str
    restart: bool
    at: float
