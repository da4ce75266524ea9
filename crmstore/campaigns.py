"""Outbound campaigns: settings, calling windows in the customer's own time zone, and the contact's
attempt state machine. Pure rules, no I/O: the repository (campaign_store.py) reads facts, asks these
functions, and writes what they decide; the dialer asks the repository.

Why here and not in acd/: every rule reads CRM facts (the number's owner and flags, the do-not-call list,
the list an import is building), and the list import must apply the same window and exclusion rules as
the dialer, row by row. The ACD paces lines (acd/pacing.py); which contact a line is for is decided here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as pn_timezone

from .errors import CrmError

DEFAULT_ABANDON_CAP = 0.03  # FTC TSR and Ofcom: at most 3% of answered calls abandoned
DEFAULT_MAX_ATTEMPTS = 3
MAX_DELAY_S = 30 * 86_400
# Ofcom (persistent misuse policy): a number that had an abandoned call is not called again within 72 hours
# unless a live agent is guaranteed on the repeat call.
DEFAULT_NO_REDIAL_AFTER_ABANDON_S = 72 * 3600
MAX_WRAP_UP_S = 3600
HORIZON_DAYS = 8  # a week of windows and a day either side: every weekday seen once in every zone


class CampaignError(CrmError, ValueError):
    """A campaign definition that cannot be saved; the message names the field."""


class DialRefused(CrmError):
    """The contact may not be dialled now (paused, outside its window, do-not-call ...)."""


class CampaignKind(StrEnum):
    SALES = "sales"
    FOLLOW_UP = "follow_up"  # 3DC: the visit call three days after a purchase (回访)
    SURVEY = "survey"  # satisfaction survey


class DialingMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


class CampaignStatus(StrEnum):
    PAUSED = "paused"  # a saved campaign starts paused: its list is checked before anything is dialled
    ACTIVE = "active"


class AttemptOutcome(StrEnum):
    CONNECTED = "connected"  # answered by a person and put through (agent or survey flow)
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    ANSWERING_MACHINE = "answering_machine"  # AMD() said MACHINE
    WRONG_NUMBER = "wrong_number"
    ABANDONED = "abandoned"  # answered, no agent within 2 s: the abandon message was played
    FAILED = "failed"  # congestion, channel unavailable: the network's fault, not the customer's


RETRY_OUTCOMES = tuple(o for o in AttemptOutcome if o is not AttemptOutcome.CONNECTED)

# Dispositions that say the person who answered was not the one the contact is for.
NOT_RIGHT_PARTY = frozenset({"wrong_number", "wrong_party", "not_the_customer"})


def is_right_party(outcome: str, disposition: str = "", campaign: Campaign | None = None) -> bool:
    """A right-party contact, the one definition the dialer, the progress figures and the outbound report
    use: a connected call (agent or survey flow), unless its disposition says it reached somebody else:
    the campaign's own meaning of that disposition when it has one, else the usual names."""
    if outcome != AttemptOutcome.CONNECTED.value:
        return False
    rule = campaign.disposition(disposition) if campaign is not None and disposition else None
    if rule is not None:
        return rule.right_party
    return disposition.strip().lower() not in NOT_RIGHT_PARTY


class ContactStatus(StrEnum):
    PENDING = "pending"  # never dialled
    RETRY = "retry"  # dialled, another attempt due at next_at
    DIALING = "dialing"  # an attempt is under way
    DONE = "done"  # final: reached, wrong number, or attempts spent
    EXCLUDED = "excluded"  # found on do-not-call or blacklisted at dial time: never dialled again


class IllegalContactMove(RuntimeError):
    pass


S = ContactStatus
CONTACT_TRANSITIONS: Mapping[tuple[ContactStatus, str], ContactStatus] = {
    (S.PENDING, "dial"): S.DIALING,
    (S.RETRY, "dial"): S.DIALING,
    (S.DIALING, "retry"): S.RETRY,
    (S.DIALING, "final"): S.DONE,
    (S.PENDING, "exclude"): S.EXCLUDED,
    (S.RETRY, "exclude"): S.EXCLUDED,
    # What the agent's disposition says after the call (see after_disposition)
    (S.DONE, "call_back"): S.RETRY,
    (S.DONE, "exclude"): S.EXCLUDED,
    (S.RETRY, "reached"): S.DONE,  # an abandoned call the agent reached after all
}
OPEN_STATUSES = (S.PENDING, S.RETRY, S.DIALING)


