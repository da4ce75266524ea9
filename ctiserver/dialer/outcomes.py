"""What the PBX said about a campaign line, as the pacer and the campaign count it. Pure.

Capture 15 (Asterisk 22): a failed Originate's `Reason` is 5 for busy, 8 for congestion, 3 for no answer
within the Timeout, 0 for a rejected call (cause 21) or a dial string that does not exist, 1 for a line
hung up while ringing. A line originated straight on the trunk (`PJSIP/<number>@trunk`, capture 26) says
`Reason: 0` for a busy number too: there only the line's `HangupRequest` `Cause`, which comes first, tells
busy (17) from no answer (19) and a refusal (21). AMD()'s verdict comes as `AMDSTATUS` (HUMAN, MACHINE,
NOTSURE, HANGUP).
"""

from __future__ import annotations

from acd.pacing import AnsweredBy, LineFailure
from crmstore.campaigns import AttemptOutcome

_FAILURES: dict[int, tuple[LineFailure, AttemptOutcome]] = {
    5: ("busy", AttemptOutcome.BUSY),
    3: ("no-answer", AttemptOutcome.NO_ANSWER),
    1: ("no-answer", AttemptOutcome.NO_ANSWER),  # hung up while ringing: nobody answered
    8: ("congestion", AttemptOutcome.FAILED),
}


# Q.850 causes of the line's Hangup, for a Failure whose Reason says nothing (0).
_BY_CAUSE: dict[int, int] = {17: 5, 18: 3, 19: 3, 34: 8, 38: 8, 42: 8}


def failed_line(reason: int, cause: int | None = None) -> tuple[LineFailure, AttemptOutcome]:
    """The pacer's failure and the campaign's outcome for an OriginateResponse Failure `Reason`, and the
    line's hang-up `Cause` when one was read before it."""
    if reason not in _FAILURES and cause is not None:
        reason = _BY_CAUSE.get(cause, reason)
    return _FAILURES.get(reason, ("failed", AttemptOutcome.FAILED))


def answered_by(amd_status: str) -> AnsweredBy:
    """NOTSURE counts as a person: somebody may be there, and hanging up on them is the worse mistake."""
    return "machine" if amd_status.strip().upper() == "MACHINE" else "human"


def settled_outcome(steps: list[str]) -> AttemptOutcome:
    """The outcome of a line a crash left open, from the dialer steps journaled for it (in order)."""
    if "connected" in steps or "survey" in steps:  # put through to an agent, or to a survey campaign's flow
        return AttemptOutcome.CONNECTED
    if "machine" in steps:
        return AttemptOutcome.ANSWERING_MACHINE
    if "abandon" in steps or "answered" in steps or "connect" in steps:
        return AttemptOutcome.ABANDONED  # a person answered and nobody was put through
    return AttemptOutcome.FAILED  # never answered as far as we know: our fault, not the customer's
