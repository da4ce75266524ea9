"""Reader for the golden transcripts of a real Asterisk 22.10.1 in tests/captures (format: that folder's README)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_MARK = re.compile(rb"### t=\+([0-9.]+) (\S+)(?: (<<<|>>>) len=(\d+))?([^\n]*)\n")

RECEIVED = "<<<"  # sent by Asterisk, received by the CTI side
SENT = ">>>"  # sent by the CTI side


@dataclass(frozen=True, slots=True)
class Record:
    t: float
    stream: str  # "AMI1", "AGI2", "NOTE"
    direction: str  # "<<<", ">>>" or "" for notes
    payload: bytes
    note: str


def captures_dir() -> Path:
    """The captures folder: $CTISERVER_CAPTURES, else tests/captures of the checkout this package runs from."""
    env = os.environ.get("CTISERVER_CAPTURES")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        cand = parent / "tests" / "captures"
        if (cand / "README.md").is_file():
            return cand
    raise FileNotFoundError("the Asterisk captures (tests/captures) are not found; set CTISERVER_CAPTURES")


def read_records(path: str | Path) -> list[Record]:
    data = Path(path).read_bytes()
    i, out = 0, []
    while i < len(data):
        m = _MARK.match(data, i)
        if m is None:
            raise ValueError(f"{path}: no record marker at byte {i}")
        i = m.end()
        n = int(m.group(4) or 0)
        out.append(
            Record(
                float(m.group(1)),
                m.group(2).decode(),
                (m.group(3) or b"").decode(),
                data[i : i + n],
                m.group(5).decode().strip(),
            )
        )
        i += n
    return out


def capture(name: str) -> list[Record]:
    """``capture("02")`` reads 02-*.txt."""
    matches = sorted(captures_dir().glob(f"{name}*.txt"))
    if not matches:
        raise FileNotFoundError(f"no capture {name}*.txt in {captures_dir()}")
    return read_records(matches[0])


def ami_received(records: list[Record], stream: str = "AMI1") -> bytes:
    """All bytes Asterisk sent on one AMI stream, concatenated as they came off the wire."""
    return b"".join(r.payload for r in records if r.stream == stream and r.direction == RECEIVED)
