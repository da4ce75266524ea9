"""Play tickets: what an <audio> element fetches instead of a session token. Pure (the clock is passed).

A browser's media element cannot send the session token, and a token in a URL would end up in logs and
history. So a console asks over its websocket to play a recording; once the right is checked and the
playback audited, it gets a ticket: a random name for one file, for one session, for a few minutes. The
HTTP side redeems it and checks that the session still stands.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ctiserver.gateway.auth import Principal

MediaKind = Literal["recording", "voicemail"]


@dataclass(frozen=True, slots=True)
class Grant:
    kind: MediaKind
    call_id: str
    path: Path
    who: Principal
    expires_at: float


class Tickets:
    def __init__(self, ttl_s: float = 300.0, max_live: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_live = max_live  # a bound on memory: the oldest go first
        self._live: OrderedDict[str, Grant] = OrderedDict()

    def issue(self, kind: MediaKind, call_id: str, path: Path, who: Principal, now: float) -> str:
        self._expire(now)
        ticket = secrets.token_urlsafe(24)
        self._live[ticket] = Grant(kind, call_id, path, who, now + self.ttl_s)
        while len(self._live) > self.max_live:
            self._live.popitem(last=False)
        return ticket

    def redeem(self, ticket: str, now: float) -> Grant | None:
        grant = self._live.get(ticket)
        if grant is None or grant.expires_at <= now:
            return None
        return grant

    def _expire(self, now: float) -> None:
        while self._live:
            first = next(iter(self._live.values()))
            if first.expires_at > now:
                break
            self._live.popitem(last=False)
