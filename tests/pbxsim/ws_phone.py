"""A browser-style SIP phone over a websocket (RFC 7118), for tests and benchmarks: it registers as JsSIP does
(an ``.invalid`` host in Via and Contact, ``transport=ws``), answers the 401 challenge, and hands incoming
requests to the test. Built on pbxsim.sip, so the same parser reads what the simulator and a real Asterisk send.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pbxsim import sip


class WsPhone:
    def __init__(self, ws_url: str, username: str, password: str, domain: str) -> None:
        self.ws_url, self.username, self.password, self.domain = ws_url, username, password, domain
        self.host = secrets.token_hex(6) + ".invalid"
        self.tag = sip.new_tag()
        self.call_id = secrets.token_hex(10)
        self.cseq = 0
        self.ws: ClientConnection | None = None
        self.requests: asyncio.Queue[sip.SipMessage] = asyncio.Queue()
        self._responses: asyncio.Queue[sip.SipMessage] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.on_request: Callable[[sip.SipMessage], Awaitable[None]] | None = None
        self.answers_qualify = True  # False: a frozen page, whose websocket stays open but says nothing
        self.qualified = 0  # OPTIONS answered

    async def open(self) -> None:
        self.ws = await connect(self.ws_url, subprotocols=["sip"])  # type: ignore[list-item]
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            # a connection cut under it ends the reader with ConnectionClosed: retrieved here, not at GC
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self._reader

    async def _read(self) -> None:
        assert self.ws is not None
        async for data in self.ws:
            if sip.is_keepalive(data):
                continue
            msg = sip.parse(data)
            if msg.is_request and msg.method == "OPTIONS":
                if self.answers_qualify:  # as JsSIP answers a qualify (capture 30)
                    self.qualified += 1
                    await self.send(sip.response_to(msg, 200, "OK", to_tag=sip.new_tag(), extra=[
                        ("Allow", "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE"),
                        ("Accept", "application/sdp, application/dtmf-relay"), ("Supported", "outbound")]))
            elif msg.is_request:
                await self.requests.put(msg)
            else:
                await self._responses.put(msg)

    async def send(self, msg: sip.SipMessage) -> None:
        assert self.ws is not None
        await self.ws.send(msg.to_text())

    @property
    def contact(self) -> str:
        return f"<sip:{self.username}@{self.host};transport=ws>"

    def request(self, method: str, uri: str, *, to: str, extra: list[tuple[str, str]] | None = None,
                body: bytes = b"", call_id: str | None = None, from_tag: str | None = None) -> sip.SipMessage:
        self.cseq += 1
        headers = [("Via", f"SIP/2.0/WS {self.host};branch={sip.new_branch()}"), ("Max-Forwards", "69"),
                   ("To", to), ("From", f"<sip:{self.username}@{self.domain}>;tag={from_tag or self.tag}"),
                   ("Call-ID", call_id or self.call_id), ("CSeq", f"{self.cseq} {method}")]
        return sip.SipMessage(method=method, uri=uri, headers=headers + (extra or []), body=body)

    async def final_response(self, timeout: float = 5.0) -> sip.SipMessage:
        while True:
            msg = await asyncio.wait_for(self._responses.get(), timeout)
            if msg.status >= 200:
                return msg

    async def register(self, expires: int = 300, password: str | None = None) -> sip.SipMessage:
        """REGISTER as JsSIP does (the same expiry in the Contact and in Expires), answering one 401 challenge;
        returns the final response."""
        return await self.register_as(f";expires={expires}", str(expires), password=password)

    async def register_as(self, contact_params: str, expires_header: str | None,
                          password: str | None = None) -> sip.SipMessage:
        """REGISTER with these Contact parameters (``;expires=30`` or none) and this Expires header (None: no
        header), answering one 401 challenge; returns the final response."""
        uri = f"sip:{self.domain}"
        to = f"<sip:{self.username}@{self.domain}>"
        extra = [("Contact", f"{self.contact}{contact_params}")]
        if expires_header is not None:
            extra.append(("Expires", expires_header))
        extra += [("Allow", "INVITE,ACK,CANCEL,BYE,OPTIONS,INFO,NOTIFY"), ("Supported", "path,gruu,outbound")]
        await self.send(self.request("REGISTER", uri, to=to, extra=extra))
        first = await self.final_response()
        if first.status != 401:
            return first
        auth = sip.authorization(first.get("WWW-Authenticate"), username=self.username,
                                 password=self.password if password is None else password,
                                 method="REGISTER", uri=uri)
        await self.send(self.request("REGISTER", uri, to=to, extra=extra + [("Authorization", auth)]))
        return await self.final_response()

    async def next_request(self, method: str, timeout: float = 10.0) -> sip.SipMessage:
        """The next request of ``method``; OPTIONS (qualify) are answered 200 on the way."""
        while True:
            msg = await asyncio.wait_for(self.requests.get(), timeout)
            if msg.method == "OPTIONS":
                await self.send(sip.response_to(msg, 200, "OK", to_tag=sip.new_tag()))
                continue
            if msg.method == method:
                return msg
