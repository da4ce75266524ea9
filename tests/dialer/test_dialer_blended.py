"""Blended agents: one fact says whether an agent is free. A campaign call makes the agent busy in the ACD (no
inbound offer), its wrap-up is the campaign's, and the pacer counts the agent free only when the ACD does;
an agent on an inbound call is given no campaign line."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from acd import decisions as d
from acd import events as ev
from crmstore.campaigns import DialingMode
from ctiserver.journal import facts as f
from pbxsim.people import CallerBehaviour
from tests.dialer.harness import (
    BLENDED_QUEUES,
    DIALER,
    LONG_PERSON,
    PERSON,
    SALES_FLOW,
    DialerStack,
    campaign,
    dialer_stack,
)

INBOUND = "+8613911112222"


def _state(s: DialerStack, agent_id: str) -> str:
    return str(s.server.projector.router.agent_view(agent_id, s.server.now()).state)


def _offers(s: DialerStack) -> list[d.Offer]:
    return [x for x in s.facts if isinstance(x, d.Offer)]


def _waiting_sales(s: DialerStack) -> list[str]:
    router = s.server.projector.router
    return [c for c in router.call_ids() if (v := router.call_view(c)) is not None and v.queue == "sales"]


async def test_a_blended_agent_on_a_campaign_call_gets_no_inbound_offer_until_the_campaign_wrap_up_ends(
        tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",), queues=BLENDED_QUEUES, flow=SALES_FLOW) as s:
        s.server.bus.subscribe(d.Offer, s.facts.append)
        s.ready("1001")
        # the campaign's own wrap-up (2 s): not the queue's 30 s, nor the dialer's default
        await s.add_campaign(campaign("spring", DialingMode.PROGRESSIVE, wrap_up_s=2),
                             [(LONG_PERSON, "Ann", "Etc/UTC")])
        await s.stack.until(lambda: s.steps("connected", agent_id="1001"), 20, "the campaign call put through")
        assert _state(s, "1001") == "on_call"  # the ACD has them busy, not only the dialer
        s.stack.sim.place_call("5551000", INBOUND, "In", CallerBehaviour())
        [inbound] = await s.stack.until(lambda: _waiting_sales(s), 10, "the inbound caller waiting for sales")
        await asyncio.sleep(1.0)
        assert _offers(s) == [], "the inbound call was offered to an agent busy on a campaign call"
        await s.stack.until(lambda: _state(s, "1001") == "wrap_up", 20, "the campaign call over")
        view = s.server.projector.router.agent_view("1001", s.server.now())
        assert (view.wrap_up_s, view.call_queue) == (2.0, "outbound")
        assert _offers(s) == []  # nor during the wrap-up
        await s.stack.until(lambda: _offers(s), 10, "the inbound call offered after the wrap-up")
        [offer] = _offers(s)
        assert (offer.call_id, offer.agent_id) == (inbound, "1001")
        assert [x.outcome for x in s.dialer_facts(f.DialerLineEnded)] == ["connected"]


async def test_the_pacer_counts_an_agent_free_only_when_the_acd_does(tmp_path: Path) -> None:
    """The ACD's wrap-up ends (the agent is done early): the next line goes out then, whatever the dialer's
    own default wrap-up length."""
    dialer = dataclasses.replace(DIALER, wrap_up_s=3600.0)
    async with dialer_stack(tmp_path, agents=("1001",), queues=BLENDED_QUEUES, dialer=dialer) as s:
        s.ready("1001")
        await s.add_campaign(campaign("spring", DialingMode.PROGRESSIVE),
                             [(PERSON, "Ann", "Etc/UTC"), (LONG_PERSON, "Bo", "Etc/UTC")])
        await s.stack.until(lambda: _state(s, "1001") == "wrap_up", 20, "the first call over")
        await asyncio.sleep(0.5)
        assert len(s.dialer_facts(f.DialerLineDialled)) == 1  # in wrap-up in the ACD: no line for them
        s.server.queueing.record(ev.WrapUpDone("1001"))
        await s.stack.until(lambda: len(s.dialer_facts(f.DialerLineDialled)) == 2, 10, "the next line")


async def test_an_agent_on_an_inbound_call_is_given_no_campaign_line(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",), queues=BLENDED_QUEUES, flow=SALES_FLOW) as s:
        s.ready("1001")
        s.stack.sim.place_call("5551000", INBOUND, "In", CallerBehaviour(hangup_after_connect=100.0))
        await s.stack.until(lambda: _state(s, "1001") == "on_call", 10, "the inbound call answered")
        await s.add_campaign(campaign("spring", DialingMode.PROGRESSIVE), [(PERSON, "Ann", "Etc/UTC")])
        await asyncio.sleep(1.5)  # several polls of the dialer
        assert not s.dialer_facts(f.DialerLineDialled)
        assert s.server.dialer is not None and s.server.dialer.runs["spring"].pacer.status().agents_free == 0
