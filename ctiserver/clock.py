"""The server's one clock: wall-clock epoch seconds that never go backwards.

Everything that stamps a time (the journal, the ACD router, the call model) reads this clock, so a
journaled fact's time is the time the router decided at, and a replay or a restart continues the same
timeline. It follows the system clock at start and the monotonic clock after, so an NTP step while
running does not send the router back in time; a restart never starts before the journal's last fact.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, not_before: float = 0.0) -> None:
        self._offset = max(time.time(), not_before) - time.monotonic()

    def __call__(self) -> float:
        return self._offset + time.monotonic()
