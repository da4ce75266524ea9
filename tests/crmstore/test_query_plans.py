"""The pop's reads stay on the caller's own rows as the history grows: SQLite plans each of them on the index
of the customer or the number, never on a walk of every call of the history (SQLite has no statistics to
tell a low-cardinality column from a selective one, so the SQL itself must leave no other choice)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crmstore import open_store
from crmstore.plan import Fetch
from crmstore.queries import last_agent


def _fetches(cid: int | None, e164: str | None) -> list[Fetch]:
    """The plan's reads, each answered with no rows (so the plan goes on to the next)."""
    plan, out = last_agent(cid, e164), []
    try:
        step = next(plan)
        while True:
            assert isinstance(step, Fetch)
            out.append(step)
            step = plan.send([])
    except StopIteration:
        return out


@pytest.mark.parametrize(("cid", "e164", "index"), [
    (7, None, "ix_interactions_customer"),
    (None, "+8613800000001", "ix_interactions_caller"),
])
async def test_the_last_agent_is_looked_up_on_the_callers_own_rows(tmp_path: Path, cid: int | None,
                                                                    e164: str | None, index: str) -> None:
    store = await open_store(f"sqlite://{tmp_path}/crm.db", default_country="CN")
    await store.close()
    con = sqlite3.connect(tmp_path / "crm.db")
    try:
        (fetch,) = _fetches(cid, e164)
        plan = " ".join(str(row[-1]) for row in con.execute(f"EXPLAIN QUERY PLAN {fetch.sql}", fetch.args))
    finally:
        con.close()
    assert f"USING INDEX {index} " in plan, plan
    assert "ix_interactions_outcome" not in plan, plan
