"""Wrap-up drafts: what an agent's open wrap-up form holds (the latest `call.wrapup_draft` per call), and
the drafts kept on their calls when the wrap-up ended unsaved (the queue's maximum, or the agent went on
without saving). A saved wrap-up removes both. Pure: rebuilt from the journal like every projection."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from acd import decisions as d

from ..crm_history.records import CallRecords
from ..journal.facts import Fact, WrapUpDraft, WrapUpSaved

_KEPT_MAX = 1000  # drafts nobody saved are shown to supervisors; the oldest go first beyond this


@dataclass(frozen=True, slots=True)
class Draft:
    call_id: str
    agent_id: str
    disposition: str
    notes: str
    at: float  # when the form last changed
    kept_at: float | None = None  # when its wrap-up ended unsaved
    why: str = ""  # why it ended: "wrap-up maximum reached", "ready", ...
    queue: str = ""
    caller_name: str = ""  # the CRM's name or the caller ID name, when the form opened
    caller_num: str = ""


class WrapUpDrafts:
    def __init__(self) -> None:
        self.open: dict[str, Draft] = {}  # call id -> the form being filled in
        self.kept: dict[str, Draft] = {}  # call id -> a draft left unsaved when its wrap-up ended

    def apply(self, fact: Fact | None, decisions: list[d.Decision], records: CallRecords) -> list[Draft]:
        """Returns the drafts kept by these decisions (for the consoles to announce). The caller is taken
        from the call's record while it lives: a kept draft outlives it."""
        body = fact.body if fact is not None else None
        if isinstance(body, WrapUpDraft) and fact is not None:
            rec = records.get(body.call_id)
            name = (rec.customer_name or rec.caller_name) if rec is not None else ""
            self.open[body.call_id] = Draft(body.call_id, body.agent_id, body.disposition, body.notes, fact.at,
                                            caller_name=name, caller_num=rec.caller_num if rec is not None else "")
        elif isinstance(body, WrapUpSaved):
            self.open.pop(body.call_id, None)
            self.kept.pop(body.call_id, None)
        kept: list[Draft] = []
        for x in decisions:
            if not (isinstance(x, d.AgentStateChanged) and x.old == "wrap_up" and x.new != "wrap_up" and x.call_id):
                continue
            draft = self.open.pop(x.call_id, None)
            if draft is None or draft.agent_id != x.agent_id:
                continue
            kept_draft = replace(draft, kept_at=x.at, why=x.reason, queue=x.queue or "")
            self.kept[x.call_id] = kept_draft
            kept.append(kept_draft)
            while len(self.kept) > _KEPT_MAX:
                del self.kept[next(iter(self.kept))]
        return kept

    def of_agent(self, agent_id: str) -> list[Draft]:
        return [x for x in self.kept.values() if x.agent_id == agent_id]

    def dump(self) -> dict[str, Any]:
        return {"open": [asdict(x) for x in self.open.values()], "kept": [asdict(x) for x in self.kept.values()]}

    @classmethod
    def load(cls, data: dict[str, Any]) -> WrapUpDrafts:
        out = cls()
        out.open = {x["call_id"]: Draft(**x) for x in data.get("open", [])}
        out.kept = {x["call_id"]: Draft(**x) for x in data.get("kept", [])}
        return out
