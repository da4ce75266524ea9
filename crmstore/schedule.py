"""Periodic grading: the only long-running task of the CRM; the server starts it in its TaskGroup."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from .errors import CrmError
from .model import GradingReport
from .store import CrmStore, period_ending

log = logging.getLogger(__name__)


async def grade_now(
    store: CrmStore, *, lookback_days: int = 365, today: datetime | None = None
) -> GradingReport:
    """One run over the ``lookback_days`` ending today (inclusive)."""
    end = (today or datetime.now(UTC)).date() + timedelta(days=1)
    start, end = period_ending(end, days=lookback_days)
    report = await store.run_grading(start, end)
    if report.fast_moves:
        log.warning("grading %s..%s: %d fast grade moves", start, end, len(report.fast_moves))
    return report


async def grading_loop(
    store: CrmStore, *, every: timedelta = timedelta(days=1), lookback_days: int = 365, stop: asyncio.Event
) -> None:
    """Grade at once, then every ``every`` until ``stop`` is set. A failed run is logged and retried next time."""
    while not stop.is_set():
        try:
            await grade_now(store, lookback_days=lookback_days)
        except CrmError as exc:
            log.error("scheduled grading failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), every.total_seconds())
        except TimeoutError:
            pass
