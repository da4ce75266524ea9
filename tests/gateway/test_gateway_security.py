"""The gateway as an attacker meets it, with real websocket clients against the real app: password
guessing across connections, pages of other origins, sessions that outlive a logout, secrets in the
debug log. Lockouts run on a manual clock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ctiserver import cli
from ctiserver.gateway.server import GatewayConfig
from tests.gateway.gw_client import ConsoleClient, Msg
from tests.gateway.gw_harness import AGENT1, AppSite, ManualClock


async def auth(site: AppSite, username: str, password: str) -> Msg:
    """One login attempt on a fresh connection, as a guesser who reconnects every time would do."""
    client = await ConsoleClient.open(site.ws_url)
    try:
        return await client.request("auth", username=username, password=password)
    finally:
        await client.close()


async def closed_by_server(client: ConsoleClient) -> tuple[int, str]:
    """The close code and reason the server sent; fails (TimeoutError) if the connection stays open."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.next(3)
    frame = closed.value.rcvd
    assert frame is not None, closed.value
    return frame.code, frame.reason


# ---------------------------------------------------------------------------- password guessing


async def test_failed_logins_lock_the_username_across_connections(site: AppSite) -> None:
    clock = ManualClock()
    await site.use_gateway(GatewayConfig(port=0), clock)
    right = site.passwords["agent1"]
    for i in range(5):
        assert (await auth(site, "agent1", f"guess{i}"))["code"] == "auth_failed"
    # Locked: the right password is refused without being checked, and the console is told how long.
    locked = await auth(site, "agent1", right)
    assert (locked["type"], locked["code"], locked["retry_after_s"]) == ("error", "locked_out", 1), locked
    assert "try again in 1 s" in locked["message"]
    clock.advance(1)
    assert (await auth(site, "agent1", "guess5"))["code"] == "auth_failed"
    locked = await auth(site, "agent1", right)
    assert (locked["code"], locked["retry_after_s"]) == ("locked_out", 2)  # doubled
    clock.advance(1)
    assert (await auth(site, "agent1", right))["retry_after_s"] == 1
    clock.advance(1)
    ok = await ConsoleClient.open(site.ws_url)
    await ok.login("agent1", right)
    # A success clears the username's count: the next typo is an ordinary failure.
    assert (await auth(site, "agent1", "typo"))["code"] == "auth_failed"
    # Another user is not affected by agent1's lock.
    assert (await auth(site, "agent2", site.passwords["agent2"]))["type"] == "auth_ok"


async def test_failed_logins_lock_the_address_across_usernames(site: AppSite) -> None:
    clock = ManualClock()
    await site.use_gateway(GatewayConfig(port=0), clock)
    for i in range(20):  # a spray: one guess per username, each from a new connection
        assert (await auth(site, f"user{i}", "123456"))["code"] == "auth_failed"
    locked = await auth(site, "agent2", site.passwords["agent2"])
    assert (locked["code"], locked["retry_after_s"]) == ("locked_out", 1), locked
    clock.advance(1)
    assert (await auth(site, "agent2", site.passwords["agent2"]))["type"] == "auth_ok"
    # A good account does not wash the address: the next failure locks it again, for longer.
    assert (await auth(site, "user20", "123456"))["code"] == "auth_failed"
    assert (await auth(site, "agent2", site.passwords["agent2"]))["retry_after_s"] == 2


async def test_parallel_guessing_is_cut_short(site: AppSite) -> None:
    """Many connections guessing at once: each guess is checked against the lock only once it holds a
    hashing slot, so no more than the lock's worth of guesses get a verdict, and at most
    max_concurrent_hashes hashes ever run together."""
    gateway = await site.use_gateway(GatewayConfig(port=0), ManualClock())
    clients = [await ConsoleClient.open(site.ws_url) for _ in range(30)]
    replies = await asyncio.gather(*(c.request("auth", username="agent1", password=f"guess{i}")
                                     for i, c in enumerate(clients)))
    codes = [r["code"] for r in replies]
    assert set(codes) == {"auth_failed", "locked_out"}, codes
    assert codes.count("auth_failed") <= 5 + gateway.config.max_concurrent_hashes - 1, codes
    assert 1 <= gateway.hash_gate.peak <= gateway.config.max_concurrent_hashes


