"""Every repository test runs on SQLite and on a real PostgreSQL (scripts/pg-test-server.sh)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from crmstore import CrmStore, open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("CTISERVER_TEST_PG_URL")
    if not url:
        out = subprocess.run(
            [str(ROOT / "scripts" / "pg-test-server.sh")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"pg-test-server.sh failed:\n{out.stderr}"
        url = out.stdout.strip().splitlines()[-1]
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/crm.db"
        return
    base = request.getfixturevalue("pg_url")
    schema = "t_" + uuid.uuid4().hex[:12]
    con = await asyncpg.connect(base)
    try:
        await con.execute(f"CREATE SCHEMA {schema}")
    finally:
        await con.close()
    # An unknown DSN option becomes a server setting in asyncpg: each test gets its own schema.
    yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    con = await asyncpg.connect(base)
    try:
        await con.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await con.close()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[CrmStore]:
    s = await open_store(db_url, default_country="CN")
    try:
        yield s
    finally:
        await s.close()
