"""The console's pages and assets, served over plain HTTP on the gateway's port.

Files are read once at start (a few hundred KiB) so a request never touches the disk on the
event loop. Every response carries a strict Content-Security-Policy: scripts and styles only
from this origin, no inline script, no eval, no framing, websocket only back to this origin.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; media-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def csp(connect: tuple[str, ...] = ()) -> str:
    """The policy, with the websockets the pages may open besides their own origin (the PBX's SIP websocket
    for the console's phone): named one by one, never a wildcard."""
    if not connect:
        return CSP
    return CSP.replace("connect-src 'self'", "connect-src 'self' " + " ".join(connect))

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
PAGES = {"/agent": "agent.html", "/supervisor": "supervisor.html", "/admin": "admin.html"}
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "agent_console"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


class StaticSite:
    def __init__(self, root: Path = DEFAULT_ROOT, connect: tuple[str, ...] = ()) -> None:
        self.root = root
        self.csp = csp(connect)
        self._assets: dict[str, Asset] = {}
        for url, name in PAGES.items():
            self._assets[url] = self._load(root / name)
        static = root / "static"
        for path in sorted(static.rglob("*")):
            if path.is_file() and path.suffix in CONTENT_TYPES:
                self._assets["/static/" + path.relative_to(static).as_posix()] = self._load(path)

    @staticmethod
    def _load(path: Path) -> Asset:
        return Asset(path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream"))

    def paths(self) -> list[str]:
        return sorted(self._assets)

    def respond(self, raw_path: str) -> Response:
        path = raw_path.split("?", 1)[0].split("#", 1)[0]
        if path == "/":
            return http_response(302, "Found", b"", "text/plain; charset=utf-8", {"Location": "/agent"})
        if path == "/healthz":
            return http_response(200, "OK", b"ok\n", "text/plain; charset=utf-8")
        # Only the preloaded names exist: "..", "%2e%2e" and friends simply miss.
        asset = self._assets.get(path)
        if asset is None:
            return http_response(404, "Not Found", b"not found\n", "text/plain; charset=utf-8")
        return http_response(200, "OK", asset.body, asset.content_type, policy=self.csp)


def http_response(status: int, reason: str, body: bytes, content_type: str,
              extra: dict[str, str] | None = None, *, policy: str = CSP) -> Response:
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Content-Security-Policy"] = policy  # one header: a second one would narrow the first
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cache-Control"] = "no-cache"
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, reason, headers, body)
