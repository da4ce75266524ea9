"""A call's recording as a state machine: the moves a console or the queue's policy may make. Pure.

    (none) --start--> recording --pause--> paused --resume--> recording
    recording|paused --stop--> stopped --start--> recording (appended to the same file)

Illegal moves raise IllegalMove with a reason a console can show; nothing is sent to the PBX for them.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Literal


class RecState(StrEnum):
    RECORDING = "recording"
    PAUSED = "paused"  # a card payment: the PBX writes silence meanwhile (capture 20 B)
    STOPPED = "stopped"


Move = Literal["start", "pause", "resume", "stop"]
MOVES: tuple[Move, ...] = ("start", "pause", "resume", "stop")

TRANSITIONS = MappingProxyType({
    ("start", None): RecState.RECORDING,
    ("start", RecState.STOPPED): RecState.RECORDING,
    ("pause", RecState.RECORDING): RecState.PAUSED,
    ("resume", RecState.PAUSED): RecState.RECORDING,
    ("stop", RecState.RECORDING): RecState.STOPPED,
    ("stop", RecState.PAUSED): RecState.STOPPED,
})

_WHY = {
    "start": "the call is being recorded already",
    "pause": "the recording is not running",
    "resume": "the recording is not paused",
    "stop": "the call is not being recorded",
}


class IllegalMove(Exception):
    def __init__(self, move: str, state: RecState | None) -> None:
        super().__init__(_WHY.get(move, f"unknown move {move!r}"))
        self.move = move
        self.state = state


def next_state(move: str, state: RecState | None) -> RecState:
    try:
        return TRANSITIONS[(move, state)]  # type: ignore[index]
    except KeyError:
        raise IllegalMove(move, state) from None
