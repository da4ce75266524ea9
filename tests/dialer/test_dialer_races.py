"""The dialer and the ACD sharing an agent: orders of events that once left an agent with two calls or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acd import events as ev
from acd.states import AgentState
from crmstore.campaigns import DialingMode
from ctiserver.journal import facts as f
from tests.dialer.harness import PERSON, DialerStack, campaign, dialer_stack


def _outbound_facts(d: DialerStack) -> list[ev.OutboundStarted | ev.OutboundEnded]:
    seen: list[ev.OutboundStarted | ev.OutboundEnded] = []
    d.server.bus.subscribe_all(
        lambda body: seen.append(body) if isinstance(body, ev.OutboundStarted | ev.OutboundEnded) else None)
    return seen


def _state(d: DialerStack, agent_id: str) -> str:
    return str(d.server.queueing.router.agent_view(agent_id, d.server.clock()).state)


async def test_an_agent_whose_phone_does_not_answer_is_given_back_to_the_acd_every_time(tmp_path: Path) -> None:
    # The agent's leg fails before the person's 2 s are up; the ACD frees the agent (no wrap-up) and the
    # pacer offers the same waiting call to them again at once: that second claim must not be lost.
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        d.stack.sim.add_agent_phone("1001", answer_after=None)  # rings, never answers
        outbound = _outbound_facts(d)
        d.ready("1001")
        await d.add_campaign(campaign("deaf", DialingMode.PREDICTIVE), [(PERSON, "Ann", "Etc/UTC")])
        assert await d.outcome_of("deaf", PERSON) == "retry"  # abandoned: nobody took the person
        [ended] = d.ended(PERSON)
        assert ended.outcome == "abandoned"
        assert d.steps("connect", agent_id="1001") and not d.steps("connected")
        # every claim of the agent was ended for that agent, and the ACD has them free again
        started = [x for x in outbound if isinstance(x, ev.OutboundStarted)]
        finished = [x for x in outbound if isinstance(x, ev.OutboundEnded)]
        assert started and [x.agent_id for x in finished] == [x.agent_id for x in started] == ["1001"] * len(started)
        await d.stack.until(lambda: _state(d, "1001") == AgentState.AVAILABLE.value, 5, "1001 free in the ACD")


async def test_a_timer_of_the_acd_due_as_an_agent_is_claimed_does_not_give_the_call_to_two_agents(
        tmp_path: Path) -> None:
    # 1002's wrap-up ends (an ACD timer, run before the next fact) exactly when the dialer claims 1001 for
    # an answered person: the ACD publishes 1002's change while 1001 still reads available.
    async with dialer_stack(tmp_path, agents=("1001", "1002")) as d:
        recorder = d.server.queueing.recorder
        clock = d.server.clock
        armed = True

        def wrap_up_due_now(body: Any) -> None:
            nonlocal armed
            if not (armed and isinstance(body, f.DialerStep) and body.step == "answered"):
                return
            armed = False
            # the ACD's periodic tick sleeps on: the timer is run by the next fact, the dialer's claim
            recorder.record(ev.OutboundStarted("1002", "elsewhere-1", "outbound"))
            recorder.record(ev.OutboundEnded("1002", "elsewhere-1", "answered", "unknown", "outbound", 1e-6))
            start = clock()
            while clock() <= start + 1e-6:  # the wrap-up is due before the claim's fact is applied
                pass

        d.server.bus.subscribe_all(wrap_up_due_now)
        outbound = _outbound_facts(d)
        d.ready("1001")
        d.ready("1002")
        await d.add_campaign(campaign("twice", DialingMode.PREDICTIVE), [(PERSON, "Ann", "Etc/UTC")])
        assert await d.outcome_of("twice", PERSON, timeout=30) == "done"
        assert not armed
        [connected] = d.steps("connected")
        [call] = {x.call_id for x in d.dialer_facts(f.DialerLineDialled)}
        claims = [x.agent_id for x in outbound if isinstance(x, ev.OutboundStarted) and x.call_id == call]
        assert claims == [connected.agent_id]  # one agent for the person, not a second one as well
        # nobody is left on a call the dialer no longer has
        for agent_id in ("1001", "1002"):
            await d.stack.until(lambda a=agent_id: _state(d, a) != AgentState.ON_CALL.value, 10,  # type: ignore[misc]
                                f"{agent_id} off the call")
