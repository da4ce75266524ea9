"""When an alert is raised and when it is cleared. Pure: fed the time, the figures and the alerts in force
(the projector's, from the journal), it returns the facts to record.

Queue alerts (critical): a figure must stay in breach for `alerts.raise_after_s` before it is raised, and
back in ok (under the warning line, see targets.py) for `alerts.clear_after_s` before it is cleared; in the
warning band nothing changes. A figure with nothing to judge (no call yet today) counts as ok; a queue or a
target removed from the configuration clears its alerts at once.

Agent alerts (warning): the target is itself a duration, so one is raised as soon as the call, pause or
wrap-up is seen to last longer, and cleared as soon as it is seen over (a new call starts from zero: it
cannot flap). The timer looks at a share of the agents each time (service.py), and at every agent with an
alert in force.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from acd.config import AcdConfig
from acd.stats import QueueSnapshot

from ..journal.facts import AlertCleared, AlertRaised, alert_key
from .targets import AgentFigure, Judgement, judge_queue

Active = Mapping[str, tuple[float, AlertRaised]]  # alert_key -> (raised at, alert): Projector.alerts
Change = AlertRaised | AlertCleared

_QUEUE_TEXT = {
    "service_level": "service level {value:.1f}% is below its target of {target:g}%",
    "abandon_rate": "abandon rate {value:.1f}% is above its target of {target:g}%",
    "longest_wait": "a caller has waited {value:.0f} s, longer than the target of {target:g} s",
    "asa": "average speed of answer {value:.1f} s is above its target of {target:g} s",
}
_AGENT_TEXT = {
    "long_call": "agent {agent} has been on one call for {value:.0f} s (target {target:g} s)",
    "long_pause": "agent {agent} has been paused ({detail}) for {value:.0f} s (target {target:g} s)",
    "long_wrap_up": "agent {agent} has been in wrap-up for {value:.0f} s (target {target:g} s)",
}


class AlertEvaluator:
    def __init__(self) -> None:
        # Since when a queue figure has been in breach (towards raising) or ok (towards clearing); only
        # this is the evaluator's own: what is raised is the journal's.
        self._breach_since: dict[str, float] = {}
        self._ok_since: dict[str, float] = {}

    def evaluate(self, now: float, config: AcdConfig, snapshots: Mapping[str, QueueSnapshot],
                 agents: Iterable[AgentFigure], active: Active,
                 looked_at: Collection[str] | None = None) -> list[Change]:
        """`agents`: the figures of the agents `looked_at` (None: of every agent); an alert of an agent not
        looked at this time is left as it is."""
        out: list[Change] = []
        judged: set[str] = set()
        for queue in config.queues:
            snap = snapshots.get(queue.name)
            if snap is None:
                continue
            for j in judge_queue(queue, snap):
                key = f"{j.metric}|{queue.name}|"
                judged.add(key)
                self._queue_figure(key, queue.name, j, now, config, active, out)
        over: set[str] = set()
        for figure in agents:
            if figure.value <= figure.target:
                continue
            key = alert_key(AlertCleared(figure.metric, "", figure.agent_id))
            over.add(key)
            if key not in active:
                text = _AGENT_TEXT[figure.metric].format(agent=figure.agent_id, value=figure.value,
                                                         target=figure.target, detail=figure.detail or "-")
                out.append(AlertRaised(figure.metric, "", figure.agent_id, round(figure.value, 1), figure.target,
                                       "warning", text))
        for key, (_, alert) in active.items():
            # An agent's alert ends with what it was about; a queue's whose queue or target is gone, at once.
            if alert.agent_id and looked_at is not None and alert.agent_id not in looked_at:
                continue
            if key not in (over if alert.agent_id else judged):
                out.append(AlertCleared(alert.metric, alert.queue, alert.agent_id))
        for watch in (self._breach_since, self._ok_since):
            for key in [k for k in watch if k not in judged]:
                del watch[key]
        return out

    def _queue_figure(self, key: str, queue: str, j: Judgement, now: float, config: AcdConfig, active: Active,
                      out: list[Change]) -> None:
        timing = config.alerts
        if j.level == "breach":
            self._ok_since.pop(key, None)
            since = self._breach_since.setdefault(key, now)
            if key not in active and now - since >= timing.raise_after_s:
                value = round(j.value or 0.0, 1)
                out.append(AlertRaised(j.metric, queue, "", value, j.target, "critical",
                                       _QUEUE_TEXT[j.metric].format(value=value, target=j.target)))
        elif j.level == "warning":
            self._breach_since.pop(key, None)
            self._ok_since.pop(key, None)
        else:
            self._breach_since.pop(key, None)
            since = self._ok_since.setdefault(key, now)
            if key in active and now - since >= timing.clear_after_s:
                out.append(AlertCleared(j.metric, queue, "", round(j.value or 0.0, 1)))
