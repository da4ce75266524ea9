"""What the real Asterisk 22.10.1 showed of campaign lines placed straight on a PJSIP trunk (captures 26 and
27, sipp customers and desk phones): a busy number fails with Reason 0 and only its Hangup's cause says
busy, and an agent's phone that is not picked up must not keep an answered person waiting past 2 s."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crmstore.campaigns import DialingMode
from pbxsim.world import PhoneProfile
from tests.ami_relay import AmiRelay
from tests.dialer.harness import BUSY, DIALER, SLOW_PERSON, campaign, dialer_stack

TRUNK = dataclasses.replace(DIALER, trunk="PJSIP/{number}@trunk")  # as the shipped cti.yaml example has it
REJECTS = "+12125550601"


async def test_a_busy_number_on_the_trunk_is_busy_and_a_refusal_failed(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",), dialer=TRUNK) as d:
        d.stack.sim.world.phones[BUSY] = PhoneProfile(busy=True)  # 486
        d.stack.sim.world.phones[REJECTS] = PhoneProfile(refuse_cause=21)  # 603
        d.ready("1001")
        await d.add_campaign(campaign("trunk", DialingMode.PROGRESSIVE),
                             [(BUSY, "Ann", "Etc/UTC"), (REJECTS, "Bob", "Etc/UTC")])
        assert await d.outcome_of("trunk", BUSY) == "retry"
        assert await d.outcome_of("trunk", REJECTS) == "retry"
        [busy], [refused] = d.ended(BUSY), d.ended(REJECTS)
        assert (busy.outcome, refused.outcome) == ("busy", "failed")
        # The PBX said what the real one says (capture 27): Reason 0 for both, the cause on the Hangup.
        for line, cause in ((busy, "17"), (refused, "21")):
            [resp] = d.stack.tap.named("OriginateResponse", Uniqueid=line.call_id)
            [hangup] = d.stack.tap.named("Hangup", Uniqueid=line.call_id)
            assert (resp["Response"], resp["Reason"], hangup["Cause"]) == ("Failure", "0", cause)
            assert hangup["Channel"].startswith("PJSIP/trunk-") and hangup["Context"] == "from-pstn"


async def test_an_agent_phone_rings_only_for_what_is_left_of_the_persons_2_seconds(tmp_path: Path) -> None:
    relay = AmiRelay(0)
    async with dialer_stack(tmp_path, agents=("1001",), relay=relay) as d:
        d.stack.sim.world.phones["1001"].answer_after = None  # the desk phone rings, nobody picks it up
        d.ready("1001")
        await d.add_campaign(campaign("budget", DialingMode.PROGRESSIVE), [(SLOW_PERSON, "Ann", "Etc/UTC")])
        assert await d.outcome_of("budget", SLOW_PERSON) == "retry"
        [ended] = d.ended(SLOW_PERSON)
        assert ended.outcome == "abandoned"
        assert d.steps("abandon", call_id=ended.call_id)
        legs = [a for a in relay.actions("Originate") if a.get("ChannelId", "").endswith("-agent")]
        assert legs
        assert all(int(a["Timeout"]) <= 2000 for a in legs), [a["Timeout"] for a in legs]
