"""A tracked outbound call as a transition table, and its outcome read from an OriginateResponse. Pure.

The agent's phone rings first; once they answer, the customer's number is dialled as its own Originate
(``Local/<number>@cti-customer/n``), and the two legs are bridged when the customer answers. Each move is
an ``outbound.progress`` fact; the end is ``acd.outbound_ended`` with the outcome.

Outcomes from the customer's Originate, as capture 15 shows them on a real Asterisk 22:
``Reason: 5`` busy, ``Reason: 3`` no answer (the Timeout ran out: cause 19), ``Reason: 8`` congestion and
``Reason: 0`` rejected or unreachable (cause 21, 34): failed; ``Success`` (``Reason: 4``) answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Outbound(str, Enum):
    DIALLING_AGENT = "dialling_agent"
    AGENT_ANSWERED = "agent_answered"
    DIALLING_CUSTOMER = "dialling_customer"
    CUSTOMER_RINGING = "customer_ringing"
    CONNECTED = "connected"
    ENDED = "ended"


O = Outbound
TRANSITIONS: Mapping[tuple[Outbound, str], Outbound] = {
    (O.DIALLING_AGENT, "agent_answered"): O.AGENT_ANSWERED,
    (O.AGENT_ANSWERED, "dial_customer"): O.DIALLING_CUSTOMER,
    (O.DIALLING_CUSTOMER, "ringing"): O.CUSTOMER_RINGING,
    (O.DIALLING_CUSTOMER, "answered"): O.CONNECTED,
    (O.CUSTOMER_RINGING, "answered"): O.CONNECTED,
    **{(s, "end"): O.ENDED for s in (O.DIALLING_AGENT, O.AGENT_ANSWERED, O.DIALLING_CUSTOMER,
                                      O.CUSTOMER_RINGING, O.CONNECTED)},
}

# What came of the call (acd.outbound_ended's outcome, the CRM row's outcome when nobody answered).
ANSWERED, BUSY, NO_ANSWER, FAILED = "answered", "busy", "no_answer", "failed"
AGENT_NO_ANSWER, CANCELLED = "agent_no_answer", "cancelled"
OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, FAILED, AGENT_NO_ANSWER, CANCELLED)

_BY_REASON = {4: ANSWERED, 5: BUSY, 3: NO_ANSWER, 8: FAILED, 0: FAILED, 1: FAILED}


class IllegalMove(RuntimeError):
    pass


def next_state(state: Outbound, trigger: str) -> Outbound:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalMove(f"an outbound call cannot {trigger} while {state.value}") from None


def outcome_of(success: bool, reason: int) -> str:
    """The customer leg's outcome from its OriginateResponse (``Response``, ``Reason``): capture 15."""
    if success:
        return ANSWERED
    outcome = _BY_REASON.get(reason, FAILED)
    return FAILED if outcome == ANSWERED else outcome
