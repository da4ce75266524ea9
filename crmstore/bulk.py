"""Bulk loading of generated data (bench, demo): insert everything, then build the secondary indexes.

Not for production imports (those go through import_export with merging and a rejection report).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import asyncpg

from .backends import _migrate_pg, _migrate_sqlite, parse_url
from .sample import COLUMNS, SampleSpec, generate
from .schema import secondary_indexes

Progress = Callable[[str, int], None]


def _load_sqlite(path: str, spec: SampleSpec, progress: Progress | None) -> dict[str, int]:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        _migrate_sqlite(con)
        # Generated data can be regenerated: no fsync while loading, one final checkpoint instead.
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")
        for name, _ in secondary_indexes():
            con.execute(f"DROP INDEX IF EXISTS {name}")
        counts: dict[str, int] = {}
        con.execute("BEGIN")
        for table, rows in generate(spec):
            if rows:
                cols = COLUMNS[table]
                con.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows
                )
                counts[table] = counts.get(table, 0) + len(rows)
                if progress:
                    progress(table, counts[table])
        con.execute("COMMIT")
        for name, stmt in secondary_indexes():
            if progress:
                progress(f"index {name}", 0)
            con.execute(stmt)
        con.execute("ANALYZE")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts
    finally:
        con.close()


async def _load_pg(dsn: str, spec: SampleSpec, progress: Progress | None) -> dict[str, int]:
    con = await asyncpg.connect(dsn)
    try:
        await _migrate_pg(con)
        for name, _ in secondary_indexes():
            await con.execute(f"DROP INDEX IF EXISTS {name}")
        counts: dict[str, int] = {}
        for table, rows in generate(spec):
            if rows:
                await con.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
                counts[table] = counts.get(table, 0) + len(rows)
                if progress:
                    progress(table, counts[table])
        for name, stmt in secondary_indexes():
            if progress:
                progress(f"index {name}", 0)
            await con.execute(stmt)
        for table in (
            "customers",
            "grade_history",
            "purchases",
            "interactions",
            "tickets",
            "follow_ups",
            "audit_log",
        ):
            # Explicit ids were loaded into identity columns: move the sequences past them.
            await con.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1,"
                " false)"
            )
        await con.execute("ANALYZE")
        return counts
    finally:
        await con.close()


async def bulk_load(url: str, spec: SampleSpec, *, progress: Progress | None = None) -> dict[str, int]:
    """Load ``spec``'s generated data into an EMPTY database named by ``url``; returns rows per table."""
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        return await asyncio.to_thread(_load_sqlite, parsed.target, spec, progress)
    return await _load_pg(parsed.target, spec, progress)
