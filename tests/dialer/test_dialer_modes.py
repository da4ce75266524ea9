"""The dialer end to end in the simulator: each dialing mode, AMD outcomes, retries, do-not-call, windows."""

from __future__ import annotations

from pathlib import Path

from acd import events as ev
from crmstore.campaigns import DialingMode
from ctiserver.dialer.service import PreviewOffered
from ctiserver.journal import facts as f
from tests.dialer.harness import PERSON, PERSON2, PERSON3, SLOW_PERSON, campaign, dialer_stack
from tests.e2e.stack import PASSWORD
from tests.gateway.gw_client import ConsoleClient


def _most_lines_at_once(facts: list[object]) -> int:
    out = most = 0
    for x in facts:
        if isinstance(x, f.DialerLineDialled):
            out += 1
            most = max(most, out)
        elif isinstance(x, f.DialerLineEnded):
            out -= 1
    return most


async def test_progressive_dials_one_line_per_free_agent_and_connects_each_person(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path) as d:
        d.ready("1001", "1002")
        await d.add_campaign(campaign("spring", DialingMode.PROGRESSIVE),
                             [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC"), (PERSON3, "Cy", "Etc/UTC")])
        for number in (PERSON, PERSON2, PERSON3):
            assert await d.outcome_of("spring", number, timeout=30) == "done"
        assert _most_lines_at_once(d.facts) == 2  # two free agents: two lines, never more
        connected = d.steps("connected")
        assert len(connected) == 3 and {s.agent_id for s in connected} == {"1001", "1002"}
        assert not d.steps("abandon")
        for number in (PERSON, PERSON2, PERSON3):
            [ended] = d.ended(number)
            assert ended.outcome == "connected" and ended.amd.startswith("HUMAN/HUMAN-")
        progress = await d.campaigns.progress("spring")
        assert progress.connects == 3


async def test_preview_pushes_the_card_to_the_console_and_the_agent_dials_it(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        offered: list[PreviewOffered] = []
        d.server.bus.subscribe(PreviewOffered, offered.append)
        console = await ConsoleClient.open(d.server.gateway.ws_url)
        try:
            await console.login("agent1001", PASSWORD)
            reply = await console.request("agent_login", extension="1001", queues=["outbound"])
            assert reply["type"] == "result", reply
            await d.add_campaign(campaign("visit", DialingMode.PREVIEW), [(PERSON, "Ann", "Etc/UTC")])
            card = await console.wait_for("preview_card", timeout=10)
            assert (card["campaign"], card["number"], card["name"]) == ("visit", PERSON, "Ann")
            assert card["script"].startswith("Good morning")
            assert offered and d.steps("preview", agent_id="1001")
            assert not d.dialer_facts(f.DialerLineDialled)  # nothing dialled before the agent says so
            reply = await console.request("preview_dial")
            assert reply["type"] == "result", reply
            call_id = reply["data"]["call_id"]
            assert await d.outcome_of("visit", PERSON) == "done"
        finally:
            await console.close()
        [dialled] = d.dialer_facts(f.DialerLineDialled)
        assert (dialled.call_id, dialled.agent_id) == (call_id, "1001")
        assert d.steps("connected", call_id=call_id, agent_id="1001")
        # the agent's leg was up before the customer's line was placed
        legs = [x["Uniqueid"] for n, x in d.stack.tap.events if n == "Newchannel" and x["Uniqueid"].startswith(call_id)]
        assert legs[:2] == [f"{call_id}-agent", call_id]
        assert d.ended(PERSON)[0].outcome == "connected"


async def test_preview_skip_offers_the_next_card(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        offered: list[PreviewOffered] = []
        d.server.bus.subscribe(PreviewOffered, offered.append)
        d.ready("1001")
        await d.add_campaign(campaign("visit", DialingMode.PREVIEW),
                             [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC")])
        await d.stack.until(lambda: offered, 10, "a preview card")
        assert d.server.dialer.preview_skip("1001")
        await d.stack.until(lambda: len(offered) >= 2, 10, "the next card")
        assert offered[0].number == PERSON and offered[1].number == PERSON2
        assert not d.dialer_facts(f.DialerLineDialled)


async def test_predictive_abandons_with_the_message_when_no_agent_within_2_s(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.ready("1001")
        await d.add_campaign(campaign("drive", DialingMode.PREDICTIVE), [(SLOW_PERSON, "Ann", "Etc/UTC")])
        await d.stack.until(lambda: d.dialer_facts(f.DialerLineDialled), 10, "the line dialled")
        # the agent the pacer counted on leaves while the line rings: nobody for the person who answers
        d.server.queueing.command(ev.AgentPaused("1001", "break"))
        assert await d.outcome_of("drive", SLOW_PERSON) == "retry"  # abandoned: retried per the campaign
        [abandon] = d.steps("abandon")
        message, _, waited = abandon.detail.partition(" after ")
        assert message == "abandoned-call" and float(waited.removesuffix(" s")) >= 2.0
        assert not d.steps("connect")
        [ended] = d.ended(SLOW_PERSON)
        assert ended.outcome == "abandoned"
        # the person heard the recorded message on the line, then it was hung up
        played = d.stack.tap.named("Newexten", Uniqueid=ended.call_id, Application="Playback")
        assert [p["AppData"] for p in played] == ["abandoned-call"]
        progress = await d.campaigns.progress("drive")
        assert progress.attempts == 1 and progress.connects == 0


async def test_predictive_dials_ahead_of_the_agents_once_its_window_has_room(tmp_path: Path) -> None:
    # half the list answers; with a 10 % cap the window has room for one line beyond the free agents after
    # nine live answers (docs/outbound.md, The guarantee): from then on predictive dials ahead
    people = [(f"+121255501{i:02d}", f"P{i}", "Etc/UTC") for i in range(14)]
    silent = [(f"+121255504{i:02d}", f"S{i}", "Etc/UTC") for i in range(14)]
    rows = [row for pair in zip(people, silent, strict=True) for row in pair]
    async with dialer_stack(tmp_path, agents=("1001", "1002")) as d:
        d.ready("1001", "1002")
        await d.add_campaign(campaign("ahead", DialingMode.PREDICTIVE, abandon_cap=0.1), rows)

        async def all_dialled() -> bool:
            return (await d.campaigns.progress("ahead")).attempts == len(rows)
        await d.stack.until_async(all_dialled, 90, "every contact dialled once")
        await d.stack.until(lambda: len(d.dialer_facts(f.DialerLineEnded)) == len(rows), 30, "every line ended")
        assert _most_lines_at_once(d.facts) > 2  # more lines than agents: progressive never does
        status = d.server.dialer.runs["ahead"].pacer.status()
        assert status.abandon_rate <= 0.1
        connected = len(d.steps("connected"))
        assert connected + len(d.steps("abandon")) == len(people)
        assert all(s.detail.startswith("abandoned-call after ") for s in d.steps("abandon"))
