"""Storage of the report aggregates (ctiserver/reports folds them from the journal), as plans.

`report_cells` holds one row per grain x start x (queue, agent, flow): grain "15m" (closed 15-minute
intervals, written once as they close), "day" and "month" (local days and months of the centre, the sums of
their intervals, kept up to date as each interval closes). `report_folded` remembers which intervals were
added into their day and month, so writing an interval again (a restart replays the facts after its last
checkpoint) never counts it twice. `report_pauses` is paused time by agent and reason, `report_gaps` the
times the server was not watching.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .plan import Execute, ExecuteMany, Fetch, Plan

# The stored figures: ctiserver.reports.intervals.Cell.columns() gives exactly these (a test holds them equal).
METRICS = (
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "short_abandoned",
    "timed_out",
    "lost",
    "left_queue",
    "callbacks_requested",
    "callbacks_answered",
    "wait_answered_s",
    "wait_abandoned_s",
    "wait_max_s",
    "offers",
    "ring_no_answer",
    "handled",
    "talk_s",
    "hold_s",
    "wrapup_s",
    "transferred",
    "surveys",
    "survey_sum",
    "login_s",
    "available_s",
    "reserved_s",
    "on_call_s",
    "on_hold_s",
    "wrap_up_s",
    "paused_s",
    "not_responding_s",
    "ivr_calls",
    "ivr_contained",
    *(f"aw_{i}" for i in range(8)),  # answered calls by wait bucket
    *(f"ab_{i}" for i in range(8)),  # abandoned calls by wait bucket
    *(f"tk_{i}" for i in range(7)),  # handled calls by talk (+ hold) bucket
)
MAXIMA = frozenset({"wait_max_s"})
GRAINS = ("15m", "day", "month")
_KEYS = ("grain", "start", "queue", "agent", "flow")
_COLUMNS = (*_KEYS, *METRICS)


def _upsert(adding: bool) -> str:
    def merged(m: str) -> str:
        if not adding:
            return f"{m} = excluded.{m}"
        if m in MAXIMA:
            return f"{m} = CASE WHEN excluded.{m} > report_cells.{m} THEN excluded.{m} ELSE report_cells.{m} END"
        return f"{m} = report_cells.{m} + excluded.{m}"
    return (f"INSERT INTO report_cells ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
            f" ON CONFLICT ({', '.join(_KEYS)}) DO UPDATE SET " + ", ".join(merged(m) for m in METRICS))


_SET = _upsert(adding=False)
_ADD = _upsert(adding=True)
_PAUSE_SET = ("INSERT INTO report_pauses (grain, start, agent, reason, seconds) VALUES (?, ?, ?, ?, ?)"
              " ON CONFLICT (grain, start, agent, reason) DO UPDATE SET seconds = excluded.seconds")
_PAUSE_ADD = ("INSERT INTO report_pauses (grain, start, agent, reason, seconds) VALUES (?, ?, ?, ?, ?)"
              " ON CONFLICT (grain, start, agent, reason) DO UPDATE SET seconds = report_pauses.seconds"
              " + excluded.seconds")

CellKey = tuple[str, str, str]  # queue, agent, flow


@dataclass(frozen=True, slots=True)
class CellRow:
    grain: str
    start: int
    queue: str
    agent: str
    flow: str
    values: Mapping[str, float]


def write_interval(start: int, day: int, month: int, cells: Mapping[CellKey, Mapping[str, float]],
                   pauses: Mapping[tuple[str, str], float]) -> Plan[None]:
    """A closed 15-minute interval: its rows as they are, and, the first time only, added into its day
    (starting at local midnight `day`) and its month (`month`)."""
    rows = [("15m", start, q, a, fl, *(v[m] for m in METRICS)) for (q, a, fl), v in cells.items()]
    if rows:
        yield ExecuteMany(_SET, rows)
    if pauses:
        yield ExecuteMany(_PAUSE_SET, [("15m", start, a, r, s) for (a, r), s in pauses.items()])
    done = yield Fetch("SELECT 1 FROM report_folded WHERE start = ?", (start,))
    if done:
        return
    yield Execute("INSERT INTO report_folded (start) VALUES (?)", (start,))
    for grain, at in (("day", day), ("month", month)):
        if rows:
            yield ExecuteMany(_ADD, [(grain, at, *row[2:]) for row in rows])
        if pauses:
            yield ExecuteMany(_PAUSE_ADD, [(grain, at, a, r, s) for (a, r), s in pauses.items()])


def add_gap(last_alive: float, back: float) -> Plan[None]:
    yield Execute("INSERT INTO report_gaps (start, stop) VALUES (?, ?) ON CONFLICT (start) DO UPDATE SET"
                  " stop = excluded.stop", (last_alive, back))


ROW_KINDS = {
    "queue": "agent = '' AND flow = '' AND queue <> ''",  # the queues' calls
    "queue_agent": "flow = '' AND queue <> ''",  # the queues' calls, and each agent's part of them
    "agent": "agent <> ''",  # the agents' calls and time
    "flow": "flow <> ''",  # the IVR flows
}


def read_cells(grain: str, first: int, stop: int, *, kind: str | None = None, queues: Sequence[str] = (),
               agents: Sequence[str] = ()) -> Plan[list[CellRow]]:
    """The rows of one grain with first <= start < stop: of one kind (ROW_KINDS) or all, optionally for some
    queues or agents only."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM report_cells WHERE grain = ? AND start >= ? AND start < ?"
    if kind is not None:
        sql += f" AND {ROW_KINDS[kind]}"
    args: list[object] = [grain, first, stop]
    for column, wanted in (("queue", queues), ("agent", agents)):
        if wanted:
            sql += f" AND {column} IN ({', '.join('?' * len(wanted))})"
            args.extend(wanted)
    got = yield Fetch(sql, tuple(args))
    return [CellRow(r[0], int(r[1]), r[2], r[3], r[4], dict(zip(METRICS, r[5:], strict=True))) for r in got]


