"""The speech menus' recordings in the spool Asterisk shares with us: heard once by the recognizer, then gone.

A recording is deleted as soon as its answer is decided (recognized, rejected, a key pressed instead, the
caller gone); what a call left behind anyway (a recognizer that never answered) goes when its flow ends;
what a crash left behind goes at the next start. With a retention (`speech.keep_recordings_s`) they stay
that long for quality review and are swept by age instead.

Only files named by the flow interpreter's SPEECH_RECORDING_PREFIX are ever touched: voicemails and the
record node's messages live in the same directory and belong to the CRM.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ivr_flows.interpreter import SPEECH_RECORDING_PREFIX

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0  # with a retention: how often a call's end also sweeps the old ones


class SpeechSpool:
    def __init__(self, directory: Path, keep_s: float = 0.0, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.keep_s = keep_s
        self._clock = clock
        self._last_sweep = float("-inf")
        self._told: set[str] = set()  # kinds of failure already logged: one error line each, not one per call

    def owns(self, path: str) -> bool:
        p = Path(path)
        return p.parent == self.directory and p.name.startswith(SPEECH_RECORDING_PREFIX)

    def decided(self, path: str) -> None:
        """The recording's answer is known: it is not needed any more (unless kept for review)."""
        if self.keep_s > 0 or not self.owns(path):
            return
        self._unlink(Path(path))

    def call_ended(self, paths: set[str]) -> None:
        """A flow ended: whatever its speech menus recorded goes (or, with a retention, the old ones)."""
        if self.keep_s > 0:
            if self._clock() - self._last_sweep >= SWEEP_EVERY_S:
                self.sweep()
            return
        for path in paths:
            self.decided(path)

    def sweep(self) -> int:
        """Delete the speech recordings older than the retention (all of them without one): at start, so
        nothing piles up after a crash, and from time to time with a retention. Returns how many."""
        self._last_sweep = now = self._clock()
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        except OSError as e:
            self._tell("scan", f"speech spool {self.directory} cannot be read: {e}")
            return 0
        removed = 0
        for entry in entries:
            if not entry.name.startswith(SPEECH_RECORDING_PREFIX):
                continue
            try:
                if self.keep_s > 0 and now - entry.stat().st_mtime < self.keep_s:
                    continue
            except FileNotFoundError:
                continue
            removed += self._unlink(Path(entry.path))
        if removed:
            log.info("speech spool %s: %d old recording(s) deleted", self.directory, removed)
        return removed

    def _unlink(self, path: Path) -> int:
        try:
            path.unlink()
            return 1
        except (FileNotFoundError, NotADirectoryError):  # never written (a key at once, Asterisk could not write it)
            return 0
        except OSError as e:
            self._tell(type(e).__name__, f"speech recording {path} cannot be deleted: {e}")
            return 0

    def _tell(self, kind: str, line: str) -> None:
        if kind not in self._told:
            self._told.add(kind)
            log.error("%s (told once; later ones are not logged)", line)
