"""The `outbound` report (per campaign per day, from the journal) after real campaign calls on the
simulator, held to figures counted here from the dialer's facts as they were published and from the list."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acd import events as ev
from crmstore.campaigns import DialingMode
from ctiserver.journal import facts as f
from ctiserver.reports.engine import Query, run_report
from ctiserver.reports.formats import render
from ctiserver.reports.outbound import CampaignDay, OutboundDays
from ctiserver.reports.runner import snapshot
from tests.dialer.harness import BUSY, MACHINE, NO_ANSWER, PERSON, PERSON2, campaign, dialer_stack


async def test_the_outbound_report_counts_each_campaigns_day(tmp_path: Path) -> None:
    async with dialer_stack(tmp_path, agents=("1001", "1002")) as d:
        d.ready("1001", "1002")
        rows = [(PERSON, "Ann", "Etc/UTC"), (PERSON2, "Bob", "Etc/UTC"), (MACHINE, "Cat", "Etc/UTC"),
                (BUSY, "Dan", "Etc/UTC"), (NO_ANSWER, "Eve", "Etc/UTC")]
        await d.add_campaign(campaign("spring", DialingMode.PROGRESSIVE), rows)
        for number in (PERSON, PERSON2, MACHINE, BUSY):
            await d.outcome_of("spring", number, timeout=30)
        await d.stack.until(lambda: len(d.dialer_facts(f.DialerLineEnded)) >= 4, 30, "four lines ended")
        await d.server.recorder.journal.flush()

        # Counted here, from what was published, not by the report's projection.
        dialled = d.dialer_facts(f.DialerLineDialled, campaign="spring")
        ended = {x.call_id: x.outcome for x in d.dialer_facts(f.DialerLineEnded, campaign="spring")}
        connects = sum(o == "connected" for o in ended.values())
        machines = sum(o == "answering_machine" for o in ended.values())
        assert (connects, machines) == (2, 1)  # Ann and Bob to agents, Cat's machine
        today = datetime.now(UTC).date()
        first = datetime(today.year, today.month, today.day, tzinfo=UTC)
        for agent in ("1001", "1002"):  # their logged-in time is counted when it ends
            d.server.queueing.command(ev.AgentLoggedOut(agent))
        live = snapshot(d.server.projector.intervals)  # the open 15 minutes, as the server's runner passes it
        report = await run_report(d.server.crm, Query("outbound", first, first + timedelta(days=1)),
                                  d.server.projector.config, live=live, now=d.server.now())
        [row] = report.rows
        assert row["period"] == today.isoformat() and row["campaign"] == "spring"
        assert row["attempts"] == len(dialled) >= 4
        assert (row["connects"], row["right_party"], row["machines"], row["abandoned"]) == (2, 2, 1, 0)
        assert (row["abandon_rate"], row["abandon_cap"]) == (0.0, 3.0)
        assert row["agents"] == len({x.agent_id for x in d.dialer_facts(f.DialerLineEnded, outcome="connected")})
        distinct = len({x.contact_id for x in dialled})
        assert row["penetration"] == round(100 * distinct / len(rows), 2)
        assert row["handle_s"] > 0
        # occupancy: their campaign handle time over the staffed time (logged in, not paused) of the agents
        # who took the calls, read here from the open interval's own agent cells
        took = {x.agent_id for x in d.dialer_facts(f.DialerLineEnded, outcome="connected")}
        staffed = sum(c.login_s - c.paused_s for (q, a, fl), c in live.cells.items() if a in took and not q
                      and not fl)
        # (handle_s is shown to 0.1 s: the occupancy, from the exact handle time, within that rounding)
        assert staffed > 0 and row["occupancy"] == pytest.approx(100 * row["handle_s"] / staffed, abs=0.1 / staffed * 100 + 0.1)

        as_json = json.loads(render(report, "json", "en"))
        assert as_json["report"] == "outbound" and as_json["rows"][0]["connects"] == 2
        table = list(csv.reader(io.StringIO(render(report, "csv", "zh"))))
        assert "本人接通" in table[0] and any("spring" in line for line in table)


def test_right_party_follows_the_disposition_and_abandons_count_against_the_live_answers() -> None:
    days = OutboundDays(UTC)
    t = datetime(2026, 11, 27, 10, tzinfo=UTC).timestamp()
    for i, (outcome, disposition) in enumerate([("connected", "sale"), ("connected", "wrong_number"),
                                                ("abandoned", ""), ("connected", "")]):
        call = f"dial-{i}"
        days.apply(t, f.DialerLineDialled(call, "c", i, i, f"+1212555010{i}"))
        if outcome == "connected":
            days.apply(t + 1, f.DialerStep("c", "connected", call, "1001"))
        days.apply(t + 31, f.DialerLineEnded(call, "c", i, outcome, "1001"))
        if disposition:  # saved after the line ended, as a wrap-up is
            days.apply(t + 40, f.WrapUpSaved(call, "1001", disposition))
    cell = days.days[("c", "2026-11-27")]
    assert (cell.attempts, cell.connects, cell.right_party, cell.abandoned) == (4, 3, 2, 1)
    assert cell.abandon_rate == 1 / 4 and cell.handle_s == 90.0
    assert CampaignDay().abandon_rate == 0.0