def _sum(metric: str) -> str:
    if metric in MAXIMA:
        return f"MAX({metric})"
    # SUM of a BIGINT is a NUMERIC (a Decimal) on PostgreSQL: cast back, so both backends give ints.
    return f"SUM({metric})" if metric.endswith("_s") else f"CAST(SUM({metric}) AS BIGINT)"


def _figures(figures: Sequence[str]) -> Sequence[str]:
    unknown = set(figures) - set(METRICS)
    if unknown:
        raise ValueError(f"not a stored figure: {', '.join(sorted(unknown))}")
    return figures


def read_sums(grain: str, first: int, stop: int, figures: Sequence[str] = METRICS, *, kind: str | None = None,
              queues: Sequence[str] = (), every: int = 0, origin: int = 0) -> Plan[list[tuple[Any, ...]]]:
    """The rows of one grain with first <= start < stop summed per (queue, agent, flow), in the database:
    (queue, agent, flow, *figures) (the maximum for maxima). With `every` (seconds), summed per bucket too:
    (bucket, queue, agent, flow, *figures), a row's bucket being the last `origin + k * every` at or before
    its start."""
    args: list[object] = []
    by = ""
    if every:
        by = "start - (start - ?) % ?, "
        args += [origin, every]
    sums = ", ".join(_sum(m) for m in _figures(figures))
    sql = f"SELECT {by}queue, agent, flow, {sums} FROM report_cells WHERE grain = ? AND start >= ? AND start < ?"
    args += [grain, first, stop]
    if kind is not None:
        sql += f" AND {ROW_KINDS[kind]}"
    if queues:
        sql += f" AND queue IN ({', '.join('?' * len(queues))})"
        args.extend(queues)
    # by position: PostgreSQL cannot tell that the bucket's parameters in a GROUP BY are the SELECT's
    got = yield Fetch(sql + (" GROUP BY 1, 2, 3, 4" if every else " GROUP BY 1, 2, 3"), tuple(args))
    return [tuple(r) for r in got]


def read_rows(grain: str, first: int, stop: int, figures: Sequence[str] = METRICS, *, kind: str | None = None,
              queues: Sequence[str] = ()) -> Plan[list[tuple[Any, ...]]]:
    """The rows themselves: (start, queue, agent, flow, *figures)."""
    sql = (f"SELECT start, queue, agent, flow, {', '.join(_figures(figures))} FROM report_cells WHERE grain = ?"
           " AND start >= ? AND start < ?")
    if kind is not None:
        sql += f" AND {ROW_KINDS[kind]}"
    args: list[object] = [grain, first, stop]
    if queues:
        sql += f" AND queue IN ({', '.join('?' * len(queues))})"
        args.extend(queues)
    got = yield Fetch(sql, tuple(args))
    return [tuple(r) for r in got]


