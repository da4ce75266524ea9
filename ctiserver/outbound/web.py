"""The web callback API's checks: a company web page posts a number, a name, a preferred time and a topic
(JSON); every refusal is one clear JSON error, and nothing is booked that should not be. Pure, but for the
CRM look-ups `WebCallbacks.handle` awaits (do-not-call, blacklist).

Order of the checks, cheapest first, so a flood costs little: the client's rate (every request counts,
valid or not), the body (JSON object, known fields, lengths), the number (parses, a real range, a country
the site calls), the preferred time (in the future, within the booking horizon, inside the calling
window), the number's rate, a callback already pending for it, the do-not-call list, the blacklist.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers

from ivr_flows.interpreter import is_open
from ivr_flows.model import Calendar

PATH = "/api/callback"
FIELDS = {"number", "name", "preferred_time", "topic"}
_NAME_MAX, _TOPIC_MAX, _NUMBER_MAX = 80, 200, 32


@dataclass(frozen=True, slots=True)
class WebCallbackSettings:
    queue: str = ""  # where web callbacks wait; "": the callbacks' default
    countries: tuple[str, ...] = ("CN",)  # regions whose numbers are called; others are foreign_number
    default_country: str = "CN"  # how a number without +country code is read
    per_number: int = 2  # requests for one number ...
    per_number_s: float = 86400.0  # ... within this long
    per_client: int = 5  # requests from one client address ...
    per_client_s: float = 3600.0  # ... within this long
    window: Calendar | None = None  # the calling window (the site's time zone); None: any time
    horizon_s: float = 14 * 86400.0  # how far ahead a preferred time may be
    max_body: int = 4096
    allow_origins: tuple[str, ...] = ()  # web pages (scheme://host[:port]) allowed to post from a browser


class WebRefusal(Exception):
    """One refusal: HTTP status, a stable code for the page's script, and a sentence for people."""

    def __init__(self, status: int, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": False, "error": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class WebRequest:
    number: str  # E.164
    name: str
    topic: str
    due_at: float | None  # epoch s; None: as soon as possible


class SlidingLimit:
    """At most `limit` events per key within `window_s`. Memory is bounded: the least recently seen keys
    are dropped beyond `max_keys` (a flood of new addresses cannot grow it without end)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Count this event; False when it is one too many."""
        times = self._seen.get(key)
        if times is None:
            times = self._seen[key] = deque()
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        self._seen.move_to_end(key)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


def parse_body(raw: bytes, settings: WebCallbackSettings) -> dict[str, str]:
    if len(raw) > settings.max_body:
        raise WebRefusal(413, "too_large", f"the request is over {settings.max_body} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebRefusal(400, "bad_json", "the body must be a JSON object (UTF-8)") from None
    if not isinstance(data, dict):
        raise WebRefusal(400, "bad_json", "the body must be a JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise WebRefusal(400, "unknown_field", f"unknown field(s) {unknown}; expected {sorted(FIELDS)}", unknown[0])
    out: dict[str, str] = {}
    for key, limit in (("number", _NUMBER_MAX), ("name", _NAME_MAX), ("topic", _TOPIC_MAX),
                       ("preferred_time", 40)):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise WebRefusal(400, "bad_field", f"{key} must be a string", key)
        if len(value) > limit:
            raise WebRefusal(400, "bad_field", f"{key} is longer than {limit} characters", key)
        if any(c < " " or c == "\x7f" for c in value):
            raise WebRefusal(400, "bad_field", f"{key} holds control characters", key)
        out[key] = value.strip()
    if not out["number"]:
        raise WebRefusal(400, "missing_field", "number is required", "number")
    return out


def check_number(raw: str, settings: WebCallbackSettings) -> str:
    """The number in E.164, or a refusal: invalid_number (does not parse, or no such range), foreign_number
    (a country the site does not call)."""
    try:
        parsed = phonenumbers.parse(raw, settings.default_country)
    except phonenumbers.NumberParseException:
        raise WebRefusal(422, "invalid_number", f"{raw!r} is not a phone number", "number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise WebRefusal(422, "invalid_number", f"{raw!r} is not a number in use", "number")
    region = phonenumbers.region_code_for_number(parsed)
    if region not in settings.countries:
        raise WebRefusal(422, "foreign_number", f"numbers of {region or 'that country'} are not called back; "
                         f"we call {', '.join(settings.countries)}", "number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_time(text: str, now: float, settings: WebCallbackSettings) -> float | None:
    """The preferred time as epoch seconds (None: as soon as possible), or a refusal."""
    window = settings.window
    if not text:
        if window is not None and not is_open(window, datetime.fromtimestamp(now, UTC)):
            raise WebRefusal(422, "outside_window", f"we call back {_hours(window)}; give a preferred_time then",
                             "preferred_time")
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise WebRefusal(400, "bad_time", "preferred_time must be ISO 8601, e.g. 2026-11-30T10:00+08:00",
                         "preferred_time") from None
    if when.tzinfo is None:  # a time without zone is the site's time
        when = when.replace(tzinfo=ZoneInfo(window.timezone) if window is not None else UTC)
    at = when.timestamp()
    if at < now - 60:
        raise WebRefusal(422, "past_time", "preferred_time is in the past", "preferred_time")
    if at > now + settings.horizon_s:
        days = timedelta(seconds=settings.horizon_s).days
        raise WebRefusal(422, "too_far", f"preferred_time is more than {days} days ahead", "preferred_time")
    if window is not None and not is_open(window, when):
        raise WebRefusal(422, "outside_window", f"we call back {_hours(window)}", "preferred_time")
    return max(at, now)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _hours(cal: Calendar) -> str:
    spans = []
    for day in range(7):
        ranges = cal.hours.get(day, ())
        if ranges:
            spans.append(f"{_DAYS[day]} " + ",".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in ranges))
    return f"{'; '.join(spans) or 'never'} ({cal.timezone})"


@dataclass(frozen=True, slots=True)
class Booking:
    callback_id: str
    due_at: float | None


Book = Callable[[WebRequest, str], Booking]  # (request, client address) -> the booked callback


@dataclass
class WebCallbacks:
    """The POST handler: (status, JSON body) for a request from `client`."""

    settings: WebCallbackSettings
    book: Book
    pending: Callable[[str], bool]  # a callback already open for this number
    on_do_not_call: Callable[[str], Awaitable[bool]]
    blacklisted: Callable[[str], Awaitable[bool]]
    clock: Callable[[], float]
    refused: dict[str, int] = field(default_factory=dict)  # code -> count (metrics, tests)

    def __post_init__(self) -> None:
        self._clients = SlidingLimit(self.settings.per_client, self.settings.per_client_s)
        self._numbers = SlidingLimit(self.settings.per_number, self.settings.per_number_s)

    async def handle(self, raw: bytes, client: str) -> tuple[int, dict[str, object]]:
        try:
            booking = await self._check_and_book(raw, client)
        except WebRefusal as refusal:
            self.refused[refusal.code] = self.refused.get(refusal.code, 0) + 1
            return refusal.status, refusal.body()
        return 202, {"ok": True, "callback_id": booking.callback_id, "due_at": booking.due_at}

    async def _check_and_book(self, raw: bytes, client: str) -> Booking:
        now = self.clock()
        if not self._clients.allow(client, now):
            raise WebRefusal(429, "rate_limited", "too many requests from this address; try again later")
        fields = parse_body(raw, self.settings)
        number = check_number(fields["number"], self.settings)
        due_at = check_time(fields["preferred_time"], now, self.settings)
        if not self._numbers.allow(number, now):
            raise WebRefusal(429, "number_rate_limited", "too many requests for this number; try again later",
                             "number")
        if self.pending(number):
            raise WebRefusal(409, "already_booked", "a callback to this number is already booked", "number")
        if await self.on_do_not_call(number):
            raise WebRefusal(403, "do_not_call", "this number is on the do-not-call list", "number")
        if await self.blacklisted(number):
            raise WebRefusal(403, "refused", "callbacks to this number are refused", "number")
        return self.book(WebRequest(number, fields["name"], fields["topic"], due_at), client)
