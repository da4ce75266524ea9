"""The report aggregates as a projection: closed intervals written in the journal's next batch, in the same
transaction as the facts that closed them (as the CRM history rows are), and added into their local day
and month once."""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import partial

from acd import decisions as d
from crmstore import reports as store_ops
from crmstore.plan import Plan

from ..journal import facts as f
from ..journal.journal import Journal
from .intervals import Closed, Intervals


def day_start(at: float, tz: tzinfo | None) -> int:
    moment = datetime.fromtimestamp(at, tz)
    return int(moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def month_start(at: float, tz: tzinfo | None) -> int:
    moment = datetime.fromtimestamp(at, tz)
    return int(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


class ReportsWriter:
    def __init__(self, intervals: Intervals, journal: Journal, tz: tzinfo | None) -> None:
        self.intervals = intervals
        self.journal = journal
        self.tz = tz

    def __call__(self, fact: f.Fact | None, decisions: list[d.Decision]) -> None:
        for closed in self.intervals.take_closed():
            self.journal.write_also(("report", closed.start), partial(self._plan, closed))
        for last_alive, back in self.intervals.gaps:
            self.journal.write_also(("gap", last_alive), partial(store_ops.add_gap, last_alive, back))
        self.intervals.gaps.clear()

    def _plan(self, closed: Closed) -> Plan[None]:
        cells = {key: cell.columns() for key, cell in closed.cells.items()}
        return store_ops.write_interval(closed.start, day_start(closed.start, self.tz),
                                        month_start(closed.start, self.tz), cells, closed.pauses)
