"""The grading schedule helper runs a grading at once and stops when told."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crmstore import CrmStore, Grade, NewCustomer
from crmstore.schedule import grade_now, grading_loop


async def test_grade_now_and_loop(store: CrmStore) -> None:
    cid = await store.create_customer(NewCustomer(name="x", phones=("13800000001",)))
    today = datetime.now(UTC)
    await store.add_purchase(cid, 10, today.date())  # today counts: the period ends tomorrow (exclusive)
    report = await grade_now(store)
    assert report.counts[Grade.A] == 1 and report.period_end == today.date() + timedelta(days=1)
    stop = asyncio.Event()
    task = asyncio.create_task(grading_loop(store, every=timedelta(seconds=0.05), stop=stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [h.new for h in await store.grade_history(cid)] == [Grade.A]  # re-runs change nothing