def contact_diagram() -> str:
    """The mermaid diagram of CONTACT_TRANSITIONS, as docs/campaigns.md shows it (a test keeps them equal)."""
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f"    {src.value} --> {dst.value}: {event}" for (src, event), dst in CONTACT_TRANSITIONS.items()]
    return "\n".join([*lines, "```"])


def move(status: ContactStatus, event: str) -> ContactStatus:
    try:
        return CONTACT_TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalContactMove(f"contact {status.value} cannot {event}") from None


# -------------------------------------------------------------------------------------- settings

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local time of day on some weekdays (0 = Monday). Never across midnight: nobody is called then."""

    days: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time().replace(tzinfo=None) < self.end

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class RetryRule:
    retries: int  # further attempts after this outcome (0: the outcome is final)
    delay_s: int = 0


DEFAULT_WINDOWS = (
    CallingWindow(frozenset(range(5)), time(9), time(20)),
    CallingWindow(frozenset({5}), time(10), time(18)),
)
DEFAULT_RETRY: Mapping[AttemptOutcome, RetryRule] = {
    AttemptOutcome.BUSY: RetryRule(2, 600),
    AttemptOutcome.NO_ANSWER: RetryRule(2, 7200),
    AttemptOutcome.ANSWERING_MACHINE: RetryRule(1, 14_400),
    AttemptOutcome.WRONG_NUMBER: RetryRule(0),
    AttemptOutcome.ABANDONED: RetryRule(1, 3600),
    AttemptOutcome.FAILED: RetryRule(2, 900),
}


DEFAULT_SURVEY_LINES = 10


class AfterDisposition(StrEnum):
    """What a disposition does to the contact once the agent saves it."""

    DONE = "done"  # final
    CALL_BACK = "call_back"  # dialled again at the time the agent gives (a booked retry)
    WRONG_NUMBER = "wrong_number"  # final; the attempt's outcome becomes wrong_number
    DO_NOT_CALL = "do_not_call"  # the number joins the do-not-call list; the contact is excluded


@dataclass(frozen=True, slots=True)
class Disposition:
    """One entry of a campaign's disposition list: is it a right-party contact, and what comes after."""

    name: str
    right_party: bool = True
    then: AfterDisposition = AfterDisposition.DONE


# Every campaign offers these unless its own list gives the same name another meaning.
BUILTIN_DISPOSITIONS = (
    Disposition("call_back", True, AfterDisposition.CALL_BACK),
    Disposition("wrong_number", False, AfterDisposition.WRONG_NUMBER),
    Disposition("do_not_call", True, AfterDisposition.DO_NOT_CALL),
)


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    kind: CampaignKind = CampaignKind.SALES
    mode: DialingMode = DialingMode.PROGRESSIVE
    script: str = ""
    dispositions: tuple[str, ...] = ()
    windows: tuple[CallingWindow, ...] = DEFAULT_WINDOWS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry: Mapping[AttemptOutcome, RetryRule] = field(default_factory=lambda: dict(DEFAULT_RETRY))
    abandon_cap: float = DEFAULT_ABANDON_CAP
    queue: str = ""  # the agents who take its calls
    # A survey campaign: the IVR flow its answered people are handed to (no agent), and how many of them
    # may be in that flow at once (the pacer paces the lines by these, as it does by free agents).
    flow: str = ""
    survey_lines: int = DEFAULT_SURVEY_LINES
    # Entries of `dispositions` with a meaning of their own (right party or not, what comes after); a plain
    # name is a right-party contact, final.
    disposition_rules: tuple[Disposition, ...] = ()
    wrap_up_s: int | None = None  # the agent's wrap-up after its calls; None: the queue's rule
    no_redial_after_abandon_s: int = DEFAULT_NO_REDIAL_AFTER_ABANDON_S
    agent_guaranteed: bool = False  # every repeat call has a live agent (Ofcom): abandoned numbers may be redialled

    def rule(self, outcome: AttemptOutcome) -> RetryRule:
        return self.retry.get(outcome, RetryRule(0))

    def disposition(self, name: str) -> Disposition | None:
        """The meaning of a disposition the agent chose; None when the campaign does not offer it."""
        for d in self.disposition_rules:
            if d.name == name:
                return d
        if name in self.dispositions:
            return Disposition(name)
        return next((d for d in BUILTIN_DISPOSITIONS if d.name == name), None)

    def disposition_names(self) -> tuple[str, ...]:
        return (*self.dispositions, *(d.name for d in BUILTIN_DISPOSITIONS if d.name not in self.dispositions))

    def redial_blocked_until(self, abandoned_at: float | None) -> float | None:
        """When a number whose call was abandoned at `abandoned_at` may be dialled again (None: now)."""
        if abandoned_at is None or self.agent_guaranteed:
            return None
        return abandoned_at + self.no_redial_after_abandon_s


