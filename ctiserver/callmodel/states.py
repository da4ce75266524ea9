"""Where a call is, as a transition table (h11 style): illegal moves raise, the doc diagram is drawn from it."""

from __future__ import annotations

from enum import Enum


class CallPhase(str, Enum):
    ARRIVING = "arriving"  # in the dialplan, not yet in the IVR
    IVR = "ivr"  # talking to our FastAGI flow
    QUEUED = "queued"  # waiting for an agent (our ACD, app_queue, or held in music by the dialplan)
    OFFERED = "offered"  # another leg (an agent's phone, a transfer target) is ringing
    CONNECTED = "connected"  # bridged with a live party
    ON_HOLD = "on_hold"  # was connected, now hears music (CTI hold or attended transfer)
    ENDED = "ended"


P = CallPhase

TRANSITIONS: dict[CallPhase, frozenset[CallPhase]] = {
    P.ARRIVING: frozenset({P.IVR, P.QUEUED, P.OFFERED, P.CONNECTED, P.ENDED}),
    P.IVR: frozenset({P.ARRIVING, P.QUEUED, P.OFFERED, P.CONNECTED, P.ENDED}),
    P.QUEUED: frozenset({P.ARRIVING, P.IVR, P.OFFERED, P.CONNECTED, P.ENDED}),
    # An offer that fails puts the caller back in the queue; a blind transfer rings a new target.
    P.OFFERED: frozenset({P.ARRIVING, P.IVR, P.QUEUED, P.CONNECTED, P.ENDED}),
    P.CONNECTED: frozenset({P.ON_HOLD, P.OFFERED, P.QUEUED, P.ARRIVING, P.IVR, P.ENDED}),
    P.ON_HOLD: frozenset({P.CONNECTED, P.OFFERED, P.QUEUED, P.ARRIVING, P.ENDED}),
    P.ENDED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(old: CallPhase, new: CallPhase) -> None:
    if new is not old and new not in TRANSITIONS[old]:
        raise IllegalTransition(f"call cannot go from {old.value} to {new.value}")


def mermaid_diagram() -> str:
    """The state diagram in docs/call-model.md is this function's output (a test keeps them equal)."""
    lines = ["stateDiagram-v2", "    [*] --> arriving"]
    for old, targets in TRANSITIONS.items():
        for new in sorted(targets, key=lambda p: list(CallPhase).index(p)):
            lines.append(f"    {old.value} --> {new.value}")
    lines.append("    ended --> [*]")
    return "\n".join(lines)
