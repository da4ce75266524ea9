"""CRM side-store benchmark: screen-pop latency, lookups/s at concurrency 50, durable write-backs/s, size.

    .venv/bin/python bench/crm_pop.py --db sqlite [--quick] [--data-dir /tmp/ctiserver-bench]
    .venv/bin/python bench/crm_pop.py --db postgresql [--quick] [--pg-url postgresql://...]

Prints ONE JSON object. Full size: 1,000,000 customers and 10,000,000 interactions (the generated SQLite file
is cached in --data-dir, the PostgreSQL database is kept as crm_bench_<customers>_<interactions>, so later
runs skip the load). --quick: 20,000 / 200,000, under a minute. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmstore import CallFacts, CrmStore, Role, Viewer, WrapUp, open_store
from crmstore.bulk import bulk_load
from crmstore.sample import SampleSpec, primary_phone

AGENT = Viewer("1001", Role.AGENT)
CONCURRENCY = 50


def log(msg: str) -> None:
    print(f"[crm_pop] {msg}", file=sys.stderr, flush=True)


def _progress(table: str, n: int) -> None:
    if table.startswith("index") or n % 1_000_000 < 50_000:
        log(f"load {table} {n}")


async def prepare_sqlite(data_dir: Path, spec: SampleSpec) -> tuple[str, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"crm-{spec.customers}-{spec.interactions}-s{spec.seed}.db"
    if not path.exists():
        tmp = path.with_suffix(".loading")
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        t = time.perf_counter()
        await bulk_load(f"sqlite://{tmp.resolve()}", spec, progress=_progress)
        log(f"loaded in {time.perf_counter() - t:.1f}s")
        tmp.rename(path)  # only a complete load gets the cached name
    return f"sqlite://{path.resolve()}", path


def _pg_base(arg: str | None) -> str:
    url = arg or os.environ.get("CTISERVER_TEST_PG_URL")
    if not url:
        out = subprocess.run(
            [str(ROOT / "scripts" / "pg-test-server.sh")], capture_output=True, text=True, check=True
        )
        url = out.stdout.strip().splitlines()[-1]
    return url


async def prepare_pg(base: str, spec: SampleSpec) -> tuple[str, str]:
    name = f"crm_bench_{spec.customers}_{spec.interactions}_s{spec.seed}"
    admin = await asyncpg.connect(base)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        url = base.rsplit("/", 1)[0] + "/" + name
        if exists:
            con = await asyncpg.connect(url)
            try:
                complete = await con.fetchval("SELECT to_regclass('bench_done') IS NOT NULL")
            finally:
                await con.close()
            if complete:
                return url, name
            await admin.execute(f"DROP DATABASE {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    t = time.perf_counter()
    await bulk_load(url, spec, progress=_progress)
    con = await asyncpg.connect(url)
    await con.execute("CREATE TABLE bench_done (at DOUBLE PRECISION)")
    await con.close()
    log(f"loaded in {time.perf_counter() - t:.1f}s")
    return url, name


async def measure_pops(store: CrmStore, customers: int, n: int, rng: random.Random) -> list[float]:
    lat = []
    for _ in range(n):
        phone = primary_phone(rng.randrange(1, customers + 1))
        t = time.perf_counter()
        pop = await store.screen_pop(phone=phone, viewer=AGENT)
        lat.append((time.perf_counter() - t) * 1000)
        assert pop.customer is not None
    return lat


async def measure_concurrent_pops(store: CrmStore, customers: int, total: int, rng: random.Random) -> float:
    phones = [primary_phone(rng.randrange(1, customers + 1)) for _ in range(total)]
    it = iter(phones)

    async def worker() -> None:
        for phone in it:
            await store.screen_pop(phone=phone, viewer=AGENT)

    t = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(CONCURRENCY):
            tg.create_task(worker())
    return total / (time.perf_counter() - t)


async def measure_writebacks(
    store: CrmStore, customers: int, total: int, rng: random.Random, tag: str
) -> float:
    now = datetime.now(UTC)
    counter = iter(range(total))

    async def worker() -> None:
        for k in counter:
            caller = primary_phone(rng.randrange(1, customers + 1))
            call = CallFacts(
                f"bench-{tag}-{k}",
                caller,
                now - timedelta(minutes=5),
                agent="1001",
                queue="support",
                answered_at=now - timedelta(minutes=4),
                ended_at=now,
                wait_s=12.0,
                talk_s=240.0,
            )
            await store.save_wrapup(WrapUp(call, "resolved", notes="bench wrap-up", wrapup_s=15.0))

    t = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(CONCURRENCY):
            tg.create_task(worker())
    return total / (time.perf_counter() - t)


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/ctiserver-bench"))
    ap.add_argument(
        "--pg-url", help="server URL (default: $CTISERVER_TEST_PG_URL or scripts/pg-test-server.sh)"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    spec = (
        SampleSpec(20_000, 200_000, seed=args.seed)
        if args.quick
        else SampleSpec(1_000_000, 10_000_000, seed=args.seed)
    )
    pops, concurrent, writes = (2000, 5000, 500) if args.quick else (5000, 20000, 2000)
    rng = random.Random(args.seed)
    t_prep = time.perf_counter()
    if args.db == "sqlite":
        url, path = await prepare_sqlite(args.data_dir, spec)
    else:
        url, _ = await prepare_pg(_pg_base(args.pg_url), spec)
    prep_s = time.perf_counter() - t_prep
    store = await open_store(url)
    try:
        counts = await store.counts()
        await measure_pops(store, spec.customers, 300, rng)  # warm caches and prepared statements
        lat = await measure_pops(store, spec.customers, pops, rng)
        lookups = await measure_concurrent_pops(store, spec.customers, concurrent, rng)
        wb = await measure_writebacks(store, spec.customers, writes, rng, f"{time.time():.0f}")
        await store.flush_audit()
        if args.db == "sqlite":
            db_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        else:
            con = await asyncpg.connect(url)
            db_bytes = int(await con.fetchval("SELECT pg_database_size(current_database())"))
            await con.close()
    finally:
        await store.close()
    print(
        json.dumps(
            {
                "db": args.db,
                "quick": args.quick,
                "customers": counts["customers"],
                "interactions": counts["interactions"],
                "pop_p50_ms": round(statistics.median(lat), 3),
                "pop_p99_ms": round(_percentile(lat, 0.99), 3),
                "pop_max_ms": round(max(lat), 3),
                "pops_measured": len(lat),
                "lookups_per_s": round(lookups, 1),
                "lookup_concurrency": CONCURRENCY,
                "writebacks_per_s": round(wb, 1),
                "writeback_concurrency": CONCURRENCY,
                "db_bytes": db_bytes,
                "prepare_s": round(prep_s, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
