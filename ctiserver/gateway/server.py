"""The websocket gateway: consoles in, pushes out. The I/O edge around schema, auth and streams.

One port serves the pages (plain HTTP GET through `process_request`) and the websocket at /ws,
whose handshake is refused (403) from a browser page of any other origin than `allowed_origins`.
Each connection: `hello`, then `auth` or `resume` within `auth_timeout_s`, then commands. A
password login is throttled per username and per client address across connections, and at most
`max_concurrent_hashes` passwords are hashed at once. A command is rate-limited, decoded, checked
against its session (not expired, not logged out, not forced out), role-checked, ownership-checked
(an agent's call ids), then handed to the `Backend` with a timeout. Pushes from the app land in a
stream outbox first (for resume), then are written to the live connections without awaiting: one
slow console never delays a pop to another, and a console whose write buffer overflows is dropped
(it resumes). Passwords and tokens are kept out of every log (`SecretFilter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, cast

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from ctiserver.agi.peers import AllowList, peer_allowed
from ctiserver.gateway import schema
from ctiserver.gateway.auth import (
    Account,
    Accounts,
    AuthError,
    Backoff,
    LoginThrottle,
    Principal,
    Role,
    TokenSigner,
    address_key,
)
from ctiserver.gateway.backend import (
    AgentView,
    AlertView,
    Backend,
    CallView,
    FollowUpForm,
    OfferView,
    Refused,
    TransferTarget,
    WrapUpFailed,
    WrapUpForm,
)
from ctiserver.gateway.desk import RecordingDesk, desk_handlers
from ctiserver.gateway.reports import REPORTS_PATH, ReportsApi, ReportSource
from ctiserver.gateway.schema import Command, ErrorCode, encode, error_reply, server_message
from ctiserver.gateway.static import DEFAULT_ROOT, StaticSite, http_response
from ctiserver.gateway.streams import MonitorMirror, Outbox, TokenBucket

log = logging.getLogger("ctiserver.gateway")
T = TypeVar("T")

WS_PATH = "/ws"
METRICS_PATH = "/metrics"
MEDIA_PREFIX = "/media/"  # recordings and voicemails, by play ticket (ctiserver.recordings.media)
MediaSource = Callable[[Request], Awaitable[Response]]


class PreviewDesk(Protocol):
    """The dialer's preview cards, as an agent's console acts on them (ctiserver/dialer)."""

    async def preview_dial(self, agent_id: str) -> str | None: ...

    def preview_skip(self, agent_id: str) -> bool: ...


class CampaignDesk(Protocol):
    """The supervisors' outbound panel (ctiserver/supervision/campaigns.py): schema.CAMPAIGN_MESSAGES."""

    async def campaign_command(self, who: Principal, command: str, args: Mapping[str, object]) -> object: ...


# The exposition text and its content type (ctiserver.metrics.centre.CentreMetrics.render).
MetricsSource = Callable[[], tuple[bytes, str]]
# The administration commands (schema.ADMIN_MESSAGES): ctiserver.admin.service.AdminService.handle.
AdminHandler = Callable[[Principal, str, Mapping[str, object]], Awaitable[object]]
CLOSE_POLICY = 1008  # RFC 6455 policy violation: auth timeout, too many auth failures, session ended
_ORIGIN = re.compile(r"https?://[^/\s?#@]+")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8088  # 0: any free port (tests)
    static_root: Path = DEFAULT_ROOT
    token_secret: bytes | None = None  # None: random per process (tokens do not survive a restart)
    token_ttl_s: int = 12 * 3600
    rate_per_s: float = 20.0
    rate_burst: float = 60.0
    soft_max_bytes: int = schema.SOFT_MAX_BYTES
    hard_max_bytes: int = schema.HARD_MAX_BYTES
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    close_timeout_s: float = 5.0  # a console that does not answer our close frame is cut after this
    auth_timeout_s: float = 15.0
    max_auth_failures: int = 5  # per connection; then it is closed
    # Browser pages allowed to open /ws, e.g. ("https://cti.example.com",). Empty: the gateway's own
    # http://host:port, and its localhost/127.0.0.1/[::1] aliases when bound to loopback or to all
    # interfaces. A client that sends no Origin (not a browser) is let in: see docs/protocol.md.
    allowed_origins: tuple[str, ...] = ()
    # Websockets the pages may open besides /ws: the PBX's SIP websocket of the console's phone (CSP connect-src).
    phone_sockets: tuple[str, ...] = ()
    # Failed password logins, counted across connections (see auth.LoginThrottle).
    user_lock_after: int = 5  # failures of one username before it is locked for 1 s, 2 s, 4 s ...
    address_lock_after: int = 20  # failures from one address (an office behind NAT is one address)
    login_backoff_max_s: float = 300.0
    login_forget_s: float = 900.0  # a key with no failure for this long starts from zero
    login_tracked_keys: int = 10_000  # usernames and addresses remembered, each (LRU)
    max_concurrent_hashes: int = 2  # scrypt costs ~16 MiB and tens of ms per login
    hash_wait_s: float = 3.0  # a login waits this long for a hashing slot, then gets `unavailable`
    command_timeout_s: float = 10.0
    flush_interval_s: float = 0.25  # supervisor deltas are coalesced over this interval
    agent_outbox_items: int = 64
    monitor_outbox_items: int = 256
    outbox_age_s: float = 300.0
    slow_consumer_bytes: int = 4 * 1024 * 1024
    # Who may read /metrics (Prometheus): these networks only, others get 403. None: /metrics is not served.
    # The figures are not secret the way a caller is, but they tell who works when: not for the whole LAN.
    metrics_allow: AllowList | None = None

    def __post_init__(self) -> None:
        for origin in self.allowed_origins:
            if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin):
                raise ValueError(f"allowed_origins: {origin!r} is not an origin like https://cti.example.com "
                                 "(scheme and host, optional port, no path)")
        if self.max_concurrent_hashes < 1:
            raise ValueError("max_concurrent_hashes: at least 1")


