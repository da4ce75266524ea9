"""AMD(): answering-machine detection on what the far end plays, timed as capture 15 shows.

Asterisk's app_amd listens to the answered line: silence before any voice longer than `initial_silence`
is a machine (INITIALSILENCE), a greeting longer than `greeting` is a machine (LONGGREETING), a short
greeting followed by `after_greeting_silence` is a person (HUMAN); nothing decided within
`total_analysis_time` is NOTSURE (TOOLONG). The simulator has no audio, only the voice the partner's
prompts carry (`Channel.audio`), so the same rules run on those spans. Settings are the capture's
amd.conf [general], or the amd.conf beside the product dialplan (asterisk-config/): without that file a
real Asterisk does not load app_amd at all ("Configuration file amd.conf missing"), and neither does the
simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pbxsim.channels import HUNGUP, Audio, Channel

POLL_S = 0.05  # virtual seconds between looks at the heard voice (app_amd reads 20-ms frames)


@dataclass(frozen=True, slots=True)
class AmdSettings:
    initial_silence_ms: int = 2500
    greeting_ms: int = 1500
    after_greeting_silence_ms: int = 800
    total_analysis_time_ms: int = 5000


_KEYS = {"initial_silence": "initial_silence_ms", "greeting": "greeting_ms",
         "after_greeting_silence": "after_greeting_silence_ms", "total_analysis_time": "total_analysis_time_ms"}


def settings_from_conf(text: str) -> AmdSettings:
    """amd.conf's [general] values the simulator's rules use (the others do not change a verdict here)."""
    values: dict[str, int] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif "=" in line and section == "general":
            key, _, value = line.partition("=")
            field = _KEYS.get(key.strip())
            if field is not None and value.strip().isdigit():
                values[field] = int(value.strip())
    return AmdSettings(**values)


def _voice_since(chan: Channel, since: float) -> list[Audio]:
    return [a for a in chan.audio if a.speech > 0 and a.start + a.speech > since]


def verdict_at(voice: list[Audio], started: float, now: float, s: AmdSettings) -> tuple[str, str] | None:
    """(AMDSTATUS, AMDCAUSE) once the rules can tell at `now`, else None."""
    if now - started >= s.total_analysis_time_ms / 1000:
        return "NOTSURE", f"TOOLONG-{s.total_analysis_time_ms}"
    first = min(voice, key=lambda a: a.start) if voice else None
    if first is None or first.start > now:
        if now - started >= s.initial_silence_ms / 1000:
            return "MACHINE", f"INITIALSILENCE-{s.initial_silence_ms}-{s.initial_silence_ms}"
        return None
    start = max(first.start, started)
    end = first.start + first.speech
    if min(end, now) - start >= s.greeting_ms / 1000:
        return "MACHINE", f"LONGGREETING-{s.greeting_ms}-{s.greeting_ms}"
    if now >= end and now - end >= s.after_greeting_silence_ms / 1000:
        # app_amd reports the silence it counted (one frame past the setting in capture 15: 801-800).
        return "HUMAN", f"HUMAN-{s.after_greeting_silence_ms + 1}-{s.after_greeting_silence_ms}"
    return None


async def detect(chan: Channel, vnow: Callable[[], float], settings: AmdSettings = AmdSettings()
                 ) -> tuple[str, str] | None:
    """Listen on `chan` (virtual clock `vnow`) until a verdict; None when the line hangs up first."""
    started = vnow()
    while True:
        found = verdict_at(_voice_since(chan, started), started, vnow(), settings)
        if found is not None:
            return found
        if await chan.wait_for(POLL_S) == HUNGUP or chan.dead:
            return None
