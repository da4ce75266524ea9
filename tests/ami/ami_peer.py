"""A loopback AMI peer for link tests: answers actions with byte-exact records from the golden captures.

Not a simulator (that is pbxsim): it only replays the response (and list events) Asterisk sent for
one recorded action, with the ActionID rewritten. Knobs let a test make it silent, slow or rude.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

from ctiserver.ami.protocol import AmiParser, Message
from pbxsim.captures import RECEIVED, SENT, capture

GREETING = b"Asterisk Call Manager/11.0.0\r\n"


def recorded_reply(name: str, action_id: str, stream: str = "AMI1") -> list[bytes]:
    """Every payload Asterisk sent carrying ``ActionID: <action_id>`` on ``stream`` of capture ``name``."""
    tag = f"ActionID: {action_id}\r\n".encode()
    out = [
        r.payload
        for r in capture(name)
        if r.stream == stream and r.direction == RECEIVED and tag in r.payload
    ]
    if not out:
        raise LookupError(f"capture {name} has no reply for {action_id} on {stream}")
    return out


def recorded_action(name: str, action_id: str, stream: str = "AMI1") -> bytes:
    tag = f"ActionID: {action_id}\r\n".encode()
    for r in capture(name):
        if r.stream == stream and r.direction == SENT and tag in r.payload:
            return r.payload
    raise LookupError(f"capture {name} has no action {action_id}")


_AID = re.compile(rb"ActionID: [^\r\n]*\r\n")


def with_action_id(payload: bytes, action_id: str) -> bytes:
    return _AID.sub(b"ActionID: " + action_id.encode() + b"\r\n", payload)


# Action name -> (capture, recorded ActionID, stream). Chosen to show each response shape once.
RECORDED: dict[str, tuple[str, str, str]] = {
    "Ping": ("01", "ami1-006", "AMI1"),
    "CoreShowChannels": ("01", "ami1-011", "AMI1"),
    "Status": ("01", "ami1-012", "AMI1"),
    "QueueStatus": ("01", "ami1-004", "AMI1"),
    "Getvar": ("01", "ami1-014", "AMI1"),
    "Command": ("01", "ami1-015", "AMI1"),
    "Hangup": ("01", "ami1-016", "AMI1"),
    "Setvar": ("02", "ami1-009", "AMI1"),
    "Redirect": ("05", "ami1-003", "AMI1"),
    "Bridge": ("05", "ami1-006", "AMI1"),
    "BlindTransfer": ("06", "ami1-005", "AMI1"),
    "Atxfer": ("06", "ami1-007", "AMI1"),
    "MixMonitor": ("07", "ami1-005", "AMI1"),
    "StopMixMonitor": ("07", "ami1-006", "AMI1"),
    "MixMonitorMute": ("20", "ami1-004", "AMI1"),
    "Logoff": ("01", "ami1-018", "AMI1"),
    "PJSIPShowContacts": ("33", "contacts-2", "AMI1"),
}

# Originate outcomes by the dial string's exten (capture 05 C): answered, no answer, busy, invalid.
ORIGINATE_BY_EXTEN = {
    "noanswer": ("05", "ami1-009"),
    "busy": ("05", "ami1-010"),
    "nosuchext": ("05", "ami1-011"),
}
ORIGINATE_DEFAULT = ("05", "ami1-005")


class AmiPeer:
    """An AMI server on 127.0.0.1 speaking from the captures."""

    def __init__(
        self, *, username: str = "cti", secret: str = "ctisecret", auth_fail_delay: float = 0.0
    ) -> None:
        self.username = username
        self.secret = secret
        self.auth_fail_delay = auth_fail_delay  # Asterisk waits ~1 s (capture 01 AMI2)
        self.silent: set[str] = set()  # actions never answered
        self.custom: dict[str, Callable[[Message], list[bytes]]] = {}
        self.received: list[Message] = []
        self.raw = bytearray()
        self.connections = 0
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> AmiPeer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def close(self) -> None:
        await self.stop_listening()
        self.drop_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    def push(self, data: bytes) -> None:
        """Send raw bytes (events, junk) to every connected client."""
        for w in self._writers:
            w.write(data)

    def actions(self, name: str) -> list[Message]:
        return [m for m in self.received if m.get("Action") == name]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        writer.write(GREETING)
        parser = AmiParser(expect_greeting=False)
        try:
            while data := await reader.read(65536):
                self.raw += data
                for msg in parser.feed(data):
                    if isinstance(msg, Message):
                        self.received.append(msg)
                        if not await self._answer(msg, writer):
                            return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()

    async def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> bool:
        name, aid = msg.get("Action", ""), msg.get("ActionID", "")
        if name in self.silent:
            return True
        if name in self.custom:
            for p in self.custom[name](msg):
                writer.write(with_action_id(p, aid))
            return True
        if name == "Challenge":
            writer.write(with_action_id(recorded_reply("01", "ami3-001", "AMI3")[0], aid))
        elif name == "Login":
            ok = msg.get("Username") == self.username and (
                msg.get("Secret") == self.secret or msg.get("Key") == _md5("166739859" + self.secret)
            )
            if not ok:
                await asyncio.sleep(self.auth_fail_delay)
                writer.write(with_action_id(recorded_reply("01", "ami2-002", "AMI2")[0], aid))
                await writer.drain()
                return False  # Asterisk closes the socket after a failed login
            self.logins += 1
            writer.write(with_action_id(recorded_reply("01", "ami1-001")[0], aid))
            # FullyBooted follows the login response in every capture.
            fully_booted = next(
                r.payload for r in capture("01") if r.payload.startswith(b"Event: FullyBooted")
            )
            writer.write(fully_booted)
        elif name == "Originate":
            exten = msg.get("Channel", "").split("/", 1)[-1].split("@", 1)[0]
            cap, rec = ORIGINATE_BY_EXTEN.get(exten, ORIGINATE_DEFAULT)
            for p in recorded_reply(cap, rec):
                writer.write(with_action_id(p, aid))
        elif name in RECORDED:
            cap, rec, stream = RECORDED[name]
            for p in recorded_reply(cap, rec, stream):
                writer.write(with_action_id(p, aid))
            if name == "Logoff":
                await writer.drain()
                return False
        else:
            writer.write(b"Response: Success\r\nActionID: " + aid.encode() + b"\r\n\r\n")
        return True


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
