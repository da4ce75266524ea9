"""Prompt lengths (seconds) the simulator plays, and the 8 kHz sample math behind ``endpos=``.

Lengths of the capture's prompts are from the README (custom/*.wav made with espeak-ng) and from the
transcripts' timings (beep ~0.43 s, demo-thanks ~3.3 s, digits ~0.8 s each).
"""

from __future__ import annotations

SAMPLE_RATE = 8000
DEFAULT_PROMPT = 2.0

PROMPT_SECONDS: dict[str, float] = {
    "custom/welcome": 4.3,
    "custom/enter-account": 3.3,
    "custom/leave-message": 2.1,
    "custom/long-prompt": 11.6,
    "custom/agent-greeting": 2.2,
    "custom/caller-speech": 8.0,  # ~3 s speech + 5 s digital silence
    "beep": 0.4255,
    "demo-thanks": 3.3,
    "vm-intro": 3.0,
    "vm-goodbye": 1.0,
}
DIGIT_SECONDS = 0.82  # SAY DIGITS 1234 took 3.29 s in capture 02


def prompt_seconds(name: str) -> float:
    base = name.rsplit(".", 1)[0] if name.endswith((".wav", ".gsm", ".ulaw", ".sln")) else name
    if base in PROMPT_SECONDS:
        return PROMPT_SECONDS[base]
    if base.startswith("digits/"):
        return DIGIT_SECONDS
    return DEFAULT_PROMPT


def samples(seconds: float) -> int:
    return int(seconds * SAMPLE_RATE)