def default_origins(host: str, port: int) -> frozenset[str]:
    """The origins of the pages this gateway serves, as a browser names them."""
    names = {host}
    if host in ("", "0.0.0.0", "::") or host == "localhost" or _is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    names.discard("")
    names -= {"0.0.0.0", "::"}  # a browser never has these as its page's host
    return frozenset(_origin("http", name, port) for name in names)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host.lower()}" + ("" if port == default else f":{port}")


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class HashingBusy(Exception):
    pass


class HashGate:
    """At most `slots` password hashes run at once, in worker threads: memory and CPU stay bounded
    whatever the number of logins in flight. A login waits up to `wait_s` for a slot (HashingBusy).
    The threads are its own, as many as slots: each thread that ever ran scrypt keeps its ~16 MiB
    in its malloc arena, so hashing on the shared default pool would hold that much per pool thread."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self._free = asyncio.Semaphore(slots)
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="password-hash")
        self.wait_s = wait_s
        self.running = 0
        self.peak = 0  # the most hashes ever run at once (tests, and a figure for operators)

    async def run(self, work: Callable[[], T], ready: Callable[[], None] = lambda: None,
                  settle: Callable[[asyncio.Future[T]], None] = lambda job: None) -> T:
        """`ready()` runs on the loop once a slot is held (it may raise to give the slot back unused),
        then `work()` in a thread, then `settle(job)` on the loop as soon as it ends, before the slot
        goes to the next waiter: whatever `settle` records (a failed login) is seen by that waiter's
        `ready`. The slot is freed when `work` really ends, even if this login is cancelled meanwhile
        (auth timeout): an abandoned hash still holds its memory until then."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError:
            raise HashingBusy from None
        try:
            ready()
        except BaseException:
            self._free.release()
            raise
        self.running += 1
        self.peak = max(self.peak, self.running)
        job = asyncio.get_running_loop().run_in_executor(self._threads, work)
        job.add_done_callback(lambda done: self._finished(done, settle))
        return await asyncio.shield(job)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _finished(self, job: asyncio.Future[T], settle: Callable[[asyncio.Future[T]], None]) -> None:
        try:
            settle(job)
        except Exception:
            log.exception("settling a password check failed")
        finally:
            self.running -= 1
            self._free.release()
            if not job.cancelled():
                job.exception()  # an abandoned login's outcome is dropped without a warning


@dataclass(eq=False, slots=True)
class _Client:
    ws: ServerConnection
    bucket: TokenBucket
    address: str = ""  # throttling key of the peer (auth.address_key)
    principal: Principal | None = None
    token: str = ""
    auth_failures: int = 0
    dropped: int = 0
    last_throttle_notice: float = -1e9
    stream: str = ""  # "agent:<id>" or "monitor"


Handler = Callable[[_Client, Principal, Command], Awaitable[dict[str, object] | None]]


