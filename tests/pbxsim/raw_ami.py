"""A small raw AMI client for the simulator's tests: a real socket, the lead's pure parser, no library."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ctiserver.ami.protocol import AmiParser, Message, encode_action

Predicate = Callable[[Message], bool]


class AmiClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = AmiParser()
        self.frames: list[Message] = []
        self.raw = b""
        self.n = 0

    @classmethod
    async def connect(cls, port: int) -> AmiClient:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        c = cls(r, w)
        await c.action("Login", Username="cti", Secret="ctisecret")
        return c

    async def _read(self) -> None:
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        if not data:
            raise ConnectionError("closed")
        self.raw += data
        self.frames += [f for f in self.parser.feed(data) if isinstance(f, Message)]

    async def action(self, name: str, **headers: str) -> Message:
        self.n += 1
        aid = f"t-{self.n}"
        self.writer.write(encode_action(name, aid, headers))
        while True:
            for f in self.frames:
                if f.get("ActionID") == aid and "Response" in f:
                    return f
            await self._read()

    async def wait_event(self, pred: Predicate, timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                for f in self.frames:
                    if f.get("Event") and pred(f):
                        return f
                await self._read()

    async def list_action(self, name: str, complete: str, **headers: str) -> list[Message]:
        resp = await self.action(name, **headers)
        aid = resp["ActionID"]
        done = await self.wait_event(lambda f: f.get("Event") == complete and f.get("ActionID") == aid)
        assert done["EventList"] == "Complete"
        return [f for f in self.frames if f.get("ActionID") == aid and "Event" in f and f is not done]

    def close(self) -> None:
        self.writer.close()
