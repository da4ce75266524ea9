"""Pure bookkeeping behind the gateway's pushes: per-stream outboxes for resume, the supervisors'
monitor mirror with coalesced deltas, and the per-connection token bucket. No I/O; time is passed in."""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from ctiserver.gateway.schema import encode, server_message


class Outbox:
    """The last messages of one stream (an agent's, or the shared monitor stream), by sequence number.

    Bounded by count and age: past either bound a resuming console gets a fresh snapshot instead,
    which is cheaper than replaying minutes of history. `stream_id` changes when the outbox is
    rebuilt (server restart), so an old seq is never matched against a new stream."""

    def __init__(self, max_items: int = 64, max_age_s: float = 300.0) -> None:
        self.stream_id = secrets.token_hex(4)
        self.last_seq = 0
        self._items: deque[tuple[int, float, bytes]] = deque(maxlen=max_items)
        self._max_age_s = max_age_s

    def append(self, kind: str, now: float, **fields: object) -> bytes:
        self.last_seq += 1
        frame = encode(server_message(kind, seq=self.last_seq, **fields))
        self._items.append((self.last_seq, now, frame))
        return frame

    def since(self, last_seq: int, now: float) -> list[bytes] | None:
        """Frames after `last_seq`, or None when they cannot all be replayed (send a snapshot)."""
        self._expire(now)
        if last_seq > self.last_seq:
            return None
        if last_seq == self.last_seq:
            return []
        if not self._items or self._items[0][0] > last_seq + 1:
            return None
        return [frame for seq, _, frame in self._items if seq > last_seq]

    def _expire(self, now: float) -> None:
        while self._items and now - self._items[0][1] > self._max_age_s:
            self._items.popleft()


# Monitor sections: mirror name -> (delta message type, payload key)
SECTIONS: Mapping[str, tuple[str, str]] = {
    "wallboard": ("wallboard_delta", "queues"),
    "agents": ("agent_grid_delta", "agents"),
    "calls": ("call_list_delta", "calls"),
}


class MonitorMirror:
    """What supervisors see, kept up to date by the app's pushes.

    Changes are merged into `pending` and leave as one delta per section per flush: a queue whose
    waiting count moves ten times in a flush interval costs one field on the wire, and a field
    pushed with its current value costs nothing. Deltas set values, so applying one twice is harmless
    (a snapshot taken while changes are pending is followed by those same changes)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, dict[str, object]]] = {name: {} for name in SECTIONS}
        self.pending: dict[str, dict[str, dict[str, object] | None]] = {name: {} for name in SECTIONS}
        # Rows removed then re-added within one interval: consoles merge rows, so the removal must
        # reach them first or the old row's fields would survive in the new one.
        self.replaced: dict[str, set[str]] = {name: set() for name in SECTIONS}
        self.alerts: dict[tuple[str, str, str], Mapping[str, object]] = {}

    def apply(self, section: str, key: str, fields: Mapping[str, object] | None) -> bool:
        rows, pending = self.rows[section], self.pending[section]
        if fields is None:
            if key not in rows:
                return False
            del rows[key]
            pending[key] = None
            return True
        row = rows.get(key)
        if row is None:  # new, or removed and re-added within one interval: the whole row
            if key in pending:
                self.replaced[section].add(key)
            rows[key] = dict(fields)
            pending[key] = dict(fields)
            return True
        changed = {k: v for k, v in fields.items() if k not in row or row[k] != v}
        if not changed:
            return False
        row.update(changed)
        slot = pending.get(key)
        if slot is None:
            pending[key] = changed
        else:
            slot.update(changed)
        return True

    def take_pending(self) -> list[tuple[str, str, dict[str, dict[str, object] | None]]]:
        out: list[tuple[str, str, dict[str, dict[str, object] | None]]] = []
        for section, (kind, payload_key) in SECTIONS.items():
            replaced = self.replaced[section]
            if replaced:
                out.append((kind, payload_key, dict.fromkeys(sorted(replaced))))
                replaced.clear()
            if self.pending[section]:
                out.append((kind, payload_key, self.pending[section]))
                self.pending[section] = {}
        return out

    def set_alert(self, alert: Mapping[str, object]) -> None:
        key = (str(alert["queue"]), str(alert["metric"]), str(alert.get("subject") or ""))
        if alert.get("level") == "cleared":
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = alert

    def snapshot(self) -> dict[str, object]:
        return {"wallboard": self.rows["wallboard"], "agents": self.rows["agents"],
                "call_list": self.rows["calls"], "alerts": list(self.alerts.values())}


@dataclass(slots=True)
class TokenBucket:
    """`rate` messages per second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
