"""A TCP relay between the CTI and the PBX simulator, for faults a real PBX shows by its timing.

`coalesce_s` holds what the PBX sends for that long and passes it on in one write: an action's answer and
the events that follow it within a few milliseconds then reach the CTI in one read, as they can from a real
Asterisk (capture 25: a Hangup action's `Response` and the leg's `Hangup` event 1 ms apart). Everything the
CTI sends is kept in `sent` (bytes), to read its actions back.
"""

from __future__ import annotations

import asyncio
import contextlib

from ctiserver.ami.protocol import AmiParser, Message


class AmiRelay:
    def __init__(self, pbx_port: int, *, coalesce_s: float = 0.0) -> None:
        self.pbx_port = pbx_port
        self.coalesce_s = coalesce_s
        self.sent = bytearray()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def actions(self, name: str) -> list[Message]:
        """The actions of that name the CTI sent, in order."""
        frames = AmiParser(expect_greeting=False).feed(bytes(self.sent))
        return [f for f in frames if isinstance(f, Message) and f.get("Action") == name]

    async def _session(self, cti_r: asyncio.StreamReader, cti_w: asyncio.StreamWriter) -> None:
        pbx_r, pbx_w = await asyncio.open_connection("127.0.0.1", self.pbx_port)
        up = asyncio.ensure_future(self._pump(cti_r, pbx_w, record=True))
        down = asyncio.ensure_future(self._pump(pbx_r, cti_w, record=False))
        for task in (up, down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (pbx_w, cti_w):
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool) -> None:
        while data := await reader.read(65536):
            if record:
                self.sent += data
            elif self.coalesce_s:
                await asyncio.sleep(self.coalesce_s)
                while True:  # what else arrived meanwhile goes in the same write
                    try:
                        more = await asyncio.wait_for(reader.read(65536), 0.001)
                    except TimeoutError:
                        break
                    if not more:
                        break
                    data += more
            writer.write(data)
            await writer.drain()
