"""Outboxes, the monitor mirror and the token bucket, without sockets."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ctiserver.gateway.streams import MonitorMirror, Outbox, TokenBucket


def test_outbox_replays_or_asks_for_snapshot() -> None:
    box = Outbox(max_items=3, max_age_s=10)
    frames = [box.append("agent_state", now=float(i), agent={"n": i}) for i in range(1, 6)]
    assert [json.loads(f)["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert box.since(5, 6) == []
    assert box.since(3, 6) == frames[3:]
    assert box.since(2, 6) == frames[2:]
    assert box.since(1, 6) is None  # seq 2 already evicted
    assert box.since(9, 6) is None  # from another life of the stream
    assert box.since(2, 13.5) is None  # seq 3 older than 10 s


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["x", "y"]), st.integers(0, 3),
                          st.booleans()), max_size=60), st.integers(1, 60))
def test_mirror_deltas_rebuild_the_mirror(ops: list[tuple[str, str, int, bool]], cut: int) -> None:
    """A client applying snapshot + deltas (at any flush points) ends equal to the server's mirror."""
    mirror = MonitorMirror()
    client: dict[str, dict[str, object]] = {}
    for i, (key, field, value, remove) in enumerate(ops):
        mirror.apply("agents", key, None if remove else {field: value})
        if i % cut == 0:
            for _, _, changes in mirror.take_pending():
                for k, row in changes.items():
                    if row is None:
                        client.pop(k, None)
                    else:
                        client.setdefault(k, {}).update(row)
    for _, _, changes in mirror.take_pending():
        for k, row in changes.items():
            if row is None:
                client.pop(k, None)
            else:
                client.setdefault(k, {}).update(row)
    assert client == mirror.rows["agents"]


def test_mirror_sends_only_changes() -> None:
    mirror = MonitorMirror()
    mirror.apply("wallboard", "sales", {"waiting": 1, "sl": 90.0})
    mirror.take_pending()
    assert not mirror.apply("wallboard", "sales", {"waiting": 1})
    assert mirror.take_pending() == []
    mirror.apply("wallboard", "sales", {"waiting": 2, "sl": 90.0})
    mirror.apply("wallboard", "sales", {"waiting": 3})
    assert mirror.take_pending() == [("wallboard_delta", "queues", {"sales": {"waiting": 3}})]


def test_alerts_clear() -> None:
    mirror = MonitorMirror()
    mirror.set_alert({"queue": "q", "metric": "waiting", "level": "warning"})
    assert len(mirror.snapshot()["alerts"]) == 1  # type: ignore[arg-type]
    mirror.set_alert({"queue": "q", "metric": "waiting", "level": "cleared"})
    assert mirror.snapshot()["alerts"] == []


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert sum(bucket.take(0.0) for _ in range(100)) == 5
    assert sum(bucket.take(0.5) for _ in range(100)) == 5  # 0.5 s refills 5
    assert sum(bucket.take(10.0) for _ in range(100)) == 5  # never above the burst