def campaign_problems(c: Campaign) -> list[str]:
    """Every reason the campaign cannot be saved, one per field."""
    out = []
    if not c.name.strip() or len(c.name) > 100 or any(ch.isspace() and ch != " " for ch in c.name):
        out.append(f"name {c.name!r}: give 1 to 100 characters on one line")
    if not c.windows:
        out.append("windows: give at least one calling window")
    for i, w in enumerate(c.windows, start=1):
        if not w.days:
            out.append(f"windows[{i}]: no days")
        if w.end <= w.start:
            out.append(f"windows[{i}]: {w.start:%H:%M}-{w.end:%H:%M} ends before it starts (no window crosses midnight)")
    if not 1 <= c.max_attempts <= 20:
        out.append(f"max_attempts {c.max_attempts}: give 1 to 20")
    for outcome, rule in c.retry.items():
        if outcome is AttemptOutcome.CONNECTED:
            out.append("retry.connected: a connected call is final")
            continue
        if rule.retries < 0:
            out.append(f"retry.{outcome.value}: retries {rule.retries} is negative")
        elif 1 + rule.retries > c.max_attempts:
            out.append(
                f"retry.{outcome.value}: {rule.retries} retries would call a number {1 + rule.retries} times,"
                f" more than max_attempts {c.max_attempts}"
            )
        if rule.retries > 0 and not 60 <= rule.delay_s <= MAX_DELAY_S:
            out.append(f"retry.{outcome.value}: wait {rule.delay_s} s: give 1 minute to 30 days")
    if not 0 <= c.abandon_cap <= 0.1 or math.isnan(c.abandon_cap):
        out.append(f"abandon_cap {c.abandon_cap}: give 0 to 0.1 (3% is the legal cap in the US and the UK)")
    if c.flow and c.kind is not CampaignKind.SURVEY:
        out.append(f"flow {c.flow!r}: only a survey campaign hands its calls to a flow")
    if not 1 <= c.survey_lines <= 500:
        out.append(f"survey_lines {c.survey_lines}: give 1 to 500")
    if len(set(c.dispositions)) != len(c.dispositions):
        out.append("dispositions: a disposition is listed twice")
    if any(d.name not in c.dispositions for d in c.disposition_rules):
        out.append("disposition_rules: every rule must name a disposition of the list")
    if c.wrap_up_s is not None and not 0 <= c.wrap_up_s <= MAX_WRAP_UP_S:
        out.append(f"wrap_up {c.wrap_up_s} s: give 0 to {MAX_WRAP_UP_S} seconds")
    if not 0 <= c.no_redial_after_abandon_s <= MAX_DELAY_S:
        out.append(f"no_redial_after_abandon {c.no_redial_after_abandon_s} s: give 0 to 30 days (Ofcom: 72h)")
    return out


def check_campaign(c: Campaign) -> Campaign:
    problems = campaign_problems(c)
    if problems:
        raise CampaignError(f"campaign {c.name!r}: " + "; ".join(problems))
    return c


# ------------------------------------------------------------------------ definitions as data


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def parse_duration(value: Any, where: str) -> int:
    m = _DURATION.match(str(value))
    if m is None:
        raise CampaignError(f"{where}: {value!r} is not a duration such as 90s, 10m, 2h or 1d")
    return int(m.group(1)) * _UNIT[m.group(2)]


def parse_clock(value: Any, where: str) -> time:
    m = _HHMM.match(str(value))
    if m is None or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise CampaignError(f"{where}: {value!r} is not a time of day such as 09:00")
    h, mi = int(m.group(1)), int(m.group(2))
    return time.max if h == 24 else time(h, mi)


