"""The agent's idle screen: their figures today (from the day's statistics projection), the callers
waiting in their queues and the callbacks keeping a place there (from the ACD router), the follow-ups due
to them (from the CRM) and their wrap-ups kept as drafts (from the journal's drafts projection)."""

from __future__ import annotations

from datetime import datetime, timedelta

from crmstore.store import CrmStore

from .views import ConsoleViews

_FOLLOW_UPS_SHOWN = 20


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def agent_today(views: ConsoleViews, crm: CrmStore, agent_id: str, now: float) -> dict[str, object]:
    figures = views.projector.stats.agents.figures(agent_id, now)
    view = views.router.agent_view(agent_id, now)
    queues = view.queues or (views.config.agent(agent_id).queues if views.config.has_agent(agent_id) else ())
    rows = views.wallboard_rows()
    callbacks: dict[str, int] = {}
    for call_id in views.router.call_ids():
        call = views.router.call_view(call_id)
        if call is not None and call.state == "callback":
            callbacks[call.queue] = callbacks.get(call.queue, 0) + 1
    waiting = [{"queue": q, "waiting": rows.get(q, {}).get("waiting", 0),
                "oldest_since": rows.get(q, {}).get("oldest_since"), "callbacks": callbacks.get(q, 0)}
               for q in queues]
    # Due today: everything open up to the end of the centre's day, overdue first.
    tz = views.projector.stats.tz
    end_of_day = (datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
                  + timedelta(days=1))
    due = await crm.due_follow_ups(agent_id, end_of_day.astimezone(), limit=_FOLLOW_UPS_SHOWN)
    follow_ups = [{"id": x.id, "customer_id": x.customer_id, "kind": str(x.kind), "note": x.note,
                   "due_at": x.due_at.isoformat(), "overdue": x.due_at.timestamp() < now,
                   "call_id": x.source_call_id} for x in due]
    return {
        "calls": figures.answered, "aht_s": _round(figures.aht_s), "occupancy_pct": _round(figures.occupancy_pct),
        "waiting": waiting, "follow_ups": follow_ups, "drafts": list(views.drafts_of(agent_id)),
    }
