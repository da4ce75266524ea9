"""Survey campaigns end to end: the person who answers is handed to the campaign's IVR survey flow (no
agent), answers a score and a yes/no on the keypad, and the answers are journaled and kept with the
customer in the CRM; an answering machine gets no survey and is retried by the campaign's rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from crmstore.campaigns import AttemptOutcome, CampaignKind, DialingMode, RetryRule
from crmstore.model import NewCustomer
from ctiserver.dialer.outcomes import settled_outcome
from ctiserver.journal import facts as f
from pbxsim.people import CallerBehaviour, CallerRun
from tests.dialer.harness import MACHINE, campaign, dialer_stack

EXAMPLE = Path(__file__).parents[2] / "ivr_flows" / "examples" / "satisfaction_survey_en.yaml"
TAKER, TAKER2 = "+12125550601", "+12125550602"


def _survey_flow(tmp: Path) -> None:
    """The shipped example, its fallback queue the one this centre has."""
    flows = tmp / "flows"
    flows.mkdir(exist_ok=True)
    text = EXAMPLE.read_text(encoding="utf-8").replace("fallback: {queue: general}", "fallback: {queue: outbound}")
    (flows / "satisfaction_survey_en.yaml").write_text(text, encoding="utf-8")


def _answers(d: Any, keys: dict[str, tuple[str, ...]]) -> None:
    """The people on the lines: each campaign line's ';1' half is where the survey's questions are asked;
    the person presses the keys given for their number."""
    sim = d.stack.sim
    started: set[str] = set()

    def on_event(pairs: Any) -> None:
        fields = dict(pairs)
        if fields.get("Event") != "Newchannel" or not fields.get("Uniqueid", "").startswith("dial-"):
            return
        name = fields.get("Channel", "")
        number = next((n for n in keys if n in name), None)
        chan = sim.world.channels.get(name)
        if number is None or chan is None or name in started:
            return
        started.add(name)
        CallerRun(sim.world, chan, CallerBehaviour(keys=keys[number])).start()

    sim.world.listeners.append(on_event)


async def test_a_survey_campaign_hands_people_to_the_flow_and_keeps_their_answers(tmp_path: Path) -> None:
    _survey_flow(tmp_path)
    survey = dataclasses.replace(
        campaign("csat", DialingMode.PROGRESSIVE), kind=CampaignKind.SURVEY, flow="satisfaction_survey_en",
        queue="", survey_lines=2)
    survey = dataclasses.replace(survey, retry={**survey.retry, AttemptOutcome.ANSWERING_MACHINE: RetryRule(1, 3600)})
    async with dialer_stack(tmp_path, agents=()) as d:  # nobody logged in: a survey needs no agent
        crm = d.server.crm
        given: list[f.SurveyResponseGiven] = []
        d.server.bus.subscribe_all(lambda body: given.append(body) if isinstance(body, f.SurveyResponseGiven)
                                   else None)
        customer = await crm.create_customer(NewCustomer(name="Ann Survey", phones=(TAKER,)))
        _answers(d, {TAKER: ("4", "1"), TAKER2: ("9", "2", "2")})  # TAKER2: 9 is no score, asked again
        await d.add_campaign(survey, [(TAKER, "Ann", "Etc/UTC"), (TAKER2, "Bob", "Etc/UTC"),
                                      (MACHINE, "Cat", "Etc/UTC")])
        assert await d.outcome_of("csat", TAKER, timeout=30) == "done"
        assert await d.outcome_of("csat", TAKER2, timeout=30) == "done"
        assert await d.outcome_of("csat", MACHINE, timeout=30) == "retry"  # no survey; the machine rule

        [ann], [bob], [machine] = d.ended(TAKER), d.ended(TAKER2), d.ended(MACHINE)
        assert (ann.outcome, bob.outcome, machine.outcome) == ("connected", "connected", "answering_machine")
        assert [s.detail for s in d.steps("survey", call_id=ann.call_id)] == ["satisfaction_survey_en"]
        assert not d.steps("survey", call_id=machine.call_id)
        assert not d.steps("connect")  # no agent leg for any of them
        pressed = [c for c in d.stack.tap.agi_commands(d.stack.tap.named("Newchannel", Uniqueid=ann.call_id)[0]
                                                       ["Channel"]) if c.startswith("GET DATA")]
        assert pressed == ["GET DATA cs/en/survey-1-to-5 5000 1", "GET DATA cs/en/survey-recommend 5000 1"]

        rows = await crm.survey_responses(campaign="csat")
        got = sorted((r.number, r.question, r.answer, r.customer_id, r.call_id) for r in rows)
        assert got == [
            (TAKER, "recommend", "yes", customer, ann.call_id), (TAKER, "satisfaction", "4", customer, ann.call_id),
            (TAKER2, "recommend", "no", None, bob.call_id), (TAKER2, "satisfaction", "2", None, bob.call_id)]
        assert [(r.question, r.answer) for r in await crm.survey_responses(customer_id=customer)] == [
            ("satisfaction", "4"), ("recommend", "yes")]
        assert sorted((x.call_id, x.question, x.answer, x.campaign, x.customer_id) for x in given) == sorted(
            (r.call_id, r.question, r.answer, "csat", r.customer_id) for r in rows)  # journaled, each one


def test_a_survey_line_a_crash_left_open_is_settled_as_connected_not_called_again() -> None:
    # The journal says the person was handed to the survey flow: they took the call; an abandon (retried)
    # would call them again for a survey they answered.
    assert settled_outcome(["answered", "survey"]) is AttemptOutcome.CONNECTED
    assert settled_outcome(["answered"]) is AttemptOutcome.ABANDONED


async def test_a_survey_campaign_whose_flow_did_not_load_dials_nobody_until_it_loads(tmp_path: Path) -> None:
    """On a real PBX the shipped example flow did not load (its fallback queue `general` was not in the
    site's queues.yaml) and the campaign would have rung people only for the survey entry to hang up on
    them: the dialer holds such a campaign back, and dials it once the flow loads."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "satisfaction_survey_en.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    survey = dataclasses.replace(
        campaign("csat", DialingMode.PROGRESSIVE), kind=CampaignKind.SURVEY, flow="satisfaction_survey_en",
        queue="", survey_lines=1)
    async with dialer_stack(tmp_path, agents=()) as d:
        assert "satisfaction_survey_en" not in d.server.flows  # fallback: unknown queue 'general'
        await d.add_campaign(survey, [(TAKER, "Ann", "Etc/UTC")])
        await d.server.dialer.refresh()
        assert "csat" not in d.server.dialer.runs
        assert not d.stack.tap.named("Newchannel")  # nobody rung

        _survey_flow(tmp_path)  # the flow fixed: its fallback is a queue this centre has
        assert not d.server.flows.reload()
        await d.server.dialer.refresh()
        assert "csat" in d.server.dialer.runs
        assert await d.outcome_of("csat", TAKER, timeout=30) == "done"
