"""The agent's wrap-up of a campaign call, through the console's websocket against a real server and the PBX
simulator: the campaign's own dispositions, right party or not, a call back booked at a time, wrong number,
do-not-call, and the attempt's final outcome in the campaign store and the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crmstore.campaigns import AfterDisposition, Campaign, DialingMode, Disposition
from crmstore.plan import Fetch, Plan
from tests.dialer.harness import PERSON, PERSON2, DialerStack, campaign, dialer_stack
from tests.e2e.stack import PASSWORD
from tests.gateway.gw_client import ConsoleClient

DISPOSITIONS = {
    "dispositions": ("sale", "not_interested", "not_home"),
    "disposition_rules": (Disposition("not_home", right_party=False, then=AfterDisposition.CALL_BACK),),
    "wrap_up_s": 60,  # long: the wrap-up is still open when the agent saves it
}


def _rows(sql: str) -> Plan[list[Any]]:
    got = yield Fetch(sql, ())
    return [tuple(r) for r in got]


async def _read(s: DialerStack, sql: str) -> list[Any]:
    return await s.server.crm.backend.read(_rows(sql))  # the running server's store (a restart makes a new one)


@asynccontextmanager
async def _agent_on_campaign(tmp: Path, c: Campaign, contacts: list[tuple[str, str, str]]
                             ) -> AsyncIterator[tuple[DialerStack, ConsoleClient]]:
    async with dialer_stack(tmp, agents=("1001",)) as s:
        console = await ConsoleClient.open(s.server.gateway.ws_url)
        try:
            await console.login("agent1001", PASSWORD)
            assert (await console.request("agent_login", extension="1001", queues=["outbound"]))["type"] == "result"
            await s.add_campaign(c, contacts)
            yield s, console
        finally:
            await console.close()


async def _wrap_up_call(s: DialerStack, n: int) -> str:
    """The call id of the agent's n-th campaign call, once it is over and the agent in its wrap-up."""
    def probe() -> str | None:
        view = s.server.projector.router.agent_view("1001", s.server.now())
        ended = [x.call_id for x in s.steps("connected")]
        if view.state == "wrap_up" and len(ended) >= n and view.call_id == ended[n - 1]:
            return view.call_id
        return None
    return await s.stack.until(probe, 20, f"call {n} over, in wrap-up")


async def test_a_not_right_party_disposition_books_the_call_back_at_the_agents_time(tmp_path: Path) -> None:
    async with _agent_on_campaign(tmp_path, campaign("spring", DialingMode.PROGRESSIVE, **DISPOSITIONS),
                                  [(PERSON, "Ann", "Etc/UTC")]) as (s, console):
        call_id = await _wrap_up_call(s, 1)
        view = s.server.projector.router.agent_view("1001", s.server.now())
        assert view.wrap_up_s == 60.0  # the campaign's wrap-up length
        # not one of the campaign's: refused with the list, nothing settled, the wrap-up still open
        reply = await console.request("wrapup", call_id=call_id, disposition="resolved")
        assert (reply["type"], reply.get("field")) == ("error", "disposition"), reply
        assert "sale, not_interested, not_home, call_back, wrong_number, do_not_call" in reply["message"]
        reply = await console.request("wrapup", call_id=call_id, disposition="not_home")  # no time given
        assert reply["type"] == "error" and "time to call back" in reply["message"], reply
        assert s.server.projector.router.agent_view("1001", s.server.now()).state == "wrap_up"
        due = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        reply = await console.request("wrapup", call_id=call_id, disposition="not_home", notes="her husband",
                                      follow_up={"kind": "callback", "due_at": due.isoformat()})
        assert reply["type"] == "wrapup_saved", reply
        [contact] = await s.campaigns.contacts("spring")
        assert (contact.status.value, contact.next_at) == ("retry", due.timestamp())
        assert await _read(s, "SELECT outcome, right_party, disposition, agent FROM campaign_attempts") == [
            ("connected", 0, "not_home", "1001")]
        [step] = s.steps("disposition", call_id=call_id, agent_id="1001")
        assert step.detail.startswith("not_home: outcome connected, not the right party; call back at")
        assert (await s.campaigns.progress("spring")).right_party == 0
        # saving ended the wrap-up in the ACD: the agent is free again
        await s.stack.until(lambda: s.server.projector.router.agent_view("1001", s.server.now()).state
                            == "available", 5, "the agent available")


