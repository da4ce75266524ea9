"""Sample data: deterministic, bulk-loadable on both engines, and the PBX simulator's callers exist."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from pathlib import Path

import asyncpg

from crmstore import Flag, Grade, Role, Viewer, open_store
from crmstore.bulk import bulk_load
from crmstore.sample import SampleSpec, ensure_callers, generate, primary_phone

AGENT = Viewer("1001", Role.AGENT)
ROOT = Path(__file__).resolve().parents[2]


def test_generate_is_deterministic() -> None:
    a = list(generate(SampleSpec(200, 1000, seed=3)))
    b = list(generate(SampleSpec(200, 1000, seed=3)))
    c = list(generate(SampleSpec(200, 1000, seed=4)))
    assert a == b and a != c
    names = [row[1] for table, rows in a if table == "customers" for row in rows]
    assert any(ord(n[0]) > 0x4E00 for n in names) and any(n.isascii() for n in names)


async def test_bulk_load_then_callers_and_pops(db_url: str) -> None:
    counts = await bulk_load(db_url, SampleSpec(300, 3000, seed=5))
    assert counts["customers"] == 300 and counts["interactions"] == 3000
    store = await open_store(db_url)
    try:
        phones = [f"+86139000000{k:02d}" for k in range(7)] + [primary_phone(10)]
        ids = await ensure_callers(store, phones)
        assert ids[-1] == 10  # an existing customer's number is left alone
        assert await ensure_callers(store, phones) == ids  # idempotent
        grades = {(await store.identify_by_phone(p)).grade for p in phones[:7]}  # type: ignore[union-attr]
        assert grades == {Grade.A, Grade.B, Grade.C}
        flags = set().union(*[(await store.identify_by_phone(p)).flags for p in phones[:7]])  # type: ignore[union-attr]
        assert flags == set(Flag)
        pop = await store.screen_pop(phone=phones[2], viewer=AGENT)
        assert pop.customer is not None and len(pop.interactions) == 3 and pop.open_tickets
        assert any(a.text.startswith("complaint open 5 days") for a in pop.actions)
        pop = await store.screen_pop(phone=primary_phone(1), viewer=AGENT)
        assert pop.customer is not None and pop.customer.id == 1
        new = await store.create_lead("13700000001")  # sequences continue after the bulk-loaded ids
        assert new > 300
    finally:
        await store.close()


async def test_pg_script_is_idempotent(pg_url: str) -> None:
    script = str(ROOT / "scripts" / "pg-test-server.sh")
    # Not pytest's tmp_path: its parents are private to root and the server runs as user postgres.
    d = f"/tmp/ctiserver-pg-test-{uuid.uuid4().hex[:8]}"
    try:
        first = await asyncio.to_thread(
            subprocess.run, [script, d], capture_output=True, text=True, timeout=120, check=False
        )
        assert first.returncode == 0, first.stderr
        second = await asyncio.to_thread(
            subprocess.run, [script, "--env", d], capture_output=True, text=True, timeout=120, check=False
        )
        url = first.stdout.strip().splitlines()[-1]
        assert second.stdout.strip() == f"export CTISERVER_TEST_PG_URL={url}"
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url != pg_url
        con = await asyncpg.connect(url)
        assert await con.fetchval("SELECT current_database()") == "ctiserver_test"
        await con.close()
    finally:
        await asyncio.to_thread(
            subprocess.run, [script, "stop", d], capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(d, ignore_errors=True)
