"""Reports: the figures of docs/reports.md over a period, from the stored aggregates (and, in the server, the
interval still open), grouped by interval and by queue, agent or flow. Every formula is written once, here,
and docs/reports.md says it in words.

`run_report(store, query, config)` reads the coarsest stored rows that fit (months inside the period, then
days, then 15-minute intervals for the edges), so a year reads a few thousand rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from acd.config import AcdConfig, ServiceLevel
from crmstore import campaign_plans as cp
from crmstore import reports as store_ops
from crmstore.campaign_store import CampaignStore
from crmstore.journal import read_rows_between
from crmstore.store import CrmStore

from ..journal import facts as jf
from .intervals import INTERVAL_S, TALK_BUCKETS, WAIT_BUCKETS, Cell, Intervals
from .outbound import KINDS, CampaignInfo, OutboundDays, day_ends, outbound_rows

GROUPINGS = ("15m", "hour", "day", "month", "total")


class ReportError(ValueError):
    """What was asked makes no sense (unknown report, queue or agent; an inverted range): one line."""


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    en: str
    zh: str
    unit: str = ""  # "", "s" (seconds), "%", "score"


@dataclass(frozen=True, slots=True)
class Query:
    report: str
    first: datetime  # aware, in the centre's zone
    stop: datetime  # exclusive
    grouping: str = "day"
    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    fcr_days: int = 3


@dataclass(slots=True)
class Report:
    name: str
    title_en: str
    title_zh: str
    query: Query
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # gaps, the open interval: said, never shown as zeros
    # The same, as data (a page says them in its own language): (last sign of life, back) of each
    # downtime in the period, and the start of the open interval if the period reaches it.
    gaps: list[tuple[float, float]] = field(default_factory=list)
    open_from: float | None = None
    open_included: bool = False


# ------------------------------------------------------------------------------------------ reading cells


@dataclass(slots=True)
class _Cells:
    """Cells of the period at the grouping's granularity: (bucket start, queue, agent, flow) -> Cell."""

    cells: dict[tuple[int, str, str, str], Cell]
    pauses: dict[tuple[int, str, str], float]


def _buckets(first: datetime, stop: datetime, grouping: str) -> Callable[[int], int]:
    tz = first.tzinfo
    first_ts = int(first.timestamp())

    def bucket(start: int) -> int:
        if grouping == "15m":
            return start
        if grouping == "hour":
            return start - start % 3600 if tz is None else _local_floor(start, tz, "hour")
        if grouping == "day":
            return _local_floor(start, tz, "day")
        if grouping == "month":
            return _local_floor(start, tz, "month")
        return first_ts

    return bucket


def _local_floor(at: int, tz: tzinfo | None, unit: str) -> int:
    moment = datetime.fromtimestamp(at, tz)
    if unit == "hour":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    elif unit == "day":
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(moment.timestamp())


def _spans(first: datetime, stop: datetime, grouping: str) -> list[tuple[str, int, int]]:
    """(grain, from, to) pieces covering [first, stop): whole months and days from their rows when the
    grouping allows, 15-minute rows for the rest."""
    out: list[tuple[str, int, int]] = []
    t = first
    while t < stop:
        midnight = _midnight(t)
        next_day = _midnight(t, days=1)
        if grouping in ("month", "total") and t == midnight and t.day == 1 and _add_month(t) <= stop:
            out.append(("month", int(t.timestamp()), int(_add_month(t).timestamp())))
            t = _add_month(t)
        elif grouping in ("day", "month", "total") and t == midnight and next_day <= stop:
            out.append(("day", int(t.timestamp()), int(next_day.timestamp())))
            t = next_day
        else:  # to the next local midnight (or the end), in 15-minute rows
            end = min(next_day, stop)
            out.append(("15m", int(t.timestamp()), int(end.timestamp())))
            t = end
    return out


def _midnight(t: datetime, days: int = 0) -> datetime:
    """Local midnight of t's day (plus `days`), right across daylight saving changes."""
    return datetime.combine(t.date() + timedelta(days=days), time(0), tzinfo=t.tzinfo)


def _add_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return datetime.combine(t.date().replace(year=year, month=month, day=1), time(0), tzinfo=t.tzinfo)


_WIDTH = {"15m": INTERVAL_S, "hour": 3600}  # the groupings whose buckets split a span of rows


