"""MixMonitor as app_mixmonitor does it, seen from the file it writes (captures 07 B and 20).

The file is 8 kHz 16-bit mono WAV, as long as the recording ran: muted stretches (MixMonitorMute State 1)
are written as silence, not cut out (capture 20: 1.5 s talk, 1.5 s muted, 1.5 s talk gave a 4.52 s file
whose middle is all zeros). A recording ends with StopMixMonitor or when its channel hangs up; the hang-up
closes the file without a MixMonitorStop event (capture 20 D). The simulated audio is a quiet tone.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass, field
from pathlib import Path

RATE = 8000
_TONE = bytes(b for n in range(RATE // 100)  # one 10 ms period of 100 Hz at about -20 dBFS
              for b in int(3000 * math.sin(2 * math.pi * n / (RATE // 100))).to_bytes(2, "little", signed=True))


@dataclass(slots=True)
class Recording:
    """One MixMonitor on one channel: where it writes and when it was muted (virtual seconds)."""

    file: str
    started_at: float
    append: bool = False  # option a: added to the end of an existing file
    muted_since: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)

    def mute(self, on: bool, now: float) -> None:
        if on and self.muted_since is None:
            self.muted_since = now
        elif not on and self.muted_since is not None:
            self.muted.append((self.muted_since, now))
            self.muted_since = None

    def finish(self, now: float) -> None:
        """Write the file (best effort, as Asterisk logs and goes on when it cannot)."""
        self.mute(False, now)
        frames = bytearray()
        at = self.started_at
        for start, stop in [*self.muted, (now, now)]:
            frames += _tone(max(0.0, start - at)) + bytes(2 * _samples(max(0.0, stop - start)))
            at = max(at, stop)
        target = Path(self.file)
        try:
            if self.append and target.is_file():
                with wave.open(str(target), "rb") as old:
                    frames[:0] = old.readframes(old.getnframes())
            target.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(target), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(RATE)
                out.writeframes(bytes(frames))
        except (OSError, wave.Error, EOFError):
            return


def _samples(seconds: float) -> int:
    return round(seconds * RATE)


def _tone(seconds: float) -> bytes:
    n = _samples(seconds) * 2
    reps = n // len(_TONE) + 1
    return (_TONE * reps)[:n]