async def test_logins_beyond_the_hashing_slots_wait_or_get_unavailable(site: AppSite) -> None:
    gateway = await site.use_gateway(GatewayConfig(port=0, max_concurrent_hashes=1, hash_wait_s=0))
    release = threading.Event()
    # Something else holds the only slot (a login whose hash has not finished).
    holder = asyncio.ensure_future(gateway.hash_gate.run(lambda: release.wait(10)))
    try:
        await site.until(lambda: gateway.hash_gate.running == 1, "the slot taken")
        busy = await auth(site, "agent1", site.passwords["agent1"])
        assert (busy["code"], busy["retry_after_s"]) == ("unavailable", 1), busy
    finally:
        release.set()
        await holder
    # Not counted as a failure, and with the slot free the login goes through.
    c = await ConsoleClient.open(site.ws_url)
    await c.login("agent1", site.passwords["agent1"])

    # With a wait allowed, a login queues behind the running hash instead of being refused.
    gateway = await site.use_gateway(GatewayConfig(port=0, max_concurrent_hashes=1, hash_wait_s=10))
    release.clear()
    holder = asyncio.ensure_future(gateway.hash_gate.run(lambda: release.wait(10)))
    await site.until(lambda: gateway.hash_gate.running == 1, "the slot taken")
    waiting = await ConsoleClient.open(site.ws_url)
    msg_id = await waiting.send("auth", username="agent2", password=site.passwords["agent2"])
    release.set()
    await holder
    reply = await waiting.wait_for(lambda m: m.get("re") == msg_id)
    assert reply["type"] == "auth_ok", reply


# ---------------------------------------------------------------------------- origins