@dataclass(frozen=True, slots=True)
class _Piece:
    """Rows of one grain with first <= start < stop, summed into `bucket`, or with `every` (seconds) into
    `bucket + k * every` (every 1: each row start its own bucket), or (every -1) bucketed row by row."""

    grain: str
    first: int
    stop: int
    bucket: int
    every: int = 0
    spans: int = 1


def _pieces(q: Query) -> list[_Piece]:
    """The spans of the period as reads. Neighbours of one grain make one read when they fall in one
    bucket (a year in total from its month rows: one query, not twelve), or when each is a day or month row
    that is its own bucket (a month by day from its day rows). A span cut into buckets is summed per
    bucket in the database when its buckets are evenly spaced (checked at every row start: a zone whose
    offset moves by a part of an hour is not), row by row otherwise."""
    bucket = _buckets(q.first, q.stop, q.grouping)
    out: list[_Piece] = []
    for grain, a, b in _spans(q.first, q.stop, q.grouping):
        first_bucket = bucket(a)
        if first_bucket == bucket(b - 1):
            last = out[-1] if out else None
            if last is None or (last.grain, last.stop) != (grain, a):
                out.append(_Piece(grain, a, b, first_bucket))
            elif (last.bucket, last.every) == (first_bucket, 0):
                out[-1] = _Piece(grain, last.first, b, first_bucket, 0, last.spans + 1)
            # a day or month span holds one row start: its own bucket when the bucket starts there
            elif grain != "15m" and first_bucket == a and (
                    last.every == 1 or (last.every, last.spans, last.bucket) == (0, 1, last.first)):
                out[-1] = _Piece(grain, last.first, b, last.first, 1, last.spans + 1)
            else:
                out.append(_Piece(grain, a, b, first_bucket))
            continue
        every = _WIDTH.get(q.grouping, -1)
        starts = range(a + (-a) % INTERVAL_S, b, INTERVAL_S)
        if every > 0 and any(bucket(t) != t - (t - first_bucket) % every for t in starts):
            every = -1
        out.append(_Piece(grain, a, b, first_bucket, every))
    return out


async def _read(store: CrmStore, q: Query, live: Intervals | None, kind: str | None = None,
                figures: Sequence[str] = store_ops.METRICS, pauses_too: bool = False) -> _Cells:
    """Sums of `figures` per (bucket, queue, agent, flow): in the database where it can, row by row (plain
    lists, no objects) where it cannot. The other figures are 0."""
    bucket = _buckets(q.first, q.stop, q.grouping)
    biggest_at = figures.index("wait_max_s") if "wait_max_s" in figures else -1
    sums: dict[tuple[int, str, str, str], list[float]] = {}
    pauses: dict[tuple[int, str, str], float] = {}
    queues = q.queues if kind in ("queue", "queue_agent") else ()

    def take(full: tuple[int, str, str, str], values: list[float] | tuple[Any, ...]) -> None:
        mine = sums.get(full)
        if mine is None:
            sums[full] = list(values)
            return
        sums[full] = [a + b for a, b in zip(mine, values, strict=True)]
        if biggest_at >= 0:
            sums[full][biggest_at] = max(mine[biggest_at], values[biggest_at])

    for piece in _pieces(q):
        grain, a, b = piece.grain, piece.first, piece.stop
        if piece.every == 0:
            for row in await store.read_plan(store_ops.read_sums(grain, a, b, figures, kind=kind, queues=queues)):
                take((piece.bucket, row[0], row[1], row[2]), row[3:])
        elif piece.every > 0:
            for row in await store.read_plan(store_ops.read_sums(grain, a, b, figures, kind=kind, queues=queues,
                                                                 every=piece.every, origin=piece.bucket)):
                take((int(row[0]), row[1], row[2], row[3]), row[4:])
        else:
            for row in await store.read_plan(store_ops.read_rows(grain, a, b, figures, kind=kind, queues=queues)):
                take((bucket(int(row[0])), row[1], row[2], row[3]), row[4:])
        if pauses_too:
            for start, agent, reason, seconds in await store.read_plan(store_ops.read_pauses(grain, a, b)):
                key = (bucket(start), agent, reason)
                pauses[key] = pauses.get(key, 0.0) + seconds
    if live is not None and live.start is not None and q.first.timestamp() <= live.start < q.stop.timestamp():
        for (queue, agent, flow), cell in live.cells.items():
            take((bucket(live.start), queue, agent, flow), [getattr(cell, m) for m in figures])
        for (agent, reason), seconds in live.pauses.items():
            pkey = (bucket(live.start), agent, reason)
            pauses[pkey] = pauses.get(pkey, 0.0) + seconds
    return _Cells({key: Cell.of_some(figures, values) for key, values in sums.items()}, pauses)


