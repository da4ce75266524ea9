"""However a report's period is read (month and day rows, one query for neighbouring spans, hours or
15 minutes summed in the database, row by row where the buckets are uneven), its cells are the sums of the
15-minute rows bucketed one by one in the centre's zone: across a month's end, a daylight saving change
(by an hour in New York, by half an hour on Lord Howe Island), a zone half an hour off the hour, and a
period that starts off a 15-minute boundary. On SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crmstore import reports as store_ops
from crmstore.plan import Plan
from crmstore.store import CrmStore
from ctiserver.reports.engine import Query, _buckets, _read
from ctiserver.reports.intervals import INTERVAL_S
from ctiserver.reports.writer import day_start, month_start

METRICS = store_ops.METRICS
MAX = METRICS.index("wait_max_s")
KEYS = [("support", "", ""), ("support", "a", ""), ("sales", "b", ""), ("", "a", ""), ("", "", "main")]
PERIODS = {  # zone: (first, stop), local times; each holds a whole month
    "UTC": ("2026-01-20 10:07", "2026-03-03 17:00"),
    "Asia/Kolkata": ("2026-01-28 06:00", "2026-03-02 00:00"),
    "America/New_York": ("2026-02-26 13:45", "2026-04-02 09:30"),
    "Australia/Lord_Howe": ("2026-03-30 00:00", "2026-05-03 12:15"),
}


def local(text: str, tz: ZoneInfo) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


def intervals(first: int, stop: int, tz: ZoneInfo, rng: random.Random) -> Iterator[tuple[int, dict[tuple[str, str, str], dict[str, float]]]]:
    """Some closed intervals between first and stop, with a few cells each (values whose sums are exact)."""
    for start in range(first - first % INTERVAL_S, stop, INTERVAL_S):
        if rng.random() < 0.1:
            yield start, {key: {m: rng.randint(0, 9) * (0.5 if m.endswith("_s") else 1) for m in METRICS}
                          for key in rng.sample(KEYS, 3)}


def write(stored: list[tuple[int, dict[tuple[str, str, str], dict[str, float]]]], tz: ZoneInfo) -> Plan[None]:
    for start, cells in stored:
        yield from store_ops.write_interval(start, day_start(start, tz), month_start(start, tz), cells, {})


def by_hand(stored: list[tuple[int, dict[tuple[str, str, str], dict[str, float]]]], q: Query,
            ) -> dict[tuple[int, str, str, str], list[float]]:
    bucket = _buckets(q.first, q.stop, q.grouping)
    out: dict[tuple[int, str, str, str], list[float]] = {}
    for start, cells in stored:
        if not q.first.timestamp() <= start < q.stop.timestamp():
            continue
        for key, values in cells.items():
            row = [values[m] for m in METRICS]
            full = (bucket(start), *key)
            mine = out.get(full)
            if mine is None:
                out[full] = row
            else:
                out[full] = [a + b for a, b in zip(mine, row, strict=True)]
                out[full][MAX] = max(mine[MAX], row[MAX])
    return out


@pytest.mark.parametrize("zone", sorted(PERIODS))
async def test_every_way_of_reading_gives_the_sums_of_the_intervals(store: CrmStore, zone: str) -> None:
    tz = ZoneInfo(zone)
    first, stop = (local(x, tz) for x in PERIODS[zone])
    rng = random.Random(zone)
    # from the first month's start to the day after the period: the edges' day and month rows hold more
    stored = list(intervals(month_start(first.timestamp(), tz), int((stop + timedelta(days=1)).timestamp()), tz, rng))
    await store.write_plan(write(stored, tz))
    queries = [Query("inbound-summary", first, stop, grouping) for grouping in ("hour", "day", "month", "total")]
    queries.append(Query("inbound-summary", first, first + timedelta(days=12), "15m"))
    for q in queries:
        got = await _read(store, q, None)
        assert {k: list(c.values()) for k, c in got.cells.items()} == by_hand(stored, q), q.grouping
