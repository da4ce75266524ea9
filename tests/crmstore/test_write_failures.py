"""A write that cannot happen raises CrmWriteError and leaves nothing behind."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from crmstore import (
    CallFacts,
    CrmStore,
    CrmWriteError,
    FollowUpKind,
    FollowUpRequest,
    NewCustomer,
    WrapUp,
    open_store,
)

NOW = datetime.now(UTC)


def _wrapup(call_id: str, note: str = "") -> WrapUp:
    call = CallFacts(call_id, "13812345678", NOW - timedelta(minutes=3), agent="1001", talk_s=100.0)
    return WrapUp(
        call, "resolved", notes="n", follow_up=FollowUpRequest(FollowUpKind.CALLBACK, NOW, "1001", note)
    )


async def _rows(store: CrmStore) -> tuple[int, int]:
    c = await store.counts()
    return c["interactions"], c["follow_ups"]


async def test_sqlite_locked_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(f"sqlite://{tmp_path}/crm.db?busy_timeout_ms=100")
    try:
        await store.create_customer(NewCustomer(name="x", phones=("13812345678",)))
        other = sqlite3.connect(tmp_path / "crm.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(CrmWriteError, match="nothing saved: database is locked"):
                await store.save_wrapup(_wrapup("c1"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await _rows(store) == (0, 0)
        await store.save_wrapup(_wrapup("c1"))  # the lock gone, the same save works
        assert await _rows(store) == (1, 1)
    finally:
        await store.close()


async def test_sqlite_disk_full_mid_transaction_leaves_no_partial_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(f"sqlite://{tmp_path}/crm.db")
    try:
        await store.create_customer(NewCustomer(name="x", phones=("13812345678",)))
        backend = store.backend
        assert hasattr(backend, "run_on_writer")
        pages = await backend.run_on_writer(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        # SQLITE_FULL is what a full disk gives; max_page_count produces it for real, on this connection only.
        await backend.run_on_writer(lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
        with pytest.raises(CrmWriteError, match="full"):
            await store.save_wrapup(_wrapup("c1", note="x" * 200_000))
        await backend.run_on_writer(lambda c: c.execute("PRAGMA max_page_count=1073741823"))
        assert await _rows(store) == (0, 0)
    finally:
        await store.close()


async def test_postgres_locked_table(pg_url: str) -> None:
    schema = "t_lock_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    store = await open_store(f"{pg_url}?search_path={schema}&lock_timeout_ms=200")
    try:
        await store.create_customer(NewCustomer(name="x", phones=("13812345678",)))
        tr = admin.transaction()
        await tr.start()
        await admin.execute(f"LOCK TABLE {schema}.follow_ups IN ACCESS EXCLUSIVE MODE")
        try:
            with pytest.raises(CrmWriteError, match="lock timeout"):
                await asyncio.wait_for(store.save_wrapup(_wrapup("c1")), 10)
        finally:
            await tr.rollback()
        assert await _rows(store) == (0, 0)
    finally:
        await store.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def test_failure_after_first_insert_rolls_back(store: CrmStore) -> None:
    """The interaction row is inserted, then the follow-up fails: neither may remain."""
    await store.create_customer(NewCustomer(name="x", phones=("13812345678",)))
    if store.dialect == "postgresql":
        bad = _wrapup("c1", note="nul \x00 byte")  # PostgreSQL text refuses NUL: a real server-side error
    else:
        # SQLite stores almost anything; a trigger stands in for any failure of the transaction's 2nd insert.
        await store.backend.write(_refuse_follow_ups())
        bad = _wrapup("c1")
    with pytest.raises(CrmWriteError):
        await store.save_wrapup(bad)
    assert await _rows(store) == (0, 0)


def _refuse_follow_ups():  # type: ignore[no-untyped-def]
    from crmstore.plan import Execute

    yield Execute(
        "CREATE TRIGGER fail_follow_up BEFORE INSERT ON follow_ups BEGIN SELECT RAISE(ABORT, 'follow-up refused'); END"
    )
