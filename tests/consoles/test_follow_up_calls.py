"""A follow-up called from the agent's worklist, as a real Asterisk 22.10.1 placed it: the agent's desk phone
rings (the command waits for that answer), then the customer is dialled through the trunk. Whole calls
through the simulator and the real server; the CRM read with our own connection."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from crmstore.model import FollowUpKind, FollowUpRequest
from ctiserver.app import CtiServer
from ctiserver.consoles.crm_work import FOLLOW_UP_RING_S
from ctiserver.gateway.server import GatewayConfig
from tests.gateway.gw_client import ConsoleClient
from tests.gateway.gw_harness import AGENT1, KEY_ACCOUNT_CALLER, TIME_SCALE, AppSite, app_site
from tests.gateway.test_gateway_protocol import agent

CUSTOMER = KEY_ACCOUNT_CALLER.lstrip("+")  # the number the trunk is dialled with


async def _follow_up(site: AppSite) -> int:
    cid = int(site.crm_rows("SELECT customer_id FROM phones WHERE e164 = ?", KEY_ACCOUNT_CALLER)[0][0])
    return await site.server.crm.add_follow_up(
        cid, FollowUpRequest(FollowUpKind.SATISFACTION_CALL, datetime.now(UTC), AGENT1, "3DC"))


def _customer_line(site: AppSite, state: int) -> bool:
    return any(c.name.startswith("PJSIP/trunk-") and c.exten == CUSTOMER and c.state == state and not c.dead
               for c in site.sim.world.channels.values())


async def test_talk_time_of_a_follow_up_call_starts_when_the_customer_answers(tmp_path: Path) -> None:
    async with app_site(tmp_path) as site:
        fid = await _follow_up(site)
        a = await agent(site)
        site.sim.world.phones[AGENT1].answer_after = 0.2
        customer = site.sim.add_agent_phone(CUSTOMER, answer_after=None)  # rings on and on

        # The customer's line rings and nobody answers: the agent gives up.
        call_id = (await a.request("follow_up_call", follow_up_id=fid))["data"]["call_id"]
        await site.until(lambda: _customer_line(site, 5), "the customer's line ringing")
        assert (await a.request("hangup", call_id=call_id))["type"] == "result"
        saved = await a.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=False, done=False)
        assert saved["type"] == "result", saved
        row = site.crm_rows("SELECT answered_at, talk_s FROM interactions WHERE call_id = ?", call_id)[0]
        assert (row["answered_at"], row["talk_s"]) == (None, 0.0)  # the agent's own phone answering is no talk

        # Called again: the customer answers after ringing a while.
        customer.answer_after = 20.0
        call_id = (await a.request("follow_up_call", follow_up_id=fid))["data"]["call_id"]
        await site.until(lambda: _customer_line(site, 5), "the customer's line ringing")
        ringing_seen = time.time()
        await site.until(lambda: _customer_line(site, 6), "the customer answering")
        assert (await a.request("hangup", call_id=call_id))["type"] == "result"
        saved = await a.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=True, done=True)
        assert saved["type"] == "result", saved
        row = site.crm_rows("SELECT started_at, answered_at, ended_at, talk_s FROM interactions WHERE call_id = ?",
                            call_id)[0]
        assert row["answered_at"] > ringing_seen and row["answered_at"] <= row["ended_at"]
        assert row["talk_s"] == row["ended_at"] - row["answered_at"]


async def test_the_agents_phone_rings_no_longer_than_the_console_waits(tmp_path: Path) -> None:
    """The command waits for the agent's phone to answer; rung past the gateway's command timeout, a real
    PBX went on to dial the customer after the console had been told the server did not answer, and the
    call was never journaled nor could be saved. A phone not answered in time is a refusal, nobody dialled."""
    assert FOLLOW_UP_RING_S < GatewayConfig().command_timeout_s
    async with app_site(tmp_path) as site:
        fid = await _follow_up(site)
        a = await agent(site)
        site.sim.world.phones[AGENT1].answer_after = FOLLOW_UP_RING_S + 12.0  # virtual seconds: under 30
        reply = await a.request("follow_up_call", follow_up_id=fid)
        assert (reply["type"], reply.get("reason")) == ("error", "no_answer"), reply
        await site.until(lambda: not any(c.name.startswith(f"PJSIP/{AGENT1}-") for c in site.sim.world.channels.values()),
                         "the agent's phone to stop ringing", timeout=(FOLLOW_UP_RING_S + 12.0) * TIME_SCALE + 5)
        assert not any(c.name.startswith("PJSIP/trunk-") for c in site.sim.world.channels.values())
        assert site.crm_rows("SELECT kind FROM journal WHERE kind LIKE 'crm.follow_up%'") == []
        assert site.crm_rows("SELECT status FROM follow_ups WHERE id = ?", fid)[0][0] == "open"


async def test_a_follow_up_call_is_saved_after_a_restart(tmp_path: Path) -> None:
    """The call's link to its follow-up was in memory only: a server restarted during the call refused its
    result and the follow-up stayed open. The journaled crm.follow_up_called is found again."""
    async with app_site(tmp_path) as site:
        fid = await _follow_up(site)
        a = await agent(site)
        site.sim.world.phones[AGENT1].answer_after = 0.2
        call_id = (await a.request("follow_up_call", follow_up_id=fid))["data"]["call_id"]
        await site.until(lambda: _customer_line(site, 6), "the customer answering")
        journal = site.server.recorder.journal
        await journal.durable(journal.last_seq, 10)
        await a.close()

        await site.server.stop()
        site.server = CtiServer(site.server.settings)
        await site.server.start()
        site.sim.world.agi_host_override = ("127.0.0.1", site.server.agi_port)
        await next(iter(site.server.pbxes.values())).link.wait_up(10)

        a = await ConsoleClient.open(site.ws_url)
        await a.login("agent1", site.passwords["agent1"])
        assert (await a.request("hangup", call_id=call_id))["type"] == "result"  # still live: hung up
        saved = await a.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=True, done=True,
                                notes="满意")
        assert saved["type"] == "result", saved
        fu = site.crm_rows("SELECT status, call_id, done_by FROM follow_ups WHERE id = ?", fid)[0]
        assert tuple(fu) == ("done", call_id, AGENT1)
        row = site.crm_rows("SELECT agent, outcome, notes, started_at FROM interactions WHERE call_id = ?", call_id)[0]
        assert (row["agent"], row["outcome"], row["notes"]) == (AGENT1, "answered", "满意")
        kinds = [r[0] for r in site.crm_rows("SELECT kind FROM journal WHERE call_id = ? ORDER BY seq", call_id)]
        assert kinds == ["crm.follow_up_called", "crm.follow_up_saved"]

        # Another agent cannot claim it, nor a made-up call of theirs.
        b = await ConsoleClient.open(site.ws_url)
        await b.login("agent2", site.passwords["agent2"])
        theirs = await b.request("follow_up_save", follow_up_id=fid, call_id=call_id, reached=True, done=True)
        assert theirs["code"] == "not_your_call"
        made_up = call_id.rsplit("-", 1)[0] + "-1002"
        forged = await b.request("follow_up_save", follow_up_id=fid, call_id=made_up, reached=True, done=True)
        assert forged.get("reason") == "not_your_call" or forged.get("code") == "not_your_call", forged