def read_pauses(grain: str, first: int, stop: int, agents: Sequence[str] = ()) -> Plan[list[tuple[int, str, str, float]]]:
    sql = "SELECT start, agent, reason, seconds FROM report_pauses WHERE grain = ? AND start >= ? AND start < ?"
    args: list[object] = [grain, first, stop]
    if agents:
        sql += f" AND agent IN ({', '.join('?' * len(agents))})"
        args.extend(agents)
    got = yield Fetch(sql, tuple(args))
    return [(int(r[0]), r[1], r[2], float(r[3])) for r in got]


def read_gaps(first: float, stop: float) -> Plan[list[tuple[float, float]]]:
    got = yield Fetch("SELECT start, stop FROM report_gaps WHERE stop > ? AND start < ? ORDER BY start",
                      (first, stop))
    return [(float(a), float(b)) for a, b in got]


def covered(first: float, stop: float) -> Plan[tuple[float | None, float | None]]:
    """The first and last closed interval stored within the range (None, None when there is none)."""
    got = yield Fetch("SELECT MIN(start), MAX(start) FROM report_cells WHERE grain = '15m' AND start >= ?"
                      " AND start < ?", (first, stop))
    return (got[0][0], got[0][1]) if got else (None, None)


def calls_behind(first: float, stop: float, what: str, *, queue: str = "", agent: str = "",
                 limit: int = 500) -> Plan[list[dict[str, object]]]:
    """Drill-down: the CRM rows behind a figure of a cell (docs/reports.md says which times count)."""
    when = {"offered": "queued_at", "answered": "answered_at", "abandoned": "ended_at", "handled": "ended_at",
            "lost": "ended_at", "transferred": "ended_at"}[what]
    sql = (f"SELECT call_id, caller, queue, agent, outcome, started_at, queued_at, answered_at, ended_at, wait_s,"
           f" talk_s, hold_s, wrapup_s, hung_up_by, transferred_to FROM interactions WHERE {when} >= ? AND {when} < ?")
    args: list[object] = [first, stop]
    if what == "abandoned":
        sql += " AND outcome = 'abandoned'"
    elif what == "lost":
        sql += " AND outcome = 'lost'"
    elif what == "transferred":
        sql += " AND transferred_to <> ''"
    elif what in ("answered", "handled"):
        sql += " AND answered_at IS NOT NULL"
    for column, value in (("queue", queue), ("agent", agent)):
        if value:
            sql += f" AND {column} = ?"
            args.append(value)
    got = yield Fetch(sql + f" ORDER BY {when} LIMIT ?", (*args, limit))
    keys = ("call_id", "caller", "queue", "agent", "outcome", "started_at", "queued_at", "answered_at", "ended_at",
            "wait_s", "talk_s", "hold_s", "wrapup_s", "hung_up_by", "transferred_to")
    return [dict(zip(keys, r, strict=True)) for r in got]


def repeat_callers(first: float, stop: float, within_s: float, queues: Iterable[str] = ()) -> Plan[tuple[int, int]]:
    """(answered calls in the range, those whose caller called again within `within_s`): first-contact
    resolution is 1 - repeats / answered."""
    wanted = list(queues)
    only = f" AND i.queue IN ({', '.join('?' * len(wanted))})" if wanted else ""
    got = yield Fetch(
        "SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM interactions j WHERE j.caller = i.caller"
        " AND j.started_at > i.started_at AND j.started_at <= i.started_at + ? AND j.segment = 1) THEN 1"
        " ELSE 0 END) FROM interactions i WHERE i.answered_at IS NOT NULL AND i.segment = 1 AND i.caller <> ''"
        f" AND i.started_at >= ? AND i.started_at < ?{only}",
        (within_s, first, stop, *wanted))
    total, repeats = got[0]
    return int(total or 0), int(repeats or 0)


def grade_moves(first: float, stop: float) -> Plan[list[tuple[str, str, int]]]:
    """(old grade or "", new grade, customers) of the grading runs in the period: A->B, new A ..."""
    got = yield Fetch("SELECT COALESCE(old_grade, ''), new_grade, COUNT(*) FROM grade_history"
                      " WHERE changed_at >= ? AND changed_at < ? GROUP BY COALESCE(old_grade, ''), new_grade"
                      " ORDER BY 1, 2", (first, stop))
    return [(str(a), str(b), int(n)) for a, b, n in got]
