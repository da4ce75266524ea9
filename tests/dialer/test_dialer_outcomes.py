"""What becomes of each line: AMD's verdicts, busy and unanswered lines, and the numbers never to dial."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crmstore.campaigns import AttemptOutcome, DialingMode, RetryRule
from ctiserver.dialer.settings import CampaignLines
from ctiserver.journal import facts as f
from tests.dialer.harness import (
    BUSY,
    DIALER,
    MACHINE,
    MACHINE2,
    NO_ANSWER,
    PERSON,
    PERSON2,
    campaign,
    dialer_stack,
)


async def _contact(d: object, name: str, number: str) -> object:
    for c in await d.campaigns.contacts(name):  # type: ignore[attr-defined]
        if c.e164 == number:
            return c
    raise AssertionError(f"{number} not in {name}")


async def test_a_person_goes_to_the_agent_and_a_machine_is_hung_up_for_a_retry(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.ready("1001")
        await d.add_campaign(campaign("amd", DialingMode.PROGRESSIVE),
                             [(MACHINE, "Ann", "Etc/UTC"), (PERSON, "Bob", "Etc/UTC")])
        assert await d.outcome_of("amd", MACHINE) == "retry"  # answering_machine: 1 retry after 4 h
        assert await d.outcome_of("amd", PERSON) == "done"
        [machine] = d.ended(MACHINE)
        assert machine.outcome == "answering_machine" and machine.amd == "MACHINE/LONGGREETING-1500-1500"
        assert d.steps("machine", call_id=machine.call_id)[0].detail == "hang_up"
        assert not d.stack.tap.named("Newexten", Uniqueid=machine.call_id, Application="Playback")
        assert not d.steps("connect", call_id=machine.call_id)  # no agent for a machine
        [person] = d.ended(PERSON)
        assert person.outcome == "connected" and person.agent_id == "1001"
        retry = await _contact(d, "amd", MACHINE)
        started = d.dialer_facts(f.DialerLineDialled, number=MACHINE)[0]
        assert retry.attempts == 1 and retry.next_at is not None  # type: ignore[attr-defined]
        assert started.attempt_id
        answered = [s.detail for s in d.steps("answered")]
        assert answered == ["machine: MACHINE/LONGGREETING-1500-1500", "human: HUMAN/HUMAN-801-800"]


async def test_a_campaign_that_leaves_a_message_plays_it_to_the_machine(tmp_path: Path) -> None:
    dialer = dataclasses.replace(DIALER, campaigns={"leave": CampaignLines(machine_action="message",
                                                                          machine_message="vm-goodbye")})
    final = campaign("leave", DialingMode.PROGRESSIVE)
    final = dataclasses.replace(final, retry={**final.retry, AttemptOutcome.ANSWERING_MACHINE: RetryRule(0)})
    async with dialer_stack(tmp_path, agents=("1001",), dialer=dialer) as d:
        d.ready("1001")
        await d.add_campaign(final, [(MACHINE2, "Ann", "Etc/UTC")])
        assert await d.outcome_of("leave", MACHINE2) == "done"  # the message was the last word
        [ended] = d.ended(MACHINE2)
        assert ended.outcome == "answering_machine"
        assert d.steps("machine", call_id=ended.call_id)[0].detail == "message vm-goodbye"
        played = d.stack.tap.named("Newexten", Uniqueid=ended.call_id, Application="Playback")
        assert [p["AppData"] for p in played] == ["vm-goodbye"]


async def test_busy_and_unanswered_lines_are_retried_per_the_campaign(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.ready("1001")
        await d.add_campaign(campaign("retries", DialingMode.PROGRESSIVE),
                             [(BUSY, "Ann", "Etc/UTC"), (NO_ANSWER, "Bob", "Etc/UTC")])
        assert await d.outcome_of("retries", BUSY) == "retry"
        assert await d.outcome_of("retries", NO_ANSWER) == "retry"
        [busy], [no_answer] = d.ended(BUSY), d.ended(NO_ANSWER)
        assert (busy.outcome, no_answer.outcome) == ("busy", "no_answer")
        busy_contact, silent_contact = await _contact(d, "retries", BUSY), await _contact(d, "retries", NO_ANSWER)
        # retry waits from the campaign: busy 10 min, no answer 2 h
        assert 590 < busy_contact.next_at - d.server.now() <= 600  # type: ignore[attr-defined]
        assert 7190 < silent_contact.next_at - d.server.now() <= 7200  # type: ignore[attr-defined]
        assert not d.steps("answered")


async def test_a_number_put_on_do_not_call_after_the_import_is_never_dialled(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        c = campaign("dnc", DialingMode.PROGRESSIVE)
        await d.campaigns.save(c)
        path = tmp_path / "list.csv"
        path.write_text(f"phone,name,timezone\n{PERSON},Ann,Etc/UTC\n{PERSON2},Bob,Etc/UTC\n", encoding="utf-8")
        assert (await d.campaigns.import_list("dnc", path)).added == 2
        await d.campaigns.add_do_not_call(PERSON, "asked on the phone")
        await d.campaigns.resume("dnc")
        d.ready("1001")
        assert await d.outcome_of("dnc", PERSON2) == "done"
        assert not d.dialer_facts(f.DialerLineDialled, number=PERSON)
        assert not [x for n, x in d.stack.tap.events if PERSON in x.get("Channel", "")]
        assert (await _contact(d, "dnc", PERSON)).status.value in ("pending", "excluded")  # type: ignore[attr-defined]


async def test_a_contact_outside_its_calling_window_is_not_dialled(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.ready("1001")
        # the window is around the current hour in each contact's own time: twelve hours away it is night
        await d.add_campaign(campaign("windows", DialingMode.PROGRESSIVE),
                             [(PERSON, "Far", "Etc/GMT-12"), (PERSON2, "Near", "Etc/UTC")])
        assert await d.outcome_of("windows", PERSON2) == "done"
        await d.stack.until(lambda: len(d.steps("connected")) == 1, 5, "the near contact's call")
        assert not d.dialer_facts(f.DialerLineDialled, number=PERSON)
        assert (await _contact(d, "windows", PERSON)).status.value == "pending"  # type: ignore[attr-defined]
