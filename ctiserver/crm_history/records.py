"""Call records: each call's history, folded from the journal's facts and the ACD's decisions. Pure.

A record holds what the CRM history shows of a call: who called, the way through the IVR, the queue, and
one *part* per agent who had the caller (a transfer or a consultation hands the caller to the next one),
each with its answer, hold time, end, who ended it, and the agent's wrap-up. `rows()` turns a record into
the CRM's interaction rows, one per part (or one for a call no agent took).

The fold is the only writer of these records, live and on replay alike: the same facts give the same
rows, whichever order the wrap-up save and the caller's hang-up came in.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from acd import decisions as d
from acd import events as acd
from crmstore.model import InteractionRow

from ..journal import facts as f

KEEP_RECENT = 20_000  # settled calls whose agents are remembered, for wrap-ups saved late


@dataclass(slots=True)
class Part:
    """One agent's part of a call."""

    agent_id: str
    offered_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    hung_up_by: str = ""
    transferred_to: str = ""
    hold_s: float = 0.0
    held_since: float | None = None
    wrapup_s: float = 0.0
    not_after: float | None = None  # for an end nobody saw: ended_at is the earliest, this the latest
    disposition: str = ""
    notes: str = ""
    wrapped: bool = False
    follow_up: tuple[str, float, str] | None = None  # kind, due (epoch), note
    wrap_over: bool = False  # the agent left wrap-up for this part (saved, timed out, logged out)


@dataclass(slots=True)
class CallRecord:
    call_id: str
    started_at: float
    pbx: str = ""
    channel: str = ""
    caller_num: str = ""
    caller_name: str = ""
    dialed: str = ""
    customer_id: int | None = None
    customer_name: str = ""
    grade: str | None = None
    vip: bool = False
    flow: str = ""
    survey: bool = False
    ivr_path: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    queue: str = ""
    priority: int = 0
    queued_at: float | None = None
    offered_to: str | None = None  # agent whose phone rings for this call now
    parts: list[Part] = field(default_factory=list)
    outcome: str = "ivr_only"  # ivr_only, answered, abandoned, callback, voicemail, lost, refused; outbound:
    # dialling, answered, busy, no_answer, failed, agent_no_answer, cancelled
    recording: str = ""
    survey_score: int | None = None
    ended_at: float | None = None
    cause: int | None = None
    cause_txt: str = ""
    hung_up_by: str = ""
    observed: bool = True
    not_after: float | None = None  # for an end nobody saw: ended_at is the earliest, this the latest
    end_reason: str = ""
    direction: str = "inbound"  # outbound: an agent's own call (click-to-call), folded from outbound.* facts
    purpose: str = ""  # outbound: click_to_call, callback
    line_agent: str = ""  # a campaign line's agent once bridged (dialer step connected): the ACD holds no such call

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def part_of(self, agent_id: str) -> Part | None:
        for part in reversed(self.parts):
            if part.agent_id == agent_id:
                return part
        return None

    @property
    def current(self) -> Part | None:
        """The part going on now (answered, not ended)."""
        if self.parts and self.parts[-1].answered_at is not None and self.parts[-1].ended_at is None:
            return self.parts[-1]
        return None


def path_text(step: f.IvrStep) -> str:
    """The path as the screen pop and the CRM show it: "node", "node:key=1", "node:speech=환불(0.93)"."""
    if step.event == "node":
        return step.node
    if step.event == "speech" and step.confidence is not None:
        return f"{step.node}:speech={step.value}({step.confidence:.2f})"
    return f"{step.node}:{step.event}={step.value}" if step.value else f"{step.node}:{step.event}"