# ------------------------------------------------------------------------------------------ formulas


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def mean(total: float, count: float) -> float | None:
    return round(total / count, 1) if count else None


def service_level(c: Cell, sl: ServiceLevel) -> float | None:
    """The queue's own formula (acd.config.ServiceLevel, the one the wallboard uses); a cell's
    `abandoned` includes its short abandons, the formula takes them apart."""
    counted = sl.counted(c.answered, c.abandoned - c.short_abandoned, c.short_abandoned)
    return pct(c.answered_in_sl, counted)


def _service_level(config: AcdConfig, queue: str) -> ServiceLevel:
    return config.queue(queue).service_level if config.has_queue(queue) else ServiceLevel()


def aht(c: Cell) -> float | None:
    return mean(c.talk_s + c.hold_s + c.wrapup_s, c.handled)


def loss(c: Cell) -> int:
    return c.abandoned + c.timed_out + c.lost


# ------------------------------------------------------------------------------------------ the reports

_PERIOD = Column("period", "Period", "时段")
_QUEUE = Column("queue", "Queue", "队列")
_AGENT = Column("agent", "Agent", "座席")


def _wait_columns(prefix: str, en: str, zh: str) -> list[Column]:
    bounds = [0, *WAIT_BUCKETS]
    cols = [Column(f"{prefix}_{i}", f"{en} {bounds[i]}-{bounds[i + 1]} s", f"{zh} {bounds[i]}-{bounds[i + 1]} 秒")
            for i in range(len(WAIT_BUCKETS))]
    cols.append(Column(f"{prefix}_{len(WAIT_BUCKETS)}", f"{en} over {WAIT_BUCKETS[-1]} s",
                       f"{zh} {WAIT_BUCKETS[-1]} 秒以上"))
    return cols


def _talk_columns() -> list[Column]:
    bounds = [0, *TALK_BUCKETS]
    cols = [Column(f"tk_{i}", f"Talk {bounds[i]}-{bounds[i + 1]} s", f"通话 {bounds[i]}-{bounds[i + 1]} 秒")
            for i in range(len(TALK_BUCKETS))]
    cols.append(Column(f"tk_{len(TALK_BUCKETS)}", f"Talk over {TALK_BUCKETS[-1]} s", f"通话 {TALK_BUCKETS[-1]} 秒以上"))
    return cols


