"""The projector: every fact, in order, to the ACD router and the projections. Pure.

Live and on replay alike, a fact goes through `apply`: the router's timers that fell due before the fact
run first (their decisions are handed on as their own step), then the fact itself (an ACD input is handled
by the router at the fact's time), then every projection sees the fact and the decisions it caused. The
router is fed nothing else, so the journal alone rebuilds it, and with it the statistics, the queue_log
and the call records: one owner per fact, everything else a projection of its facts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, tzinfo
from typing import Any, cast

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig, parse_config
from acd.router import Router
from acd.stats import LiveStats

from ..crm_history.records import CallRecords
from ..journal.facts import (
    ACD_INPUTS,
    FORMAT_VERSION,
    AcdConfigLoaded,
    AlertCleared,
    AlertRaised,
    ConsoleSessionEnded,
    ConsoleUserLoggedOut,
    Fact,
    JournalTooNew,
    PbxLinkChanged,
    alert_key,
)
from ..queue_log.lines import QueueLogLines
from ..reports.intervals import Intervals
from .agent_day import AgentDays
from .callbacks import CallbackBook
from .drafts import WrapUpDrafts

Listener = Callable[[Fact | None, list[d.Decision]], None]


class DayStats:
    """The live statistics of the current day (in the centre's time zone): counters start again at
    midnight; who is waiting and which agents are in which state carry over."""

    def __init__(self, config: AcdConfig, tz: tzinfo | None) -> None:
        self.tz = tz
        self.live = LiveStats(config)
        self.agents = AgentDays()  # each agent's figures of the day
        self.day = ""

    def day_of(self, at: float) -> str:
        return datetime.fromtimestamp(at, self.tz).date().isoformat()

    def start_of_day(self, at: float) -> float:
        moment = datetime.fromtimestamp(at, self.tz)
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def apply(self, decisions: list[d.Decision]) -> None:
        self.live.observe(decisions)
        self.agents.apply(decisions)


class Projector:
    def __init__(self, config: AcdConfig, *, tz: tzinfo | None = None) -> None:
        self.config = config
        self.router = Router(config)
        self.stats = DayStats(config, tz)
        self.records = CallRecords()
        self.intervals = Intervals(config)
        self.queue_log = QueueLogLines()
        self.drafts = WrapUpDrafts()
        self.callbacks = CallbackBook()  # callbacks to make, pending or in line (ctiserver.outbound)
        self.ended_sessions: dict[str, int] = {}  # console session -> its expiry (epoch s)
        self.logged_out_users: dict[str, float] = {}  # username -> when a supervisor logged it out
        self.alerts: dict[str, tuple[float, AlertRaised]] = {}  # alert_key -> (raised at, the alert), active
        self.acd_text: tuple[str, str] | None = None  # (source, text) of the queues file in force, once journaled
        self.listeners: list[Listener] = []
        self.last_seq = 0
        self.last_at = 0.0

    # ------------------------------------------------------------------ feeding

    def apply(self, fact: Fact) -> list[d.Decision]:
        """Apply one journaled fact; returns the decisions the fact itself caused (refusals included)."""
        self._new_day(fact.at)
        due = self.router.next_due()
        if due is not None and due <= fact.at:
            self._emit(None, self.router.tick(fact.at))
        body = fact.body
        if isinstance(body, AcdConfigLoaded):
            self._reconfigure(body)
        if isinstance(body, ACD_INPUTS):
            decisions = self.router.handle(cast(ev.Event, body), fact.at)
        elif isinstance(body, PbxLinkChanged):  # the link's state is the fact; the router's site follows it
            site = ev.SiteAvailable(body.pbx) if body.up else ev.SiteUnavailable(body.pbx)
            decisions = self.router.handle(site, fact.at)
        else:
            decisions = []
        if isinstance(body, ConsoleSessionEnded):
            self.ended_sessions = {s: e for s, e in self.ended_sessions.items() if e > fact.at}
            self.ended_sessions[body.session] = body.expires_at
        elif isinstance(body, ConsoleUserLoggedOut):
            self.logged_out_users[body.username] = fact.at
        elif isinstance(body, AlertRaised):
            self.alerts[alert_key(body)] = (fact.at, body)
        elif isinstance(body, AlertCleared):
            self.alerts.pop(alert_key(body), None)
        self.last_seq, self.last_at = fact.seq, fact.at
        self._emit(fact, decisions)
        return decisions

    def tick(self, now: float) -> list[d.Decision]:
        """The router's timers (wrap-up ends, escalations, announcements) up to `now`."""
        self._new_day(now)
        decisions = self.router.tick(now)
        if decisions:
            self._emit(None, decisions)
        return decisions

    def _emit(self, fact: Fact | None, decisions: list[d.Decision]) -> None:
        self.stats.apply(decisions)
        self.records.apply(fact, decisions)
        self.intervals.apply(fact, decisions, self.records)
        self.queue_log.apply(decisions)
        self.drafts.apply(fact, decisions, self.records)  # before the listeners: a console push reads the kept draft
        self.callbacks.apply(fact, decisions, self._caller_num)
        for listener in self.listeners:
            listener(fact, decisions)

    def _caller_num(self, call_id: str) -> str:
        rec = self.records.get(call_id)
        return rec.caller_num if rec is not None else ""

    def _new_day(self, at: float) -> None:
        day = self.stats.day_of(at)
        if day != self.stats.day:
            if self.stats.day:
                self.stats.live.reset_counters(self.stats.start_of_day(at))
                self.stats.agents.reset(self.stats.start_of_day(at))
                self.router.reset_day()
            self.stats.day = day

    def _reconfigure(self, body: AcdConfigLoaded) -> None:
        self.acd_text = (body.source, body.text)
        config = parse_config(body.text, body.source)
        if config == self.config:
            return
        # The new queues file: the same agents' sessions and callers' places, under the new rules.
        self.router, _problems = Router.load(config, self.router.dump())
        stats = LiveStats(config)
        stats.load(self.stats.live.dump())
        self.stats.live = stats
        self.intervals.config = config
        self.config = config

    # ------------------------------------------------------------------ checkpoints

    def dump(self, acd_text: tuple[str, str]) -> str:
        """Everything the projections hold, as JSON text; `acd_text` is (source, text) of the config."""
        return json.dumps({
            "format": FORMAT_VERSION, "seq": self.last_seq, "at": self.last_at, "acd": list(acd_text),
            "router": self.router.dump(), "stats": self.stats.live.dump(),
            "agent_day": self.stats.agents.dump(), "day": self.stats.day,
            "records": self.records.dump(), "intervals": self.intervals.dump(),
            "queue_log_offset": self.queue_log.offset, "drafts": self.drafts.dump(),
            "callbacks": self.callbacks.dump(),
            "ended_sessions": self.ended_sessions, "logged_out_users": self.logged_out_users,
            "alerts": [[at, asdict(alert)] for at, alert in self.alerts.values()],
        }, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, text: str, *, tz: tzinfo | None = None) -> tuple[Projector, list[str]]:
        data: dict[str, Any] = json.loads(text)
        if data.get("format", 0) > FORMAT_VERSION:
            raise JournalTooNew(f"checkpoint format {data.get('format')} is newer than this ctiserver's")
        source, acd_text = data["acd"]
        config = parse_config(acd_text, source)
        out = cls(config, tz=tz)
        out.acd_text = (source, acd_text)
        out.router, problems = Router.load(config, data["router"])
        out.stats.live.load(data["stats"])
        out.stats.agents = AgentDays.load(data.get("agent_day", {}))  # older checkpoints have none
        out.stats.day = data["day"]
        out.records = CallRecords.load(data["records"])
        if "intervals" in data:  # checkpoints from before the report aggregates have none: start afresh
            out.intervals = Intervals.load(config, data["intervals"])
        out.queue_log = QueueLogLines(data["queue_log_offset"])
        out.drafts = WrapUpDrafts.load(data.get("drafts", {}))  # checkpoints from before drafts have none
        out.callbacks = CallbackBook.load(data.get("callbacks", {}))  # nor callbacks
        out.ended_sessions = dict(data["ended_sessions"])
        out.logged_out_users = dict(data["logged_out_users"])
        for at, alert in data.get("alerts", []):  # checkpoints from before alerts have none
            raised = AlertRaised(**alert)
            out.alerts[alert_key(raised)] = (at, raised)
        out.last_seq, out.last_at = data["seq"], data["at"]
        return out, problems