async def test_websocket_refused_from_foreign_origins(site: AppSite) -> None:
    port = site.gateway.port
    for origin in ("http://evil.example", "null", f"http://evil.example:{port}", "https://127.0.0.1:1"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(site.ws_url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin
    with pytest.raises(InvalidStatus) as refused:  # two Origin headers: which one would count?
        await connect(site.ws_url, origin=site.http_url, additional_headers=[("Origin", "http://evil.example")],  # type: ignore[arg-type]
                      open_timeout=5)
    assert refused.value.response.status_code == 403
    # The console's own page, under each loopback name, and a client that is no browser (no Origin).
    for origin in (site.http_url, f"http://localhost:{port}", f"http://LOCALHOST:{port}/", f"http://[::1]:{port}"):
        async with connect(site.ws_url, origin=origin, open_timeout=5) as ws:  # type: ignore[arg-type]
            assert '"hello"' in str(await ws.recv())
    plain = await ConsoleClient.open(site.ws_url)
    await plain.login("agent1", site.passwords["agent1"])


async def test_configured_origins_replace_the_default(site: AppSite) -> None:
    await site.use_gateway(GatewayConfig(port=0, allowed_origins=("https://cti.example.com",)))
    async with connect(site.ws_url, origin="https://cti.example.com", open_timeout=5) as ws:  # type: ignore[arg-type]
        assert '"hello"' in str(await ws.recv())
    for origin in (site.http_url, "http://cti.example.com", "https://cti.example.com:8443"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(site.ws_url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin


# ---------------------------------------------------------------------------- ending sessions


async def test_logout_ends_every_connection_of_the_session(site: AppSite) -> None:
    first = await ConsoleClient.open(site.ws_url)
    await first.login("agent1", site.passwords["agent1"])
    second = await ConsoleClient.open(site.ws_url)  # another tab resumes the same session
    assert (await second.request("resume", token=first.token, last_seq=0))["type"] == "auth_ok"
    await second.wait_for("snapshot")
    other_session = await ConsoleClient.open(site.ws_url)  # the same agent, logged in separately
    await other_session.login("agent1", site.passwords["agent1"])

    assert (await first.request("logout"))["type"] == "result"
    assert await closed_by_server(first) == (1000, "logged out")
    assert await closed_by_server(second) == (1008, "session ended: logged out")
    again = await ConsoleClient.open(site.ws_url)
    assert (await again.request("resume", token=first.token, last_seq=0))["code"] == "token_invalid"
    # Only that session ended.
    assert (await other_session.request("search", q="evil"))["type"] == "search_results"


async def test_every_command_checks_the_session(site: AppSite) -> None:
    """A session ended while its connection stays open (by another worker sharing the secret, or a
    close that has not gone through yet) serves no further command."""
    console = await ConsoleClient.open(site.ws_url)
    await console.login("agent1", site.passwords["agent1"])
    assert (await console.request("search", q="evil"))["type"] == "search_results"
    gateway = site.gateway
    assert console.token is not None
    gateway.signer.end(gateway.signer.check(console.token, gateway.clock()), gateway.clock())
    refused = await console.request("search", q="evil")
    assert refused["code"] == "token_invalid" and "customers" not in refused, refused
    assert await closed_by_server(console) == (1008, "session ended")


async def test_forced_logout_ends_every_session_of_the_agent(site: AppSite) -> None:
    agent = await ConsoleClient.open(site.ws_url)
    await agent.login("agent1", site.passwords["agent1"])
    assert (await agent.request("agent_login", extension=AGENT1, queues=["sales"]))["type"] == "result"
    second_tab = await ConsoleClient.open(site.ws_url)
    assert (await second_tab.request("resume", token=agent.token, last_seq=0))["type"] == "auth_ok"
    closed_tab = await ConsoleClient.open(site.ws_url)  # a session whose tab is closed, token kept
    await closed_tab.login("agent1", site.passwords["agent1"])
    await closed_tab.close()
    other_agent = await ConsoleClient.open(site.ws_url)
    await other_agent.login("agent2", site.passwords["agent2"])
    boss = await ConsoleClient.open(site.ws_url)
    await boss.login("super1", site.passwords["super1"])

    assert (await boss.request("force_logout", agent_id=AGENT1))["type"] == "result"
    for console in (agent, second_tab):
        assert await closed_by_server(console) == (1008, "logged out by a supervisor")
    assert site.server.projector.router.agent_view(AGENT1, site.server.now()).state == "logged_out"
    for token in (agent.token, closed_tab.token):
        c = await ConsoleClient.open(site.ws_url)
        refused = await c.request("resume", token=token, last_seq=0)
        assert refused["code"] == "token_invalid" and "supervisor" in refused["message"], refused
    # The agent logs in again with the password; other users carry on.
    back = await ConsoleClient.open(site.ws_url)
    await back.login("agent1", site.passwords["agent1"])
    assert (await back.request("search", q="evil"))["type"] == "search_results"
    assert (await other_agent.request("search", q="evil"))["type"] == "search_results"
    assert (await boss.request("ping"))["type"] == "pong"


# ---------------------------------------------------------------------------- secrets in logs


def _logged(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)


async def test_debug_log_holds_no_password_or_token(site: AppSite, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = site.passwords["agent1"]
    console = await ConsoleClient.open(site.ws_url)
    await console.login("agent1", password)
    token = console.token
    assert token is not None
    resumed = await ConsoleClient.open(site.ws_url)
    assert (await resumed.request("resume", token=token, last_seq=0))["type"] == "auth_ok"
    # A long auth frame: websockets' own rendering would cut it in the middle, name and all.
    long_name = await ConsoleClient.open(site.ws_url)
    await long_name.request("auth", username="u" * 60, password="long-" + password)
    await console.request("logout")

    logged = _logged(caplog.records)
    assert password not in logged and token not in logged and token.split(".")[1] not in logged
    server_frames = [r.getMessage() for r in caplog.records if r.name == "websockets.server"]
    assert any('"type":"auth"' in m and '"password":"***"' in m for m in server_frames), server_frames
    assert any('"type":"auth_ok"' in m and '"token":"***"' in m for m in server_frames)
    assert any('"type":"resume"' in m for m in server_frames)


def test_cli_logging_redacts_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    """`ctiserver run -v`: whatever logger a secret reaches, the handlers the command set up drop it."""
    root = logging.getLogger()
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):  # stands for the stream handler logging.basicConfig makes
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    caplog.set_level(logging.DEBUG)
    handler = Keep()
    root.addHandler(handler)
    try:
        cli._logging(verbose=True)
        token = "eyJ1IjoiYWdlbnQxIiwiciI6ImFnZW50IiwicyI6Inh5eiJ9." + "S" * 43
        logging.getLogger("ctiserver.somewhere").debug("frame %s", '{"type":"auth","password":"hunter2hunter2"}')
        logging.getLogger("ctiserver.somewhere").info("resumed with %s", token)
    finally:
        root.removeHandler(handler)
    logged = _logged(caught)
    assert len(caught) == 2 and "hunter2hunter2" not in logged and token not in logged, logged
