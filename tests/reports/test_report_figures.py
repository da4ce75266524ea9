"""Each report reads only the figures it declares (engine.REPORTS): its rows do not change when any other
figure changes, and they are the same when the others are 0, as a narrowed read leaves them. Pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from crmstore.reports import METRICS
from ctiserver.reports.engine import REPORTS, Query, _Cells
from ctiserver.reports.intervals import Cell

from .test_day import CONFIG

FIRST = datetime(2027, 1, 15, tzinfo=UTC)
PERIODS = (int(FIRST.timestamp()), int(FIRST.timestamp()) + 3600)
KEYS = [("support", "", ""), ("sales", "", ""), ("support", "a", ""), ("support", "b", ""), ("sales", "b", ""),
        ("", "a", ""), ("", "b", ""), ("", "", "main")]


def value(rng: random.Random, metric: str) -> float:
    """Often 0, so that the reports' filters (a row for an agent with offers only ...) are put to work."""
    return rng.choice((0, 0, 1, 2, 30)) * (0.5 if metric.endswith("_s") else 1)


def figures(rng: random.Random) -> dict[str, float]:
    return {m: value(rng, m) for m in METRICS}


def cells(values: dict[tuple[int, str, str, str], dict[str, float]], keep: tuple[str, ...] | None,
          rng: random.Random | None) -> _Cells:
    """The cells with the figures outside `keep` set to 0 (rng None) or to other random values."""
    out = {}
    for key, row in values.items():
        mine = dict(row)
        for m in METRICS:
            if keep is not None and m not in keep:
                mine[m] = 0 if rng is None else value(rng, m)
        out[key] = Cell.from_columns(mine)
    pauses = {(start, agent, reason): 60.0 for start in PERIODS for agent in ("a", "b") for reason in ("break",)}
    return _Cells(out, pauses)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_a_report_reads_only_its_figures(name: str) -> None:
    _en, _zh, builder, _kind, used = REPORTS[name]
    q = Query(name, FIRST, FIRST + timedelta(hours=2), "hour")
    rows = 0
    for seed in range(20):
        rng = random.Random(seed)
        values = {(start, *key): figures(rng) for start in PERIODS for key in KEYS}
        whole = builder(cells(values, None, None), q, CONFIG)
        rows += len(whole[1])
        assert builder(cells(values, used, None), q, CONFIG) == whole, seed  # the others 0
        assert builder(cells(values, used, rng), q, CONFIG) == whole, seed  # the others anything
    assert rows, "the report had rows to compare"
