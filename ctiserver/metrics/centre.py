"""The centre's metrics for Prometheus (docs/metrics.md).

Two kinds, so the hot path pays next to nothing:

* read at scrape time by `CentreCollector`: queue gauges, the day's counters and the agents by state from
  the projector's live statistics, the alerts in force, the AMI links, the journal's lag.
  Nothing is kept per event for them;
* histograms observed where the thing happens: the wait of each answered or abandoned caller (from the
  ACD's decisions on the bus), the offer latency (the router decides an offer -> the agent's phone rings,
  from the bus too) and the pop latency (the offer -> pushed to the agent's consoles, told by the notifier).

Counters are the day's (the centre's midnight starts them again, as the wallboard's); Prometheus's
`rate()` and `increase()` take a counter that starts again as a reset. They are rebuilt from the journal
on a restart; the histograms start from zero then.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd import decisions as d
from acd import events as ev

from ..bus import EventBus
from ..calls.service import CallsService
from ..projections.projector import Projector

# Few buckets: the wait is per queue and outcome, 50 queues are 100 histograms, and the scrape's cost is
# mostly formatting samples (bench/metrics.py). Service level times are usually among these.
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
OFFER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_OPEN_OFFERS = 20_000  # offers waiting for their ring, at most (an offer never rung is dropped oldest first)


class JournalFigures(Protocol):
    """What the collector reads of the journal (ctiserver.journal.journal.Journal)."""

    last_seq: int
    durable_seq: int
    failures: int
    on_committed: list[Callable[[int], None]]


def link_states(calls: CallsService) -> Callable[[], dict[str, bool]]:
    """The AMI links, up or not, by PBX name."""
    return lambda: {name: pbx.link.is_up for name, pbx in calls.pbxes.items()}


class CentreCollector(Collector):
    """Reads the owners when Prometheus scrapes: the cost is one statistics snapshot, whatever the traffic
    was."""

    def __init__(self, projector: Callable[[], Projector], journal: JournalFigures,
                 links: Callable[[], Mapping[str, bool]], clock: Callable[[], float]) -> None:
        self.projector = projector
        self.journal = journal
        self.links = links
        self.clock = clock
        # Wall clock of the journal's last commit; at start what the journal holds was read from the
        # database, durable: counted from then until the first commit.
        self.committed_at = clock()
        journal.on_committed.append(self._committed)

    def _committed(self, durable_seq: int) -> None:
        self.committed_at = self.clock()

    def collect(self) -> Iterable[Metric]:
        now = self.clock()
        yield from self._queues(self.projector(), now)
        yield from self._agents(self.projector())
        yield from self._links()
        yield from self._journal(now)

    def _queues(self, projector: Projector, now: float) -> Iterable[Metric]:
        config = projector.config
        label = ["queue"]
        waiting = GaugeMetricFamily("cti_queue_calls_waiting", "Callers in the queue not yet connected "
                                    "(waiting, ringing an agent, callbacks keeping their place)", labels=label)
        longest = GaugeMetricFamily("cti_queue_longest_wait_seconds", "How long the caller waiting longest "
                                    "has waited", labels=label)
        agents = GaugeMetricFamily("cti_queue_agents", "Logged-in agents serving the queue, by state",
                                   labels=["queue", "state"])
        sl = GaugeMetricFamily("cti_queue_service_level_ratio", "Today's service level by the queue's formula "
                               "(absent until a call counts)", labels=label)
        sl_target = GaugeMetricFamily("cti_queue_service_level_target_ratio", "The queue's service level target",
                                      labels=label)
        occupancy = GaugeMetricFamily("cti_queue_occupancy_ratio", "Busy / (busy + available) time of the "
                                      "queue's agents today", labels=label)
        asa = GaugeMetricFamily("cti_queue_asa_seconds", "Average speed of answer today", labels=label)
        aht = GaugeMetricFamily("cti_queue_aht_seconds", "Average handle time (talk, hold, wrap-up) today",
                                labels=label)
        counters = {
            "offered": CounterMetricFamily("cti_queue_offered", "Callers who entered the queue today",
                                           labels=label),
            "answered": CounterMetricFamily("cti_queue_answered", "Calls answered today", labels=label),
            "answered_in_target": CounterMetricFamily(
                "cti_queue_answered_in_target", "Calls answered within the service level's time today",
                labels=label),
            "abandoned": CounterMetricFamily("cti_queue_abandoned", "Callers who hung up while waiting today, "
                                             "short abandons apart", labels=label),
            "short_abandoned": CounterMetricFamily("cti_queue_short_abandoned", "Callers who hung up within "
                                                   "the queue's short_abandon_s today", labels=label),
            "timed_out": CounterMetricFamily("cti_queue_timed_out", "Callers whose wait ended by a deadline "
                                             "(voicemail, callback, another queue) today", labels=label),
        }
        for name, q in projector.stats.live.snapshot(now).items():
            waiting.add_metric([name], q.calls_waiting)
            longest.add_metric([name], q.longest_wait_s)
            for state, count in sorted(q.agents_by_state.items()):
                agents.add_metric([name, state], count)
            if q.service_level_pct is not None:
                sl.add_metric([name], q.service_level_pct / 100.0)
            if config.has_queue(name):
                sl_target.add_metric([name], config.queue(name).service_level.percent / 100.0)
            if q.occupancy_pct is not None:
                occupancy.add_metric([name], q.occupancy_pct / 100.0)
            if q.asa_s is not None:
                asa.add_metric([name], q.asa_s)
            if q.aht_s is not None:
                aht.add_metric([name], q.aht_s)
            for field, family in counters.items():
                family.add_metric([name], getattr(q, field))
        yield from (waiting, longest, agents, sl, sl_target, occupancy, asa, aht, *counters.values())

    def _agents(self, projector: Projector) -> Iterable[Metric]:
        agents = GaugeMetricFamily("cti_agents", "Agents by state, each counted once", labels=["state"])
        for state, count in sorted(projector.stats.live.agents_by_state().items()):
            agents.add_metric([state], count)
        yield agents
        alerts: dict[str, int] = {}
        for _, alert in projector.alerts.values():
            alerts[alert.metric] = alerts.get(alert.metric, 0) + 1
        active = GaugeMetricFamily("cti_alerts_active", "Target alerts in force, by metric", labels=["metric"])
        for metric, count in sorted(alerts.items()):
            active.add_metric([metric], count)
        yield active

    def _links(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("cti_ami_link_up", "1 while the AMI link to the PBX is up", labels=["pbx"])
        for pbx, is_up in sorted(self.links().items()):
            up.add_metric([pbx], 1.0 if is_up else 0.0)
        yield up

    def _journal(self, now: float) -> Iterable[Metric]:
        j = self.journal
        yield GaugeMetricFamily("cti_journal_appended_seq", "Sequence number of the last fact appended",
                                value=j.last_seq)
        yield GaugeMetricFamily("cti_journal_durable_seq", "Sequence number of the last fact committed",
                                value=j.durable_seq)
        yield GaugeMetricFamily("cti_journal_lag_facts", "Facts appended and not yet committed",
                                value=j.last_seq - j.durable_seq)
        yield GaugeMetricFamily("cti_journal_seconds_since_commit", "Seconds since the journal's last commit "
                                "(a heartbeat is written every 2 s when nothing else is)",
                                value=max(0.0, now - self.committed_at))
        yield CounterMetricFamily("cti_journal_write_failures", "Batches the database did not take (each is "
                                  "tried again)", value=j.failures)


class CentreMetrics:
    """The registry served at /metrics: the collector, and the histograms fed from the bus."""

    def __init__(self, projector: Callable[[], Projector], journal: JournalFigures,
                 links: Callable[[], Mapping[str, bool]], bus: EventBus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        # No `_created` series beside each histogram: Prometheus does not need them, and they are a sixth of
        # the samples. (A setting of the library, for the whole process: ours are the only metrics in it.)
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = CentreCollector(projector, journal, links, clock)
        self.registry.register(self.collector)
        self.wait = Histogram("cti_queue_wait_seconds", "Wait of each caller until answered or abandoned",
                              ["queue", "outcome"], buckets=WAIT_BUCKETS, registry=self.registry)
        self.offer_latency = Histogram("cti_offer_latency_seconds", "From the router's offer to the agent's "
                                       "phone ringing", buckets=OFFER_BUCKETS, registry=self.registry)
        self.pop_latency = Histogram("cti_pop_latency_seconds", "From the router's offer to the screen pop "
                                     "pushed to the agent's consoles", buckets=POP_BUCKETS, registry=self.registry)
        self._offered: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._answered: set[str] = set()
        if bus is not None:
            bus.subscribe(d.Offer, self._offer)
            bus.subscribe(ev.OfferRinging, self._ringing)
            bus.subscribe(d.AgentStateChanged, self._agent_state)
            bus.subscribe(d.CallStateChanged, self._call_state)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def pop_pushed(self, seconds: float) -> None:
        self.pop_latency.observe(seconds)

    # ------------------------------------------------------------------ from the bus

    def _offer(self, e: d.Offer) -> None:
        self._offered[(e.call_id, e.agent_id)] = time.monotonic()
        if len(self._offered) > _OPEN_OFFERS:
            self._offered.popitem(last=False)

    def _ringing(self, e: ev.OfferRinging) -> None:
        started = self._offered.pop((e.call_id, e.agent_id), None)
        if started is not None:
            self.offer_latency.observe(time.monotonic() - started)

    def _agent_state(self, e: d.AgentStateChanged) -> None:
        if e.old == "reserved" and e.call_id is not None:  # answered, failed or cancelled: no ring to wait for
            self._offered.pop((e.call_id, e.agent_id), None)

    def _call_state(self, e: d.CallStateChanged) -> None:
        if e.new == "connected" and e.call_id not in self._answered:
            self._answered.add(e.call_id)  # once: a transfer or a consultation answers it again
            self.wait.labels(e.queue, "answered").observe(e.waited_s)
        elif e.new == "ended":
            if e.call_id not in self._answered and e.reason == "abandoned":
                self.wait.labels(e.queue, "abandoned").observe(e.waited_s)
            self._answered.discard(e.call_id)
