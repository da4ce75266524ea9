"""The channels the CTI originates itself, named by their ChannelId (which Asterisk makes their Uniqueid), so
that anyone (this process, a restarted one, a replay) tells them from callers' calls. Pure.

* ``cti-offer-<n>-<agent>``  an agent's leg for an ACD offer (acd.router numbers the offers)
* ``cti-consult-<n>-<agent>`` an outside party dialled for a consultation
* ``cti-out-<ms>-<agent>``    an agent's click-to-call
* ``cti-fu-<id>-<ms>-<agent>`` an agent's call of follow-up <id> from their worklist
* ``cti-spy-<ms>-<n>``        a supervisor's listen/whisper/barge call
* ``cti-cust-<n>-<agent>``    the customer's leg of callback offer <n> (ctiserver.outbound)
* ``cti-listen-<uuid>``       a speech menu's ear: ChanSpy on the caller streaming to AudioSocket (;1, ;2 ends -2)
"""

from __future__ import annotations

OFFER = "cti-offer-"
CONSULT = "cti-consult-"
OUTBOUND = "cti-out-"
SPY = "cti-spy-"
FOLLOW_UP = "cti-fu-"
CUSTOMER = "cti-cust-"
LISTEN = "cti-listen-"


def ours(uniqueid: str) -> bool:
    """A channel the CTI originated: never a caller arriving."""
    return uniqueid.startswith("cti-")


def offer_owner(leg_id: str) -> str | None:
    """The agent an offer leg is for."""
    parts = leg_id.split("-", 3)
    return parts[3] if len(parts) == 4 and leg_id.startswith(OFFER) else None


def follow_up_call(leg_id: str) -> tuple[int, float, str] | None:
    """(follow-up, when the call was placed in seconds, agent) of a follow-up call's leg; None for others."""
    parts = leg_id.split("-", 4)
    if len(parts) != 5 or not leg_id.startswith(FOLLOW_UP) or not parts[2].isdigit() or not parts[3].isdigit():
        return None
    return int(parts[2]), int(parts[3]) / 1000, parts[4]


def dialled_by_agent(leg_id: str) -> bool:
    """An agent's own outbound call (click-to-call, a follow-up): not an ACD call."""
    return leg_id.startswith((OUTBOUND, FOLLOW_UP))
