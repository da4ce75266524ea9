"""Attempts left dialling when the server went down are settled at the next start, from the journal."""

from __future__ import annotations

from pathlib import Path

from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import DialingMode
from crmstore.journal import read_rows_between
from ctiserver.journal import facts as f
from tests.dialer.harness import PERSON, PERSON2, campaign, dialer_stack


async def test_attempts_left_dialling_are_settled_at_start_from_the_journal(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001",)) as d:
        await d.add_campaign(campaign("crash", DialingMode.PROGRESSIVE),
                             [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC")])
        ann, bob = await d.campaigns.contacts("crash")
        # two lines out when the server goes: Ann's was with agent 1001, Bob's was still ringing
        first = await d.campaigns.begin_attempt(ann.contact_id, call_id="dial-crash-1")
        second = await d.campaigns.begin_attempt(bob.contact_id, call_id="dial-crash-2")
        record = d.server.recorder.record
        record(f.DialerLineDialled("dial-crash-1", "crash", ann.contact_id, first, PERSON))
        record(f.DialerStep("crash", "answered", "dial-crash-1", detail="human: HUMAN/HUMAN-801-800"))
        record(f.DialerStep("crash", "connect", "dial-crash-1", "1001"))
        record(f.DialerStep("crash", "connected", "dial-crash-1", "1001"))
        record(f.DialerLineDialled("dial-crash-2", "crash", bob.contact_id, second, PERSON2))
        assert [c.status.value for c in await d.campaigns.contacts("crash")] == ["dialing", "dialing"]

        server = await d.stack.restart_server()
        d.campaigns = CampaignStore(server.crm)

        assert await d.campaigns.open_attempts() == []
        ann, bob = await d.campaigns.contacts("crash")
        assert (ann.status.value, ann.attempts) == ("done", 1)  # connected: reached
        assert (bob.status.value, bob.attempts) == ("retry", 1)  # never answered: failed, retried
        await server.journal.durable(server.journal.last_seq, timeout=5)  # facts are written in batches
        rows = await server.crm.backend.read(read_rows_between(0, server.now() + 1, 0, 100_000))
        settled = [f.decode(kind, body) for _, _, kind, _, _, body in rows if kind == "dialer.line_ended"]
        assert [(s.call_id, s.outcome, s.agent_id, s.settled) for s in settled] == [
            ("dial-crash-1", "connected", "1001", True), ("dial-crash-2", "failed", "", True)]
        progress = await d.campaigns.progress("crash")
        assert progress.connects == 1
