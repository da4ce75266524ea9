"""The web callback API's pure parts: the rate limit's window and memory bound, the request head parser."""

from __future__ import annotations

import pytest

from ctiserver.gateway.posts import BadRequest, parse_head, response
from ctiserver.outbound.web import SlidingLimit, WebCallbackSettings, WebRefusal, check_number, parse_body


def test_sliding_limit_counts_within_its_window_only() -> None:
    limit = SlidingLimit(2, 10.0)
    assert [limit.allow("a", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limit.allow("b", 2.0)  # another key has its own count
    assert limit.allow("a", 10.5)  # the first one left the window


def test_sliding_limit_memory_is_bounded() -> None:
    limit = SlidingLimit(1, 60.0, max_keys=100)
    for i in range(10_000):
        limit.allow(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limit._seen) == 100


def test_numbers() -> None:
    web = WebCallbackSettings(countries=("CN",))
    assert check_number("139 1234 5678", web) == "+8613912345678"
    for raw, code in (("12345", "invalid_number"), ("+14155552671", "foreign_number"), ("x", "invalid_number")):
        with pytest.raises(WebRefusal) as refused:
            check_number(raw, web)
        assert refused.value.code == code


def test_body_limits() -> None:
    web = WebCallbackSettings(max_body=100)
    with pytest.raises(WebRefusal) as refused:
        parse_body(b'{"number": "' + b"1" * 200 + b'"}', web)
    assert (refused.value.status, refused.value.code) == (413, "too_large")
    assert parse_body(b'{"number": " 139 ", "name": null}', web) == {"number": "139", "name": "", "topic": "",
                                                                      "preferred_time": ""}


def test_request_head() -> None:
    head = parse_head(b"POST /api/callback?x=1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12")
    assert (head.method, head.path, head.length, head.headers["content-type"]) == \
        ("POST", "/api/callback", 12, "application/json")
    for bad in (b"GARBAGE", b"POST /x HTTP/2\r\n", b"POST /x HTTP/1.1\r\nNo colon here", b"POST /x HTTP/1.1\r\n \x80"):
        with pytest.raises(BadRequest):
            parse_head(bad)
    with pytest.raises(BadRequest) as no_length:
        _ = parse_head(b"POST /x HTTP/1.1\r\nHost: a").length
    assert no_length.value.status == 411


def test_response_is_closed_json() -> None:
    raw = response(202, {"ok": True})
    assert raw.startswith(b"HTTP/1.1 202 Accepted\r\n") and b"Connection: close" in raw and raw.endswith(b'{"ok": true}')