def _queue_rows(data: _Cells, q: Query, config: AcdConfig,
                figures: Callable[[Cell, str], dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (start, queue, agent, flow), cell in sorted(data.cells.items()):
        if agent or flow or not queue or (q.queues and queue not in q.queues):
            continue
        out.append({"period": start, "queue": queue, **figures(cell, queue)})
    return out


def _agent_cells(data: _Cells, q: Query) -> dict[tuple[int, str], tuple[Cell, Cell]]:
    """(period, agent) -> (their calls over all queues (or the asked ones), their time)."""
    calls: dict[tuple[int, str], list[Cell]] = {}
    time: dict[tuple[int, str], list[Cell]] = {}
    for (start, queue, agent, flow), cell in data.cells.items():
        if not agent or flow or (q.agents and agent not in q.agents):
            continue
        key = (start, agent)
        mine = calls.setdefault(key, [])
        theirs = time.setdefault(key, [])
        if queue and (not q.queues or queue in q.queues):
            mine.append(cell)
        elif not queue:
            theirs.append(cell)
    return {key: (Cell.total(cells), Cell.total(time[key])) for key, cells in calls.items()}


def inbound_summary(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, Column("offered", "Offered", "呼入"), Column("answered", "Answered", "接通"),
            Column("abandoned", "Abandoned", "放弃"), Column("short_abandoned", "Short abandons", "短时放弃"),
            Column("abandon_rate", "Abandon rate", "放弃率", "%"),
            Column("service_level", "Service level", "服务水平", "%"), Column("asa", "ASA", "平均应答时间", "s"),
            Column("aht", "AHT", "平均处理时长", "s"), Column("longest_wait", "Longest wait", "最长等待", "s"),
            Column("transferred", "Transferred", "转接"), Column("callbacks", "Callbacks", "回呼"),
            Column("timed_out", "Timed out", "超时"), Column("lost", "Lost (system)", "系统丢失")]
    return cols, _queue_rows(data, q, config, lambda c, queue: {
        "offered": c.offered, "answered": c.answered, "abandoned": c.abandoned,
        "short_abandoned": c.short_abandoned, "abandon_rate": pct(c.abandoned - c.short_abandoned, c.offered),
        "service_level": service_level(c, _service_level(config, queue)), "asa": mean(c.wait_answered_s, c.answered),
        "aht": aht(c), "longest_wait": round(c.wait_max_s, 1), "transferred": c.transferred,
        "callbacks": c.callbacks_requested, "timed_out": c.timed_out, "lost": c.lost})


def call_duration(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, Column("handled", "Handled", "处理"), Column("talk_total", "Talk time", "通话总时长", "s"),
            Column("talk_avg", "Average talk", "平均通话", "s"), Column("hold_avg", "Average hold", "平均保持", "s"),
            Column("wrapup_avg", "Average wrap-up", "平均话后", "s"), Column("aht", "AHT", "平均处理时长", "s"),
            *_talk_columns()]
    return cols, _queue_rows(data, q, config, lambda c, queue: {
        "handled": c.handled, "talk_total": round(c.talk_s, 1), "talk_avg": mean(c.talk_s, c.handled),
        "hold_avg": mean(c.hold_s, c.handled), "wrapup_avg": mean(c.wrapup_s, c.handled), "aht": aht(c),
        **{f"tk_{i}": v for i, v in enumerate(c.tk)}})


def waiting_time(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, Column("answered", "Answered", "接通"), Column("asa", "ASA", "平均应答时间", "s"),
            Column("abandoned", "Abandoned", "放弃"),
            Column("abandon_wait", "Average wait before abandoning", "放弃前平均等待", "s"),
            Column("longest_wait", "Longest wait", "最长等待", "s"),
            *_wait_columns("aw", "Answered within", "接通于"), *_wait_columns("ab", "Abandoned within", "放弃于")]
    return cols, _queue_rows(data, q, config, lambda c, queue: {
        "answered": c.answered, "asa": mean(c.wait_answered_s, c.answered), "abandoned": c.abandoned,
        "abandon_wait": mean(c.wait_abandoned_s, c.abandoned), "longest_wait": round(c.wait_max_s, 1),
        **{f"aw_{i}": v for i, v in enumerate(c.aw)}, **{f"ab_{i}": v for i, v in enumerate(c.ab)}})


def call_loss(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, Column("offered", "Offered", "呼入"), Column("answered", "Answered", "接通"),
            Column("abandoned", "Abandoned", "放弃"), Column("timed_out", "Timed out", "超时"),
            Column("lost", "Lost (system)", "系统丢失"), Column("lost_calls", "Calls lost", "呼损"),
            Column("loss_rate", "Call loss rate", "呼损率", "%")]
    return cols, _queue_rows(data, q, config, lambda c, queue: {
        "offered": c.offered, "answered": c.answered, "abandoned": c.abandoned, "timed_out": c.timed_out,
        "lost": c.lost, "lost_calls": loss(c), "loss_rate": pct(loss(c), c.offered)})


def transfer_rate(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, _AGENT, Column("handled", "Handled", "处理"),
            Column("transferred", "Transferred", "转接"), Column("transfer_rate", "Transfer rate", "呼叫传送率", "%")]
    out: list[dict[str, Any]] = []
    for (start, queue, agent, flow), c in sorted(data.cells.items()):
        if flow or not queue or (q.queues and queue not in q.queues) or (q.agents and agent not in q.agents):
            continue
        out.append({"period": start, "queue": queue, "agent": agent, "handled": c.handled,
                    "transferred": c.transferred, "transfer_rate": pct(c.transferred, c.handled)})
    return cols, out


def agent_load(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    reasons = sorted({r for (_s, _a, r) in data.pauses})
    cols = [_PERIOD, _AGENT, Column("login", "Logged in", "登录时长", "s"),
            Column("available", "Available", "空闲", "s"), Column("ringing", "Ringing", "振铃", "s"),
            Column("talking", "Talking", "通话", "s"), Column("on_hold", "On hold", "保持", "s"),
            Column("wrap_up", "Wrap-up", "话后处理", "s"), Column("paused", "Paused", "示忙", "s"),
            *(Column(f"pause:{r}", f"Paused: {r}", f"示忙：{r}", "s") for r in reasons),
            Column("occupancy", "Occupancy", "座席负载率", "%"), Column("utilization", "Utilization", "利用率", "%")]
    out: list[dict[str, Any]] = []
    for (start, agent), (_calls, t) in sorted(_agent_cells(data, q).items()):
        if not t.login_s:
            continue
        busy = t.reserved_s + t.on_call_s + t.on_hold_s + t.wrap_up_s
        out.append({"period": start, "agent": agent, "login": round(t.login_s), "available": round(t.available_s),
                    "ringing": round(t.reserved_s), "talking": round(t.on_call_s), "on_hold": round(t.on_hold_s),
                    "wrap_up": round(t.wrap_up_s), "paused": round(t.paused_s),
                    **{f"pause:{r}": round(data.pauses.get((start, agent, r), 0.0)) for r in reasons},
                    "occupancy": pct(busy, busy + t.available_s),
                    "utilization": pct(t.on_call_s + t.on_hold_s + t.wrap_up_s, t.login_s)})
    return cols, out


def agent_comparison(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _AGENT, Column("answered", "Answered", "接通"), Column("handled", "Handled", "处理"),
            Column("aht", "AHT", "平均处理时长", "s"), Column("talk_avg", "Average talk", "平均通话", "s"),
            Column("wrapup_avg", "Average wrap-up", "平均话后", "s"),
            Column("occupancy", "Occupancy", "座席负载率", "%"), Column("transfer_rate", "Transfer rate", "转接率", "%"),
            Column("ring_no_answer", "Ring, no answer", "振铃未接"), Column("csat", "Satisfaction", "满意度", "score"),
            Column("surveys", "Surveys", "评价数"), Column("rank", "Rank (answered)", "排名（接通）")]
    out: list[dict[str, Any]] = []
    for (start, agent), (c, t) in sorted(_agent_cells(data, q).items()):
        if not (c.offers or c.answered or c.handled or t.login_s):
            continue
        busy = t.reserved_s + t.on_call_s + t.on_hold_s + t.wrap_up_s
        out.append({"period": start, "agent": agent, "answered": c.answered, "handled": c.handled, "aht": aht(c),
                    "talk_avg": mean(c.talk_s, c.handled), "wrapup_avg": mean(c.wrapup_s, c.handled),
                    "occupancy": pct(busy, busy + t.available_s), "transfer_rate": pct(c.transferred, c.handled),
                    "ring_no_answer": c.ring_no_answer, "csat": mean(c.survey_sum, c.surveys), "surveys": c.surveys})
    for period in {r["period"] for r in out}:  # rank within each period: most answered first
        mine = sorted((r for r in out if r["period"] == period), key=lambda r: (-r["answered"], r["agent"]))
        for n, r in enumerate(mine, 1):
            r["rank"] = n
    return cols, out


def satisfaction(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, _AGENT, Column("surveys", "Surveys", "评价数"),
            Column("csat", "Average score", "平均分", "score")]
    out: list[dict[str, Any]] = []
    for (start, queue, agent, flow), c in sorted(data.cells.items()):
        if flow or not queue or not c.surveys or (q.queues and queue not in q.queues) \
                or (q.agents and agent and agent not in q.agents):
            continue
        out.append({"period": start, "queue": queue, "agent": agent or "", "surveys": c.surveys,
                    "csat": mean(c.survey_sum, c.surveys)})
    return cols, out


def ivr_containment(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, Column("flow", "IVR flow", "语音流程"), Column("ivr_calls", "Calls", "呼入"),
            Column("contained", "Served in the IVR", "自助完成"), Column("containment", "Containment", "自助率", "%")]
    out: list[dict[str, Any]] = []
    for (start, _queue, _agent, flow), c in sorted(data.cells.items()):
        if flow:
            out.append({"period": start, "flow": flow, "ivr_calls": c.ivr_calls, "contained": c.ivr_contained,
                        "containment": pct(c.ivr_contained, c.ivr_calls)})
    return cols, out


def callbacks(data: _Cells, q: Query, config: AcdConfig) -> tuple[list[Column], list[dict[str, Any]]]:
    cols = [_PERIOD, _QUEUE, Column("requested", "Callbacks requested", "回呼请求"),
            Column("answered", "Callbacks answered", "回呼接通"), Column("success", "Callback success", "回呼成功率", "%")]
    return cols, [r for r in _queue_rows(data, q, config, lambda c, queue: {
        "requested": c.callbacks_requested, "answered": c.callbacks_answered,
        "success": pct(c.callbacks_answered, c.callbacks_requested)}) if r["requested"] or r["answered"]]


Builder = Callable[[_Cells, Query, AcdConfig], tuple[list[Column], list[dict[str, Any]]]]
_AW = tuple(f"aw_{i}" for i in range(len(WAIT_BUCKETS) + 1))
_AB = tuple(f"ab_{i}" for i in range(len(WAIT_BUCKETS) + 1))
_TK = tuple(f"tk_{i}" for i in range(len(TALK_BUCKETS) + 1))
_AHT = ("handled", "talk_s", "hold_s", "wrapup_s")
_AGENT_TIME = ("login_s", "available_s", "reserved_s", "on_call_s", "on_hold_s", "wrap_up_s", "paused_s")
# name: (English title, Chinese title, builder, the rows it reads (crmstore.reports.ROW_KINDS), the figures
# its formulas use: only these are read, the others are 0 in its cells; a test holds each builder to them)
REPORTS: Mapping[str, tuple[str, str, Builder, str, tuple[str, ...]]] = {
    "inbound-summary": ("Inbound summary", "呼入汇总", inbound_summary, "queue",
                        ("offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "wait_answered_s",
                         "wait_max_s", *_AHT, "transferred", "callbacks_requested", "timed_out", "lost")),
    "call-duration": ("Call duration", "呼叫时长", call_duration, "queue", (*_AHT, *_TK)),
    "waiting-time": ("Waiting time", "等候时长", waiting_time, "queue",
                     ("answered", "wait_answered_s", "abandoned", "wait_abandoned_s", "wait_max_s", *_AW, *_AB)),
    "agent-load": ("Agent load rate", "座席负载率", agent_load, "agent", _AGENT_TIME),
    "call-loss": ("Call loss rate", "呼损率", call_loss, "queue", ("offered", "answered", "abandoned", "timed_out",
                                                                   "lost")),
    "transfer-rate": ("Call transfer rate", "呼叫传送率", transfer_rate, "queue_agent", ("handled", "transferred")),
    "agent-comparison": ("Agent performance comparison", "座席绩效对比", agent_comparison, "agent",
                         ("offers", "answered", *_AHT, "transferred", "ring_no_answer", "surveys", "survey_sum",
                          *_AGENT_TIME)),
    "satisfaction": ("Satisfaction", "满意度", satisfaction, "queue_agent", ("surveys", "survey_sum")),
    "ivr-containment": ("IVR containment", "语音自助率", ivr_containment, "flow", ("ivr_calls", "ivr_contained")),
    "callbacks": ("Callbacks", "回呼", callbacks, "queue", ("callbacks_requested", "callbacks_answered")),
}
OTHER_REPORTS: Mapping[str, tuple[str, str]] = {
    "first-contact": ("First-contact resolution", "首次解决率"),
    "grade-movements": ("Customer grade movements", "客户等级变化"),
    "churn-candidates": ("Churn candidates", "流失预警客户"),
    "outbound": ("Outbound campaigns", "外呼活动"),
}
ALL_REPORTS = (*REPORTS, *OTHER_REPORTS)


def check(query: Query, config: AcdConfig) -> None:
    if query.report not in ALL_REPORTS:
        raise ReportError(f"unknown report {query.report!r}; the reports are: {', '.join(ALL_REPORTS)}")
    if query.first >= query.stop:
        raise ReportError(f"the period is empty or inverted: from {query.first:%Y-%m-%d %H:%M} "
                          f"to {query.stop:%Y-%m-%d %H:%M}")
    if query.stop - query.first > timedelta(days=3 * 366):
        raise ReportError("the period is longer than three years: ask for a shorter one")
    if query.grouping not in GROUPINGS:
        raise ReportError(f"unknown interval {query.grouping!r}; use one of {', '.join(GROUPINGS)}")
    for queue in query.queues:
        if not config.has_queue(queue):
            raise ReportError(f"unknown queue {queue!r}; the queues are: {', '.join(x.name for x in config.queues)}")
    for agent in query.agents:
        if not config.has_agent(agent):
            raise ReportError(f"unknown agent {agent!r}")
    if query.grouping == "15m" and query.stop - query.first > timedelta(days=31):
        raise ReportError("15-minute rows are for periods of up to a month: ask for hours, days or months")


async def run_report(store: CrmStore, query: Query, config: AcdConfig, *, live: Intervals | None = None,
                     now: float | None = None) -> Report:
    check(query, config)
    if query.report == "first-contact":
        return await _first_contact(store, query)
    if query.report == "grade-movements":
        return await _grade_movements(store, query)
    if query.report == "churn-candidates":
        return await _churn(store, query)
    if query.report == "outbound":
        return await _outbound(store, query, live)
    en, zh, builder, kind, figures = REPORTS[query.report]
    data = await _read(store, query, live, kind, figures, pauses_too=query.report == "agent-load")
    columns, rows = builder(data, query, config)
    report = Report(query.report, en, zh, query, columns, rows)
    await _notes(store, report, live, now)
    return report


async def _first_contact(store: CrmStore, query: Query) -> Report:
    answered, repeats = await store.read_plan(store_ops.repeat_callers(
        query.first.timestamp(), query.stop.timestamp(), query.fcr_days * 86400.0, query.queues))
    cols = [Column("answered", "Answered calls", "接通"), Column("repeats", f"Called again within {query.fcr_days} days",
                                                                  f"{query.fcr_days} 天内再次来电"),
            Column("fcr", "First-contact resolution", "首次解决率", "%")]
    en, zh = OTHER_REPORTS["first-contact"]
    return Report("first-contact", en, zh, query, cols,
                  [{"answered": answered, "repeats": repeats, "fcr": pct(answered - repeats, answered)}],
                  ["computed from the call history (one row per call), not from the interval aggregates"])


async def _grade_movements(store: CrmStore, query: Query) -> Report:
    moves = await store.read_plan(store_ops.grade_moves(query.first.timestamp(), query.stop.timestamp()))
    cols = [Column("from", "From grade", "原等级"), Column("to", "To grade", "新等级"),
            Column("customers", "Customers", "客户数")]
    en, zh = OTHER_REPORTS["grade-movements"]
    rows = [{"from": old or "new", "to": new, "customers": n} for old, new, n in moves]
    return Report("grade-movements", en, zh, query, cols, rows,
                  [] if rows else ["no grading run in this period (ctiserver crm grade, or the daily schedule)"])


async def _churn(store: CrmStore, query: Query) -> Report:
    entries = await store.churn_list(now=query.stop)
    cols = [Column("customer_id", "Customer", "客户编号"), Column("name", "Name", "姓名"),
            Column("grade", "Grade", "等级"), Column("signals", "Signals", "预警信号")]
    en, zh = OTHER_REPORTS["churn-candidates"]
    rows = [{"customer_id": e.customer_id, "name": e.name, "grade": e.grade.value if e.grade else "",
             "signals": "; ".join(f"{s.kind}: {s.detail}" for s in e.signals)} for e in entries]
    return Report("churn-candidates", en, zh, query, cols, rows)


OUTBOUND_NOTE = ("from the journal's dialer facts, one row per campaign and day whatever the interval; list penetration"
                 " from the campaign's attempts")
OUTBOUND_COLUMNS = [
    Column("period", "Day", "日期"), Column("campaign", "Campaign", "外呼活动"),
    Column("attempts", "Attempts", "拨打次数"), Column("connects", "Connects", "接通"),
    Column("right_party", "Right-party contacts", "本人接通"), Column("abandoned", "Abandoned", "放弃"),
    Column("abandon_rate", "Abandon rate", "放弃率", "%"), Column("abandon_cap", "Abandon cap", "放弃率上限", "%"),
Column("machines", "Answering machines", "答录机"),
    Column("handle_s", "Handle time", "处理时长", "s"), Column("agents", "Agents", "座席数"),
    Column("occupancy", "Agent occupancy", "座席占用率", "%"),
    Column("penetration", "List penetration", "名单渗透率", "%"),
]


async def _outbound(store: CrmStore, query: Query, live: Intervals | None) -> Report:
    """From the journal (docs/reports.md, Outbound; the formulas in reports/outbound.py)."""
    stored_campaigns = await CampaignStore(store).all()
    days = OutboundDays(query.first.tzinfo, {c.campaign.name: c.campaign for c in stored_campaigns})
    after, first, stop = 0, query.first.timestamp(), query.stop.timestamp()
    while True:
        rows = await store.read_plan(read_rows_between(first, stop, after, 5000))
        for seq, at, kind, _call, _agent, body in rows:
            after = seq
            if kind in KINDS:
                days.apply(at, jf.decode(kind, body))
        if len(rows) < 5000:
            break
    ends = list(day_ends(query.first, query.stop))
    infos = {}
    for stored in stored_campaigns:
        name = stored.campaign.name
        if not any(k[0] == name for k in days.days):
            continue
        progress = await CampaignStore(store).progress(name)
        counts = await store.read_plan(cp.dialled_by(name, [at for _, at in ends]))
        infos[name] = CampaignInfo(stored.campaign.abandon_cap, progress.contacts - progress.excluded,
                                   {day: n for (day, _), n in zip(ends, counts, strict=True)})
    # The staffed time of the agents who took campaign calls: the agent-load report's aggregates, by day.
    staffed: dict[tuple[str, str], float] = {}
    agents = tuple(sorted({a for day in days.days.values() for a in day.agents}))
    if agents:
        times = await _read(store, Query("agent-load", query.first, query.stop, "day", (), agents), live, "agent",
                            _AGENT_TIME)
        for (start, queue, agent, flow), cell in times.cells.items():
            if agent in agents and not queue and not flow:
                day = datetime.fromtimestamp(start, query.first.tzinfo).strftime("%Y-%m-%d")
                staffed[(day, agent)] = staffed.get((day, agent), 0.0) + cell.login_s - cell.paused_s
    en, zh = OTHER_REPORTS["outbound"]
    by_day = Query(query.report, query.first, query.stop, "day", query.queues, query.agents, query.fcr_days)
    return Report("outbound", en, zh, by_day, OUTBOUND_COLUMNS, outbound_rows(days, infos, staffed),
                  [OUTBOUND_NOTE])


async def _notes(store: CrmStore, report: Report, live: Intervals | None, now: float | None) -> None:
    query = report.query
    tz = query.first.tzinfo
    for a, b in await store.read_plan(store_ops.read_gaps(query.first.timestamp(), query.stop.timestamp())):
        report.gaps.append((a, b))
        report.notes.append(f"no figures from {_hm(a, tz)} to {_hm(b, tz)}: the server was not running "
                            f"({(b - a) / 60:.0f} min)")
    if now is not None and query.first.timestamp() <= now < query.stop.timestamp():
        open_from = live.start if live is not None and live.start is not None else (int(now) // INTERVAL_S) * INTERVAL_S
        report.open_from, report.open_included = float(open_from), live is not None
        note = "included" if live is not None else "not included yet (it is written when it closes)"
        report.notes.append(f"the current 15 minutes (from {_hm(open_from, tz)}) are {note}")


def _hm(at: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M")


_PERIOD_FORMAT = {"15m": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m",
                  "total": "%Y-%m-%d"}


def period_label(start: int, grouping: str, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(start, tz).strftime(_PERIOD_FORMAT[grouping])


def labelled(report: Report, lang: str = "en") -> tuple[list[str], list[list[Any]]]:
    """Headers and rows as shown: periods as dates in the centre's zone, the columns' words in `lang`."""
    tz = report.query.first.tzinfo
    heads = [c.zh if lang == "zh" else c.en for c in report.columns]
    rows = []
    for r in report.rows:
        line = []
        for c in report.columns:
            v = r.get(c.key)
            if c.key == "period" and isinstance(v, int):
                v = period_label(v, report.query.grouping, tz)
                if report.query.grouping == "total":
                    v = f"{v} – {(report.query.stop - timedelta(seconds=1)):%Y-%m-%d}"
            line.append(v)
        rows.append(line)
    return heads, rows
