"""Emulated callers on the trunk: key presses, an utterance for RECORD FILE, patience, hang-up time.

A caller watches its channel (the world calls the observer hooks below) and acts like a person: it
presses the next group of keys when the IVR asks for input, speaks when a recording starts, and hangs
up (cause 16) when its patience runs out.
"""

from __future__ import annotations

import asyncio
import re
import wave
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from pbxsim.channels import Channel
from pbxsim.world import World

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def sanitize_sip_text(text: str) -> str:
    """What reaches Asterisk from a SIP From display name: control characters cannot survive SIP parsing
    (CRLF + space is header folding and unfolds to a space; a bare CRLF would end the header), so each
    run of them becomes one space. Anything left is still C-escaped on AMI (wire.escape_value)."""
    return _CONTROL.sub(" ", text)


@dataclass(frozen=True, slots=True)
class CallerBehaviour:
    """A caller's script. Times are virtual seconds."""

    keys: tuple[str, ...] = ()  # one entry per input request: "1234", "#", "5"
    key_delay: float = 0.3  # before the first key and between keys
    utterance: Path | None = None  # WAV spoken into RECORD FILE or a MixMonitor r() recording
    speak_delay: float = 0.5  # after the recording starts
    speak_over_prompt: float | None = None  # instead: this far into the first prompt, over it (once)
    patience: float | None = None  # hang up (cause 16) this long after arriving, wherever the call is
    hangup_after_connect: float | None = None  # hang up this long after reaching an agent
    press_on_prompt: bool = True  # keys may interrupt prompts with escape digits


# Asterisk's silence detector (dsp.c, dsp.conf silencethreshold 256): a 20 ms frame whose mean absolute
# sample is under 256 is silence. An utterance file's voice ends with its last loud frame, not with the file
# (espeak's 예약 is 0.94 s long, 0.45 s of it voice: capture 23 E's RECORD FILE ended 1 s after that).
SILENCE_THRESHOLD = 256


def voiced_seconds(path: Path) -> float:
    """Seconds from the start of the WAV to the end of its last frame of voice."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate() or 8000
            samples = array("h")
            samples.frombytes(w.readframes(w.getnframes()))
    except (OSError, wave.Error, EOFError):
        return 2.0
    frame = max(1, rate // 50)
    last = 0
    for i in range(0, len(samples), frame):
        chunk = samples[i : i + frame]
        if sum(abs(x) for x in chunk) / len(chunk) >= SILENCE_THRESHOLD:
            last = i + len(chunk)
    return last / rate


@dataclass
class CallerRun:
    world: World
    chan: Channel
    behaviour: CallerBehaviour
    pending_keys: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connected_at: float | None = None
    spoke_over_prompt: bool = False
    asked_while_listening: object | None = None  # the recording or stream whose slices already got keys

    def start(self) -> None:
        self.pending_keys = list(self.behaviour.keys)
        self.chan.observers.append(self)
        if self.behaviour.patience is not None:
            self._spawn(self._hang_up_after(self.behaviour.patience))

    def _spawn(self, coro: object) -> None:
        task = self.world.spawn(coro, name=f"caller {self.chan.name}")  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _hang_up_after(self, seconds: float) -> None:
        await self.world.sleep(seconds)
        self.hang_up()

    def hang_up(self, cause: int = 16) -> None:
        if not self.chan.dead and not self.chan.hungup:
            self.world.queue_hangup(self.chan, cause)

    async def _press(self, keys: str) -> None:
        for k in keys:
            await self.world.sleep(self.behaviour.key_delay)
            if self.chan.dead:
                return
            self.world.receive_dtmf(self.chan, k)

    # ---------------------------------------------------------------- observer hooks
    def prompt_started(self, chan: Channel, name: str, interruptible: bool) -> None:
        over = self.behaviour.speak_over_prompt
        if over is not None and self.behaviour.utterance is not None and not self.spoke_over_prompt:
            self.spoke_over_prompt = True
            self._spawn(self._speak(self.behaviour.utterance, over))
        if interruptible and self.behaviour.press_on_prompt and self.pending_keys:
            self._spawn(self._press(self.pending_keys.pop(0)))

    def input_wanted(self, chan: Channel, max_digits: int) -> None:
        live: object | None = self.world.live_recordings.get(chan.name) or self.world.ears.get(chan.name)
        if live is not None:
            # A listening's WAIT FOR DIGIT slices are one question to the caller, not one per slice.
            if live is self.asked_while_listening:
                return
            self.asked_while_listening = live
        if self.pending_keys:
            self._spawn(self._press(self.pending_keys.pop(0)))

    def record_started(self, chan: Channel) -> None:
        if self.behaviour.utterance is not None and self.behaviour.speak_over_prompt is None:
            self._spawn(self._speak(self.behaviour.utterance, self.behaviour.speak_delay))

    async def _speak(self, wav: Path, delay: float) -> None:
        await self.world.sleep(delay)
        if not self.chan.dead:
            self.world.hear(self.chan, voiced_seconds(wav), str(wav))

    def waiting_started(self, chan: Channel) -> None:
        return None

    def connected(self, chan: Channel, peer: Channel) -> None:
        first = self.connected_at is None  # an un-hold or a transfer bridges again: one timer per call
        self.connected_at = self.world.vnow()
        if first and self.behaviour.hangup_after_connect is not None:
            self._spawn(self._hang_up_after(self.behaviour.hangup_after_connect))

    def channel_gone(self, chan: Channel) -> None:
        for t in list(self.tasks):
            if t is not asyncio.current_task():
                t.cancel()
