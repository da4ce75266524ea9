"""Where plans meet a database: SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg), chosen by URL."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiosqlite
import asyncpg

from .errors import CrmConflict, CrmError, CrmWriteError, SchemaTooNew
from .plan import Execute, ExecuteMany, Fetch, Plan
from .schema import LATEST_VERSION, Dialect, pending, schema_version_ddl

T = TypeVar("T")


class Backend(Protocol):
    dialect: Dialect

    async def read(self, plan: Plan[T]) -> T: ...

    async def write(self, plan: Plan[T]) -> T: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    dialect: Dialect
    target: str  # file path (sqlite) or DSN without our own options (postgresql)
    options: dict[str, str] = field(default_factory=dict)

    def int_option(self, name: str, default: int) -> int:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"database URL option {name}={raw!r} is not an integer") from None


_OUR_OPTIONS = {"readers", "busy_timeout_ms", "synchronous", "pool_min", "pool_max", "lock_timeout_ms"}


def parse_url(url: str) -> DatabaseUrl:
    """sqlite:///abs/path.db, sqlite:relative.db, postgresql://user@host:port/db (postgres:// too).

    Our own options ride in the query string (?readers=2&busy_timeout_ms=5000) and are removed before
    the DSN reaches asyncpg, which would take them for server settings.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    ours = {k: v for k, v in query.items() if k in _OUR_OPTIONS}
    rest = {k: v for k, v in query.items() if k not in _OUR_OPTIONS}
    if parts.scheme == "sqlite":
        path = parts.path if not parts.netloc else parts.netloc + parts.path
        if not path or path == "/" or ":memory:" in path:
            raise ValueError(f"database URL {url!r}: sqlite needs a file path (several connections share it)")
        return DatabaseUrl("sqlite", path, ours)
    if parts.scheme in ("postgresql", "postgres"):
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
        return DatabaseUrl("postgresql", dsn, ours)
    raise ValueError(f"database URL {url!r}: scheme must be sqlite or postgresql")


# --------------------------------------------------------------------------------------------- SQLite


def _drive_sync(con: sqlite3.Connection, plan: Plan[T]) -> T:
    sent: Any = None
    try:
        while True:
            step = plan.send(sent)
            if type(step) is Fetch:
                sent = con.execute(step.sql, step.args).fetchall()
            elif type(step) is Execute:
                sent = con.execute(step.sql, step.args).rowcount
            elif type(step) is ExecuteMany:
                con.executemany(step.sql, step.rows)
                sent = None
            else:
                raise TypeError(f"not a plan step: {step!r}")
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _run_sqlite(con: sqlite3.Connection, plan: Plan[T], begin: str) -> T:
    # One transaction per plan: a pop reads one consistent snapshot, a write is all-or-nothing.
    con.execute(begin)
    try:
        result = _drive_sync(con, plan)
        con.execute("COMMIT")
        return result
    except BaseException:
        plan.close()
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def _write_error(exc: BaseException) -> CrmWriteError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return CrmConflict(f"CRM write refused, nothing saved: {text}")
    return CrmWriteError(f"CRM write failed, nothing saved: {text}")


class SqliteBackend:
    """One writer connection (writes are serialized by SQLite anyway) and a small pool of readers.

    WAL lets the readers run while the writer commits. synchronous=FULL by default: in WAL mode NORMAL
    is safe from corruption but may lose the last commits on power loss, and the agent has been told
    "saved" by then; FULL fsyncs the WAL at every commit, which is the price of that promise.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, readers: list[aiosqlite.Connection], path: str) -> None:
        self._writer = writer
        self._readers = readers
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for r in readers:
            self._idle.put_nowait(r)
        self.path = path

    @classmethod
    async def open(cls, url: DatabaseUrl) -> SqliteBackend:
        path = url.target
        busy = url.int_option("busy_timeout_ms", 5000)
        sync = url.options.get("synchronous", "FULL").upper()
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"database URL option synchronous={sync!r}: use FULL, NORMAL or EXTRA")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"database directory {directory!r} does not exist")
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _call(writer, _setup_writer, busy, sync)
        except BaseException:
            await writer.close()
            raise
        readers = []
        for _ in range(max(1, url.int_option("readers", 2))):
            r = await aiosqlite.connect(path, isolation_level=None)
            await _call(r, _setup_reader, busy)
            readers.append(r)
        return cls(writer, readers, path)

    async def read(self, plan: Plan[T]) -> T:
        con = await self._idle.get()
        try:
            return await _call(con, _run_sqlite, plan, "BEGIN")
        finally:
            self._idle.put_nowait(con)

    async def write(self, plan: Plan[T]) -> T:
        try:
            # IMMEDIATE takes the write lock up front: a busy database fails here, before any statement.
            return await _call(self._writer, _run_sqlite, plan, "BEGIN IMMEDIATE")
        except CrmError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise _write_error(exc) from exc

    async def close(self) -> None:
        for con in (*self._readers, self._writer):
            await con.close()

    async def run_on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Escape hatch for maintenance (bulk load, tests that simulate a full disk)."""
        return await _call(self._writer, fn)


