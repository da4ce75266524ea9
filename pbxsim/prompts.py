"""The simulated PBX's sounds: which prompts are installed, how long they play, and the 8 kHz sample math
behind ``endpos=``.

A prompt that is not installed is answered as capture 14 shows (agi_client.py, apps.py): Asterisk has
its core sounds and whatever was copied into its sounds directory, nothing else. The product PBX has
Asterisk's core sounds and the product's own prompts (asterisk-config/prompts.tsv, made by
scripts/make-prompts.sh); the captures' PBX has the core sounds and the captures' custom/*.

Lengths of the capture's prompts are from the README (custom/*.wav made with espeak-ng) and from the
transcripts' timings (beep ~0.43 s, demo-thanks ~3.3 s, digits ~0.8 s each).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

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
    "demo-congrats": 30.3,  # capture 20 (asterisk-core-sounds-en-wav 1.6.1)
    "vm-intro": 3.0,
    "vm-goodbye": 0.865,  # endpos=6920 on a real 22.10.1 (asterisk-core-sounds-en-wav 1.6.1)
    "hello-world": 1.4,  # capture 15: Playback 13.517 -> PLAYBACKSTATUS 14.919
}
DIGIT_SECONDS = 0.82  # SAY DIGITS 1234 took 3.29 s in capture 02


def prompt_seconds(name: str) -> float:
    base = name.rsplit(".", 1)[0] if name.endswith((".wav", ".gsm", ".ulaw", ".sln")) else name
    if base in PROMPT_SECONDS:
        return PROMPT_SECONDS[base]
    if base.startswith("digits/"):
        return DIGIT_SECONDS
    if base.startswith("silence/") and base[8:].isdigit():
        return float(base[8:])  # Asterisk's silence/N is N seconds of silence
    return DEFAULT_PROMPT


def samples(seconds: float) -> int:
    return int(seconds * SAMPLE_RATE)


ASTDATADIR = "/var/lib/asterisk"  # the captures' paths are scrubbed to the standard locations
SOUNDS_DIR = f"{ASTDATADIR}/sounds"
AUDIO_EXTENSIONS = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".g722", ".g729", ".wav16", ".sln16")
MOH_CLASSES = frozenset({"default"})  # musiconhold.conf of both PBXes

# Asterisk's core sounds (asterisk-core-sounds-en) that the product, its dialplan and the captures play.
CORE_SOUNDS = frozenset({
    "beep", "demo-thanks", "demo-congrats", "hello-world", "vm-intro", "vm-goodbye", "auth-thankyou",
    "queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-holdtime", "queue-minutes",
    "queue-seconds", "queue-thankyou", "queue-reporthold", "queue-less-than",
    *(f"digits/{n}" for n in (*range(21), 30, 40, 50, 60, 70, 80, 90)),
    "digits/hundred", "digits/thousand", "digits/million", "digits/minus", "digits/star", "digits/pound",
    *(f"silence/{n}" for n in range(1, 11)),
})
# The captures' own prompts (README: custom/*.wav, 8 kHz espeak-ng).
CAPTURE_SOUNDS = frozenset({"custom/welcome", "custom/enter-account", "custom/leave-message",
                            "custom/long-prompt", "custom/agent-greeting", "custom/caller-speech"})
PROMPTS_FILE = "prompts.tsv"


def product_sounds(config_dir: Path) -> frozenset[str]:
    """The prompt names asterisk-config/prompts.tsv installs (its second column)."""
    names = set()
    for line in (config_dir / PROMPTS_FILE).read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 2 and not line.startswith("#") and cols[0].strip():
            names.add(cols[1].strip())
    return frozenset(names)


def sound_name(name: str) -> str:
    """The name a file is played by: ``custom/welcome.wav`` plays as ``custom/welcome``."""
    base, dot, ext = name.rpartition(".")
    return base if dot and f".{ext}" in AUDIO_EXTENSIONS else name


class Sounds:
    """The sounds installed on the simulated PBX. A test installs or removes prompts to set a scene (a
    prompt deleted from the sounds directory, a flow's prompts copied in)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.installed: set[str] = {sound_name(n) for n in names}

    @classmethod
    def product(cls, config_dir: Path) -> Sounds:
        return cls(CORE_SOUNDS | product_sounds(config_dir))

    @classmethod
    def captures(cls) -> Sounds:
        return cls(CORE_SOUNDS | CAPTURE_SOUNDS)

    def exists(self, name: str) -> bool:
        return sound_name(name) in self.installed

    def install(self, *names: str) -> None:
        self.installed.update(sound_name(n) for n in names)

    def remove(self, *names: str) -> None:
        self.installed.difference_update(sound_name(n) for n in names)

    def file_exists(self, path: str) -> bool:
        """``STAT(e,<path>)`` for a path in the sounds directory: ``.../sounds/en/beep.wav`` is ``beep``,
        found in the language directory or in the sounds directory itself, as Asterisk looks it up."""
        norm = os.path.normpath(path)
        if not norm.startswith(SOUNDS_DIR + "/"):
            return False
        rel = norm[len(SOUNDS_DIR) + 1:]
        base, dot, ext = rel.rpartition(".")
        if not dot or f".{ext}" not in AUDIO_EXTENSIONS:
            return False
        _language, _, rest = base.partition("/")
        return base in self.installed or rest in self.installed


def moh_class(name: str) -> str:
    """The class music on hold plays: an unknown class plays ``default`` (capture 14: ``SET MUSIC ON
    no-such-class`` and ``MusicOnHold(no-such-class)`` both give MusicOnHoldStart Class: default)."""
    return name if name in MOH_CLASSES else "default"
