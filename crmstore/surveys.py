"""Survey responses with the customer: what a caller answered to each question of a survey flow, from an
outbound survey campaign's call or an inbound caller's post-call survey (campaign "").

Pure checks and plans (plan.py); the store runs them. One row per call and question: the same answer read
again (a replayed journal, a retried write) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Execute, Fetch, Plan

SCORES = ("1", "2", "3", "4", "5")
YES_NO = ("yes", "no")


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    campaign: str  # "" for a post-call survey after an inbound call
    customer_id: int | None  # None: the number is no customer's (yet)
    number: str  # E.164 of the line that answered
    call_id: str
    flow: str
    question: str
    answer: str  # "1".."5" or "yes"/"no"
    at: float  # wall clock, seconds


def response_problem(r: SurveyResponse) -> str | None:
    """Why the response cannot be stored, or None."""
    if not r.question.strip() or len(r.question) > 100:
        return f"question {r.question!r}: give 1 to 100 characters"
    if r.answer not in SCORES and r.answer not in YES_NO:
        return f"answer {r.answer!r} to {r.question!r}: give a score 1 to 5, yes or no"
    if not r.call_id:
        return "a survey response needs the call it was given on"
    return None


_COLS = "campaign, customer_id, number, call_id, flow, question, answer, at"


def save_response(r: SurveyResponse) -> Plan[bool]:
    """True when stored, False when this call's answer to this question was there already."""
    changed = yield Execute(
        f"INSERT INTO survey_responses ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (call_id, question) DO NOTHING",
        (r.campaign, r.customer_id, r.number, r.call_id, r.flow, r.question, r.answer, r.at))
    return bool(changed)


def _response(row: tuple[object, ...]) -> SurveyResponse:
    campaign, customer, number, call_id, flow, question, answer, at = row
    return SurveyResponse(str(campaign), int(str(customer)) if customer is not None else None, str(number),
                          str(call_id), str(flow), str(question), str(answer), float(str(at)))


def responses_of_customer(customer_id: int, limit: int = 200) -> Plan[list[SurveyResponse]]:
    rows = yield Fetch(f"SELECT {_COLS} FROM survey_responses WHERE customer_id = ? ORDER BY at, id LIMIT ?",
                       (customer_id, limit))
    return [_response(tuple(r)) for r in rows]


def responses_of_campaign(campaign: str, limit: int = 10_000) -> Plan[list[SurveyResponse]]:
    rows = yield Fetch(f"SELECT {_COLS} FROM survey_responses WHERE campaign = ? ORDER BY at, id LIMIT ?",
                       (campaign, limit))
    return [_response(tuple(r)) for r in rows]
