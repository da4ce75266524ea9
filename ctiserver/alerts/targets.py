"""Figures against their targets: ok, warning or breach. Pure: read by the wallboard (each cell's colour)
and by the alert evaluator, so the two never disagree.

A figure is in *breach* past its target, in *warning* once it has used up `WARNING_SHARE` of it (ASA of
16 s against 20 s; a service level of 83% against 80%, where 17 of the 20 points of misses allowed are
used), and *ok* below that. The warning band is also the alerts' hysteresis: an alert raised on a breach
is cleared only once the figure is back in ok, not when it dips just under the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from acd.config import AcdConfig, AgentTargets, QueueConfig
from acd.router import Router
from acd.stats import QueueSnapshot

from ..crm_history.records import CallRecords

Level = Literal["ok", "warning", "breach"]
WARNING_SHARE = 0.8
# Queue figures with a target (wallboard and alerts use these names).
QUEUE_METRICS = ("service_level", "abandon_rate", "longest_wait", "asa")
AGENT_METRICS = ("long_call", "long_pause", "long_wrap_up")
_NO_TARGETS = AgentTargets()


@dataclass(frozen=True, slots=True)
class Judgement:
    metric: str
    value: float | None  # % or seconds; None while there is no figure
    target: float
    level: Level | None  # None: not judged (no figure yet, or fewer calls than the queue's min_calls)


def above(value: float, target: float) -> Level:
    """A figure that is worse when higher (abandon rate, waits)."""
    if value > target:
        return "breach"
    return "warning" if value > WARNING_SHARE * target else "ok"


def below(value: float, target: float) -> Level:
    """A share that is worse when lower (the service level, in %): judged by its misses, 100 - value,
    against the misses the target allows."""
    if value < target:
        return "breach"
    return "warning" if 100.0 - value > WARNING_SHARE * (100.0 - target) else "ok"


def judge_queue(queue: QueueConfig, snap: QueueSnapshot) -> list[Judgement]:
    """The queue's figures that have a target. The service level, the abandon rate and the ASA are judged
    once `targets.min_calls` calls count toward them: one early abandon is not a 0% day."""
    sl, targets = queue.service_level, queue.targets
    enough = targets.min_calls
    out: list[Judgement] = []
    counted = sl.counted(snap.answered, snap.abandoned, snap.short_abandoned)
    value = snap.service_level_pct
    out.append(Judgement("service_level", value, sl.percent,
                         below(value, sl.percent) if value is not None and counted >= enough else None))
    if targets.abandon_rate_pct is not None:
        handled = snap.answered + snap.abandoned
        rate = 100.0 * snap.abandoned / handled if handled else None
        out.append(Judgement("abandon_rate", rate, targets.abandon_rate_pct,
                             above(rate, targets.abandon_rate_pct) if rate is not None and handled >= enough
                             else None))
    if targets.longest_wait_s is not None:
        out.append(Judgement("longest_wait", snap.longest_wait_s, targets.longest_wait_s,
                             above(snap.longest_wait_s, targets.longest_wait_s)))
    if targets.asa_s is not None:
        asa = snap.asa_s
        out.append(Judgement("asa", asa, targets.asa_s,
                             above(asa, targets.asa_s) if asa is not None and snap.answered >= enough else None))
    return out


@dataclass(frozen=True, slots=True)
class AgentFigure:
    """How long an agent has been in something that has a target (only those are listed)."""

    agent_id: str
    metric: str  # long_call, long_pause, long_wrap_up
    value: float  # seconds so far
    target: float
    detail: str = ""  # the pause reason, or the call


def agent_figures(config: AcdConfig, router: Router, records: CallRecords, now: float,
                  agent_ids: Iterable[str] | None = None) -> Iterator[AgentFigure]:
    """The figures of `agent_ids` (default: every agent). A call counts from its answer, through holds (the
    router's time in state starts again at each hold and resume); a pause and a wrap-up from their start."""
    for agent_id in router.agent_ids() if agent_ids is None else agent_ids:
        if not config.has_agent(agent_id):
            continue
        targets = config.agent(agent_id).targets
        if targets == _NO_TARGETS:
            continue
        view = router.agent_view(agent_id, now)
        if view.state in ("on_call", "on_hold"):
            if targets.long_call_s is None:
                continue
            since = view.since
            rec = records.get(view.call_id) if view.call_id else None
            part = rec.part_of(agent_id) if rec is not None else None
            if part is not None and part.answered_at is not None:
                since = part.answered_at
            yield AgentFigure(agent_id, "long_call", now - since, targets.long_call_s, view.call_id or "")
        elif view.state == "paused":
            limit = targets.pause_limit(view.pause_reason)
            if limit is not None:
                yield AgentFigure(agent_id, "long_pause", view.time_in_state_s, limit, view.pause_reason or "")
        elif view.state == "wrap_up" and targets.long_wrap_up_s is not None:
            yield AgentFigure(agent_id, "long_wrap_up", view.time_in_state_s, targets.long_wrap_up_s,
                              view.call_id or "")
