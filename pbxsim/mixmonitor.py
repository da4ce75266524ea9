"""MixMonitor as app_mixmonitor does it, seen from the file it writes (captures 07 B and 20).

The file is 8 kHz 16-bit mono WAV, as long as the recording ran: muted stretches (MixMonitorMute State 1)
are written as silence, not cut out (capture 20: 1.5 s talk, 1.5 s muted, 1.5 s talk gave a 4.52 s file
whose middle is all zeros). A recording ends with StopMixMonitor or when its channel hangs up; the hang-up
closes the file without a MixMonitorStop event (capture 20 D). The simulated audio is a quiet tone.
"""

from __future__ import annotations

import math
import struct
import wave
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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


# ---------------------------------------------------------------------- MixMonitor r(): the caller's voice
# Asterisk writes every recording through a 32 KiB stdio buffer (main/file.c: setvbuf 32768), so the file
# grows in 32,768-byte steps while the recording runs and gets the rest when it stops (capture 23 A: 0.34 s
# steps for raw 48 kHz; final sizes that are not multiples of the buffer). A hang-up stops it too (23 C).
VOICE_TONE = _TONE  # stands in for a caller's voice that has no utterance file
WRITE_BUFFER = 32768
FRAME = 0.02
WAV_HEADER = 44


def _rate_of(path: str) -> tuple[int, bool]:
    """(samples per second, WAV header?) of a recording named by its extension, as Asterisk's formats."""
    ext = path.rsplit(".", 1)[-1].lower()
    rates = {"sln": 8000, "slin": 8000, "raw": 8000, "sln12": 12000, "sln16": 16000, "sln24": 24000,
             "sln32": 32000, "sln44": 44100, "sln48": 48000, "wav": 8000}
    return rates.get(ext, 8000), ext == "wav"


class LiveRecording:
    """A MixMonitor with r(<file>): what arrives from the caller, written as it arrives (virtual time).

    ``voice(t0, t1)`` gives the caller's 8 kHz samples for [t0, t1) (silence when they say nothing).
    A file that cannot be opened (a directory that cannot be created) is simply not written, as
    app_mixmonitor logs "Cannot open" and the call goes on (capture 23 D)."""

    def __init__(self, path: str, started_at: float) -> None:
        self.path = path
        self.rate, self.wav = _rate_of(path)
        self.started_at = started_at
        self.samples = 0  # 8 kHz samples recorded (an integer clock: no drift between frames)
        self.buffered = bytearray()
        self.data_bytes = 0
        self.fh: BinaryIO | None = None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # app_mixmonitor makes the directory
            self.fh = open(path, "wb")  # noqa: SIM115 - open while the recording runs
            if self.wav:
                self.fh.write(_wav_header(0))
                self.fh.flush()
        except OSError:
            self.fh = None

    def write_until(self, now: float, voice: Callable[[float, int, int], bytes]) -> None:
        """Record the 20 ms frames that have passed by ``now``; ``voice(started_at, first, n)`` gives the
        caller's samples ``first .. first + n`` of the recording."""
        per_frame = int(8000 * FRAME)
        frames = int((now - self.started_at) * 8000) // per_frame - self.samples // per_frame
        if frames <= 0:
            return
        n = per_frame * frames
        pcm = voice(self.started_at, self.samples, n)
        self.samples += n
        self._write(_resample(pcm, self.rate))

    def _write(self, data: bytes) -> None:
        if self.fh is None:
            return
        self.buffered += data
        full = len(self.buffered) - len(self.buffered) % WRITE_BUFFER
        if full:
            self._flush(full)

    def _flush(self, n: int) -> None:
        assert self.fh is not None
        try:
            self.fh.write(self.buffered[:n])
            self.fh.flush()
        except OSError:
            pass
        self.data_bytes += n
        del self.buffered[:n]

    def close(self, keep_samples: int | None = None) -> int:
        """Write the rest and close; ``keep_samples`` (8 kHz) truncates the end first, as RECORD FILE
        cuts the silence that ended it (ast_truncstream). Returns the 8 kHz samples the file holds."""
        width = 2 * max(1, round(self.rate / 8000))
        if self.fh is None:
            return 0
        self._flush(len(self.buffered))
        try:
            if keep_samples is not None:
                self.data_bytes = min(self.data_bytes, keep_samples * width)
                self.fh.truncate((WAV_HEADER if self.wav else 0) + self.data_bytes)
            if self.wav:
                self.fh.seek(0)
                self.fh.write(_wav_header(self.data_bytes))
            self.fh.close()
        except OSError:
            pass
        self.fh = None
        return self.data_bytes // width


def _resample(pcm: bytes, rate: int) -> bytes:
    """8 kHz to the file's rate by repeating samples (the decimating reader gets the caller's samples back)."""
    if rate == 8000:
        return pcm
    factor = max(1, round(rate / 8000))
    src = array("h")
    src.frombytes(pcm)
    out = array("h", bytes(2 * len(src) * factor))
    for k in range(factor):
        out[k::factor] = src
    return out.tobytes()


def _wav_header(data_bytes: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000,
            16000, 2, 16) + b"data" + struct.pack("<I", data_bytes))
