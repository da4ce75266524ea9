"""The supervisors' outbound panel: per campaign its state and progress, attempts, connects, right-party
contacts, list penetration, the abandonment rate over the pacer's rolling window against the cap, and the
occupancy of its agents; pause and resume.

Every figure is read from its one owner: the list, attempts, connects and right-party contacts from the
campaign's records (CampaignStore.progress, written by the dialer with crmstore.campaigns.is_right_party);
the window's abandon rate and the agents' occupancy from the campaign's pacer (PacingStatus), which only
a running campaign has. Pause and resume are the campaign store's, journaled as supervisor actions; the
dialer is told at once instead of at its next poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from acd.pacing import PacingStatus
from crmstore.campaign_plans import StoredCampaign
from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import CampaignProgress
from crmstore.errors import CrmNotFound
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer

from ..gateway.auth import Principal
from ..gateway.backend import Refused
from ..journal import facts as f

COMMANDS = ("campaigns", "campaign_pause", "campaign_resume")


class PacingSource(Protocol):
    """The dialer, as far as the panel reads it (ctiserver.dialer.service.DialerService)."""

    def pacing_status(self, campaign: str) -> PacingStatus | None: ...

    async def refresh(self) -> None: ...


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def campaign_row(stored: StoredCampaign, p: CampaignProgress, pacing: PacingStatus | None) -> dict[str, object]:
    """One campaign as the panel shows it. Penetration: contacts dialled at least once of the callable
    ones (the list less the excluded); progress: contacts finished (done) of the callable ones."""
    c = stored.campaign
    callable_ = p.contacts - p.excluded
    row: dict[str, object] = {
        "campaign": c.name, "kind": c.kind.value, "mode": c.mode.value,
        "state": "paused" if stored.paused else "running", "queue": c.queue,
        "contacts": p.contacts, "callable": callable_, "tried": p.tried, "done": p.done, "remaining": p.remaining,
        "attempts": p.attempts, "connects": p.connects, "right_party": p.right_party,
        "penetration_pct": _pct(p.tried, callable_), "progress_pct": _pct(p.done, callable_),
        "abandon_cap_pct": round(100.0 * c.abandon_cap, 2),
        "abandon_rate_pct": None, "over_cap": False, "occupancy_pct": None,
        "agents_busy": None, "agents_free": None, "throttled": False, "lines_out": 0,
    }
    if pacing is not None:  # a running campaign: the pacer's rolling window and its agents
        agents = pacing.agents_busy + pacing.agents_free
        row.update({
            "abandon_rate_pct": round(100.0 * pacing.abandon_rate, 2),
            "over_cap": pacing.abandon_rate > c.abandon_cap, "occupancy_pct": _pct(pacing.agents_busy, agents),
            "agents_busy": pacing.agents_busy, "agents_free": pacing.agents_free, "throttled": pacing.throttled,
            "lines_out": pacing.lines_out})
    return row


class CampaignBoard:
    def __init__(self, campaigns: CampaignStore, dialer: Callable[[], PacingSource | None],
                 record: Callable[[object], object]) -> None:
        self.campaigns = campaigns
        self.dialer = dialer
        self._record = record

    async def rows(self) -> list[dict[str, object]]:
        dialer = self.dialer()
        out = []
        for stored in await self.campaigns.all():
            progress = await self.campaigns.progress(stored.campaign.name)
            pacing = dialer.pacing_status(stored.campaign.name) if dialer is not None else None
            out.append(campaign_row(stored, progress, pacing))
        return out

    async def campaign_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object:
        if command == "campaigns":
            return {"campaigns": await self.rows()}
        name = str(args["campaign"])
        viewer = Viewer(who.username, CrmRole.SUPERVISOR)
        change: Callable[[str, Viewer], Awaitable[bool]] = (
            self.campaigns.pause if command == "campaign_pause" else self.campaigns.resume)
        try:
            changed = await change(name, viewer)
        except CrmNotFound:
            raise Refused("not_found", f"no campaign {name!r}", "campaign") from None
        if changed:
            self._record(f.SupervisorAction(who.username, command, name))
            dialer = self.dialer()
            if dialer is not None:
                await dialer.refresh()
        return {"campaign": name, "changed": changed,
                "state": "paused" if command == "campaign_pause" else "running"}