def parse_days(value: Any, where: str) -> frozenset[int]:
    text = str(value).strip().lower()
    if text in ("daily", "every day", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in re.split(r"[,\s]+", text):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) > 2 or any(e[:3] not in DAY_NAMES for e in ends):
            raise CampaignError(f"{where}: {value!r} is not days such as mon-fri or sat,sun")
        a, b = DAY_NAMES.index(ends[0][:3]), DAY_NAMES.index(ends[-1][:3])
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    if not days:
        raise CampaignError(f"{where}: no days")
    return frozenset(days)


def _days_text(days: frozenset[int]) -> str:
    if days == frozenset(range(7)):
        return "daily"
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(DAY_NAMES[r[0]] + (f"-{DAY_NAMES[r[-1]]}" if len(r) > 2 else "".join(
        f",{DAY_NAMES[x]}" for x in r[1:])) for r in runs)


def _enum(kind: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise CampaignError(f"{where}: {value!r} is not one of {choices}") from None


_FIELDS = {"name", "kind", "mode", "script", "dispositions", "windows", "max_attempts", "retry", "abandon_cap",
           "queue", "flow", "survey_lines", "wrap_up", "no_redial_after_abandon", "agent_guaranteed"}
_YES = {"yes", "true", "on", "1"}
_NO = {"no", "false", "off", "0"}


def _flag(value: Any, where: str) -> bool:
    text = str(value).strip().lower()
    if text in _YES or text in _NO:
        return text in _YES
    raise CampaignError(f"{where}: {value!r} is not yes or no")


def _disposition(raw: Any, where: str) -> tuple[str, Disposition | None]:
    """A list entry: a plain name, or {name, right_party: yes/no, then: done|call_back|wrong_number|do_not_call}."""
    if not isinstance(raw, Mapping):
        return str(raw).strip(), None
    if set(raw) - {"name", "right_party", "then"} or not str(raw.get("name", "")).strip():
        raise CampaignError(f"{where}: give a name, or {{name: not_home, right_party: no, then: call_back}}")
    name = str(raw["name"]).strip()
    return name, Disposition(name, _flag(raw.get("right_party", "yes"), f"{where}.right_party"),
                             _enum(AfterDisposition, raw.get("then", "done"), f"{where}.then"))


def campaign_from_data(data: Any, source: str = "campaign") -> Campaign:
    """A campaign from its definition (YAML read as plain strings); CampaignError naming the field."""
    if not isinstance(data, Mapping):
        raise CampaignError(f"{source}: a campaign is a mapping of name, kind, mode, windows, retry ...")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise CampaignError(f"{source}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(_FIELDS))}")
    if not data.get("name"):
        raise CampaignError(f"{source}: name is missing")

    def whole(key: str, default: int) -> int:
        raw = data.get(key, default)
        try:
            return int(str(raw))
        except ValueError:
            raise CampaignError(f"{source}: {key} {raw!r} is not a whole number") from None

    windows: list[CallingWindow] = []
    raw_windows = data.get("windows")
    if raw_windows is not None:
        if not isinstance(raw_windows, list):
            raise CampaignError(f"{source}: windows must be a list of {{days, from, to}}")
        for i, w in enumerate(raw_windows, start=1):
            if not isinstance(w, Mapping) or set(w) - {"days", "from", "to"} or "from" not in w or "to" not in w:
                raise CampaignError(f"{source}: windows[{i}] must be {{days: mon-fri, from: '09:00', to: '20:00'}}")
            windows.append(
                CallingWindow(
                    parse_days(w.get("days", "daily"), f"{source}: windows[{i}].days"),
                    parse_clock(w["from"], f"{source}: windows[{i}].from"),
                    parse_clock(w["to"], f"{source}: windows[{i}].to"),
                )
            )
    retry = dict(DEFAULT_RETRY)
    raw_retry = data.get("retry") or {}
    if not isinstance(raw_retry, Mapping):
        raise CampaignError(f"{source}: retry must map outcomes to {{retries, after}}")
    for key, rule in raw_retry.items():
        outcome = _enum(AttemptOutcome, key, f"{source}: retry")
        where = f"{source}: retry.{outcome.value}"
        if not isinstance(rule, Mapping) or set(rule) - {"retries", "after"}:
            raise CampaignError(f"{where}: give {{retries: 2, after: 10m}}")
        try:
            retries = int(str(rule.get("retries", 0)))
        except ValueError:
            raise CampaignError(f"{where}: retries {rule.get('retries')!r} is not a whole number") from None
        retry[outcome] = RetryRule(retries, parse_duration(rule.get("after", 0), f"{where}.after"))
    raw_dispositions = data.get("dispositions") or []
    if not isinstance(raw_dispositions, list):
        raise CampaignError(f"{source}: dispositions must be a list")
    listed = [_disposition(d, f"{source}: dispositions[{i}]") for i, d in enumerate(raw_dispositions, start=1)]
    try:
        cap = float(str(data.get("abandon_cap", DEFAULT_ABANDON_CAP)).rstrip("%")) / (
            100 if str(data.get("abandon_cap", "")).endswith("%") else 1)
    except ValueError:
        raise CampaignError(f"{source}: abandon_cap {data.get('abandon_cap')!r} is not a number such as 0.03") from None
    c = Campaign(
        name=str(data["name"]).strip(),
        kind=_enum(CampaignKind, data.get("kind", "sales"), f"{source}: kind"),
        mode=_enum(DialingMode, data.get("mode", "progressive"), f"{source}: mode"),
        script=str(data.get("script", "")),
        dispositions=tuple(name for name, _ in listed),
        disposition_rules=tuple(rule for _, rule in listed if rule is not None),
        windows=tuple(windows) if raw_windows is not None else DEFAULT_WINDOWS,
        max_attempts=whole("max_attempts", DEFAULT_MAX_ATTEMPTS),
        retry=retry,
        abandon_cap=cap,
        queue=str(data.get("queue", "")).strip(),
        flow=str(data.get("flow", "")).strip(),
        survey_lines=whole("survey_lines", DEFAULT_SURVEY_LINES),
        wrap_up_s=None if data.get("wrap_up") in (None, "") else parse_duration(data["wrap_up"], f"{source}: wrap_up"),
        no_redial_after_abandon_s=parse_duration(
            data.get("no_redial_after_abandon", DEFAULT_NO_REDIAL_AFTER_ABANDON_S),
            f"{source}: no_redial_after_abandon"),
        agent_guaranteed=_flag(data.get("agent_guaranteed", "no"), f"{source}: agent_guaranteed"),
    )
    problems = campaign_problems(c)
    if problems:
        raise CampaignError(f"{source}: " + "; ".join(problems))
    return c


def campaign_to_data(c: Campaign) -> dict[str, Any]:
    """The stored form (JSON), readable back by campaign_from_data."""
    return {
        "name": c.name,
        "kind": c.kind.value,
        "mode": c.mode.value,
        "script": c.script,
        "dispositions": [_disposition_data(c, name) for name in c.dispositions],
        "windows": [{"days": _days_text(w.days), "from": _clock(w.start), "to": _clock(w.end)} for w in c.windows],
        "max_attempts": str(c.max_attempts),
        "retry": {o.value: {"retries": str(r.retries), "after": f"{r.delay_s}s"} for o, r in c.retry.items()},
        "abandon_cap": repr(c.abandon_cap),
        "queue": c.queue,
        "flow": c.flow,
        "survey_lines": str(c.survey_lines),
        **({} if c.wrap_up_s is None else {"wrap_up": f"{c.wrap_up_s}s"}),
        "no_redial_after_abandon": f"{c.no_redial_after_abandon_s}s",
        "agent_guaranteed": "yes" if c.agent_guaranteed else "no",
    }


def _disposition_data(c: Campaign, name: str) -> Any:
    rule = next((d for d in c.disposition_rules if d.name == name), None)
    if rule is None:
        return name
    return {"name": name, "right_party": "yes" if rule.right_party else "no", "then": rule.then.value}


def _clock(t: time) -> str:
    return "24:00" if t == time.max else f"{t:%H:%M}"


# -------------------------------------------------------------------------- time zones, windows


@dataclass(frozen=True, slots=True)
class LocalSpan:
    """A contact's preferred time of day (local), e.g. 14:00-17:00."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def parse_span(text: str) -> LocalSpan | None:
    """'' → None; '14:00-17:00' → LocalSpan; ValueError with the reason otherwise."""
    text = text.strip().replace("～", "-").replace("~", "-").replace("–", "-").replace("至", "-")
    if not text:
        return None
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"contact_time {text!r} is not a time span such as 14:00-17:00")
    try:
        start = parse_clock(parts[0], "contact_time")
        end = parse_clock(parts[1], "contact_time")
    except CampaignError:
        raise ValueError(f"contact_time {text!r} is not a time span such as 14:00-17:00") from None
    if end <= start:
        raise ValueError(f"contact_time {text!r} ends before it starts")
    return LocalSpan(start, end)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """An IANA zone name as given (ValueError otherwise)."""
    name = name.strip()
    if name not in _zone_names():
        raise ValueError(f"timezone {name!r} is not a time zone name such as America/Chicago or Asia/Shanghai")
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not a time zone name such as America/Chicago") from None
    return name


def zones_of_number(e164: str) -> tuple[str, ...]:
    """The zones the number may be in: its prefix's zones, else every zone of its country (an unknown zone is
    called only when it is inside the window in all of them). () when phonenumbers knows none."""
    parsed = phonenumbers.parse(e164)
    found = pn_timezone.time_zones_for_number(parsed)
    if not found or pn_timezone.UNKNOWN_TIMEZONE in found:
        found = pn_timezone._country_level_time_zones_for_number(parsed)
    names = _zone_names()
    return tuple(sorted(z for z in found if z != pn_timezone.UNKNOWN_TIMEZONE and z in names))


Interval = tuple[float, float]  # UTC epoch seconds, [start, end)


def _merge(spans: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if a < b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def _local_edge(d: date, t: time, tz: ZoneInfo) -> float:
    if t == time.max:
        return datetime.combine(d + timedelta(days=1), time(0), tz).timestamp()
    return datetime.combine(d, t, tz).timestamp()


def _zone_intervals(
    tz: ZoneInfo, windows: Sequence[CallingWindow], preferred: LocalSpan | None, start: datetime, days: int
) -> list[Interval]:
    first = start.astimezone(tz).date() - timedelta(days=1)
    spans = []
    for n in range(days + 2):
        d = first + timedelta(days=n)
        for w in windows:
            if d.weekday() not in w.days:
                continue
            a, b = w.start, w.end
            if preferred is not None:
                a, b = max(a, preferred.start), min(b, preferred.end)
                if b <= a:
                    continue
            spans.append((_local_edge(d, a, tz), _local_edge(d, b, tz)))
    return _merge(spans)


def callable_intervals(
    zones: Sequence[str],
    windows: Sequence[CallingWindow],
    preferred: LocalSpan | None,
    start: datetime,
    days: int = HORIZON_DAYS,
) -> list[Interval]:
    """The UTC intervals from about ``start`` on in which the local time is inside a window in every zone."""
    if not zones:
        return []
    acc: list[Interval] | None = None
    for name in zones:
        spans = _zone_intervals(zone(name), windows, preferred, start, days)
        acc = spans if acc is None else _intersect(acc, spans)
        if not acc:
            return []
    return acc or []


def inside_window(
    zones: Sequence[str], windows: Sequence[CallingWindow], preferred: LocalSpan | None, at: datetime
) -> bool:
    """Is it calling time for this contact at ``at`` in every zone it may be in?"""
    if not zones:
        return False
    for name in zones:
        local = at.astimezone(zone(name))
        if not any(w.contains(local) for w in windows):
            return False
        if preferred is not None and not preferred.start <= local.time().replace(tzinfo=None) < preferred.end:
            return False
    return True


def next_callable(
    zones: Sequence[str], windows: Sequence[CallingWindow], preferred: LocalSpan | None, after: datetime
) -> datetime | None:
    """The first moment at or after ``after`` inside the windows in every zone; None: never within a week."""
    t = after.timestamp()
    for a, b in callable_intervals(zones, windows, preferred, after):
        if b > t:
            return datetime.fromtimestamp(max(a, t), UTC)
    return None


def never_callable_reason(
    e164: str, zones: Sequence[str], explicit: bool, windows: Sequence[CallingWindow], preferred: LocalSpan | None,
    now: datetime,
) -> str | None:
    """Why this contact could never be called under the windows (None: it can be)."""
    if not zones:
        return f"no time zone is known for {e164}: give its timezone"
    if callable_intervals(zones, windows, preferred, now):
        return None
    shown = ", ".join(str(w) for w in windows)
    if preferred is not None and callable_intervals(zones, windows, None, now):
        return f"never callable: contact_time {preferred} is outside the calling windows ({shown}) in {_zones_text(zones)}"
    if len(zones) > 1 and not explicit:
        return (
            f"never callable: {e164} may be in any of {len(zones)} time zones ({_zones_text(zones)}) and no moment is"
            f" inside the calling windows ({shown}) in all of them; give its timezone"
        )
    return f"never callable: no moment inside the calling windows ({shown}) in {_zones_text(zones)}"


def _zones_text(zones: Sequence[str]) -> str:
    return ", ".join(zones) if len(zones) <= 4 else f"{zones[0]} … {zones[-1]}"


# ----------------------------------------------------------------------- contacts and attempts


@dataclass(frozen=True, slots=True)
class ContactState:
    """What the dialer needs to know about one contact of a campaign's list."""

    contact_id: int
    e164: str
    zones: tuple[str, ...]
    preferred: LocalSpan | None
    status: ContactStatus
    attempts: int
    next_at: float | None  # epoch seconds: when a retry is due
    position: int  # order in the list (file order, selection order)
    on_dnc: bool = False
    blacklisted: bool = False
    name: str = ""
    customer_id: int | None = None
    abandoned_at: float | None = None  # the end of this contact's last abandoned call (epoch seconds)


