"""`ctiserver crm grade`: ABC grading on demand, on SQLite and PostgreSQL; mistakes are one line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crmstore import NewCustomer, open_store
from tests.cli.test_cli import one_line_error, run_cli
from tests.crmstore.conftest import db_url, pg_url  # noqa: F401 - fixtures: both backends


async def _seed(url: str) -> list[int]:
    store = await open_store(url)
    try:
        ids = []
        today = datetime.now(UTC).date()
        for n, amount in enumerate((900_000, 90_000, 9_000, 0)):
            cid = await store.create_customer(NewCustomer(name=f"客户{n}"))
            if amount:
                await store.add_purchase(cid, amount, today - timedelta(days=10))
            ids.append(cid)
        return ids
    finally:
        await store.close()


async def _grades(url: str, ids: list[int]) -> list[str | None]:
    store = await open_store(url)
    try:
        from crmstore.privacy import SYSTEM

        return [(await store.get_customer(i, SYSTEM)).grade for i in ids]  # type: ignore[misc]
    finally:
        await store.close()


async def test_grade_on_demand_grades_everyone(db_url: str) -> None:  # noqa: F811
    ids = await _seed(db_url)
    assert await _grades(db_url, ids) == [None] * 4
    res = await asyncio.to_thread(run_cli, "crm", "grade", "--db", db_url)
    assert res.returncode == 0, res.stderr
    assert "graded 4 customers" in res.stdout and "A 1, B 1, C 2" in res.stdout
    assert [g.value if g else None for g in await _grades(db_url, ids)] == ["A", "B", "C", "C"]


def test_grade_mistakes_are_one_line(tmp_path: Path) -> None:
    one_line_error(run_cli("crm", "grade", "--db", f"sqlite:///{tmp_path / 'none.db'}"), "no CRM database")
    one_line_error(run_cli("crm", "grade"), "which CRM database?")
    asyncio.run(_seed(f"sqlite:///{tmp_path / 'crm.db'}"))
    one_line_error(run_cli("crm", "grade", "--db", f"sqlite:///{tmp_path / 'crm.db'}", "--days", "0"), "--days 0")
