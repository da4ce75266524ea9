"""cti.yaml's outbound sections, checked as a whole: `callbacks:` (callbacks as tasks), `web_callbacks:` (the web
callback API: its port, rate limits, calling window, countries) and `click_to_call:` (the tracked click-to-call).
The dialer's `dialer:` is read by ctiserver/dialer/settings.py the same way.

Every bad value is one `BadOutboundSetting` line naming the field (`web_callbacks.per_client: ...`); the
config loader adds the file and line. Defaults are the dataclasses' own: a missing key changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from crmstore.campaigns import CampaignError, parse_clock, parse_days
from ivr_flows.model import Calendar

from ..projections.callbacks import RetryRule
from .callbacks import CallbackSettings
from .dialling import DialSettings
from .web import WebCallbackSettings


class BadOutboundSetting(ValueError):
    """One line naming the field of cti.yaml that is wrong, and why."""


_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_CALLER_ID = re.compile(r"\+?[0-9]{1,20}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_DAY_S = 86_400.0


def _mapping(raw: object, where: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise BadOutboundSetting(f"{where}: must be a mapping ({', '.join(known)})")
    for key in raw:
        if key not in known:
            raise BadOutboundSetting(f"{where}.{key}: unknown setting ({', '.join(known)})")
    return raw


def _seconds(lo: float, hi: float) -> Callable[[object, str], float]:
    def check(value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise BadOutboundSetting(f"{where}: must be a number of seconds from {lo:g} to {hi:g}, not {value!r}")
        return float(value)
    return check


def _whole(lo: int, hi: int) -> Callable[[object, str], int]:
    def check(value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise BadOutboundSetting(f"{where}: must be a whole number from {lo} to {hi}, not {value!r}")
        return value
    return check


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not _TEXT.fullmatch(value.strip()):
        raise BadOutboundSetting(f"{where}: must be one line of text, not {value!r}")
    return value.strip()


def _caller_id(value: object, where: str) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _CALLER_ID.fullmatch(text):
        raise BadOutboundSetting(f"{where}: must be digits (a leading + allowed), not {value!r}")
    return text


def _region(value: object, where: str) -> str:
    if not isinstance(value, str) or value.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise BadOutboundSetting(f"{where}: {value!r} is not a country code such as CN, GB or US")
    return value.strip().upper()


def _regions(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else None
    if not items:
        raise BadOutboundSetting(f"{where}: list the countries whose numbers are called back, such as [CN]")
    return tuple(_region(v, f"{where}[{i}]") for i, v in enumerate(items))


def _origins(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadOutboundSetting(f"{where}: must be a list of web origins such as https://www.example.com")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not _ORIGIN.fullmatch(v):
            raise BadOutboundSetting(f"{where}[{i}]: {v!r} is not an origin such as https://www.example.com "
                                     "(scheme and host, an optional port, no path)")
    return tuple(value)


def _read(raw: Mapping[str, Any], where: str, checks: Mapping[str, Callable[[object, str], object]]
          ) -> dict[str, object]:
    return {key: checks[key](value, f"{where}.{key}") for key, value in raw.items() if key in checks}


# ---------------------------------------------------------------------------------------------- callbacks

_RETRY = {"max_attempts": _whole(1, 20), "busy_s": _seconds(60, 7 * _DAY_S),
          "no_answer_s": _seconds(60, 7 * _DAY_S), "failed_s": _seconds(60, 7 * _DAY_S)}
_CALLBACKS = {"queue": _text, "customer_ring_s": _seconds(15, 300), "context": _text, "caller_id_num": _caller_id,
              "idle_check_s": _seconds(0.1, 60)}


def callback_settings_from(raw: object, where: str = "callbacks") -> CallbackSettings:
    """cti.yaml's `callbacks:` section."""
    section = _mapping(raw, where, (*_CALLBACKS, "retry"))
    values = _read(section, where, _CALLBACKS)
    retry = RetryRule()
    if "retry" in section:
        rule = _mapping(section["retry"], f"{where}.retry", tuple(_RETRY))
        retry = RetryRule(**_read(rule, f"{where}.retry", _RETRY))  # type: ignore[arg-type]
    return CallbackSettings(**values, retry=retry)  # type: ignore[arg-type]


_CLICK = {"agent_ring_s": _seconds(5, 120), "customer_ring_s": _seconds(15, 300), "context": _text,
          "caller_id_num": _caller_id}


def click_to_call_settings_from(raw: object, where: str = "click_to_call") -> DialSettings:
    """cti.yaml's `click_to_call:` section (the tracked click-to-call's rings and caller ID)."""
    return DialSettings(**_read(_mapping(raw, where, tuple(_CLICK)), where, _CLICK))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ web callbacks

def _window(raw: object, where: str) -> Calendar:
    """{timezone: Asia/Shanghai, hours: {mon-fri: [09:00-18:00], sat: [10:00-16:00]}, holidays: [2026-10-01]}:
    the flows' calendar shape."""
    section = _mapping(raw, where, ("timezone", "hours", "holidays"))
    zone = section.get("timezone")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadOutboundSetting(f"{where}.timezone: {zone!r} is not a time zone such as Asia/Shanghai") from None
    hours_raw = section.get("hours")
    if not isinstance(hours_raw, dict) or not hours_raw:
        raise BadOutboundSetting(f"{where}.hours: give the hours per day, such as {{mon-fri: [09:00-18:00]}}")
    hours: dict[int, list[tuple[time, time]]] = {}
    for days, spans in hours_raw.items():
        at = f"{where}.hours.{days}"
        for span in spans if isinstance(spans, list) else [spans]:
            start, sep, end = str(span).partition("-")
            try:
                opens, closes = parse_clock(start, at), parse_clock(end, at) if sep else None
                day_set = parse_days(days, at)
            except CampaignError as e:
                raise BadOutboundSetting(str(e)) from None
            if closes is None or closes <= opens:
                raise BadOutboundSetting(f"{at}: {span!r} is not a range such as 09:00-18:00")
            for day in day_set:
                hours.setdefault(day, []).append((opens, closes))
    holidays = set()
    for i, day in enumerate(section.get("holidays") or []):
        try:
            holidays.add(day if isinstance(day, date) else date.fromisoformat(str(day)))
        except ValueError:
            raise BadOutboundSetting(f"{where}.holidays[{i}]: {day!r} is not a date such as 2026-10-01") from None
    return Calendar(where, str(zone), {d: tuple(v) for d, v in hours.items()}, frozenset(holidays), (1, 1))


_WEB = {"queue": _text, "countries": _regions, "default_country": _region, "per_number": _whole(1, 1000),
        "per_number_s": _seconds(1, 30 * _DAY_S), "per_client": _whole(1, 100_000),
        "per_client_s": _seconds(1, 30 * _DAY_S), "window": _window, "horizon_s": _seconds(60, 90 * _DAY_S),
        "max_body": _whole(256, 1 << 20), "allow_origins": _origins}


def web_callback_settings_from(raw: object, default_country: str = "CN", where: str = "web_callbacks"
                               ) -> tuple[int | None, WebCallbackSettings]:
    """cti.yaml's `web_callbacks:` section: (the API's port, None: not served; its settings). Numbers without
    +country code are read as the CRM's default country, which is also the only one called back, unless
    the section says otherwise."""
    section = _mapping(raw, where, ("port", *_WEB))
    port = _whole(1, 65535)(section["port"], f"{where}.port") if "port" in section else None
    values = _read(section, where, _WEB)
    values.setdefault("default_country", default_country)
    values.setdefault("countries", (values["default_country"],))
    return port, WebCallbackSettings(**values)  # type: ignore[arg-type]
