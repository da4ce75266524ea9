"""One AMI link to one Asterisk: connect, log in, resync, route responses and events, keep alive, reconnect.

Why our own layer and not panoramisk 1.4 (tried first): panoramisk's Manager has no
per-action timeout (a lost response hangs the caller forever), its Ping never checks the Pong (a half-open TCP
link goes unnoticed until the kernel gives up, minutes later), it reconnects after a fixed 2 s (a restarted
Asterisk gets every CTI at once, forever every 2 s while it is down), its FastAGI routes must be
coroutines and its ``testing`` module patches module globals. Its parser also costs: with its dispatch it
reaches about 66,000-86,000 events/s (measured), against 100,000+ needed. Wrapping it would mean
re-implementing the action tracking, the keepalive and the reconnect around it, so what would be left of
panoramisk is the socket.

So this module is a thin ``asyncio.Protocol`` over the pure parser in ``protocol.py`` (the h11/websockets
split): ``data_received`` feeds bytes to ``AmiParser`` and dispatches each frame synchronously. Nothing on the
read path awaits, so a slow consumer can never stall the socket (Asterisk drops a reader that falls behind
its write timeout; README 09 measured bursts of ~18,000 events/s). Everything that waits (actions, list
actions, Originate, the keepalive, the resync) runs in tasks owned by the link, each with a timeout.

Routing rules (all by ``ActionID``, which Asterisk echoes):
* a message with ``Event`` whose ActionID belongs to a pending *list* action (CoreShowChannels, Status,
  QueueStatus ...) is collected for that action, not published; the ``EventList: Complete`` event ends it;
* every other event is published to the ``on_event`` handlers, in wire order; ``OriginateResponse`` is also
  handed to the ``originate()`` call that sent it (the only reliable action->channel mapping, README 09);
* a message with ``Response`` (and no ``Event``) completes the pending action with that ActionID; a response
  nobody waits for any more (its action timed out) is dropped with a debug line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import itertools
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .errors import ActionTimeout, AmiActionError, AmiAuthError, AmiError, LinkDown
from .protocol import (
    MAX_FRAME,
    AmiParser,
    AmiProtocolError,
    Greeting,
    HeaderValue,
    MalformedFrame,
    Message,
    RichMessage,
    encode_action,
)

log = logging.getLogger(__name__)

EventHandler = Callable[[Message], object]
ResyncHook = Callable[["AmiLink"], Awaitable[None]]
Headers = Mapping[str, HeaderValue] | None


class LinkState(enum.Enum):
    STOPPED = "stopped"  # not started yet
    CONNECTING = "connecting"  # TCP connect + greeting (also: waiting to retry)
    AUTHENTICATING = "authenticating"
    SYNCING = "syncing"  # logged in, resync hook running; actions allowed
    UP = "up"
    AUTH_FAILED = "auth_failed"  # terminal: credentials refused
    CLOSED = "closed"  # terminal: close() called


_LOGGED_IN = (LinkState.SYNCING, LinkState.UP)


class _ListCollector:
    __slots__ = ("done", "events")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Message] = []
        self.done: asyncio.Future[None] = loop.create_future()


class AmiConnection(asyncio.Protocol):
    """One TCP connection. Owns the parser and the actions pending on this connection only: when the
    connection goes, they fail with LinkDown (they cannot be answered on the next one)."""

    def __init__(self, link: AmiLink, loop: asyncio.AbstractEventLoop, max_frame: int,
                 ignore: frozenset[str] = frozenset()) -> None:
        self._link = link
        self._loop = loop
        self._parser = AmiParser(max_frame=max_frame, ignore=ignore)
        self.transport: asyncio.Transport | None = None
        self.greeting: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()  # result: why the connection ended
        self.pending: dict[str, asyncio.Future[Message]] = {}
        self.lists: dict[str, _ListCollector] = {}
        self.originates: dict[str, asyncio.Future[Message]] = {}
        self._abort_reason: str | None = None
        self.frames_in = 0
        self.malformed = 0

    # ---------------------------------------------------------------- asyncio.Protocol (the read path)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._parser.feed(data)
        except AmiProtocolError as exc:
            # An oversized frame or a non-AMI peer: the stream can't be trusted past this point. Drop the
            # link; the reconnect's resync rebuilds the state.
            log.error("AMI %s: %s; dropping the link to resync", self._link.name, exc)
            self.abort(f"protocol error: {exc}")
            return
        self.frames_in += len(frames)
        handlers = self._link._handlers  # a tuple, replaced (not mutated) when handlers change
        for frame in frames:
            cls = frame.__class__
            if cls is Message or cls is RichMessage:
                msg: Message = frame  # type: ignore[assignment]
                if "Event" in msg:
                    aid = msg.get("ActionID")
                    if aid is not None:
                        coll = self.lists.get(aid)
                        if coll is not None:
                            if msg.get("EventList") == "Complete":
                                if not coll.done.done():
                                    coll.done.set_result(None)
                            else:
                                coll.events.append(msg)
                            continue
                        if msg["Event"] == "OriginateResponse":
                            fut = self.originates.pop(aid, None)
                            if fut is not None and not fut.done():
                                fut.set_result(msg)
                    for handler in handlers:
                        try:
                            handler(msg)
                        except Exception:
                            # A consumer's bug must not kill the read loop (or the other consumers).
                            log.exception("AMI %s: event handler failed on %s", self._link.name, msg.event)
                    continue
                aid = msg.get("ActionID")
                fut = self.pending.pop(aid, None) if aid is not None else None
                if fut is None:
                    log.debug("AMI %s: dropped a response nobody waits for: %r", self._link.name, aid)
                elif not fut.done():
                    fut.set_result(msg)
            elif isinstance(frame, MalformedFrame):
                self.malformed += 1
                # Throttled: a peer spewing junk must not turn into a log flood.
                if self.malformed <= 10 or self.malformed % 1000 == 0:
                    log.warning(
                        "AMI %s: skipped malformed frame #%d (%s): %r",
                        self._link.name,
                        self.malformed,
                        frame.reason,
                        frame.raw[:120],
                    )
            elif isinstance(frame, Greeting) and not self.greeting.done():
                self.greeting.set_result(frame.text)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._abort_reason or (f"connection lost: {exc}" if exc else "closed by the peer")
        down = LinkDown(f"AMI link {self._link.name} down ({reason})")
        futures: list[asyncio.Future[Any]] = [
            *self.pending.values(),
            *self.originates.values(),
            *(c.done for c in self.lists.values()),
            self.greeting,
        ]
        for fut in futures:
            if not fut.done():
                fut.set_exception(down)
        self.pending.clear()
        self.originates.clear()
        if not self.lost.done():
            self.lost.set_result(reason)
        # Nobody may be awaiting the greeting any more; don't let asyncio log "exception never retrieved".
        if self.greeting.done() and not self.greeting.cancelled():
            self.greeting.exception()

    # ---------------------------------------------------------------- sending

    def abort(self, reason: str) -> None:
        if self._abort_reason is None:
            self._abort_reason = reason
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.lost.done() and not self.transport.is_closing()

    def _send(self, action: str, headers: Headers) -> tuple[str, bytes]:
        aid = self._link._next_action_id()
        data = encode_action(action, aid, headers)  # UnsafeValue here: nothing registered, nothing sent
        if not self.is_open:
            raise LinkDown(f"AMI link {self._link.name} is down")
        return aid, data

    async def request(self, action: str, headers: Headers, timeout: float) -> Message:
        aid, data = self._send(action, headers)
        fut: asyncio.Future[Message] = self._loop.create_future()
        self.pending[aid] = fut
        assert self.transport is not None
        self.transport.write(data)
        try:
            async with asyncio.timeout(timeout):
                resp = await fut
        except TimeoutError:
            raise ActionTimeout(action, aid, timeout) from None
        finally:
            self.pending.pop(aid, None)
        if resp.get("Response") == "Error":
            raise AmiActionError(action, resp)
        return resp

    async def request_list(
        self, action: str, headers: Headers, timeout: float
    ) -> tuple[Message, list[Message]]:
        aid, data = self._send(action, headers)
        fut: asyncio.Future[Message] = self._loop.create_future()
        coll = _ListCollector(self._loop)
        self.pending[aid] = fut
        self.lists[aid] = coll
        assert self.transport is not None
        self.transport.write(data)
        try:
            async with asyncio.timeout(timeout):
                resp = await fut
                if resp.get("Response") == "Error":
                    raise AmiActionError(action, resp)
                # Only "EventList: start" promises a list; anything else is a plain answer.
                if resp.get("EventList") == "start":
                    await coll.done
        except TimeoutError:
            raise ActionTimeout(action, aid, timeout) from None
        finally:
            self.pending.pop(aid, None)
            self.lists.pop(aid, None)
            if not coll.done.done():
                coll.done.cancel()
        return resp, coll.events

    async def request_originate(
        self, headers: Headers, timeout: float, event_timeout: float
    ) -> tuple[Message, Message]:
        aid, data = self._send("Originate", headers)
        fut: asyncio.Future[Message] = self._loop.create_future()
        done: asyncio.Future[Message] = self._loop.create_future()
        self.pending[aid] = fut
        # Registered before writing: the response and its OriginateResponse can come in one read.
        self.originates[aid] = done
        assert self.transport is not None
        self.transport.write(data)
        try:
            try:
                async with asyncio.timeout(timeout):
                    resp = await fut
            except TimeoutError:
                raise ActionTimeout("Originate", aid, timeout) from None
            if resp.get("Response") == "Error":
                raise AmiActionError("Originate", resp)
            try:
                async with asyncio.timeout(event_timeout):
                    event = await done
            except TimeoutError:
                raise ActionTimeout("Originate (OriginateResponse)", aid, event_timeout) from None
        finally:
            self.pending.pop(aid, None)
            self.originates.pop(aid, None)
            if not done.done():
                done.cancel()
        return resp, event


# During `core restart gracefully` / `when convenient` Asterisk answers every action, Ping and a new
# session's Login included, with this error until it restarts; events keep flowing (capture 18).
SHUTTING_DOWN = "Asterisk is shutting down"


class AmiLink:
    """A supervised AMI link to one named PBX.

    ``start()`` launches the supervisor task (connect, log in, resync, keepalive, reconnect with exponential
    backoff and jitter). A PBX that is down at start is retried forever with one log line per failure.
    Refused credentials are terminal: the state becomes AUTH_FAILED, ``wait_up()`` and ``run()`` raise
    AmiAuthError (so ``ctiserver run`` can exit non-zero).
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_event: EventHandler | Iterable[EventHandler] = (),
        on_connected: ResyncHook | None = None,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
        ping_timeout: float | None = None,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 5.0,
        login_timeout: float = 10.0,  # Asterisk answers a bad secret only after ~1 s (capture 01, AMI2)
        resync_timeout: float = 120.0,
        auth: str = "plain",  # or "md5" (Challenge/Login with Key, capture 01 AMI3)
        events: str | None = None,  # Login "Events:" header; None = Asterisk's default (all permitted)
        max_frame: int = MAX_FRAME,
        ignore_events: frozenset[str] = frozenset(),
        rng: random.Random | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
            raise ValueError(
                f"PBX name {name!r}: use 1-40 letters, digits, '_', '.', '-' (it prefixes ActionIDs)"
            )
        if auth not in ("plain", "md5"):
            raise ValueError(f"AMI auth must be 'plain' or 'md5', not {auth!r}")
        self.name = name
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self._handlers: tuple[EventHandler, ...] = (on_event,) if callable(on_event) else tuple(on_event)
        self._resync = on_connected
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout if ping_timeout is not None else action_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.resync_timeout = resync_timeout
        self.auth = auth
        self.events = events
        self.max_frame = max_frame
        # Event types no handler reads are skipped unparsed (ctiserver.callmodel.model.UNUSED_EVENTS).
        self.ignore_events = ignore_events
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._state = LinkState.STOPPED
        self._changed = asyncio.Event()
        self._conn: AmiConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.auth_error: AmiAuthError | None = None
        self.state_listeners: list[Callable[[LinkState], None]] = []  # told of every state change
        self.connects = 0  # successful logins+resyncs, for tests and the monitor
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<AmiLink {self.name} {self.host}:{self.port} {self._state.value}>"

    # ---------------------------------------------------------------- wiring

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def is_up(self) -> bool:
        return self._state is LinkState.UP

    def add_event_handler(self, handler: EventHandler) -> None:
        self._handlers = (*self._handlers, handler)

    def remove_event_handler(self, handler: EventHandler) -> None:
        handlers = list(self._handlers)
        handlers.remove(handler)
        self._handlers = tuple(handlers)

    def set_resync_hook(self, hook: ResyncHook | None) -> None:
        """``hook(link)`` runs after every login, before the link is UP (CoreShowChannels, Status ...)."""
        self._resync = hook

    def _set_state(self, state: LinkState) -> None:
        old, self._state = self._state, state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if state is not old:
            for listener in self.state_listeners:
                listener(state)

    def _next_action_id(self) -> str:
        return f"{self.name}-{next(self._ids)}"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the supervisor task (idempotent). Returns at once; see ``wait_up()``."""
        if self._task is None:
            if self._state in (LinkState.CLOSED, LinkState.AUTH_FAILED):
                raise LinkDown(f"AMI link {self.name} is {self._state.value}")
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"ami-{self.name}")
            # The outcome is also reported through state/auth_error; retrieving it here keeps asyncio from
            # logging "exception never retrieved" when nobody awaits run().
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def run(self) -> None:
        """Start and supervise until ``close()``; raises AmiAuthError when the PBX refuses the login."""
        self.start()
        assert self._task is not None
        await self._task

    async def wait_up(self, timeout: float | None = None) -> None:
        """Wait until the link is logged in and resynced. Raises AmiAuthError (terminal), LinkDown (closed),
        TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                if self._state is LinkState.UP:
                    return
                if self.auth_error is not None:
                    raise self.auth_error
                if self._state is LinkState.CLOSED:
                    raise LinkDown(f"AMI link {self.name} is closed")
                await self._changed.wait()

    async def connect(self, timeout: float | None = None) -> None:
        """``start()`` + ``wait_up(timeout)``: a first connection that must succeed."""
        self.start()
        await self.wait_up(timeout)

    async def close(self) -> None:
        """Log off politely (1 s), stop the supervisor, fail pending actions with LinkDown."""
        self._closing = True
        conn = self._conn
        if conn is not None and conn.is_open and self._state in _LOGGED_IN:
            with contextlib.suppress(AmiError, TimeoutError, OSError):
                await conn.request("Logoff", None, 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AmiError):
                await self._task
        if conn is not None:
            conn.abort("link closed")
        if self._state is not LinkState.AUTH_FAILED:
            self._set_state(LinkState.CLOSED)

    def drop(self, reason: str = "dropped by the CTI") -> None:
        """Abort the TCP connection now (the supervisor reconnects and resyncs). For operators and tests."""
        if self._conn is not None:
            self._conn.abort(reason)

    # ---------------------------------------------------------------- actions

    def _logged_in_conn(self) -> AmiConnection:
        conn = self._conn
        if conn is None or self._state not in _LOGGED_IN or not conn.is_open:
            raise LinkDown(f"AMI link {self.name} is {self._state.value}")
        return conn

    async def action(self, action: str, headers: Headers = None, *, timeout: float | None = None) -> Message:
        """Send one action and return its response. Raises AmiActionError (``Response: Error``),
        ActionTimeout, LinkDown, UnsafeValue (a control character in a value; nothing is sent)."""
        return await self._logged_in_conn().request(action, headers, timeout or self.action_timeout)

    async def list_action(
        self, action: str, headers: Headers = None, *, timeout: float | None = None
    ) -> tuple[Message, list[Message]]:
        """Send a list action and collect its events until the ``EventList: Complete`` event; the timeout
        covers the whole list."""
        return await self._logged_in_conn().request_list(action, headers, timeout or self.action_timeout)

    async def originate(
        self, headers: Mapping[str, HeaderValue], *, event_timeout: float, timeout: float | None = None
    ) -> Message:
        """Async Originate; returns the ``OriginateResponse`` event matched by ActionID (``Response: Success``
        or ``Failure`` with ``Reason``). ``event_timeout`` should exceed the Originate's own ``Timeout``."""
        hdrs = {k: v for k, v in headers.items() if k != "Async"}
        hdrs["Async"] = "true"
        conn = self._logged_in_conn()
        _, event = await conn.request_originate(hdrs, timeout or self.action_timeout, event_timeout)
        return event

    async def ping(self, timeout: float | None = None) -> Message:
        return await self.action("Ping", None, timeout=timeout or self.ping_timeout)

    # ---------------------------------------------------------------- supervisor

    def _backoff(self, failures: int) -> float:
        step = min(self.backoff_max, self.backoff_min * 2 ** min(failures - 1, 30))
        # "Equal jitter": never below half the step, so many CTIs don't reconnect to a restarted PBX in step.
        return step / 2 + self._rng.random() * step / 2

    async def _supervise(self) -> None:
        failures = 0
        try:
            while not self._closing:
                self._set_state(LinkState.CONNECTING)
                try:
                    conn = await self._open()
                except AmiAuthError as exc:
                    self.auth_error = exc
                    self.last_error = str(exc)
                    log.error("%s", exc)
                    self._set_state(LinkState.AUTH_FAILED)
                    raise
                except (OSError, TimeoutError, AmiError, AmiProtocolError) as exc:
                    failures += 1
                    delay = self._backoff(failures)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "AMI %s: cannot connect to %s:%d (attempt %d): %s; retrying in %.2f s",
                        self.name,
                        self.host,
                        self.port,
                        failures,
                        self.last_error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                reason, was_up = await self._serve(conn)
                if self._closing:
                    break
                failures = 0 if was_up else failures + 1
                delay = self._backoff(max(failures, 1))
                self.last_error = reason
                log.warning(
                    "AMI %s: link to %s:%d lost (%s); reconnecting in %.2f s",
                    self.name,
                    self.host,
                    self.port,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)
        finally:
            if self._conn is not None:
                self._conn.abort("link closed")
                self._conn = None

    async def _open(self) -> AmiConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: AmiConnection(self, loop, self.max_frame, self.ignore_events), self.host, self.port
            )
        try:
            async with asyncio.timeout(self.connect_timeout):
                await conn.greeting
            self._set_state(LinkState.AUTHENTICATING)
            await self._login(conn)
        except BaseException:
            conn.abort("login failed")
            raise
        return conn

    async def _login(self, conn: AmiConnection) -> None:
        headers: dict[str, HeaderValue]
        if self.auth == "md5":
            challenge = await conn.request("Challenge", {"AuthType": "MD5"}, self.login_timeout)
            seed = (challenge.get("Challenge", "") + self._secret).encode()
            key = hashlib.md5(seed, usedforsecurity=False).hexdigest()
            headers = {"AuthType": "MD5", "Username": self.username, "Key": key}
        else:
            headers = {"Username": self.username, "Secret": self._secret}
        if self.events is not None:
            headers["Events"] = self.events
        try:
            await conn.request("Login", headers, self.login_timeout)
        except AmiActionError as exc:
            if exc.message == SHUTTING_DOWN:
                raise  # not the credentials: retried until Asterisk has restarted
            raise AmiAuthError(
                f"AMI {self.name}: {self.host}:{self.port} refused the login of user {self.username!r}: "
                f"{exc.message or 'Response: Error'} (check manager.conf and the CTI config)"
            ) from exc

    async def _serve(self, conn: AmiConnection) -> tuple[str, bool]:
        """Resync, then stay UP until the connection ends. Returns (why it ended, whether it was UP)."""
        self._conn = conn
        self._set_state(LinkState.SYNCING)
        keepalive = asyncio.get_running_loop().create_task(
            self._keepalive(conn), name=f"ami-ping-{self.name}"
        )
        was_up = False
        try:
            if self._resync is not None:
                try:
                    async with asyncio.timeout(self.resync_timeout):
                        await self._resync(self)
                except Exception as exc:  # noqa: BLE001 - any resync failure means: drop and retry
                    if not conn.lost.done():
                        log.error(
                            "AMI %s: resync failed (%s: %s); dropping the link to retry",
                            self.name,
                            type(exc).__name__,
                            exc,
                        )
                        conn.abort(f"resync failed: {exc}")
            if conn.is_open:
                self.connects += 1
                was_up = True
                self._set_state(LinkState.UP)
                log.info(
                    "AMI %s: up on %s:%d (connection %d)", self.name, self.host, self.port, self.connects
                )
            return await asyncio.shield(conn.lost), was_up
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            self._conn = None
            if not self._closing and self._state is not LinkState.AUTH_FAILED:
                self._set_state(LinkState.CONNECTING)

    async def _keepalive(self, conn: AmiConnection) -> None:
        """Ping and check the Pong: a half-open link (peer gone without FIN) is only noticed this way."""
        warned = False
        while conn.is_open:
            await asyncio.sleep(self.ping_interval)
            try:
                resp = await conn.request("Ping", None, self.ping_timeout)
            except ActionTimeout:
                log.error(
                    "AMI %s: no Pong within %.1f s; declaring the link dead", self.name, self.ping_timeout
                )
                conn.abort(f"no Pong within {self.ping_timeout} s")
                return
            except LinkDown:
                return
            except AmiActionError as exc:
                if exc.message == SHUTTING_DOWN:
                    # The PBX answered, so the link is alive, and its events tell how the calls it is
                    # waiting for end: keep it until the Shutdown event and the close.
                    if not warned:
                        warned = True
                        log.warning("AMI %s: Asterisk is shutting down; it refuses every action until it "
                                    "has restarted", self.name)
                    continue
                log.error("AMI %s: Ping refused (%s); dropping the link", self.name, exc.message)
                conn.abort(f"Ping refused: {exc.message}")
                return
            if resp.get("Ping") != "Pong":
                log.warning("AMI %s: Ping answered without 'Ping: Pong': %r", self.name, resp)