class Gateway:
    """Start with `async with Gateway(backend, accounts, GatewayConfig(...)) as gw:`; push with `await gw.push_*`."""

    def __init__(self, backend: Backend, accounts: Accounts, config: GatewayConfig | None = None,
                 clock: Callable[[], float] = time.time, metrics: MetricsSource | None = None,
                 admin: AdminHandler | None = None, reports: ReportSource | None = None,
                 recordings: RecordingDesk | None = None) -> None:
        self.backend = backend
        self.recordings = recordings
        self.media: MediaSource | None = None  # set by whoever serves the audio (app wiring)
        self.previews: PreviewDesk | None = None  # the dialer's preview cards (app wiring); None: no dialer
        self.campaigns: CampaignDesk | None = None  # the supervisors' outbound panel (app wiring)
        self.metrics = metrics
        self.admin = admin
        self.accounts = accounts
        self.config = config or GatewayConfig()
        self.clock = clock
        self.signer = TokenSigner(self.config.token_secret or secrets.token_bytes(32), self.config.token_ttl_s)
        # /api/reports (supervisors' Reports page); None: not served
        self.reports = ReportsApi(reports, self.signer, accounts, clock) if reports is not None else None
        cfg = self.config
        self.throttle = LoginThrottle(
            Backoff(cfg.user_lock_after, max_s=cfg.login_backoff_max_s, forget_s=cfg.login_forget_s),
            Backoff(cfg.address_lock_after, max_s=cfg.login_backoff_max_s, forget_s=cfg.login_forget_s),
            cfg.login_tracked_keys)
        self.hash_gate = HashGate(cfg.max_concurrent_hashes, cfg.hash_wait_s)
        self.origins: frozenset[str] = frozenset()  # set at start, once the port is known
        self.site = StaticSite(self.config.static_root, self.config.phone_sockets)
        self.monitor = MonitorMirror()
        self._monitor_outbox = Outbox(self.config.monitor_outbox_items, self.config.outbox_age_s)
        self._agent_outboxes: dict[str, Outbox] = {}
        self._agent_clients: dict[str, set[_Client]] = {}
        self._supervisors: set[_Client] = set()
        self._clients: set[_Client] = set()  # every authenticated connection, attached or not yet
        self._server: Server | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._handlers: dict[str, Handler] = self._handler_table()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        seed = await asyncio.wait_for(self.backend.monitor_snapshot(), self.config.command_timeout_s)
        for section, rows in (("wallboard", seed.wallboard), ("agents", seed.agents), ("calls", seed.calls)):
            for key, row in rows.items():
                self.monitor.apply(section, key, dict(row))
        for alert in seed.alerts:
            self.monitor.set_alert(cast(dict[str, object], schema.to_wire(alert)))
        self.monitor.take_pending()
        redact_logs()
        self._server = await serve(
            self._connection, self.config.host, self.config.port,
            process_request=self._process_request,
            max_size=self.config.hard_max_bytes,
            ping_interval=self.config.ping_interval_s, ping_timeout=self.config.ping_timeout_s,
            close_timeout=self.config.close_timeout_s,
            compression=None,  # latency and CPU over bytes: pops are small, the LAN is not the limit
        )
        if self.config.allowed_origins:
            self.origins = frozenset(_normal_origin(o) for o in self.config.allowed_origins)
        else:
            self.origins = default_origins(self.config.host, self.port)
        log.info("console pages may open the websocket from: %s", ", ".join(sorted(self.origins)))
        self._flusher = asyncio.create_task(self._flush_loop(), name="gateway-monitor-flush")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 10)
        self.hash_gate.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "gateway not started"
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    def connection_count(self) -> int:
        return sum(len(c) for c in self._agent_clients.values()) + len(self._supervisors)

    # ------------------------------------------------------------------ pushes (called by the app)

    async def push_offer(self, agent_id: str, offer: OfferView) -> None:
        """The agent's phone rings: the offer and its screen pop go to the agent's consoles."""
        self._push_agent(agent_id, "offer", offer=offer)

    async def push_offer_cancelled(self, agent_id: str, offer_id: str, reason: str) -> None:
        self._push_agent(agent_id, "offer_cancelled", offer_id=offer_id, reason=reason)

    async def push_agent_state(self, agent: AgentView) -> None:
        """To the agent's consoles, and its row of the supervisors' agent grid."""
        self._push_agent(agent.agent_id, "agent_state", agent=agent)
        row = schema.to_wire(agent)
        assert isinstance(row, dict)
        row.pop("agent_id")
        self.monitor.apply("agents", agent.agent_id, row)

    async def push_call_state(self, call: CallView) -> None:
        """To the agent's consoles, and the supervisors' call list (state `ended` removes the row)."""
        self._push_agent(call.agent_id, "call_state", call=call)
        if call.state == "ended":
            self.monitor.apply("calls", call.call_id, None)
        else:
            self.monitor.apply("calls", call.call_id, {
                "state": call.state, "since": call.since, "agent_id": call.agent_id, "queue": call.queue,
                "caller": call.caller, "caller_name": call.caller_name, "direction": call.direction})

    async def push_wallboard_delta(self, queue: str, fields: Mapping[str, object]) -> None:
        """Queue figures (waiting, oldest_since, sl, abandon_rate, asa_s, aht_s, agents_by_state...).
        Full or partial: unchanged fields are not sent."""
        self.monitor.apply("wallboard", queue, cast(dict[str, object], schema.to_wire(fields)))

    async def push_agent_grid_delta(self, agent_id: str, fields: Mapping[str, object] | None) -> None:
        """Extra grid fields (calls_today, ...); None removes the agent from the grid."""
        self.monitor.apply("agents", agent_id, None if fields is None
                           else cast(dict[str, object], schema.to_wire(fields)))

    async def push_call_list_delta(self, call_id: str, fields: Mapping[str, object] | None) -> None:
        """Waiting calls (state "waiting", queue, since, caller, priority); None removes the row."""
        self.monitor.apply("calls", call_id, None if fields is None
                           else cast(dict[str, object], schema.to_wire(fields)))

    async def push_alert(self, alert: AlertView) -> None:
        """Sent at once (not coalesced); active alerts are part of the supervisors' snapshot."""
        row = cast(dict[str, object], schema.to_wire(alert))
        self.monitor.set_alert(row)
        frame = self._monitor_outbox.append("alert", self.clock(), alert=row)
        self._write(self._supervisors, frame)

    def flush_monitor(self) -> None:
        """Send pending supervisor deltas now (the flush loop calls this every flush_interval_s)."""
        now = self.clock()
        for kind, payload_key, changes in self.monitor.take_pending():
            frame = self._monitor_outbox.append(kind, now, **{payload_key: changes})
            self._write(self._supervisors, frame)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                self.flush_monitor()
            except Exception:  # a bad row must not stop the wallboard
                log.exception("monitor flush failed")

    def _push_agent(self, agent_id: str, kind: str, **fields: object) -> None:
        frame = self._agent_outbox(agent_id).append(kind, self.clock(), **fields)
        clients = self._agent_clients.get(agent_id)
        if clients:
            self._write(clients, frame)

    def _agent_outbox(self, agent_id: str) -> Outbox:
        outbox = self._agent_outboxes.get(agent_id)
        if outbox is None:
            outbox = self._agent_outboxes[agent_id] = Outbox(self.config.agent_outbox_items,
                                                             self.config.outbox_age_s)
        return outbox

    def _owns(self, agent_id: str | None, call_id: str) -> bool:
        return agent_id is not None and self.backend.owns(agent_id, call_id)

    # ------------------------------------------------------------------ writing

    def _write(self, clients: Iterable[_Client], frame: bytes) -> None:
        healthy = []
        for client in clients:
            transport = client.ws.transport
            if transport is None or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > self.config.slow_consumer_bytes:
                log.warning("dropping slow console %s", client.principal and client.principal.username)
                transport.abort()  # it will resume and get a snapshot
                continue
            healthy.append(client.ws)
        if healthy:
            broadcast(healthy, frame, text=True)

    def _send(self, client: _Client, msg: Mapping[str, object]) -> None:
        self._write((client,), encode(msg))

    # ------------------------------------------------------------------ HTTP

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | None | Awaitable[Response]:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return self._check_origin(connection, request)  # None: go on with the websocket handshake
        if path == METRICS_PATH:
            return self._metrics(connection)
        if self.reports is not None and (path == REPORTS_PATH or path.startswith(REPORTS_PATH + "/")):
            return self.reports.respond(request)  # awaited by websockets: the report runs off this loop
        if path.startswith(MEDIA_PREFIX) and self.media is not None:
            return self.media(request)  # type: ignore[return-value]  # websockets awaits it
        return self.site.respond(request.path)

    def session_ok(self, who: Principal) -> bool:
        """Whether a session still stands (not expired, logged out or forced out): checked again when a
        play ticket is redeemed over plain HTTP."""
        try:
            self.signer.verify(who, self.clock())
        except AuthError:
            return False
        return True

    def push_to_agent(self, agent_id: str, kind: str, fields: Mapping[str, object]) -> None:
        """A capability's message to an agent's consoles, on the agent's stream (replayed on resume)."""
        self._push_agent(agent_id, kind, **fields)

    def _metrics(self, connection: ServerConnection) -> Response:
        """The scrape runs here, on the loop: the collector reads the projections in a few ms (bench/metrics.py)."""
        allow = self.config.metrics_allow
        if self.metrics is None or allow is None:
            return self.site.respond(METRICS_PATH)  # not served: the usual 404
        peer = _peer(connection)
        if not peer_allowed(peer, allow):
            log.warning("refused /metrics to %s: not in metrics.allow", peer)
            return http_response(403, "Forbidden", b"not allowed\n", "text/plain; charset=utf-8")
        try:
            body, content_type = self.metrics()
        except Exception:
            log.exception("metrics scrape failed")
            return http_response(500, "Internal Server Error", b"scrape failed\n", "text/plain; charset=utf-8")
        return http_response(200, "OK", body, content_type)

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        """A page elsewhere (another site, a sandboxed frame: Origin `null`) must not drive a console's
        browser against this server. Browsers always send Origin on a websocket handshake; a client
        without one is not a browser and could send any Origin it likes, so refusing it guards nothing."""
        sent = request.headers.get_all("Origin")
        if not sent or (len(sent) == 1 and _normal_origin(sent[0]) in self.origins):
            return None
        log.warning("refused a websocket from origin %r (%s): not in allowed_origins",
                    ", ".join(sent)[:200], _peer(connection))
        return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")

    # ------------------------------------------------------------------ connections

    async def _connection(self, ws: ServerConnection) -> None:
        client = _Client(ws, TokenBucket(self.config.rate_per_s, self.config.rate_burst), address_key(_peer(ws)))
        self._send(client, server_message(
            "hello", server="ctiserver", versions=[schema.PROTOCOL_VERSION],
            max_message_bytes=self.config.soft_max_bytes,
            rate={"per_s": self.config.rate_per_s, "burst": self.config.rate_burst},
            server_time=self.clock()))
        try:
            try:
                async with asyncio.timeout(self.config.auth_timeout_s):
                    while client.principal is None:
                        await self._pre_auth(client, await ws.recv())
            except TimeoutError:
                await ws.close(CLOSE_POLICY, "authentication timeout")
                return
            async for raw in ws:
                await self._on_message(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self._detach(client)

    def _admit(self, client: _Client, raw: str | bytes) -> Command | None:
        """Rate limit then decode; errors are answered here. None: nothing more to do."""
        now = self.clock()
        if not client.bucket.take(now):
            client.dropped += 1
            # One notice per second at most: a flood must not turn into a flood of replies.
            if now - client.last_throttle_notice >= 1.0:
                client.last_throttle_notice = now
                self._send(client, error_reply(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages: {client.dropped} dropped; limit {self.config.rate_per_s:g}/s"))
            return None
        decoded = schema.decode_client(raw, self.config.soft_max_bytes)
        if isinstance(decoded, schema.ProtocolError):
            self._send(client, decoded.reply())
            return None
        return decoded

    async def _pre_auth(self, client: _Client, raw: str | bytes) -> None:
        cmd = self._admit(client, raw)
        if cmd is None:
            return
        if cmd.type == "ping":
            self._send(client, server_message("pong", re=cmd.id))
            return
        if cmd.type not in schema.PRE_AUTH_TYPES:
            self._send(client, error_reply(ErrorCode.NOT_AUTHENTICATED, "send auth or resume first", cmd.id))
            return
        try:
            if cmd.type == "auth":
                account = await self._check_password(client, str(cmd.args["username"]), str(cmd.args["password"]))
                client.token, principal = self.signer.issue(account, self.clock())
                resumed, last_seq, stream = False, None, None
            else:
                client.token = str(cmd.args["token"])
                principal = self.signer.check(client.token, self.clock(), self.accounts)
                resumed, last_seq = True, cast(int, cmd.args["last_seq"])
                stream = cast(str | None, cmd.args.get("stream"))
        except HashingBusy:
            self._send(client, error_reply(ErrorCode.UNAVAILABLE, "too many logins at once: try again",
                                           cmd.id, retry_after_s=1))
            return
        except AuthError as exc:
            client.token = ""
            client.auth_failures += 1
            self._send(client, error_reply(exc.code, exc.message, cmd.id, retry_after_s=exc.retry_after_s))
            if client.auth_failures >= self.config.max_auth_failures:
                await client.ws.close(CLOSE_POLICY, "too many failed logins")
            return
        # From here on the connection belongs to its session: a logout elsewhere closes it too,
        # even while the snapshot below is being read.
        client.principal = principal
        self._clients.add(client)
        self._send(client, server_message(
            "auth_ok", re=cmd.id, token=client.token,
            expires_at=datetime.fromtimestamp(principal.expires_at, UTC).isoformat(),
            user={"username": principal.username, "role": str(principal.role), "agent_id": principal.agent_id,
                  "display_name": principal.display_name, "extension": principal.extension,
                  "language": self._language(principal)},
            config=self.backend.console_config(principal), resumed=resumed))
        await self._attach(client, principal, last_seq, stream)

    async def _check_password(self, client: _Client, username: str, password: str) -> Account:
        """The account, or AuthError (auth_failed, locked_out) / HashingBusy. A locked username or
        address is refused before any hashing, so the right password is refused too while locked."""
        address = client.address
        self.throttle.check(username, address, self.clock())

        def still_unlocked() -> None:  # failures counted while this login waited for a slot count too
            self.throttle.check(username, address, self.clock())

        def count(job: asyncio.Future[Account]) -> None:  # before the next waiter's still_unlocked
            if job.cancelled():
                return
            exc = job.exception()
            if exc is None:
                self.throttle.succeeded(username)
            elif isinstance(exc, AuthError) and exc.code is ErrorCode.AUTH_FAILED:
                now = self.clock()
                self.throttle.failed(username, address, now)
                locked = max(self.throttle.users.retry_after(username, now),
                             self.throttle.addresses.retry_after(address, now))
                if locked:
                    log.warning("logins of %r from %s locked for %.0f s after repeated failures",
                                username, address, locked)

        return await self.hash_gate.run(lambda: self.accounts.check_password(username, password),
                                        ready=still_unlocked, settle=count)

    def _language(self, principal: Principal) -> str:
        account = self.accounts.get(principal.username)
        return account.language if account else "zh"

    async def _attach(self, client: _Client, who: Principal, last_seq: int | None, stream: str | None) -> None:
        now = self.clock()
        if who.role is Role.AGENT:
            assert who.agent_id is not None
            outbox = self._agent_outbox(who.agent_id)
            replay = outbox.since(last_seq, now) if last_seq is not None and stream == outbox.stream_id else None
            if replay is None:
                base = outbox.last_seq
                snap = await asyncio.wait_for(self.backend.agent_snapshot(who.agent_id),
                                              self.config.command_timeout_s)
                self._send(client, server_message("snapshot", seq=base, stream=outbox.stream_id,
                                                  agent=snap.agent, calls=snap.calls, offers=snap.offers))
                replay = outbox.since(base, self.clock()) or []  # pushed while the snapshot was read
            for frame in replay:
                self._write((client,), frame)
            client.stream = "agent:" + who.agent_id
            clients = self._agent_clients.setdefault(who.agent_id, set())
            clients.add(client)
            if len(clients) == 1:
                self._presence(who.agent_id, True)
            return
        outbox = self._monitor_outbox
        replay = outbox.since(last_seq, now) if last_seq is not None and stream == outbox.stream_id else None
        if replay is None:
            self._send(client, server_message("snapshot", seq=outbox.last_seq, stream=outbox.stream_id,
                                              **self.monitor.snapshot()))
        else:
            for frame in replay:
                self._write((client,), frame)
        client.stream = "monitor"
        self._supervisors.add(client)

    def _detach(self, client: _Client) -> None:
        self._clients.discard(client)
        self._supervisors.discard(client)
        who = client.principal
        if who is not None and who.agent_id is not None:
            clients = self._agent_clients.get(who.agent_id)
            if clients is not None and client in clients:
                clients.discard(client)
                if not clients:
                    del self._agent_clients[who.agent_id]
                    self._presence(who.agent_id, False)

    def _presence(self, agent_id: str, connected: bool) -> None:
        try:
            self.backend.console_presence(agent_id, connected)
        except Exception:  # a connection opens and closes whatever the backend makes of it
            log.exception("console presence of agent %s", agent_id)

    async def _on_message(self, client: _Client, raw: str | bytes) -> None:
        cmd = self._admit(client, raw)
        if cmd is None:
            return
        who = client.principal
        assert who is not None
        if cmd.type in ("auth", "resume"):
            self._send(client, error_reply(ErrorCode.ALREADY_AUTHENTICATED, "already logged in", cmd.id))
            return
        try:
            self.signer.verify(who, self.clock())
        except AuthError as exc:  # expired, logged out elsewhere, or forced out by a supervisor
            self._send(client, error_reply(exc.code, exc.message, cmd.id))
            await client.ws.close(CLOSE_POLICY, exc.message.split(":", 1)[0])
            return
        if not who.may(cmd.type):
            self._send(client, error_reply(ErrorCode.FORBIDDEN,
                                           f"a {who.role} may not send {cmd.type}", cmd.id))
            return
        call_id = cmd.args.get("call_id")
        if who.role is Role.AGENT and isinstance(call_id, str) and not self._owns(who.agent_id, call_id):
            self._send(client, error_reply(ErrorCode.NOT_YOUR_CALL, "that call is not yours", cmd.id, "call_id"))
            return
        try:
            reply = await asyncio.wait_for(self._handlers[cmd.type](client, who, cmd),
                                           self.config.command_timeout_s)
        except Refused as exc:
            reply = error_reply(ErrorCode.REFUSED, exc.message, cmd.id, reason=exc.reason, field=exc.field)
        except TimeoutError:
            reply = error_reply(ErrorCode.UNAVAILABLE, "the server did not answer in time", cmd.id)
        except ConnectionClosed:
            raise
        except Exception:
            log.exception("command %s failed", cmd.type)
            reply = error_reply(ErrorCode.INTERNAL, "internal error", cmd.id)
        if reply is not None:
            self._send(client, reply)

    # ------------------------------------------------------------------ commands

    def _handler_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "ping": self._cmd_ping, "logout": self._cmd_logout,
            "agent_login": self._cmd_agent_login, "agent_logout": self._simple("agent_logout"),
            "phone_account": self._cmd_phone_account, "phone_state": self._cmd_phone_state,
            "ready": self._simple("agent_ready"), "pause": self._cmd_pause,
            "answer": self._cmd_answer, "hold": self._on_call("hold"), "unhold": self._on_call("unhold"),
            "transfer_complete": self._on_call("complete_transfer"),
            "transfer_cancel": self._on_call("cancel_transfer"), "hangup": self._on_call("hangup"),
            "transfer": self._cmd_transfer, "wrapup": self._cmd_wrapup, "search": self._cmd_search,
            "dial": self._cmd_dial, "spy": self._cmd_spy, "spy_stop": self._cmd_spy_stop,
            "force_pause": self._cmd_force_pause,
            "force_logout": self._cmd_force_logout, "move_call": self._cmd_move_call,
            **{kind: self._cmd_crm for kind in schema.CRM_MESSAGES},
            **{kind: self._cmd_callback for kind in schema.CALLBACK_MESSAGES},
            **{kind: self._cmd_campaign for kind in schema.CAMPAIGN_MESSAGES},
            "wrapup_draft": self._cmd_wrapup_draft, "my_day": self._cmd_my_day,
            "preview_dial": self._cmd_preview_dial, "preview_skip": self._cmd_preview_skip,
        }
        table.update(dict.fromkeys(schema.ADMIN_MESSAGES, self._cmd_admin))
        for kind, handle in desk_handlers(self.recordings).items():
            table[kind] = self._desk(handle)
        missing = set(schema.CLIENT_MESSAGES) - set(table) - {"auth", "resume"}
        assert not missing, missing
        return table

    @staticmethod
    def _desk(handle: Callable[[Principal, Command], Awaitable[dict[str, object]]]) -> Handler:
        async def run(client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
            return await handle(who, cmd)
        return run

    @staticmethod
    def _ok(cmd: Command, data: object = None) -> dict[str, object]:
        return server_message("result", re=cmd.id, data=data)

    async def _cmd_ping(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        return server_message("pong", re=cmd.id)

    async def _cmd_logout(self, client: _Client, who: Principal, cmd: Command) -> None:
        """Ends the session on every connection that holds it (another tab that resumed the same token)."""
        self.signer.end(who, self.clock())
        self.backend.session_ended(who)
        self._send(client, self._ok(cmd))
        others = [c for c in self._clients if c is not client and c.principal is not None
                  and c.principal.session_id == who.session_id]
        await asyncio.gather(client.ws.close(1000, "logged out"),
                             *(c.ws.close(CLOSE_POLICY, "session ended: logged out") for c in others),
                             return_exceptions=True)

    def _simple(self, method: str) -> Handler:
        async def run(client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
            await getattr(self.backend, method)(who)
            return self._ok(cmd)
        return run

    def _on_call(self, method: str) -> Handler:
        async def run(client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
            await getattr(self.backend, method)(who, str(cmd.args["call_id"]))
            return self._ok(cmd)
        return run

    async def _cmd_agent_login(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        queues = tuple(str(q) for q in cast(list[object], cmd.args["queues"]))
        await self.backend.agent_login(who, str(cmd.args["extension"]), queues)
        return self._ok(cmd)

    async def _cmd_phone_account(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        account = await self.backend.phone_account(who, str(cmd.args["extension"]))
        return self._ok(cmd, {"account": account})

    async def _cmd_phone_state(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        await self.backend.phone_state(who, str(cmd.args["extension"]), str(cmd.args["state"]),
                                       str(cmd.args.get("detail") or ""))
        return self._ok(cmd)

    async def _cmd_answer(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        await self.backend.answer_offer(who, str(cmd.args["offer_id"]))
        return self._ok(cmd)

    async def _cmd_pause(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        await self.backend.agent_pause(who, str(cmd.args["reason"]))
        return self._ok(cmd)

    async def _cmd_transfer(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        target = TransferTarget(cast(Any, cmd.args["target_kind"]), str(cmd.args["target"]))
        call_id = str(cmd.args["call_id"])
        if cmd.args["mode"] == "blind":
            await self.backend.blind_transfer(who, call_id, target)
        else:
            await self.backend.attended_transfer(who, call_id, target)
        return self._ok(cmd)

    async def _cmd_wrapup(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object] | None:
        call_id = str(cmd.args["call_id"])
        follow_up = None
        raw_follow_up = cmd.args.get("follow_up")
        if isinstance(raw_follow_up, dict):
            try:
                due_at = datetime.fromisoformat(str(raw_follow_up["due_at"]))
            except ValueError:
                return error_reply(ErrorCode.BAD_FIELD, "follow_up.due_at: not a real date", cmd.id,
                                   "follow_up.due_at")
            follow_up = FollowUpForm(raw_follow_up["kind"], due_at, str(raw_follow_up.get("note", "")))
        form = WrapUpForm(str(cmd.args["disposition"]), str(cmd.args.get("notes", "")), follow_up)
        try:
            await self.backend.save_wrapup(who, call_id, form)
        except WrapUpFailed as exc:
            return server_message("wrapup_failed", re=cmd.id, call_id=call_id, message=exc.message)
        assert who.agent_id is not None
        # On the agent's stream (not only a reply): every open console clears the form, and a
        # console that drops right now learns it on resume.
        self._push_agent(who.agent_id, "wrapup_saved", re=cmd.id, call_id=call_id)
        return None

    async def _cmd_wrapup_draft(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        until = await self.backend.save_wrapup_draft(who, str(cmd.args["call_id"]),
                                                     str(cmd.args.get("disposition", "")),
                                                     str(cmd.args.get("notes", "")))
        return self._ok(cmd, {"until": until})

    async def _cmd_my_day(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        return self._ok(cmd, await self.backend.agent_today(who))

    async def _cmd_search(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        limit = cast(int, cmd.args.get("limit", 20))
        found = await self.backend.search_customers(who, str(cmd.args["q"]), limit)
        return server_message("search_results", re=cmd.id, customers=list(found)[:limit])

    async def _cmd_crm(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        return self._ok(cmd, await self.backend.crm_command(who, cmd.type, cmd.args))

    async def _cmd_callback(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        return self._ok(cmd, await self.backend.callback_command(who, cmd.type, cmd.args))

    async def _cmd_campaign(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        if self.campaigns is None:
            return error_reply(ErrorCode.UNAVAILABLE, "no campaigns are run here", cmd.id)
        return self._ok(cmd, await self.campaigns.campaign_command(who, cmd.type, cmd.args))

    async def _cmd_dial(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        customer_id = cast(int | None, cmd.args.get("customer_id"))
        number = cast(str | None, cmd.args.get("number"))
        call_id = await self.backend.click_to_call(who, customer_id, number)
        return self._ok(cmd, {"call_id": call_id})

    async def _cmd_preview_dial(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        if self.previews is None or who.agent_id is None:
            return error_reply(ErrorCode.UNAVAILABLE, "no campaigns are dialled here", cmd.id)
        return self._ok(cmd, {"call_id": await self.previews.preview_dial(who.agent_id)})

    async def _cmd_preview_skip(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        if self.previews is None or who.agent_id is None:
            return error_reply(ErrorCode.UNAVAILABLE, "no campaigns are dialled here", cmd.id)
        return self._ok(cmd, {"skipped": self.previews.preview_skip(who.agent_id)})

    async def _cmd_spy(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        extension = cast(str | None, cmd.args.get("extension")) or who.extension
        if extension is None:
            return error_reply(ErrorCode.BAD_FIELD, "extension: your account has no phone; give one",
                               cmd.id, "extension")
        await self.backend.spy(who, extension, str(cmd.args["agent_id"]), cast(Any, cmd.args["mode"]))
        return self._ok(cmd)

    async def _cmd_spy_stop(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        return self._ok(cmd, {"stopped": await self.backend.spy_stop(who)})

    async def _cmd_force_pause(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        await self.backend.force_pause(who, str(cmd.args["agent_id"]), str(cmd.args.get("reason", "supervisor")))
        return self._ok(cmd)

    async def _cmd_force_logout(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        """The agent leaves the ACD and every console session of theirs ends, open or not: a token kept
        in a closed tab no longer resumes. The agent logs in again with the password."""
        agent_id = str(cmd.args["agent_id"])
        await self.backend.force_logout(who, agent_id)
        now = self.clock()
        for account in self.accounts.of_agent(agent_id):
            self.signer.end_user(account.username, now)
            self.backend.user_logged_out(account.username)
        gone = [c for c in self._clients if c.principal is not None and c.principal.role is Role.AGENT
                and c.principal.agent_id == agent_id]
        await asyncio.gather(*(c.ws.close(CLOSE_POLICY, "logged out by a supervisor") for c in gone),
                             return_exceptions=True)
        return self._ok(cmd)

    async def _cmd_admin(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        if self.admin is None:
            raise Refused("not_configured", "administration is not available on this server")
        return self._ok(cmd, await self.admin(who, cmd.type, cmd.args))

    async def end_user_sessions(self, username: str, why: str) -> None:
        """Every session of `username` ends now, connected or not (an administrator removed the account or
        changed its role or password): its tokens no longer resume, its connections close 1008."""
        self.signer.end_user(username, self.clock())
        gone = [c for c in self._clients if c.principal is not None and c.principal.username == username]
        await asyncio.gather(*(c.ws.close(CLOSE_POLICY, why) for c in gone), return_exceptions=True)

    async def _cmd_move_call(self, client: _Client, who: Principal, cmd: Command) -> dict[str, object]:
        await self.backend.move_call(who, str(cmd.args["call_id"]), cast(str | None, cmd.args.get("queue")),
                                     bool(cmd.args.get("head", False)))
        return self._ok(cmd)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else "unknown"


# ---------------------------------------------------------------------------------------------
# Secrets out of the logs. The websockets debug log prints every frame (`auth` with its password,
# `auth_ok` and `resume` with a token) and its own rendering cuts long frames in the middle, which
# can cut a field's name and keep its value: frames are rendered here, whole, then redacted.

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_REDACTED_LOGGERS = ("websockets", "websockets.server", "websockets.client", "ctiserver.gateway")
_SHOWN_CHARS = 300


class SecretFilter(logging.Filter):
    """Rewrites a record so that no password or session token reaches any handler; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            if any(isinstance(a, Frame) for a in args):
                args = tuple(_frame_text(a) if isinstance(a, Frame) else a for a in args)
            if (len(args) == 2 and isinstance(args[0], str) and args[0].lower() in _SECRET_HEADERS
                    and str(record.msg).endswith("%s: %s")):
                args = (args[0], schema.REDACTED)  # request/response header lines of the handshake
            record.args = args
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a broken format string: logging reports it as usual
        clean = schema.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _frame_text(frame: Frame) -> str:
    size = f"[{len(frame.data)} bytes{'' if frame.fin else ', continued'}]"
    if frame.opcode is Opcode.TEXT and frame.fin:
        text = schema.redact(bytes(frame.data).decode("utf-8", "replace"))
        if len(text) > _SHOWN_CHARS:
            text = text[:_SHOWN_CHARS] + "..."
        return f"TEXT {text!r} {size}"
    if frame.opcode in (Opcode.TEXT, Opcode.CONT, Opcode.BINARY):
        # A fragment may hold part of a secret that no pattern can recognise on its own.
        return f"{frame.opcode.name} (payload not shown) {size}"
    return str(frame)  # ping, pong, close: no secrets


def redact_logs(handlers: Iterable[logging.Handler] = ()) -> None:
    """Put a SecretFilter on the loggers that see frames (a logger's filter covers the records made on
    it, whatever handler takes them, pytest's included) and on `handlers` (records from anywhere)."""
    for target in (*(logging.getLogger(name) for name in _REDACTED_LOGGERS), *handlers):
        if not any(isinstance(f, SecretFilter) for f in target.filters):
            target.addFilter(SecretFilter())
