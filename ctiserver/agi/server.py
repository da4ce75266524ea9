"""FastAGI server: one TCP session per call, routed by ``agi_network_script`` to an async handler.

Asterisk runs ``AGI(agi://cti:4573/ivr?flow=main)``; we read the ``agi_*`` block (bounded in size and time),
build an ``AgiSession`` (the ``AgiChannel`` the IVR runs against) and run the handler registered for
``ivr`` in a tracked task. Hangups (captures 03, 13):

* the ``HANGUP`` line, a ``511`` reply or the socket closing while a command is in flight make that
  ``command()`` raise ``ChannelHungUp``, so the IVR unwinds from the await it is in;
* a ``HANGUP`` line or EOF while no command is in flight (the handler is waiting on the ACD, say) cancels the
  handler task: Asterisk sends ``HANGUP`` as soon as it sees the hangup, and nothing else would tell us;
* after the handler, the socket is always closed: Asterisk holds the channel's ``Hangup`` until it is
  (capture 03), so a forgotten socket is a leaked channel;
* a handler that returns normally gets ``SET VARIABLE IVR_DONE 1`` before the close. A crash (exception) does
  not, and that is the only thing the dialplan can branch on: ``AGISTATUS`` is ``SUCCESS`` even when the
  server died mid-session (capture 13), so ``[from-pstn]`` sends calls without ``IVR_DONE=1`` to
  ``[cti-fallback]``.

FastAGI has no login, so the edge guards itself: only peers on the allow-list (the PBXes) are served, others
are closed at once; and everything read is bounded (line length, env block, 520 usage block, unsolicited
replies). A peer past a limit is dropped with one warning line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Self

from .peers import LOOPBACK, AllowList, Network, allow_list, peer_allowed
from .protocol import (
    MAX_ENV_BYTES,
    MAX_ENV_LINES,
    MAX_LINE,
    AgiEnvironment,
    AgiProtocolError,
    AgiReply,
    ReplyReader,
    format_command,
    parse_environment,
)
from .session import ChannelHungUp

log = logging.getLogger(__name__)

AgiHandler = Callable[["AgiSession"], Awaitable[object]]

# Asterisk answers only the command it was sent. One stray reply can be a late answer racing a timeout;
# a stream of them is not Asterisk.
MAX_UNSOLICITED_REPLIES = 8


class AgiSession:
    """One FastAGI session; implements ``ctiserver.agi.session.AgiChannel``.

    Commands are serialized (AGI is strictly one command, one reply). A background reader routes the reply
    lines, so a ``HANGUP`` or EOF is noticed even while no command is running.
    """

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float,
        done_variable: str | None,
        cancel_on_hangup: bool = True,
    ) -> None:
        self.env = env
        self._reader = reader
        self._writer = writer
        self.command_timeout = command_timeout
        self.done_variable = done_variable
        self.cancel_on_hangup = cancel_on_hangup
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[AgiReply] | None = None
        self._replies = ReplyReader()
        self._stale = 0  # replies still owed to commands that timed out: skipped to stay in step
        self._hangup_unreported = False
        self.hung_up = False  # a HANGUP line, a 511 or EOF was seen
        self.closed = False  # the peer closed the socket
        self.hangup = asyncio.Event()  # set on HANGUP or EOF, for handlers that wait on other things
        self.done_marked = False
        self.cancelled_by_hangup = False
        self.dropped: str | None = None  # why the session cut a misbehaving peer off
        self.bytes_read = 0  # bytes of reply lines read after the env block
        self._unsolicited = 0
        self._handler_task: asyncio.Task[object] | None = None

    def __repr__(self) -> str:
        return f"<AgiSession {self.env.script} {self.env.channel}>"

    @property
    def held_peak(self) -> int:
        """The most bytes of an unfinished multi-line reply held at once (bounded by MAX_USAGE_BYTES)."""
        return self._replies.held_peak

    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        data = format_command(*words)  # UnsafeAgiArgument before anything is sent
        limit = timeout if timeout is not None else self.command_timeout
        async with self._lock:
            if self.closed:
                raise ChannelHungUp(f"AGI socket of {self.env.channel} is closed")
            fut: asyncio.Future[AgiReply] = asyncio.get_running_loop().create_future()
            self._waiter = fut
            self._writer.write(data)
            try:
                async with asyncio.timeout(limit):
                    reply = await fut
            except TimeoutError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    reply = fut.result()  # the reply won the race against the deadline: keep it
                else:
                    self._stale += 1
                    raise TimeoutError(
                        f"AGI {words[0]!s}: no reply within {limit} s on {self.env.channel}"
                    ) from None
            finally:
                self._waiter = None
        if reply.hungup or reply.code == 511:
            self.hung_up = True
            raise ChannelHungUp(f"{self.env.channel} hung up ({words[0]!s} got {reply.code} {reply.message})")
        return reply

    async def mark_done(self) -> None:
        """Set the end-of-script variable (``IVR_DONE=1``): the script ended on purpose, not by a crash."""
        if self.done_variable and not self.done_marked:
            await self.command("SET VARIABLE", self.done_variable, "1", timeout=5.0)
            self.done_marked = True

    # ---------------------------------------------------------------- reader

    def _cancel_handler(self, why: str) -> None:
        task = self._handler_task
        if self.cancel_on_hangup and task is not None and not task.done():
            self.cancelled_by_hangup = True
            # The cancellation is the report: cleanup commands in the handler's finally (variables still
            # work after a hangup, capture 03) must not raise ChannelHungUp for the same hangup again.
            self._hangup_unreported = False
            task.cancel(why)

    def _drop(self, why: str) -> None:
        """Cut a peer that broke the protocol or a limit: one warning, and the socket closes now."""
        self.dropped = why
        log.warning("FastAGI %s: %s; dropping the peer", self.env.channel, why)
        self._writer.transport.abort()

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line.endswith(b"\n"):
                    break  # EOF (possibly after a partial line)
                self.bytes_read += len(line)
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text == "HANGUP":
                    # Reported on the next reply (as the wire does) or, if idle, by cancelling the handler.
                    self.hung_up = True
                    self._hangup_unreported = True
                    self.hangup.set()
                    if self._waiter is None:
                        self._cancel_handler("caller hung up")
                    continue
                reply = self._replies.feed(text)
                if reply is None:
                    continue
                if self._stale:
                    self._stale -= 1
                    continue
                if self._hangup_unreported:
                    reply = dataclasses.replace(reply, hungup=True)
                    self._hangup_unreported = False
                waiter = self._waiter
                if waiter is None or waiter.done():
                    self._unsolicited += 1
                    if self._unsolicited > MAX_UNSOLICITED_REPLIES:
                        self._drop(f"{self._unsolicited} replies with no command pending")
                        break
                    if self._unsolicited == 1:
                        log.warning("FastAGI %s: reply with no command pending: %r", self.env.channel, text[:80])
                    continue
                waiter.set_result(reply)
        except (AgiProtocolError, ValueError) as exc:
            # ValueError: a line over the StreamReader limit (MAX_LINE).
            self._drop(f"unreadable reply ({exc})")
        except ConnectionError as exc:
            log.info("FastAGI %s: connection lost (%s)", self.env.channel, exc)
        finally:
            self.closed = True
            self.hung_up = True
            self.hangup.set()
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ChannelHungUp(f"AGI peer closed the connection of {self.env.channel}"))
            elif waiter is None:
                self._cancel_handler("AGI peer closed the connection")


class FastAgiServer:
    """``asyncio.start_server`` on a configured address; ``route("ivr", handler)`` before or after start."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        env_timeout: float = 5.0,
        command_timeout: float = 600.0,
        max_env_bytes: int = MAX_ENV_BYTES,
        done_variable: str | None = "IVR_DONE",
        error_variable: str = "CTI_AGI_ERROR",
        cancel_on_hangup: bool = True,
        close_timeout: float = 5.0,
        allow: Iterable[str | Network] = LOOPBACK,
        refusal_log_interval: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.env_timeout = env_timeout
        self.command_timeout = command_timeout
        self.max_env_bytes = max_env_bytes
        self.done_variable = done_variable
        self.error_variable = error_variable
        self.cancel_on_hangup = cancel_on_hangup
        self.close_timeout = close_timeout
        self.allow: AllowList = allow_list(allow)
        self._refusals = _RefusalLog(refusal_log_interval)
        self._routes: dict[str, AgiHandler] = {}
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.sessions_total = 0
        self.refused_total = 0

    # ---------------------------------------------------------------- routing

    def route(self, script: str, handler: AgiHandler | None = None) -> Callable[[AgiHandler], AgiHandler]:
        """Register ``handler`` for ``agi://host/<script>``; usable as ``@server.route("ivr")``."""

        def register(h: AgiHandler) -> AgiHandler:
            if not (inspect.iscoroutinefunction(h) or inspect.iscoroutinefunction(type(h).__call__)):
                raise TypeError(f"FastAGI handler for {script!r} must be an async function, got {h!r}")
            self._routes[script.strip("/")] = h
            return h

        if handler is not None:
            register(handler)
        return register

    @property
    def scripts(self) -> list[str]:
        return list(self._routes)

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=MAX_LINE + 2)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d (scripts: %s; peers allowed: %s)", self.host, self.port,
                 ", ".join(self._routes), ", ".join(map(str, self.allow)))

    async def close(self) -> None:
        """Stop listening, cancel running sessions (their sockets close), wait for them."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=self.close_timeout)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- sessions

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not peer_allowed(host, self.allow):
            # Before reading a byte: an unknown peer gets no session, no reply, no buffer.
            self.refused_total += 1
            self._refusals.refused(host, asyncio.get_running_loop().time())
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.sessions_total += 1
        try:
            await self._run_session(reader, writer)
        except asyncio.CancelledError:
            # Server shutdown: asyncio's start_server callback would report the cancellation as an error.
            pass
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _read_env(self, reader: asyncio.StreamReader) -> str:
        lines: list[bytes] = []
        total = 0
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise AgiProtocolError("connection closed inside the AGI environment block")
            if line in (b"\n", b"\r\n"):
                break
            total += len(line)
            if total > self.max_env_bytes or len(lines) >= MAX_ENV_LINES:
                raise AgiProtocolError(
                    f"AGI environment block over {self.max_env_bytes} bytes or {MAX_ENV_LINES} lines"
                )
            lines.append(line)
        return b"".join(lines).decode("utf-8", "replace")

    async def _run_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.env_timeout):
                block = await self._read_env(reader)
            env = parse_environment(block, max_bytes=self.max_env_bytes)
        except (TimeoutError, AgiProtocolError, ValueError, ConnectionError) as exc:
            log.warning("FastAGI %s: bad or missing AGI environment (%s); closing", peer, exc)
            return
        session = AgiSession(
            env,
            reader,
            writer,
            command_timeout=self.command_timeout,
            done_variable=self.done_variable,
            cancel_on_hangup=self.cancel_on_hangup,
        )
        reader_task = asyncio.get_running_loop().create_task(
            session._read_loop(), name=f"agi-read-{env.uniqueid}"
        )
        try:
            handler = self._routes.get(env.script)
            if handler is None:
                log.warning(
                    "FastAGI: no handler for script %r (channel %s; known: %s); closing",
                    env.script,
                    env.channel,
                    ", ".join(self._routes) or "none",
                )
                with contextlib.suppress(ChannelHungUp, TimeoutError):
                    await session.command("SET VARIABLE", self.error_variable, "unknown-script", timeout=5.0)
                return
            await self._run_handler(handler, session)
        finally:
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader_task

    async def _run_handler(self, handler: AgiHandler, session: AgiSession) -> None:
        env = session.env
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            _as_coroutine(handler, session), name=f"agi-{env.script}-{env.uniqueid}"
        )
        session._handler_task = task
        try:
            await task
        except ChannelHungUp as exc:
            if session.dropped is None:  # a dropped peer has had its warning line
                log.info("FastAGI %s %s: caller gone (%s)", env.script, env.channel, exc)
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if session.cancelled_by_hangup and current is not None and not current.cancelling():
                if session.dropped is None:
                    log.info("FastAGI %s %s: handler cancelled, caller gone", env.script, env.channel)
                return
            raise
        except Exception:
            log.exception(
                "FastAGI %s %s: handler crashed; %s not set, the dialplan falls back",
                env.script,
                env.channel,
                self.done_variable,
            )
            return
        if not session.hung_up and not session.closed:
            with contextlib.suppress(ChannelHungUp, TimeoutError):
                await session.mark_done()


async def _as_coroutine(handler: AgiHandler, session: AgiSession) -> object:
    return await handler(session)


class _RefusalLog:
    """At most one warning per interval for refused peers, counting the ones it kept quiet about.

    A scanner or a misrouted PBX would otherwise write a line per connection attempt.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.quiet_until = float("-inf")
        self.unreported = 0

    def refused(self, host: object, now: float) -> None:
        if now < self.quiet_until:
            self.unreported += 1
            return
        more = f" ({self.unreported} more refused since the last report)" if self.unreported else ""
        log.warning("FastAGI: refused a connection from %s: not in agi.allow%s", host, more)
        self.unreported = 0
        self.quiet_until = now + self.interval
