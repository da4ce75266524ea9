"""Repository operations as plans: generators that yield SQL steps and receive their results.

A plan holds no connection and awaits nothing (the sans-I/O idea of the house). The SQLite backend drives a
whole plan inside its connection thread, so a screen pop with ten indexed point reads costs ONE thread hop
instead of ten; the PostgreSQL backend drives the same plan with awaits on asyncpg. Write plans run in one
transaction: any exception (from SQL or raised by the plan itself) rolls everything back.

SQL uses ``?`` placeholders and the subset both engines understand (RETURNING, ON CONFLICT, CAST AS BIGINT).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Result: list of rows (tuple-like, indexable by position)."""

    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Execute:
    """Result: number of rows changed."""

    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    """Result: None."""

    sql: str
    rows: Sequence[tuple[Any, ...]]


Step = Fetch | Execute | ExecuteMany
Plan = Generator[Step, Any, T]
