"""What a person asks for, as text (the `ctiserver report` command line, the console's Reports page), made
into a `Query`: one set of checks for both, each mistake one line (`ReportError`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta, tzinfo

from .engine import Query, ReportError
from .formats import FORMATS

LANGUAGES = ("en", "zh")


def moment(text: str, tz: tzinfo | None, *, end: bool) -> datetime:
    """YYYY-MM-DD (a whole day: as the end of a period it includes that day) or YYYY-MM-DDTHH:MM, in the
    centre's zone."""
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day + timedelta(days=1 if end else 0), time(0), tzinfo=tz)
        return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=tz)
    except ValueError:
        raise ReportError(f"{text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)") from None


def query(name: str, date_from: str | None, date_to: str | None, tz: tzinfo | None, *, interval: str = "day",
          queues: Sequence[str] = (), agents: Sequence[str] = (), fcr_days: int = 3,
          how: str = "--from YYYY-MM-DD [--to YYYY-MM-DD]") -> Query:
    """The query for a period from `date_from` to `date_to` (included; default: the `date_from` day).
    `how` says, in the asker's words, how to give a period when none was given. The engine's own checks
    (`engine.check`: names, an inverted or too long period, 15-minute rows over a month) run with the
    centre's configuration."""
    if not date_from:
        raise ReportError(f"say which period: {how}")
    first = moment(date_from, tz, end=False)
    stop = moment(date_to or date_from, tz, end=True)
    return Query(name, first, stop, interval, tuple(queues), tuple(agents), fcr_days)


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> None:
    if fmt not in allowed:
        raise ReportError(f"unknown format {fmt!r}; use one of {', '.join(allowed)}")


def check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ReportError(f"unknown language {lang!r}; use en or zh")
