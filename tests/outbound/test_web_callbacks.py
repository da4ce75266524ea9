"""The web callback API on the real site (its own HTTP listener on loopback, the CTI server, the seeded
SQLite CRM): what a company web page posts, and every refusal as one clear JSON error with nothing booked:
a flood from one address, invalid and foreign numbers, a blacklisted customer, a do-not-call number, a time
outside the calling window, a number already waiting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctiserver.outbound.web import WebCallbackSettings
from ivr_flows.model import Calendar
from tests.gateway.gw_harness import HOSTILE_CALLER, AppSite, app_site

TZ = "Asia/Shanghai"
OFFICE = Calendar("office", TZ, {d: ((time(9), time(18)),) for d in range(5)}, frozenset(), (1, 1))
WEB = WebCallbackSettings(queue="sales", countries=("CN",), per_number=2, per_client=100, window=None)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AppSite]:
    async with app_site(tmp_path, web_api_port=0, web_callbacks=WEB) as s:
        yield s


async def post(site: AppSite, body: object, *, content_type: str = "application/json", method: str = "POST",
               raw: bytes | None = None, origin: str = "") -> tuple[int, dict[str, str], dict[str, object]]:
    assert site.server.posts is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", site.server.posts.port)
    payload = raw if raw is not None else json.dumps(body).encode()
    head = [f"{method} /api/callback HTTP/1.1", "Host: cti.example.com", f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}"] + ([f"Origin: {origin}"] if origin else [])
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head_text, _, body_bytes = answer.partition(b"\r\n\r\n")
    lines = head_text.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body_bytes) if body_bytes else {}


def booked(site: AppSite) -> list[str]:
    return [cb.number for cb in site.server.projector.callbacks.callbacks.values() if cb.source == "web"]


async def test_a_request_is_booked_and_journaled(site: AppSite) -> None:
    status, headers, body = await post(site, {"number": "13912345678", "name": "王芳", "topic": "invoice 42"})
    assert status == 202 and body["ok"] is True and body["callback_id"] == "cb-1", body
    assert headers["content-type"].startswith("application/json")
    cb = site.server.projector.callbacks.get("cb-1")
    assert cb is not None and (cb.number, cb.name, cb.topic, cb.queue, cb.requested_by) == \
        ("+8613912345678", "王芳", "invoice 42", "sales", "127.0.0.1")
    await site.server.journal.durable(site.server.journal.last_seq, timeout=5)
    rows = site.crm_rows("SELECT body FROM journal WHERE kind = 'callback.booked'")
    assert json.loads(rows[0]["body"])["source"] == "web"


async def test_invalid_numbers_are_refused(site: AppSite) -> None:
    for number in ("12345", "not a number", "+86 139", "1391234567899999"):
        status, _, body = await post(site, {"number": number})
        assert (status, body["error"], body["field"]) == (422, "invalid_number", "number"), (number, body)
        assert body["message"]
    assert booked(site) == []


async def test_foreign_numbers_are_refused_unless_allowed(tmp_path: Path) -> None:
    async with app_site(tmp_path, web_api_port=0, web_callbacks=WEB) as site:
        status, _, body = await post(site, {"number": "+14155552671"})
        assert (status, body["error"]) == (422, "foreign_number") and "US" in str(body["message"])
        assert booked(site) == []
    (tmp_path / "b").mkdir()
    async with app_site(tmp_path / "b", web_api_port=0,
                        web_callbacks=replace(WEB, countries=("CN", "US"))) as site:
        status, _, body = await post(site, {"number": "+14155552671"})
        assert status == 202 and booked(site) == ["+14155552671"]


async def test_blacklisted_and_do_not_call_numbers_are_refused(site: AppSite) -> None:
    status, _, body = await post(site, {"number": HOSTILE_CALLER})
    assert (status, body["error"]) == (403, "refused")
    await site.server.crm.add_do_not_call("13955554444", "asked not to be called")
    status, _, body = await post(site, {"number": "+86 139 5555 4444"})
    assert (status, body["error"]) == (403, "do_not_call")
    assert booked(site) == []


async def test_a_flood_from_one_address_books_no_more_than_its_limit(tmp_path: Path) -> None:
    async with app_site(tmp_path, web_api_port=0, web_callbacks=replace(WEB, per_client=5)) as site:
        answers = await asyncio.gather(*(post(site, {"number": f"139000{i:05d}"}) for i in range(60)))
        statuses = sorted(a[0] for a in answers)
        assert statuses.count(202) == 5 and statuses.count(429) == 55
        assert {a[2]["error"] for a in answers if a[0] == 429} == {"rate_limited"}
        assert len(booked(site)) == 5
        # The junk counts too: a flood of bad requests cannot buy time for good ones.
        status, _, body = await post(site, {"number": "13900000099"})
        assert (status, body["error"]) == (429, "rate_limited")


async def test_one_number_is_booked_once_and_rate_limited(site: AppSite) -> None:
    assert (await post(site, {"number": "13911112222"}))[0] == 202
    status, _, body = await post(site, {"number": "+8613911112222"})
    assert (status, body["error"]) == (409, "already_booked")
    status, _, body = await post(site, {"number": "13911112222"})
    assert (status, body["error"]) == (429, "number_rate_limited")  # per_number: 2 requests a day
    assert booked(site) == ["+8613911112222"]


def _next(weekday: int, hour: int) -> datetime:
    now = datetime.now(ZoneInfo(TZ))
    day = now + timedelta(days=(weekday - now.weekday()) % 7 or 7)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


async def test_calling_window(tmp_path: Path) -> None:
    async with app_site(tmp_path, web_api_port=0, web_callbacks=replace(WEB, window=OFFICE)) as site:
        sunday = _next(6, 10)
        status, _, body = await post(site, {"number": "13911113333", "preferred_time": sunday.isoformat()})
        assert (status, body["error"], body["field"]) == (422, "outside_window", "preferred_time")
        assert "Mon 09:00-18:00" in str(body["message"]) and TZ in str(body["message"])
        night = _next(1, 22).replace(tzinfo=None).isoformat()  # no zone: the site's time
        status, _, body = await post(site, {"number": "13911113333", "preferred_time": night})
        assert (status, body["error"]) == (422, "outside_window")
        tuesday = _next(1, 10)
        status, _, body = await post(site, {"number": "13911113333", "preferred_time": tuesday.isoformat()})
        assert status == 202 and body["due_at"] == tuesday.timestamp()
        assert site.server.projector.callbacks.get(str(body["callback_id"])).due_at == tuesday.timestamp()  # type: ignore[union-attr]
        status, _, body = await post(site, {"number": "13911114444", "preferred_time": "2020-01-01T10:00+08:00"})
        assert (status, body["error"]) == (422, "past_time")
        assert booked(site) == ["+8613911113333"]


async def test_bad_requests_get_one_clear_json_error(site: AppSite) -> None:
    cases = [
        ({"raw": b"{not json"}, 400, "bad_json"),
        ({"raw": b"[1, 2]"}, 400, "bad_json"),
        ({"body": {"number": "13912345678", "admin": True}}, 400, "unknown_field"),
        ({"body": {"number": 13912345678}}, 400, "bad_field"),
        ({"body": {"name": "no number"}}, 400, "missing_field"),
        ({"body": {"number": "13912345678", "name": "x\r\nAction: Originate"}}, 400, "bad_field"),
        ({"body": {"number": "13912345678", "name": "x" * 81}}, 400, "bad_field"),
        ({"body": {"number": "13912345678", "preferred_time": "tomorrow"}}, 400, "bad_time"),
        ({"body": {"number": "13912345678"}, "content_type": "text/plain"}, 415, "content_type"),
        ({"body": {"number": "13912345678"}, "method": "PUT"}, 405, "method"),
        ({"raw": b"x" * 20000}, 413, "too_large"),
    ]
    for kwargs, status, error in cases:
        got, _, body = await post(site, kwargs.pop("body", None), **kwargs)  # type: ignore[arg-type]
        assert (got, body.get("error")) == (status, error), (kwargs, body)
    assert booked(site) == []


async def test_cors_only_for_the_configured_pages(tmp_path: Path) -> None:
    web = replace(WEB, allow_origins=("https://www.example.com",))
    async with app_site(tmp_path, web_api_port=0, web_callbacks=web) as site:
        _, headers, _ = await post(site, {"number": "13912340000"}, origin="https://www.example.com")
        assert headers["access-control-allow-origin"] == "https://www.example.com"
        _, headers, _ = await post(site, {"number": "13912340001"}, origin="https://evil.example.net")
        assert "access-control-allow-origin" not in headers
        status, headers, _ = await post(site, None, raw=b"", method="OPTIONS", origin="https://www.example.com")
        assert status == 204 and headers["access-control-allow-methods"] == "POST"
