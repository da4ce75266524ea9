"""Storage of the centre's journal in the CRM database, as plans (crmstore/plan.py).

Rows are opaque here: (seq, at, kind, call_id, agent_id, body text). The fact vocabulary and its codec
belong to ctiserver/journal; this module only appends batches, reads them back, checks them and keeps
checkpoints. A batch is written in one transaction with a CRC32 of its rows: a tail damaged on disk is
found at start (`check_tail`) and cut off (`drop_from`), never misread.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .plan import Execute, ExecuteMany, Fetch, Plan

JournalRow = tuple[int, float, str, str, str, str]  # seq, at, kind, call_id, agent_id, body

_INSERT = "INSERT INTO journal (seq, at, kind, call_id, agent_id, body) VALUES (?, ?, ?, ?, ?, ?)"


def batch_crc(rows: Iterable[JournalRow]) -> int:
    crc = 0
    for seq, at, kind, call_id, agent_id, body in rows:
        crc = zlib.crc32(f"{seq}|{at!r}|{kind}|{call_id}|{agent_id}|{body}\n".encode(), crc)
    return crc


# Facts per checksum row. A restart checks every batch past the last checkpoint, the one that straddles
# it included: after a burst (a flush of tens of thousands of facts) that one must stay small to check.
CHECKSUM_FACTS = 2000


def append_batch(rows: Sequence[JournalRow], written_at: float) -> Plan[None]:
    """The facts of one batch and its checksum rows (one per CHECKSUM_FACTS facts), all in the caller's
    transaction; the caller runs side writes in the same plan."""
    yield ExecuteMany(_INSERT, list(rows))
    for i in range(0, len(rows), CHECKSUM_FACTS):
        part = rows[i:i + CHECKSUM_FACTS]
        yield Execute(
            "INSERT INTO journal_batches (first_seq, last_seq, written_at, crc) VALUES (?, ?, ?, ?)",
            (part[0][0], part[-1][0], written_at, batch_crc(part)),
        )


def read_rows(after_seq: int, limit: int) -> Plan[list[JournalRow]]:
    got = yield Fetch(
        "SELECT seq, at, kind, call_id, agent_id, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    )
    return [(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5]) for r in got]


def seq_at(at: float, last_seq: int) -> Plan[int]:
    """The first seq whose fact is at or after `at` (last_seq + 1 when none): facts are numbered in time
    order, so this is a bisection over the primary key, about 30 lookups however long the journal."""
    lo, hi = 1, last_seq + 1
    while lo < hi:
        mid = (lo + hi) // 2
        got = yield Fetch("SELECT at FROM journal WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,))
        if got and float(got[0][0]) < at:
            lo = mid + 1
        else:
            hi = mid
    return lo


def read_rows_between(first_at: float, last_at: float, after_seq: int, limit: int) -> Plan[list[JournalRow]]:
    got = yield Fetch(
        "SELECT seq, at, kind, call_id, agent_id, body FROM journal WHERE seq > ? AND at >= ? AND at < ?"
        " ORDER BY seq LIMIT ?",
        (after_seq, first_at, last_at, limit),
    )
    return [(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5]) for r in got]


@dataclass(frozen=True, slots=True)
class Damage:
    """A batch whose rows do not match its checksum (or rows no batch vouches for)."""

    first_seq: int
    last_seq: int
    rows: int
    why: str


def check_tail(after_seq: int) -> Plan[Damage | None]:
    """Check every batch after `after_seq` against its checksum; the first damaged one, if any, is
    returned: it and everything after it must be dropped. Rows beyond the last batch are damage too (a
    batch and its rows are written in one transaction)."""
    batches = yield Fetch(
        "SELECT first_seq, last_seq, crc FROM journal_batches WHERE last_seq > ? ORDER BY first_seq",
        (after_seq,),
    )
    for first, last, crc in batches:
        rows = yield Fetch(
            "SELECT seq, at, kind, call_id, agent_id, body FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last),
        )
        typed = [(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
        if len(typed) != last - first + 1:
            return Damage(int(first), int(last), len(typed), f"{last - first + 1 - len(typed)} facts missing")
        if batch_crc(typed) != int(crc):
            return Damage(int(first), int(last), len(typed), "checksum mismatch")
    top = yield Fetch("SELECT MAX(last_seq) FROM journal_batches")
    last_vouched = int(top[0][0]) if top and top[0][0] is not None else 0
    stray = yield Fetch("SELECT MIN(seq), MAX(seq), COUNT(*) FROM journal WHERE seq > ?", (last_vouched,))
    if stray and stray[0][2]:
        return Damage(int(stray[0][0]), int(stray[0][1]), int(stray[0][2]), "facts without a batch checksum")
    return None


def drop_from(seq: int) -> Plan[int]:
    n = yield Execute("DELETE FROM journal WHERE seq >= ?", (seq,))
    yield Execute("DELETE FROM journal_batches WHERE last_seq >= ?", (seq,))
    yield Execute("DELETE FROM journal_checkpoints WHERE seq >= ?", (seq,))
    return int(n)


def tail() -> Plan[tuple[int, float | None]]:
    """(last seq, time of the last fact); (0, None) for an empty journal."""
    got = yield Fetch("SELECT seq, at FROM journal ORDER BY seq DESC LIMIT 1")
    return (int(got[0][0]), float(got[0][1])) if got else (0, None)


def get_format() -> Plan[int | None]:
    got = yield Fetch("SELECT value FROM journal_meta WHERE key = 'format'")
    return int(got[0][0]) if got else None


def set_format(version: int) -> Plan[None]:
    yield Execute(
        "INSERT INTO journal_meta (key, value) VALUES ('format', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(version),),
    )


def save_checkpoint(seq: int, at: float, fmt: int, state: str, keep: int = 3) -> Plan[None]:
    yield Execute(
        "INSERT INTO journal_checkpoints (seq, at, format, state) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (seq) DO UPDATE SET state = excluded.state",
        (seq, at, fmt, state),
    )
    older = yield Fetch("SELECT seq FROM journal_checkpoints ORDER BY seq DESC LIMIT 1 OFFSET ?", (keep - 1,))
    if older:
        yield Execute("DELETE FROM journal_checkpoints WHERE seq < ?", (int(older[0][0]),))


def latest_checkpoint() -> Plan[tuple[int, float, int, str] | None]:
    got = yield Fetch("SELECT seq, at, format, state FROM journal_checkpoints ORDER BY seq DESC LIMIT 1")
    return (int(got[0][0]), float(got[0][1]), int(got[0][2]), got[0][3]) if got else None