async def test_wrong_number_and_do_not_call_settle_the_attempt_and_the_list(tmp_path: Path) -> None:
    async with _agent_on_campaign(tmp_path, campaign("spring", DialingMode.PROGRESSIVE, **DISPOSITIONS),
                                  [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC")]) as (s, console):
        first = await _wrap_up_call(s, 1)
        reply = await console.request("wrapup", call_id=first, disposition="sale")
        assert reply["type"] == "wrapup_saved", reply
        again = await console.request("wrapup", call_id=first, disposition="wrong_number")
        assert again["type"] == "error", again  # saved once: the wrap-up is over
        second = await _wrap_up_call(s, 2)
        reply = await console.request("wrapup", call_id=second, disposition="do_not_call", notes="asked us")
        assert reply["type"] == "wrapup_saved", reply
        third_contact = [c for c in await s.campaigns.contacts("spring")]
        assert {c.e164: c.status.value for c in third_contact} == {PERSON: "done", PERSON2: "excluded"}
        assert await _read(s, "SELECT e164, outcome, right_party, disposition FROM campaign_attempts ORDER BY id") == [
            (PERSON, "connected", 1, "sale"), (PERSON2, "connected", 1, "do_not_call")]
        assert await _read(s, "SELECT number, source FROM do_not_call") == [(PERSON2, "campaign:spring")]
        assert (await s.campaigns.progress("spring")).right_party == 2


async def test_a_wrong_number_is_the_attempts_final_outcome(tmp_path: Path) -> None:
    async with _agent_on_campaign(tmp_path, campaign("spring", DialingMode.PROGRESSIVE, **DISPOSITIONS),
                                  [(PERSON, "Ann", "Etc/UTC")]) as (s, console):
        call_id = await _wrap_up_call(s, 1)
        reply = await console.request("wrapup", call_id=call_id, disposition="wrong_number")
        assert reply["type"] == "wrapup_saved", reply
        assert await _read(s, "SELECT outcome, right_party, disposition FROM campaign_attempts") == [
            ("wrong_number", 0, "wrong_number")]
        [contact] = await s.campaigns.contacts("spring")
        assert contact.status.value == "done"
        progress = await s.campaigns.progress("spring")
        assert (progress.connects, progress.outcomes.get("wrong_number")) == (0, 1)
        [step] = s.steps("disposition", call_id=call_id)
        assert "outcome wrong_number" in step.detail


async def test_the_disposition_of_a_wrap_up_open_across_a_restart_still_settles_the_attempt(tmp_path: Path) -> None:
    async with _agent_on_campaign(tmp_path, campaign("spring", DialingMode.PROGRESSIVE, **DISPOSITIONS),
                                  [(PERSON, "Ann", "Etc/UTC")]) as (s, console):
        call_id = await _wrap_up_call(s, 1)
        await s.stack.until_async(_outcome_recorded(s), 10, "the line's outcome recorded")
        await console.close()
        await s.stack.restart_server()
        assert s.server.projector.router.agent_view("1001", s.server.now()).call_id == call_id  # still wrapping up
        again = await ConsoleClient.open(s.server.gateway.ws_url)
        try:
            await again.login("agent1001", PASSWORD)
            reply = await again.request("wrapup", call_id=call_id, disposition="do_not_call")
            assert reply["type"] == "wrapup_saved", reply
        finally:
            await again.close()
        assert await _read(s, "SELECT outcome, disposition FROM campaign_attempts") == [("connected", "do_not_call")]
        assert await _read(s, "SELECT number, source FROM do_not_call") == [(PERSON, "campaign:spring")]
        rows = await _read(s, "SELECT body FROM journal WHERE kind = 'dialer.step' AND body LIKE '%disposition%'")
        assert len(rows) == 1 and "do_not_call: outcome connected" in rows[0][0]


def _outcome_recorded(s: DialerStack):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return bool(await _read(s, "SELECT id FROM campaign_attempts WHERE outcome <> ''"))
    return probe