def dial_refusal(c: Campaign, paused: bool, contact: ContactState, now: datetime) -> str | None:
    """Why this contact may not be dialled at ``now`` (None: dial). Checked when choosing and again at dial time."""
    if paused:
        return f"campaign {c.name!r} is paused"
    if contact.on_dnc:
        return f"{contact.e164} is on the do-not-call list"
    if contact.blacklisted:
        return f"{contact.e164} belongs to a blacklisted customer"
    if contact.status not in (S.PENDING, S.RETRY):
        return f"contact {contact.contact_id} is {contact.status.value}"
    if contact.attempts >= c.max_attempts:
        return f"contact {contact.contact_id} has had its {c.max_attempts} attempts"
    blocked = c.redial_blocked_until(contact.abandoned_at)
    if blocked is not None and blocked > now.timestamp():
        until = datetime.fromtimestamp(blocked, UTC).isoformat()
        return (f"{contact.e164} had an abandoned call: not dialled again before {until}"
                f" ({c.no_redial_after_abandon_s // 3600}h, Ofcom)")
    if contact.status is S.RETRY and (contact.next_at is None or contact.next_at > now.timestamp()):
        due = "never" if contact.next_at is None else datetime.fromtimestamp(contact.next_at, UTC).isoformat()
        return f"contact {contact.contact_id} is not due before {due}"
    if not inside_window(contact.zones, c.windows, contact.preferred, now):
        local = ", ".join(f"{now.astimezone(zone(z)):%a %H:%M} {z}" for z in contact.zones[:3])
        return f"{contact.e164} is outside the calling window now ({local})"
    return None


