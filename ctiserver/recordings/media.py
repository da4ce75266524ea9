"""Audio over the gateway's HTTP port: GET /media/<kind>/<ticket>, with byte ranges (media elements ask
for `Range: bytes=0-` and seek with more). Nothing here trusts the URL beyond the ticket's name: the
file comes from the grant, the session is checked again, and the grant's kind must match the URL's."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path

from websockets.http11 import Request, Response

from ctiserver.gateway.auth import Principal
from ctiserver.gateway.static import http_response

from .tickets import Tickets

log = logging.getLogger(__name__)

PREFIX = "/media/"
_URL = re.compile(r"/media/(recording|voicemail)/([A-Za-z0-9_-]{16,64})")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_BYTES = 64 * 1024 * 1024  # a recording larger than this is not served in one piece of memory


def media_url(kind: str, ticket: str) -> str:
    return f"{PREFIX}{kind}/{ticket}"


class MediaSite:
    def __init__(self, tickets: Tickets, clock: Callable[[], float],
                 session_ok: Callable[[Principal], bool]) -> None:
        self.tickets = tickets
        self.clock = clock
        self.session_ok = session_ok

    async def respond(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        m = _URL.fullmatch(path)
        grant = self.tickets.redeem(m.group(2), self.clock()) if m else None
        if m is None or grant is None or grant.kind != m.group(1):
            return _text(404, "Not Found", "no such recording (or the link expired: press play again)")
        if not self.session_ok(grant.who):
            return _text(403, "Forbidden", "your session has ended")
        try:
            data = await asyncio.to_thread(_read, grant.path)
        except OSError:
            log.warning("%s of call %s is gone: %s", grant.kind, grant.call_id, grant.path)
            return _text(404, "Not Found", "the recording file is gone")
        return ranged(data, request.headers.get("Range"))


def _read(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_BYTES + 1)[:MAX_BYTES]


def ranged(data: bytes, header: str | None) -> Response:
    """200 with the whole file, or 206 with the asked range, or 416 when it lies outside."""
    extra = {"Accept-Ranges": "bytes"}
    m = _RANGE.fullmatch(header.strip()) if header else None
    if m is None or not (m.group(1) or m.group(2)):
        return http_response(200, "OK", data, "audio/wav", extra)
    size = len(data)
    if m.group(1):
        start = int(m.group(1))
        stop = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
    else:  # the last N bytes
        start, stop = max(0, size - int(m.group(2))), size - 1
    if start >= size or stop < start:
        return http_response(416, "Range Not Satisfiable", b"", "audio/wav",
                             {**extra, "Content-Range": f"bytes */{size}"})
    return http_response(206, "Partial Content", data[start:stop + 1], "audio/wav",
                         {**extra, "Content-Range": f"bytes {start}-{stop}/{size}"})


def _text(status: int, reason: str, message: str) -> Response:
    return http_response(status, reason, (message + "\n").encode(), "text/plain; charset=utf-8")
