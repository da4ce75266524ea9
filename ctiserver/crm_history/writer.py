"""The CRM history as a projection: call records' rows and survey answers, written in the journal's next batch.

A row changes in the same transaction as the facts that changed it, so the history never runs ahead of
the journal nor falls behind it; rewriting a row with the same content is harmless, which is what a
restart's replay of the facts after the last checkpoint does.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from functools import partial

from acd import decisions as d
from crmstore import queries as Q
from crmstore.model import FollowUpKind, FollowUpRequest, InteractionRow
from crmstore.phones import try_normalize_phone
from crmstore.privacy import Role, Viewer
from crmstore.surveys import SurveyResponse, response_problem, save_response

from ..journal import facts as f
from ..journal.journal import Journal
from .records import CallRecords, part_id, rows

_KEEP = 50_000  # rows of calls still in memory remembered, to skip writing one again unchanged


class CrmHistoryWriter:
    def __init__(self, records: CallRecords, journal: Journal, default_country: str) -> None:
        self.records = records
        self.journal = journal
        self.default_country = default_country
        self.audit = True  # off while a restart replays facts whose audit rows are already written
        self._written: OrderedDict[str, InteractionRow] = OrderedDict()
        self._e164: dict[str, str | None] = {}
        self.rows_seen: set[str] | None = None  # a replay counts the rows it wrote; the live server does not

    @property
    def rows_remembered(self) -> int:
        return len(self._written)

    def __call__(self, fact: f.Fact | None, decisions: list[d.Decision]) -> None:
        for rec in self.records.take_changed():
            e164 = self._phone(rec.call_id, rec.caller_num)
            call_rows = rows(rec)
            for row in call_rows:
                if self._written.get(row.call_id) == row:
                    continue
                self._written[row.call_id] = row
                self._written.move_to_end(row.call_id)
                if len(self._written) > _KEEP:
                    self._written.popitem(last=False)
                self.journal.write_also(("row", row.call_id), partial(Q.upsert_interaction_row, row, e164))
                if self.rows_seen is not None:
                    self.rows_seen.add(row.call_id)
            for n, part in enumerate((p for p in rec.parts if p.answered_at is not None), 1):
                if part.follow_up is None:
                    continue
                kind, due, note = part.follow_up
                request = FollowUpRequest(FollowUpKind(kind), datetime.fromtimestamp(due, UTC),
                                          owner=part.agent_id, note=note)
                source, cid, now = part_id(rec.call_id, n), rec.customer_id, part.ended_at or rec.started_at
                self.journal.write_also(("follow_up", source),
                                        partial(Q.follow_up_from_call, source, e164, cid, request, now))
            if not rec.live:
                self._e164.pop(rec.call_id, None)
            if self.records.is_settled(rec):  # handed over for the last time: its rows change no more here
                for row in call_rows:
                    self._written.pop(row.call_id, None)
        for w in self.records.late_wrapups:
            follow = None
            if w.follow_up_kind and w.follow_up_due is not None:
                follow = FollowUpRequest(FollowUpKind(w.follow_up_kind), datetime.fromtimestamp(w.follow_up_due, UTC),
                                         owner=w.agent_id, note=w.follow_up_note)
            self.journal.write_also(("late", w.call_id, w.agent_id),
                                    partial(Q.update_wrapup_only, w.call_id, w.agent_id, w.disposition, w.notes,
                                            follow, self._late_at(fact)))
        self.records.late_wrapups.clear()
        if fact is not None and isinstance(fact.body, f.SurveyResponseGiven):
            self._survey_response(fact.body, fact.at)
        if fact is not None and isinstance(fact.body, f.WrapUpSaved) and self.audit:
            saved = fact.body
            viewer = Viewer(saved.saved_by or saved.agent_id, Role.AGENT)
            audit = Q.audit_row(viewer, "wrapup", None, f"call {saved.call_id}: {saved.disposition}")
            self.journal.write_also(("audit", fact.seq), partial(_audit, audit))

    def _survey_response(self, given: f.SurveyResponseGiven, at: float) -> None:
        """The answer kept with the customer (survey_responses), in the batch of its fact; a replay writes
        nothing twice (one row per call and question)."""
        response = SurveyResponse(given.campaign, given.customer_id, given.number, given.call_id, given.flow,
                                  given.question, given.answer, at)
        if response_problem(response) is None:
            self.journal.write_also(("survey", given.call_id, given.question), partial(save_response, response))

    @staticmethod
    def _late_at(fact: f.Fact | None) -> float:
        return fact.at if fact is not None else 0.0

    def _phone(self, call_id: str, caller: str) -> str | None:
        if call_id not in self._e164:
            self._e164[call_id] = try_normalize_phone(caller, self.default_country)
        return self._e164[call_id]


def _audit(row: Q.AuditRow) -> Q.Plan[None]:
    yield Q.Execute(Q.AUDIT_INSERT, row)
