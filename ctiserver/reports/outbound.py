"""The outbound report: per campaign per day, from the journal's dialer facts (and the agents' wrap-ups of
campaign calls, for the disposition), with the campaign's cap and list from the CRM.

Figures, each written once here (docs/reports.md says them in words):
* attempts: lines dialled (`dialer.line_dialled`);
* connects: attempts that ended connected: a person answered and was put through (an agent, or a survey
  campaign's flow);
* right-party contacts: connects that are right-party (crmstore.campaigns.is_right_party: the wrap-up's
  disposition, when there is one, may say it was somebody else);
* abandoned: a person answered and nobody came within 2 s; abandon rate = abandoned / (connects +
  abandoned), the live answers the pacer counts, shown against the campaign's cap;
* machines: answering machines (AMD);
* handle time: from the bridge (or the survey hand-off) to the line's end, summed;
* agent occupancy: handle time over the staffed time (logged in, not paused: the agent-time aggregates of
  the agent-load report) of the agents who took the campaign's calls that day;
* list penetration: contacts dialled at least once by the end of the day / callable contacts (the list
  less the excluded), from the campaign's own attempt records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from crmstore.campaigns import AttemptOutcome, Campaign, is_right_party

from ..journal import facts as f

DAY_S = 86_400


@dataclass(slots=True)
class CampaignDay:
    attempts: int = 0
    connects: int = 0
    right_party: int = 0
    abandoned: int = 0
    machines: int = 0
    handle_s: float = 0.0
    agents: set[str] = field(default_factory=set)

    @property
    def abandon_rate(self) -> float:
        live = self.connects + self.abandoned
        return self.abandoned / live if live else 0.0


@dataclass(slots=True)
class _Line:
    campaign: str
    day: str
    talking_since: float | None = None
    outcome: str = ""
    disposition: str = ""


class OutboundDays:
    """A projection of the dialer facts: (campaign, day in the centre's zone) -> CampaignDay. Pure: fed
    (at, fact) in journal order. A disposition saved after the line ended still counts (right party)."""

    def __init__(self, tz: tzinfo | None, campaigns: Mapping[str, Campaign] | None = None) -> None:
        self.tz = tz
        self.campaigns = dict(campaigns or {})  # a disposition's meaning is the campaign's (right party or not)
        self.days: dict[tuple[str, str], CampaignDay] = {}
        self._lines: dict[str, _Line] = {}

    def _day(self, at: float) -> str:
        return datetime.fromtimestamp(at, self.tz).strftime("%Y-%m-%d")

    def apply(self, at: float, body: object) -> None:
        if isinstance(body, f.DialerLineDialled):
            day = self._day(at)
            self._lines[body.call_id] = _Line(body.campaign, day)
            self.days.setdefault((body.campaign, day), CampaignDay()).attempts += 1
        elif isinstance(body, f.DialerStep) and body.step in ("connected", "survey"):
            line = self._lines.get(body.call_id)
            if line is not None and line.talking_since is None:
                line.talking_since = at
                if body.step == "connected" and body.agent_id:
                    self.days.setdefault((line.campaign, line.day), CampaignDay()).agents.add(body.agent_id)
        elif isinstance(body, f.DialerLineEnded):
            line = self._lines.get(body.call_id)
            if line is None:  # dialled before the period: counted on the day it was dialled, not here
                return
            cell = self.days.setdefault((line.campaign, line.day), CampaignDay())
            line.outcome = body.outcome
            if body.outcome == AttemptOutcome.CONNECTED.value:
                cell.connects += 1
                cell.right_party += is_right_party(body.outcome, line.disposition, self.campaigns.get(line.campaign))
                if line.talking_since is not None:
                    cell.handle_s += max(0.0, at - line.talking_since)
            elif body.outcome == AttemptOutcome.ABANDONED.value:
                cell.abandoned += 1
            elif body.outcome == AttemptOutcome.ANSWERING_MACHINE.value:
                cell.machines += 1
        elif isinstance(body, f.WrapUpSaved):
            line = self._lines.get(body.call_id)
            if line is None:
                return
            cell = self.days.setdefault((line.campaign, line.day), CampaignDay())
            campaign = self.campaigns.get(line.campaign)
            was = is_right_party(line.outcome, line.disposition, campaign) if line.outcome else None
            line.disposition = body.disposition
            if was is not None:  # the line had ended: its count follows the disposition
                cell.right_party += is_right_party(line.outcome, line.disposition, campaign) - was


KINDS = ("dialer.line_dialled", "dialer.step", "dialer.line_ended", "call.wrapup")


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    abandon_cap: float
    callable: int  # the list less the excluded
    dialled_by: dict[str, int]  # day -> contacts dialled at least once by the end of that day


def outbound_rows(days: OutboundDays, campaigns: dict[str, CampaignInfo],
                  staffed: dict[tuple[str, str], float] | None = None) -> list[dict[str, Any]]:
    """`staffed`: (day, agent) -> seconds logged in and not paused."""
    staffed = staffed or {}
    rows = []
    for (name, day), c in sorted(days.days.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        info = campaigns.get(name)
        cap = info.abandon_cap if info else None
        dialled = info.dialled_by.get(day, 0) if info else 0
        on_duty = sum(staffed.get((day, agent), 0.0) for agent in c.agents)
        rows.append({
            "period": day, "campaign": name, "attempts": c.attempts, "connects": c.connects,
            "right_party": c.right_party, "abandoned": c.abandoned, "machines": c.machines,
            "abandon_rate": round(100 * c.abandon_rate, 2), "abandon_cap": round(100 * cap, 2) if cap is not None else None,
"handle_s": round(c.handle_s, 1),
            "agents": len(c.agents),
            "occupancy": round(100 * min(1.0, c.handle_s / on_duty), 1) if on_duty > 0 else None,
            "penetration": round(100 * dialled / info.callable, 2) if info and info.callable else None,
        })
    return rows


def day_ends(first: datetime, stop: datetime) -> Iterable[tuple[str, float]]:
    """Each day of the period with the instant it ends (the centre's zone)."""
    day = first
    while day < stop:
        nxt = min(stop, (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0))
        yield day.strftime("%Y-%m-%d"), nxt.timestamp()
        day = nxt