async def _call(con: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    # aiosqlite's public API costs one thread hop per statement; its _execute runs a whole function in the
    # connection's own thread, which is what makes a ten-read pop a single hop. Present in aiosqlite 0.17-0.22.
    return await con._execute(lambda: fn(con._conn, *args))  # type: ignore[no-any-return]


def _setup_writer(con: sqlite3.Connection, busy_ms: int, sync: str) -> None:
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise CrmError(f"could not switch the CRM database to WAL mode (got {mode})")
    con.execute(f"PRAGMA synchronous={sync}")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    _migrate_sqlite(con)


def _setup_reader(con: sqlite3.Connection, busy_ms: int) -> None:
    con.execute("PRAGMA query_only=ON")
    con.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    # A small cache and no memory map. SQLite fills a cache to its size and never gives pages back, and a reader's
    # cache is emptied whenever the journal has written since its last read, so a large one bought nothing but a
    # slow climb in memory. A map of the file put the pages a reader touched into the server's resident size and
    # dropped them at each remap as the file grew (a 40 MB saw-tooth in the soak): reads go through the system's
    # page cache instead, which costs a pop nothing measurable (p50 0.32 ms either way in bench/crm_pop.py).
    con.execute("PRAGMA cache_size=-4096")
    con.execute("PRAGMA mmap_size=0")


def _migrate_sqlite(con: sqlite3.Connection) -> None:
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute(schema_version_ddl("sqlite"))
        current = con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > LATEST_VERSION:
            raise SchemaTooNew(
                f"CRM database is at schema version {current}; this code knows {LATEST_VERSION}"
            )
        for m in pending(current):
            for stmt in m.statements("sqlite"):
                con.execute(stmt)
            con.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (m.version, m.description, time.time()),
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# ----------------------------------------------------------------------------------------- PostgreSQL

_PLACEHOLDER = re.compile(r"\?")


class _PgSql:
    """``?`` -> ``$n``, memoized: plans are written once for both engines."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, sql: str) -> str:
        out = self._cache.get(sql)
        if out is None:
            counter = iter(range(1, 10_000))
            out = _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)
            self._cache[sql] = out
        return out


async def _drive_async(con: asyncpg.Connection, plan: Plan[T], sql: _PgSql) -> T:
    sent: Any = None
    try:
        while True:
            step = plan.send(sent)
            if type(step) is Fetch:
                sent = await con.fetch(sql(step.sql), *step.args)
            elif type(step) is Execute:
                status = await con.execute(sql(step.sql), *step.args)
                last = status.rsplit(" ", 1)[-1]
                sent = int(last) if last.isdigit() else 0
            elif type(step) is ExecuteMany:
                if step.rows:
                    await con.executemany(sql(step.sql), step.rows)
                sent = None
            else:
                raise TypeError(f"not a plan step: {step!r}")
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        plan.close()
        raise


class PostgresBackend:
    """An asyncpg pool. Reads run without an explicit transaction (each statement is one round trip on
    loopback; BEGIN/COMMIT would add two); writes run in one transaction with a lock timeout so a locked
    table turns into CrmWriteError instead of a hung agent console."""

    dialect: Dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, lock_timeout_ms: int) -> None:
        self._pool = pool
        self._sql = _PgSql()
        self._lock_timeout_ms = lock_timeout_ms

    @classmethod
    async def open(cls, url: DatabaseUrl) -> PostgresBackend:
        pool = await asyncpg.create_pool(
            url.target,
            min_size=url.int_option("pool_min", 2),
            max_size=url.int_option("pool_max", 10),
            command_timeout=30,
        )
        backend = cls(pool, url.int_option("lock_timeout_ms", 5000))
        try:
            async with pool.acquire() as con:
                await _migrate_pg(con)
        except BaseException:
            await pool.close()
            raise
        return backend

    async def read(self, plan: Plan[T]) -> T:
        async with self._pool.acquire() as con:
            return await _drive_async(con, plan, self._sql)

    async def write(self, plan: Plan[T]) -> T:
        try:
            async with self._pool.acquire() as con, con.transaction():
                await con.execute(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)}")
                return await _drive_async(con, plan, self._sql)
        except CrmError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _write_error(exc) from exc

    async def close(self) -> None:
        await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool


async def _migrate_pg(con: asyncpg.Connection) -> None:
    async with con.transaction():
        # Two servers starting together must not both apply migration 1.
        await con.execute("SELECT pg_advisory_xact_lock(7240301)")
        await con.execute(schema_version_ddl("postgresql"))
        current = await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        if current > LATEST_VERSION:
            raise SchemaTooNew(
                f"CRM database is at schema version {current}; this code knows {LATEST_VERSION}"
            )
        for m in pending(current):
            for stmt in m.statements("postgresql"):
                await con.execute(stmt)
            await con.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                m.version,
                m.description,
                time.time(),
            )


async def open_backend(url: str) -> SqliteBackend | PostgresBackend:
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        return await SqliteBackend.open(parsed)
    return await PostgresBackend.open(parsed)