def next_contacts(
    c: Campaign, paused: bool, now: datetime, candidates: Iterable[ContactState], limit: int
) -> list[ContactState]:
    """The contacts to dial next, in order: due retries first (longest due first), then fresh ones in list
    order. Nobody outside the window, on do-not-call, blacklisted or with every attempt spent."""
    if paused or limit <= 0:
        return []
    ok = [x for x in candidates if dial_refusal(c, False, x, now) is None]
    retries = sorted((x for x in ok if x.status is S.RETRY), key=lambda x: (x.next_at or 0.0, x.contact_id))
    fresh = sorted((x for x in ok if x.status is S.PENDING), key=lambda x: (x.position, x.contact_id))
    return [*retries, *fresh][:limit]


@dataclass(frozen=True, slots=True)
class AfterAttempt:
    status: ContactStatus
    attempts: int
    next_at: float | None
    why: str  # for the report: "retry busy 1 of 2 at …", "final: connected" …


def after_outcome(
    c: Campaign, attempts_before: int, outcome: AttemptOutcome, same_outcome_before: int, at: datetime
) -> AfterAttempt:
    """The contact's state once an attempt ended with ``outcome``. ``same_outcome_before``: earlier attempts
    of this contact that ended the same way. Never schedules an attempt beyond max_attempts."""
    attempts = attempts_before + 1
    if outcome is AttemptOutcome.CONNECTED:
        return AfterAttempt(move(S.DIALING, "final"), attempts, None, "final: connected")
    rule = c.rule(outcome)
    used = same_outcome_before + 1  # retries this outcome has asked for, this one included
    if used > rule.retries:
        return AfterAttempt(move(S.DIALING, "final"), attempts, None,
                            f"final: {outcome.value} ({rule.retries} retries for it)")
    if attempts >= c.max_attempts:
        return AfterAttempt(move(S.DIALING, "final"), attempts, None,
                            f"final: {outcome.value} after {attempts} attempts (max_attempts)")
    due = at.timestamp() + rule.delay_s
    if outcome is AttemptOutcome.ABANDONED:
        due = max(due, c.redial_blocked_until(at.timestamp()) or due)
    return AfterAttempt(move(S.DIALING, "retry"), attempts, due,
                        f"retry {used} of {rule.retries} after {outcome.value}")


