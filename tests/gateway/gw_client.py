"""A console client for tests: a real websocket, every server message checked against the schema."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from ctiserver.gateway.schema import validate_server

Msg = dict[str, Any]


class ConsoleClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last_seq = 0
        self.stream: str | None = None
        self.token: str | None = None
        self.seen: list[Msg] = []
        self._ids = itertools.count(1)
        self._backlog: list[Msg] = []

    @classmethod
    async def open(cls, ws_url: str) -> ConsoleClient:
        client = cls(await connect(ws_url, open_timeout=5, close_timeout=2))
        hello = await client.next()
        assert hello["type"] == "hello", hello
        return client

    async def close(self) -> None:
        await self.ws.close()

    async def next(self, timeout: float = 5.0) -> Msg:
        if self._backlog:
            return self._backlog.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg = json.loads(raw)
        problem = validate_server(msg)
        assert problem is None, (problem, msg)
        if "seq" in msg:
            # Within a stream, seq only ever grows by one; a snapshot sets the base.
            if msg["type"] == "snapshot":
                self.stream = msg["stream"]
            else:
                assert msg["seq"] == self.last_seq + 1, (self.last_seq, msg)
            self.last_seq = msg["seq"]
        self.seen.append(msg)
        return msg

    async def wait_for(self, pred: Callable[[Msg], bool] | str, timeout: float = 5.0) -> Msg:
        """The first message matching `pred` (a type name or a predicate); others stay in the backlog."""
        test = (lambda m: m["type"] == pred) if isinstance(pred, str) else pred
        for i, msg in enumerate(self._backlog):
            if test(msg):
                return self._backlog.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        skipped: list[Msg] = []
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"no message matching {pred!r}; got {[m['type'] for m in skipped]}")
                msg = await self.next(left)
                if test(msg):
                    return msg
                skipped.append(msg)
        finally:
            self._backlog.extend(skipped)

    async def send(self, kind: str, **fields: Any) -> int:
        msg_id = next(self._ids)
        await self.ws.send(json.dumps({"v": 1, "type": kind, "id": msg_id, **fields}))
        return msg_id

    async def request(self, kind: str, **fields: Any) -> Msg:
        msg_id = await self.send(kind, **fields)
        return await self.wait_for(lambda m: m.get("re") == msg_id)

    async def login(self, username: str, password: str) -> Msg:
        reply = await self.request("auth", username=username, password=password)
        assert reply["type"] == "auth_ok", reply
        self.token = reply["token"]
        await self.wait_for("snapshot")
        return reply

    async def collect(self, seconds: float) -> list[Msg]:
        """Everything that arrives within `seconds` (after what was already in the backlog)."""
        out = self.drain()
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                out.append(await self.next(left))
            except TimeoutError:
                break
        return out

    def drain(self) -> list[Msg]:
        out, self._backlog = self._backlog, []
        return out