class CallRecords:
    """The fold. `apply(fact, decisions)` for each journaled fact with the ACD decisions it caused (or
    `apply(None, decisions)` for decisions of the ACD's timers); `changed` collects the calls whose rows
    must be written, `take_changed()` hands them over."""

    def __init__(self) -> None:
        # Held in memory: calls live, or ended with an agent still in wrap-up. A call is *settled* once it
        # ended and every agent's part is wrapped up; its rows are handed over once more, then it leaves
        # memory at the next fact. The rule depends on the facts alone, so the live server, a restart from a
        # checkpoint and a replay from the first fact hold the same records at every fact.
        self.calls: OrderedDict[str, CallRecord] = OrderedDict()
        self.recent: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # settled call -> its agents
        self._settled: list[str] = []
        self.changed: set[str] = set()
        self.late_wrapups: list[f.WrapUpSaved] = []  # for calls no longer held in memory

    def get(self, call_id: str) -> CallRecord | None:
        return self.calls.get(call_id)

    def is_settled(self, rec: CallRecord) -> bool:
        """Ended, every agent's part wrapped up: handed over once more, it leaves memory at the next fact."""
        return _settled(rec)

    def took_part(self, call_id: str, agent_id: str) -> bool:
        """Whether the agent had a part in the call, held in memory or settled lately."""
        rec = self.calls.get(call_id)
        if rec is not None:
            return rec.part_of(agent_id) is not None
        return agent_id in self.recent.get(call_id, ())

    # ------------------------------------------------------------------ the fold

    def apply(self, fact: f.Fact | None, decisions: Iterable[d.Decision]) -> None:
        self._forget_settled()
        if fact is not None:
            self._fact(fact.body, fact.at)
        for x in decisions:
            if isinstance(x, d.CallStateChanged):
                self._call_state(x)
            elif isinstance(x, d.AgentStateChanged):
                self._agent_state(x, fact.body if fact is not None else None)
            elif isinstance(x, d.Handover):
                self._handover(x, fact.at if fact is not None else 0.0)
        for call_id in self.changed:
            rec = self.calls.get(call_id)
            if rec is not None and _settled(rec) and call_id not in self._settled:
                self._settled.append(call_id)

    def _forget_settled(self) -> None:
        for call_id in self._settled:
            rec = self.calls.pop(call_id, None)
            if rec is None:
                continue
            self.changed.discard(call_id)
            self.recent[call_id] = tuple(dict.fromkeys(p.agent_id for p in rec.parts))
            if len(self.recent) > KEEP_RECENT:
                self.recent.popitem(last=False)
        self._settled.clear()

    def _record(self, call_id: str, at: float) -> CallRecord:
        rec = self.calls.get(call_id)
        if rec is None:  # a call the journal first hears of from the ACD (a callback, a recovered call)
            rec = self.calls[call_id] = CallRecord(call_id, at)
        return rec

    def _fact(self, body: Any, at: float) -> None:
        if isinstance(body, f.CallArrived):
            if body.call_id in self.calls:
                return
            self.calls[body.call_id] = CallRecord(body.call_id, at, body.pbx, body.channel, body.caller_num,
                                                  body.caller_name, body.dialed)
        elif isinstance(body, f.IvrStarted):
            rec = self._record(body.call_id, at)
            rec.flow, rec.survey = body.flow, body.survey
        elif isinstance(body, f.IvrStep):
            rec = self._record(body.call_id, at)
            rec.ivr_path.append(path_text(body))
            if body.event == "speech" and body.value:
                rec.said.append(body.value)
            self.changed.add(rec.call_id)
        elif isinstance(body, f.CallerIdentified):
            rec = self._record(body.call_id, at)
            rec.customer_id, rec.customer_name = body.customer_id, body.name
            rec.grade, rec.vip = body.grade, body.vip
            self.changed.add(rec.call_id)
        elif isinstance(body, acd.CallEnqueued):
            rec = self._record(body.call_id, at)
            rec.priority = body.priority
            if not rec.caller_num:
                rec.caller_num = body.caller_num
        elif isinstance(body, (acd.CallbackRequested, f.CallbackPromised)):
            self._record(body.call_id, at).outcome = "callback"
        elif isinstance(body, f.CallerRefused):
            # Not self-service: the ivr-containment report must not count a caller the centre turned away.
            rec = self._record(body.call_id, at)
            rec.outcome, rec.queue = "refused", body.queue
            self.changed.add(rec.call_id)
        elif isinstance(body, (f.OutboundDialling, f.OutboundProgress, acd.OutboundEnded)):
            self._outbound(body, at)
        elif isinstance(body, f.CallEnded):
            known = self.calls.get(body.call_id)
            if known is None or known.direction != "outbound":  # an outbound call's end is acd.outbound_ended
                self._ended_call(body, at)
        elif isinstance(body, f.DialerStep):
            line = self.calls.get(body.call_id) if body.step == "connected" else None
            if line is not None:
                line.line_agent = body.agent_id
        elif isinstance(body, f.WrapUpSaved):
            self._wrapup(body)
        elif isinstance(body, f.SurveyAnswered):
            rec = self._record(body.call_id, at)
            rec.survey_score = body.score
            self.changed.add(rec.call_id)
        elif isinstance(body, f.VoicemailLeft):
            rec = self._record(body.call_id, at)
            rec.outcome, rec.recording = "voicemail", body.file
            self.changed.add(rec.call_id)
        elif isinstance(body, f.RecordingStarted):
            rec = self._record(body.call_id, at)
            rec.recording = body.file
            self.changed.add(rec.call_id)

    def _outbound(self, body: f.OutboundDialling | f.OutboundProgress | acd.OutboundEnded, at: float) -> None:
        if isinstance(body, f.OutboundDialling):
            if body.call_id in self.calls:
                return
            self.calls[body.call_id] = CallRecord(
                body.call_id, at, caller_num=body.number, dialed=body.number, customer_id=body.customer_id,
                customer_name=body.customer_name, queue=body.queue, outcome="dialling", direction="outbound",
                purpose=body.purpose, parts=[Part(body.agent_id, at)])
            return
        rec = self.calls.get(body.call_id)
        if rec is None or rec.direction != "outbound" or not rec.parts:
            return
        part = rec.parts[0]
        if isinstance(body, f.OutboundProgress):
            if body.state == "connected" and part.answered_at is None:
                part.answered_at, rec.outcome = at, "answered"
                self.changed.add(rec.call_id)
            return
        if rec.ended_at is not None:
            return
        rec.ended_at, rec.hung_up_by = at, body.hung_up_by
        part.hung_up_by = body.hung_up_by  # the agent's wrap-up move right after ends the part's talk
        if part.answered_at is None:
            rec.outcome = body.outcome
            part.ended_at = at
        self.changed.add(rec.call_id)

    def _call_state(self, x: d.CallStateChanged) -> None:
        rec = self._record(x.call_id, x.at)
        if x.new == "waiting" and x.old == "new":
            rec.queue = x.queue
            if rec.queued_at is None:
                rec.queued_at = x.at - x.waited_s
        elif x.new in ("offered", "ringing") and x.agent_id:
            if rec.offered_to != x.agent_id:
                rec.offered_to = x.agent_id
                rec.parts.append(Part(x.agent_id, x.at))
        elif x.new == "connected" and x.old in ("offered", "ringing"):
            part = rec.part_of(x.agent_id or "")
            if part is not None and part.answered_at is None:
                part.answered_at = x.at
            rec.offered_to = None
            rec.queue = x.queue
            rec.outcome = "answered"
        elif x.new in ("waiting", "callback") and x.old in ("offered", "ringing"):
            # The offer failed: a part nobody answered is no part of the call.
            if rec.parts and rec.parts[-1].answered_at is None:
                rec.parts.pop()
            rec.offered_to = None
        elif x.new == "held":
            part = rec.current
            if part is not None and part.held_since is None:
                part.held_since = x.at
        elif x.new == "connected" and x.old == "held":
            self._resume(rec, x.at)
        elif x.new == "ended":
            if x.reason == "abandoned" and rec.outcome == "ivr_only":
                rec.outcome = "abandoned"
            if rec.parts and rec.parts[-1].answered_at is None:
                rec.parts.pop()  # the caller left while an agent's phone rang
                rec.offered_to = None

    @staticmethod
    def _resume(rec: CallRecord, at: float) -> None:
        part = rec.current
        if part is not None and part.held_since is not None:
            part.hold_s += at - part.held_since
            part.held_since = None

    def _agent_state(self, x: d.AgentStateChanged, cause: Any) -> None:
        if not x.call_id:
            return
        rec = self.calls.get(x.call_id)
        if rec is None:
            return
        part = rec.part_of(x.agent_id)
        if part is None:
            return
        if x.new == "wrap_up" and x.old in ("on_call", "on_hold") and part.ended_at is None:
            self._end_part(rec, part, x.at, cause)
        elif x.old == "wrap_up" and part.ended_at is not None:
            part.wrapup_s = x.time_in_old_s
            part.wrap_over = True
            self.changed.add(rec.call_id)

    def _end_part(self, rec: CallRecord, part: Part, at: float, cause: Any) -> None:
        if isinstance(cause, acd.AgentCallEnded) and cause.not_before is not None:
            self._unseen_end(part, cause.not_before, at)
        else:
            if part.held_since is not None:
                part.hold_s += at - part.held_since
                part.held_since = None
            part.ended_at = at
        if isinstance(cause, acd.AgentCallEnded):
            part.hung_up_by = cause.hung_up_by
        elif isinstance(cause, acd.CallerHungUp):
            part.hung_up_by = "caller"
        elif isinstance(cause, acd.TransferToQueue):
            part.transferred_to = f"queue:{cause.queue}"
        elif isinstance(cause, (acd.TransferToAgent, acd.ConsultStarted)):
            part.transferred_to = f"agent:{cause.target_agent_id}"
        elif isinstance(cause, acd.TransferOut):
            part.transferred_to = f"number:{cause.destination}"
        self.changed.add(rec.call_id)

    @staticmethod
    def _unseen_end(part: Part, not_before: float, found_at: float) -> None:
        """An end nobody saw: the part lasted at least until `not_before`, at most until `found_at`."""
        end = max(part.answered_at or not_before, min(not_before, found_at))
        if part.held_since is not None:
            part.hold_s += max(0.0, end - part.held_since)
            part.held_since = None
        part.ended_at, part.not_after = end, found_at

    def _handover(self, x: d.Handover, at: float) -> None:
        rec = self.calls.get(x.call_id)
        if rec is None:
            return
        first = rec.part_of(x.from_agent)
        if first is not None:
            first.transferred_to = f"agent:{x.to_agent}"
        nxt = rec.part_of(x.to_agent)
        if nxt is None or nxt.ended_at is not None:
            rec.parts.append(Part(x.to_agent, at, answered_at=at))
        elif nxt.answered_at is None:
            nxt.answered_at = at
        self.changed.add(rec.call_id)

    def _ended_call(self, body: f.CallEnded, at: float) -> None:
        rec = self._record(body.call_id, at)
        if rec.ended_at is not None:
            return  # exactly one end per call
        rec.cause = body.cause if body.observed else None
        rec.cause_txt = body.cause_txt
        rec.hung_up_by = body.hung_up_by
        rec.observed = body.observed
        rec.end_reason = body.reason
        if body.observed or body.not_before is None:
            rec.ended_at = at
        else:
            rec.ended_at, rec.not_after = max(rec.started_at, min(body.not_before, at)), at
            for part in rec.parts:
                if part.answered_at is not None and part.ended_at is not None and part.not_after is None \
                        and part.ended_at > body.not_before and part.hung_up_by == "unknown":
                    self._unseen_end(part, body.not_before, part.ended_at)
        if rec.outcome in ("ivr_only", "abandoned") and rec.queued_at is not None:
            # A caller gone while nobody watched, or cut off by a PBX restart, did not abandon.
            rec.outcome = "abandoned" if body.observed else "lost"
        if rec.parts and rec.parts[-1].answered_at is None:
            rec.parts.pop()
        for part in rec.parts:
            if part.ended_at is None:  # the ACD never heard the agent's leg end: the call's end is its end
                if body.observed or body.not_before is None:
                    self._end_part(rec, part, at, None)
                else:
                    self._unseen_end(part, body.not_before, at)
                part.hung_up_by = body.hung_up_by
        self.changed.add(rec.call_id)

    def _wrapup(self, body: f.WrapUpSaved) -> None:
        rec = self.calls.get(body.call_id)
        part = rec.part_of(body.agent_id) if rec is not None else None
        if rec is None or part is None:
            self.late_wrapups.append(body)
            return
        part.disposition, part.notes, part.wrapped = body.disposition, body.notes, True
        if body.follow_up_kind and body.follow_up_due is not None:
            part.follow_up = (body.follow_up_kind, body.follow_up_due, body.follow_up_note)
        self.changed.add(rec.call_id)

    def take_changed(self) -> list[CallRecord]:
        out = [self.calls[c] for c in sorted(self.changed) if c in self.calls]
        self.changed.clear()
        return out

    # ------------------------------------------------------------------ checkpoints

    def dump(self) -> dict[str, Any]:
        """The records held (a few per agent and per live call, not the day's calls), and the recent ones."""
        settled = set(self._settled)
        return {
            "calls": [_record_data(r) for c, r in self.calls.items() if c not in settled],
            "recent": [[c, list(agents)] for c, agents in self.recent.items()]
            + [[c, list(dict.fromkeys(p.agent_id for p in self.calls[c].parts))] for c in self._settled
               if c in self.calls],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> CallRecords:
        out = cls()
        for raw in data["calls"]:
            parts = [Part(**{**p, "follow_up": tuple(p["follow_up"]) if p["follow_up"] else None})
                     for p in raw["parts"]]
            out.calls[raw["call_id"]] = CallRecord(**{**raw, "parts": parts})
        out.recent = OrderedDict((c, tuple(agents)) for c, agents in data.get("recent", ()))
        return out


_RECORD_FIELDS = tuple(fd.name for fd in fields(CallRecord) if fd.name != "parts")
_PART_FIELDS = tuple(fd.name for fd in fields(Part))


def _record_data(rec: CallRecord) -> dict[str, Any]:
    """As dataclasses.asdict, without its deep copies (a checkpoint is taken on the event loop)."""
    data = {name: getattr(rec, name) for name in _RECORD_FIELDS}
    data["ivr_path"], data["said"] = list(rec.ivr_path), list(rec.said)
    data["parts"] = [{name: getattr(p, name) for name in _PART_FIELDS} for p in rec.parts]
    return data


def _settled(rec: CallRecord) -> bool:
    return rec.ended_at is not None and all(p.wrap_over for p in rec.parts if p.answered_at is not None)


# ------------------------------------------------------------------------------------------ CRM rows


def part_id(call_id: str, n: int) -> str:
    return call_id if n == 1 else f"{call_id}/{n}"


def rows(rec: CallRecord) -> list[InteractionRow]:
    """The CRM rows of a call as it stands: one per agent part that has ended, or one for the whole call
    once it ended without an agent. Nothing while everything is still going on."""
    path = json.dumps(rec.ivr_path, ensure_ascii=False)
    end: dict[str, Any] = {"hung_up_by": rec.hung_up_by, "end_cause": rec.cause,
                           "end_inferred": 0 if rec.observed else 1, "end_not_after": rec.not_after,
                           "call_ended_at": rec.ended_at}
    common: dict[str, Any] = {"root_call_id": rec.call_id, "caller": rec.caller_num, "customer_id": rec.customer_id,
                                  "dialed": rec.dialed, "queue": rec.queue, "recording_ref": rec.recording,
                                  "survey_score": rec.survey_score}
    answered = [p for p in rec.parts if p.answered_at is not None]
    if not answered:
        if rec.ended_at is None:
            return []
        wait = (rec.ended_at - rec.queued_at) if rec.queued_at is not None else 0.0
        who: dict[str, Any] = {}
        if rec.direction == "outbound" and rec.parts:  # the agent who dialled, and what they noted
            first = rec.parts[0]
            who = {"agent": first.agent_id, "disposition": first.disposition, "notes": first.notes,
                   "wrapup_s": first.wrapup_s}
        return [InteractionRow(call_id=rec.call_id, segment=1, started_at=rec.started_at, outcome=rec.outcome,
                               ended_at=rec.ended_at, wait_s=max(0.0, wait), ivr_path=path,
                               queued_at=rec.queued_at, direction=rec.direction, **who, **common, **end)]
    out = []
    for n, part in enumerate(answered, 1):
        if part.ended_at is None and rec.ended_at is None:
            continue
        assert part.answered_at is not None
        ended = part.ended_at if part.ended_at is not None else rec.ended_at
        assert ended is not None
        wait = (part.answered_at - rec.queued_at) if n == 1 and rec.queued_at is not None else 0.0
        talk = max(0.0, ended - part.answered_at - part.hold_s)
        last = n == len(answered)
        out.append(InteractionRow(
            call_id=part_id(rec.call_id, n), segment=n, started_at=rec.started_at if n == 1 else part.offered_at,
            outcome="answered", answered_at=part.answered_at, ended_at=ended, agent=part.agent_id,
            wait_s=max(0.0, wait), talk_s=talk, hold_s=part.hold_s, wrapup_s=part.wrapup_s,
            disposition=part.disposition, notes=part.notes, ivr_path=path if n == 1 else "[]",
            transferred_to=part.transferred_to, queued_at=rec.queued_at if n == 1 else None,
            direction=rec.direction,
            **{**common, **end, "hung_up_by": part.hung_up_by or (rec.hung_up_by if last else ""),
               "end_inferred": 1 if part.not_after is not None or not rec.observed else 0,
               "end_not_after": part.not_after if part.not_after is not None else rec.not_after},
        ))
    return out