def after_disposition(
    c: Campaign, d: Disposition, status: ContactStatus, attempts: int, call_back_at: datetime | None, at: datetime
) -> AfterAttempt:
    """The contact's state once the agent saved disposition `d` for the attempt just ended (the attempt's
    own outcome already moved it: done after a connected call, retry after an abandon). CampaignError when
    the disposition asks for what the campaign cannot do (a call back without a time, or past max_attempts)."""
    if d.then is AfterDisposition.DO_NOT_CALL:
        if status in (S.DONE, S.PENDING, S.RETRY):
            return AfterAttempt(move(status, "exclude"), attempts, None, f"excluded: {d.name} (do-not-call)")
        return AfterAttempt(status, attempts, None, f"{d.name} (do-not-call)")
    if d.then is AfterDisposition.CALL_BACK:
        if call_back_at is None:
            raise CampaignError(f"disposition {d.name}: give the time to call back")
        if call_back_at <= at:
            raise CampaignError(f"disposition {d.name}: the time to call back {call_back_at.isoformat()} has passed")
        if attempts >= c.max_attempts:
            raise CampaignError(f"disposition {d.name}: the contact has had its {c.max_attempts} attempts"
                                " (max_attempts); book a callback instead")
        new = move(status, "call_back") if status is S.DONE else status
        if new is not S.RETRY:
            raise CampaignError(f"disposition {d.name}: the contact is {status.value}")
        return AfterAttempt(new, attempts, call_back_at.timestamp(), f"call back at {call_back_at.isoformat()}")
    if status is S.RETRY:  # an abandoned or failed call the agent still reached: final now
        return AfterAttempt(move(status, "reached"), attempts, None, f"final: {d.name}")
    return AfterAttempt(status, attempts, None, f"final: {d.name}")


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    name: str
    status: CampaignStatus
    contacts: int
    pending: int  # never dialled
    retry: int
    dialing: int
    done: int
    excluded: int
    tried: int  # contacts dialled at least once
    attempts: int
    connects: int
    right_party: int
    outcomes: Mapping[str, int]  # attempts per outcome

    @property
    def remaining(self) -> int:
        return self.pending + self.retry + self.dialing

    @property
    def penetration(self) -> float:
        """Share of the list dialled at least once."""
        return self.tried / self.contacts if self.contacts else 0.0

    @property
    def abandon_rate(self) -> float:
        answered = self.connects + self.outcomes.get(AttemptOutcome.ABANDONED.value, 0)
        return self.outcomes.get(AttemptOutcome.ABANDONED.value, 0) / answered if answered else 0.0

    def lines(self) -> list[str]:
        return [
            (f"campaign {self.name} ({self.status.value}): {self.contacts} contacts, {self.remaining} remaining"
            f" ({self.pending} never dialled, {self.retry} waiting for a retry, {self.dialing} dialling),"
            f" {self.done} done, {self.excluded} excluded"),
            (f"attempts {self.attempts}, connects {self.connects}, right-party contacts {self.right_party},"
            f" list penetration {self.penetration:.1%}, abandon rate {self.abandon_rate:.1%}"),
            "outcomes: " + (", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none yet"),
        ]
