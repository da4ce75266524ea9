"""What consoles are shown, read from the owners: agents and calls from the ACD router, callers from the
call records, figures from the day's statistics. Views are built when needed, never stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from acd.config import AcdConfig
from acd.router import Router
from acd.states import AgentState

from ..alerts.targets import judge_queue
from ..crm_history.records import CallRecord, CallRecords
from ..gateway.backend import AgentView, AlertView, CallView, OfferView
from ..journal.facts import AlertCleared, AlertRaised
from ..projections.drafts import Draft
from ..projections.projector import Projector
from .devices import AUTO_ANSWER_CONTEXT, answers_at_console, label
from .numbers import format_number

# acd CallState -> the consoles' call states (docs/protocol.md)
_CALL_LIST_STATE = {"new": "ivr", "offered": "ringing", "connected": "talking"}


class ConsoleViews:
    def __init__(self, projector: Projector, clock: Callable[[], float], started_at: float,
                 consulting: Callable[[str], str | None] = lambda call_id: None,
                 flow_labels: Callable[[str], Mapping[str, Mapping[str, str]]] = lambda flow: {}) -> None:
        self.projector = projector
        self._flow_labels = flow_labels  # a flow's node labels: the pop tells the reason for the call in words
        self.clock = clock
        self.started_at = started_at  # an agent never seen is "logged out since the server started"
        self._consulting = consulting
        self.pops: dict[str, object] = {}  # call id -> the CRM screen pop fetched when the caller queued
        self.phone_shown: Callable[[str], str] = lambda agent_id: ""  # browser phone state (consoles/phones.py)
        self.phone_detail: Callable[[str], str] = lambda agent_id: ""  # ... and why it is not registered

    @property
    def router(self) -> Router:
        return self.projector.router

    @property
    def config(self) -> AcdConfig:
        return self.projector.config

    @property
    def records(self) -> CallRecords:
        return self.projector.records

    def put_pop(self, call_id: str, pop: object) -> None:
        self.pops[call_id] = pop
        if len(self.pops) > 5000:
            del self.pops[next(iter(self.pops))]

    # ------------------------------------------------------------------ agents

    def agent(self, agent_id: str) -> AgentView:
        now = self.clock()
        v = self.router.agent_view(agent_id, now)
        name = self.config.agent(agent_id).name if self.config.has_agent(agent_id) else agent_id
        ext = label(v.endpoint) if v.endpoint else None
        wrap_until = wrap_max = None
        wrap_call, wrap_caller = None, ""
        wrap_draft: dict[str, str] | None = None
        if v.state == AgentState.WRAP_UP.value and v.call_id:
            rec = self.records.get(v.call_id)
            queue = v.call_queue or (rec.queue if rec is not None else "")
            wrap_call, wrap_caller = v.call_id, self.caller_shown(rec)
            draft = self.projector.drafts.open.get(v.call_id)
            if draft is not None and draft.agent_id == agent_id:
                wrap_draft = {"disposition": draft.disposition, "notes": draft.notes}
            if self.config.has_queue(queue):
                q = self.config.queue(queue)
                wrap_until = v.since + q.wrap_up_s
                wrap_max = v.since + q.wrap_up_limit_s if v.wrap_held else None
            if v.wrap_up_s is not None:  # a campaign's own wrap-up length (the router's maximum follows it)
                wrap_until = v.since + v.wrap_up_s
                if v.wrap_held:
                    wrap_max = max(wrap_max or wrap_until, wrap_until)
        return AgentView(agent_id, v.state, max(v.since, self.started_at), v.pause_reason or v.pending_pause,
                         ext, v.queues, name, wrap_until, wrap_call, wrap_caller, v.wrap_held, wrap_max,
                         self.drafts_of(agent_id), wrap_draft=wrap_draft,
                         auto_answer=AUTO_ANSWER_CONTEXT in v.endpoint,
                         answer_at_console=self.config.has_agent(agent_id)
                         and answers_at_console(self.config.agent(agent_id), v.endpoint),
                         phone=self.phone_shown(agent_id), phone_detail=self.phone_detail(agent_id))

    def caller_shown(self, rec: CallRecord | None) -> str:
        """The caller as a console names them: the CRM's name, the caller ID name, else the number."""
        if rec is None:
            return ""
        return _caller_name(rec) or format_number(rec.caller_num)

    def drafts_of(self, agent_id: str) -> tuple[dict[str, object], ...]:
        """The agent's wrap-ups left unsaved, kept as drafts on their calls (newest first)."""
        kept = sorted(self.projector.drafts.of_agent(agent_id), key=lambda x: -(x.kept_at or 0.0))
        return tuple({"call_id": x.call_id, "caller": x.caller_name or format_number(x.caller_num),
                      "disposition": x.disposition, "notes": x.notes, "kept_at": x.kept_at, "why": x.why,
                      "queue": x.queue} for x in kept[:20])

    def agent_row(self, agent_id: str) -> dict[str, object]:
        now = self.clock()
        v = self.router.agent_view(agent_id, now)
        return {"agent_id": agent_id, "name": self.config.agent(agent_id).name, "state": v.state,
                "since": max(v.since, self.started_at), "reason": v.pause_reason or v.pending_pause or "",
                "extension": label(v.endpoint) if v.endpoint else "",
                "queues": list(v.queues), "call_id": v.call_id or "", "answered": v.calls_answered,
                "phone": self.phone_shown(agent_id), "phone_detail": self.phone_detail(agent_id),
                **self.agent_figures(agent_id, now)}

    def agent_figures(self, agent_id: str, now: float) -> dict[str, object]:
        """The agent's day from the live statistics: calls answered, AHT, occupancy (the grid's columns)."""
        day = self.projector.stats.live.agent_day(agent_id, now)
        return {"calls_today": day.answered,
                "aht_s": None if day.aht_s is None else round(day.aht_s),
                "occupancy_pct": None if day.occupancy_pct is None else round(day.occupancy_pct)}

    # ------------------------------------------------------------------ calls

    def call(self, call_id: str, agent_id: str, state: str) -> CallView:
        rec = self.records.get(call_id)
        part = rec.part_of(agent_id) if rec is not None else None
        talk_since = part.answered_at if part is not None else None
        since = talk_since or (rec.queued_at if rec is not None else None) or \
            (rec.started_at if rec is not None else self.clock())
        consult = self._consulting(call_id)
        if consult is not None and state in ("talking", "held") and (part is None or part.ended_at is None):
            view = self.router.call_view(call_id)
            if view is not None and view.agent_id == agent_id:
                state = "consulting"  # the caller is on hold while the agent speaks to the target
        return CallView(
            call_id=call_id, agent_id=agent_id, state=state, since=since,
            caller=rec.caller_num if rec else "", caller_name=_caller_name(rec), queue=rec.queue if rec else "",
            talk_since=talk_since, consult_target=consult if state == "consulting" else None,
            caller_display=format_number(rec.caller_num) if rec else "",
            direction="outbound" if rec is not None and rec.direction == "outbound" else "inbound",
            outcome=rec.outcome if rec is not None and rec.direction == "outbound" else "",
        )

    def offer(self, call_id: str, agent_id: str, leg_id: str, queue: str, ring_timeout_s: float,
              kind: str = "queue") -> OfferView:
        rec = self.records.get(call_id)
        view = self.router.call_view(call_id)
        pop = self.pops.get(call_id)
        return OfferView(
            offer_id=leg_id, call_id=call_id, agent_id=agent_id, queue=queue,
            caller=rec.caller_num if rec else "", offered_at=time.time(), ring_timeout_s=ring_timeout_s,
            caller_name=_caller_name(rec), ivr_path=tuple(rec.ivr_path) if rec else (),
            ivr_said=tuple(rec.said) if rec else (), priority=view.level_stage if view else 0,
            pop=pop, caller_display=format_number(rec.caller_num) if rec else "",
            agent_names=self._agent_names(pop), ivr_labels=self._labels(rec), callback=self._callback(call_id),
        )

    def _callback(self, call_id: str) -> dict[str, object] | None:
        cb = self.projector.callbacks.of_call(call_id)
        if cb is None:
            return None
        return {"callback_id": cb.callback_id, "source": cb.source, "name": cb.name, "topic": cb.topic,
                "attempts": cb.attempts}

    def _labels(self, rec: CallRecord | None) -> dict[str, Mapping[str, str]]:
        """The labels of the nodes this caller went through, from the flow they ran."""
        if rec is None or not rec.flow:
            return {}
        labels = self._flow_labels(rec.flow)
        nodes = {step.split(":", 1)[0] for step in rec.ivr_path}
        return {node: labels[node] for node in nodes if node in labels}

    def _agent_names(self, pop: object) -> dict[str, str]:
        """The names of the agents in the pop's history (it stores their ids)."""
        names: dict[str, str] = {}
        for item in getattr(pop, "interactions", ()) or ():
            agent_id = getattr(item, "agent", "") or ""
            if agent_id and self.config.has_agent(agent_id):
                names[agent_id] = self.config.agent(agent_id).name
        return names

    def call_row(self, call_id: str) -> dict[str, object] | None:
        rec = self.records.get(call_id)
        if rec is None or not rec.live:
            return None
        if rec.direction == "outbound":  # an agent's own call: theirs, in no queue's line
            agent_id = rec.parts[0].agent_id if rec.parts else ""
            return {"call_id": call_id, "caller": rec.caller_num, "caller_name": _caller_name(rec),
                    "queue": rec.queue, "state": "talking" if rec.outcome == "answered" else "dialling",
                    "agent_id": agent_id, "position": None, "vip": rec.vip, "since": rec.started_at,
                    "direction": "outbound"}
        view = self.router.call_view(call_id)
        if view is None and rec.line_agent:  # a campaign line bridged to its agent: no call of the ACD's
            return {"call_id": call_id, "caller": rec.caller_num, "caller_name": _caller_name(rec),
                    "queue": rec.queue, "state": "talking", "agent_id": rec.line_agent, "position": None,
                    "vip": rec.vip, "since": rec.started_at}
        state = _CALL_LIST_STATE.get(view.state, view.state) if view else "ivr"
        if state == "held":
            state = "held"
        agent = view.agent_id if view and view.agent_id else ""
        return {"call_id": call_id, "caller": rec.caller_num, "caller_name": _caller_name(rec),
                "queue": view.queue if view else rec.queue, "state": state, "agent_id": agent,
                "position": view.position if view else None, "vip": rec.vip,
                "since": rec.queued_at or rec.started_at}

    def live_call_ids(self) -> list[str]:
        return [c for c, rec in self.records.calls.items() if rec.live]

    # ------------------------------------------------------------------ queues

    def wallboard_rows(self) -> dict[str, dict[str, object]]:
        rows: dict[str, dict[str, object]] = {}
        now = self.clock()
        config = self.config
        for name, q in self.projector.stats.live.snapshot(now).items():
            handled = q.answered + q.abandoned
            judged = judge_queue(config.queue(name), q) if config.has_queue(name) else []
            rows[name] = {
                # Field names of docs/protocol.md. The oldest caller's arrival, not the longest wait: it
                # does not change every second, so it costs no delta; the console ticks it locally.
                "waiting": q.calls_waiting,
                "oldest_since": round(now - q.longest_wait_s, 1) if q.calls_waiting else None,
                "answered": q.answered, "abandoned": q.abandoned, "short_abandoned": q.short_abandoned,
                "sl": None if q.service_level_pct is None else round(q.service_level_pct, 1),
                "abandon_rate": round(100.0 * q.abandoned / handled, 1) if handled else None,
                "asa_s": None if q.asa_s is None else round(q.asa_s, 1),
                "aht_s": None if q.aht_s is None else round(q.aht_s, 1),
                "agents_by_state": dict(q.agents_by_state),
                "occupancy_pct": None if q.occupancy_pct is None else round(q.occupancy_pct, 1),
                # Each figure's target and where it stands (ok, warning, breach; None: not judged yet),
                # by the same rules as the alerts (ctiserver.alerts.targets).
                "targets": {j.metric: j.target for j in judged},
                "levels": {j.metric: j.level for j in judged},
            }
        return rows

    # ------------------------------------------------------------------ alerts

    def alert(self, change: AlertRaised | AlertCleared, at: float | None = None) -> AlertView:
        subject = change.agent_id
        alert_id = f"{change.metric}:{change.queue or subject}"
        if isinstance(change, AlertCleared):
            return AlertView(alert_id, change.queue, change.metric, change.value, 0.0, "cleared",
                             at if at is not None else self.clock(), "", subject)
        return AlertView(alert_id, change.queue, change.metric, change.value, change.threshold,
                         "critical" if change.level == "critical" else "warning",
                         at if at is not None else self.clock(), change.text, subject)

    def active_alerts(self) -> tuple[AlertView, ...]:
        """The target alerts in force and the wrap-ups kept as drafts, from the journal (they outlive a
        restart)."""
        drafts = tuple(self.draft_alert(x) for x in self.projector.drafts.kept.values())
        return tuple(self.alert(alert, at) for at, alert in self.projector.alerts.values()) + drafts

    def draft_alert(self, draft: Draft) -> AlertView:
        """A wrap-up left unsaved: its notes are kept as a draft on the call (subject: the agent)."""
        # One alert per call: subject "agent call" (an agent may leave several); text: the caller, the notes.
        caller = draft.caller_name or format_number(draft.caller_num)
        return AlertView(f"wrapup_draft:{draft.call_id}", "", "wrapup_draft", 0.0, 0.0, "warning",
                         draft.kept_at or draft.at, f"{caller}: {draft.notes[:200]}",
                         f"{draft.agent_id} {draft.call_id}")

    def draft_cleared(self, call_id: str, agent_id: str) -> AlertView:
        return AlertView(f"wrapup_draft:{call_id}", "", "wrapup_draft", 0.0, 0.0, "cleared", self.clock(), "",
                         f"{agent_id} {call_id}")


def _caller_name(rec: CallRecord | None) -> str:
    if rec is None:
        return ""
    return rec.customer_name or rec.caller_name
