"""HTTP POST endpoints that pages outside the centre call (the web callback API). The console's port serves
GET and the websocket only (the websockets library parses GET requests alone), so posts get a listener of
their own: one request per connection, explicit size limits and a deadline, JSON in and out.

`parse_head` is pure (bytes in, a request head out); `PostServer` is the asyncio edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

HEAD_LIMIT = 8192  # a security limit: request line and headers
BODY_LIMIT = 16384  # a security limit: the handler may refuse smaller bodies itself
DEADLINE_S = 5.0  # the whole request must arrive within this

Handler = Callable[[bytes, str], Awaitable[tuple[int, dict[str, object]]]]  # (body, client) -> (status, JSON)

_REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error"}


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names

    @property
    def length(self) -> int:
        raw = self.headers.get("content-length")
        if raw is None:
            if self.method == "POST":
                raise BadRequest(411, "length_required", "a POST needs Content-Length")
            return 0
        if not raw.isdigit():
            raise BadRequest(400, "bad_request", "Content-Length is not a number")
        return int(raw)


def parse_head(data: bytes) -> RequestHead:
    """The request line and headers (everything before the blank line), or BadRequest."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "bad_request", "request head is not ASCII") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad_request", "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise BadRequest(400, "bad_request", "malformed header line")
        headers[name.lower()] = value.strip()
    return RequestHead(method, target.split("?", 1)[0], headers)


def response(status: int, body: dict[str, object] | None, extra: Mapping[str, str] | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Connection: close", "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff", f"Content-Length: {len(payload)}"]
    if body is not None:
        head.append("Content-Type: application/json; charset=utf-8")
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload


class PostServer:
    """Routes POST <path> to its handler. `allow_origins`: pages allowed to post from a browser (CORS);
    others get no Access-Control-Allow-Origin, so their browser keeps the answer from them."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Handler], *,
                 allow_origins: tuple[str, ...] = ()) -> None:
        self.host, self._port = host, port
        self.routes = dict(routes)
        self.allow_origins = frozenset(allow_origins)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self._port, limit=HEAD_LIMIT)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        try:
            status, body, extra = await asyncio.wait_for(self._serve(reader, client), DEADLINE_S)
        except TimeoutError:
            status, body, extra = 408, {"ok": False, "error": "timeout", "message": "the request took too long"}, {}
        except BadRequest as e:
            status, body, extra = e.status, {"ok": False, "error": e.code, "message": e.message}, {}
        except Exception:
            log.exception("POST from %s failed", client)
            status, body, extra = 500, {"ok": False, "error": "internal", "message": "try again later"}, {}
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(response(status, body, extra))
            await asyncio.wait_for(writer.drain(), 2.0)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader,
                     client: str) -> tuple[int, dict[str, object] | None, dict[str, str]]:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise BadRequest(431, "too_large", "request head too large") from None
        except asyncio.IncompleteReadError:
            raise BadRequest(400, "bad_request", "the request ended early") from None
        head = parse_head(raw[:-4])
        cors = self._cors(head)
        handler = self.routes.get(head.path)
        if handler is None:
            return 404, {"ok": False, "error": "not_found", "message": f"no endpoint {head.path}"}, cors
        if head.method == "OPTIONS":  # a browser's preflight before a JSON POST from another origin
            return 204, None, {**cors, "Access-Control-Allow-Methods": "POST",
                               "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}
        if head.method != "POST":
            return 405, {"ok": False, "error": "method", "message": "use POST"}, {**cors, "Allow": "POST"}
        if not head.headers.get("content-type", "").lower().startswith("application/json"):
            return 415, {"ok": False, "error": "content_type", "message": "send application/json"}, cors
        length = head.length
        if length > BODY_LIMIT:
            raise BadRequest(413, "too_large", f"the body is over {BODY_LIMIT} bytes")
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise BadRequest(400, "bad_request", "the body ended early") from None
        status, answer = await handler(body, client)
        return status, answer, cors

    def _cors(self, head: RequestHead) -> dict[str, str]:
        origin = head.headers.get("origin", "")
        if origin and origin in self.allow_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}
