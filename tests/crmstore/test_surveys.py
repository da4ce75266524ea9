"""Survey responses in the CRM database (SQLite and PostgreSQL): kept with the customer and the campaign,
one per call and question, and an answer that is no answer refused with one line."""

from __future__ import annotations

import pytest

from crmstore import CrmStore, NewCustomer
from crmstore import campaigns as K
from crmstore.plan import Fetch, Plan
from crmstore.schema import LATEST_VERSION, MIGRATIONS
from crmstore.surveys import SurveyResponse


def _r(question: str, answer: str, *, call: str = "dial-1", customer: int | None = None, campaign: str = "csat",
       at: float = 1_800_000_000.0) -> SurveyResponse:
    return SurveyResponse(campaign, customer, "+12125550601", call, "satisfaction_survey_en", question, answer, at)


async def test_answers_are_kept_with_the_customer_and_the_campaign(store: CrmStore) -> None:
    ann = await store.create_customer(NewCustomer(name="Ann", phones=("+12125550601",)))
    assert await store.save_survey_response(_r("satisfaction", "4", customer=ann))
    assert await store.save_survey_response(_r("recommend", "yes", customer=ann, at=1_800_000_010.0))
    # the same call answering the same question again (a replay, a retried write) changes nothing
    assert not await store.save_survey_response(_r("satisfaction", "5", customer=ann, at=1_800_000_020.0))
    # an inbound caller's post-call survey: no campaign; a number that is nobody's: no customer
    assert await store.save_survey_response(_r("satisfaction", "2", call="in-7", campaign="", at=1_800_000_030.0))
    mine = await store.survey_responses(customer_id=ann)
    assert [(r.question, r.answer, r.campaign, r.call_id, r.at) for r in mine] == [
        ("satisfaction", "4", "csat", "dial-1", 1_800_000_000.0), ("recommend", "yes", "csat", "dial-1", 1_800_000_010.0)]
    assert [(r.answer, r.customer_id) for r in await store.survey_responses(campaign="csat")] == [
        ("4", ann), ("yes", ann)]
    assert [(r.call_id, r.customer_id) for r in await store.survey_responses(campaign="")] == [("in-7", None)]


@pytest.mark.parametrize(("question", "answer", "message"), [
    ("satisfaction", "6", "answer '6' to 'satisfaction': give a score 1 to 5, yes or no"),
    ("recommend", "maybe", "answer 'maybe' to 'recommend': give a score 1 to 5, yes or no"),
    ("", "4", "question '': give 1 to 100 characters"),
])
async def test_an_answer_that_is_no_answer_is_refused_and_nothing_stored(
        store: CrmStore, question: str, answer: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        await store.save_survey_response(_r(question, answer))
    assert str(e.value) == message
    assert await store.survey_responses(campaign="csat") == []


async def test_migration_7_adds_the_table(store: CrmStore) -> None:
    assert LATEST_VERSION == 7 and MIGRATIONS[-1].description == "survey responses with the customer"

    def applied() -> Plan[tuple[int, int]]:
        version = yield Fetch("SELECT MAX(version) FROM schema_version")
        rows = yield Fetch("SELECT COUNT(*) FROM survey_responses")
        return int(version[0][0]), int(rows[0][0])

    assert await store.read_plan(applied()) == (7, 0)


def test_a_survey_campaign_names_its_flow_and_lines_and_reads_back() -> None:
    c = K.campaign_from_data({"name": "csat", "kind": "survey", "flow": "satisfaction_survey_en",
                              "survey_lines": "4"})
    assert (c.flow, c.survey_lines) == ("satisfaction_survey_en", 4)
    assert K.campaign_from_data(K.campaign_to_data(c)) == c
    with pytest.raises(K.CampaignError, match="flow 'x': only a survey campaign hands its calls to a flow"):
        K.campaign_from_data({"name": "sales", "flow": "x"})
    with pytest.raises(K.CampaignError, match="survey_lines 0: give 1 to 500"):
        K.campaign_from_data({"name": "csat", "kind": "survey", "survey_lines": "0"})
