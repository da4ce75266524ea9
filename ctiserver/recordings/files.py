"""Where recordings live: one WAV per call, named from the call id. Pure but for `sweep`.

A call id can hold characters a file name should not (":" "@" in some PBX ids): those ids get a stable
hashed name instead. Clients only ever send ids; a path is made here, and `inside` checks any path the
server holds (a voicemail's file) is under its directory before it is opened.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def file_stem(call_id: str) -> str:
    if _SAFE.fullmatch(call_id) and ".." not in call_id:
        return call_id
    return "call-" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class RecordingFiles:
    """`local` is where this server reads; `pbx` is the same directory as the PBX names it (MixMonitor's
    File is a path on the PBX host: shared storage, or the same machine)."""

    local: Path
    pbx: str

    def path(self, call_id: str) -> Path:
        return self.local / f"{file_stem(call_id)}.wav"

    def pbx_path(self, call_id: str) -> str:
        return f"{self.pbx.rstrip('/')}/{file_stem(call_id)}.wav"


def inside(path: Path, root: Path) -> bool:
    """Whether `path` (symlinks resolved) is a file under `root`."""
    try:
        real, base = path.resolve(strict=True), root.resolve(strict=True)
    except OSError:
        return False
    return real.is_relative_to(base) and real.is_file()


def sweep(root: Path, older_than: float) -> list[str]:
    """Delete the WAV files under `root` last written before `older_than` (epoch seconds); the names
    deleted. Blocking: run it in a thread."""
    gone: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return gone
    for entry in entries:
        if not entry.name.endswith(".wav") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < older_than:
                os.unlink(entry.path)
                gone.append(entry.name)
        except OSError:
            continue
    return gone


def wav_seconds(data: bytes) -> float | None:
    """The length of a PCM WAV from its header, or None when it is not one."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at, rate_bytes = 12, 0
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if kind == b"fmt ":
            rate_bytes = int.from_bytes(data[at + 16:at + 20], "little")  # byte rate
        elif kind == b"data":
            return size / rate_bytes if rate_bytes else None
        at += 8 + size + (size & 1)
    return None
