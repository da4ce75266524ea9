"""FastAGI server over loopback, with a client playing Asterisk's side from captures 02, 03 and 13."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from ctiserver.agi.protocol import MAX_LINE, MAX_USAGE_BYTES, AgiReply
from ctiserver.agi.server import AgiSession, FastAgiServer
from ctiserver.agi.session import AgiChannel, ChannelHungUp
from pbxsim.captures import RECEIVED, SENT, capture


def agi_records(name: str, stream: str = "AGI1") -> list[tuple[str, bytes]]:
    return [(r.direction, r.payload) for r in capture(name) if r.stream == stream]


ENV_02 = agi_records("02")[0][1]
ENV_03 = agi_records("03")[0][1]


def env_for(script: str, base: bytes = ENV_02) -> bytes:
    return base.replace(b"agi_network_script: ivr\n", f"agi_network_script: {script}\n".encode())


class AsteriskSide:
    """The Asterisk end of one FastAGI session (a client socket)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, env: bytes | None = ENV_02) -> AsteriskSide:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if env is not None:
            writer.write(env)
        return cls(reader, writer)

    async def command(self, timeout: float = 2.0) -> str:
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        assert line.endswith(b"\n"), f"connection closed, got {line!r}"
        return line.decode()

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            self.writer.write(line if isinstance(line, bytes) else line.encode())

    async def closed_by_server(self, timeout: float = 2.0) -> bytes:
        async with asyncio.timeout(timeout):
            rest = await self.reader.read()
        return rest

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.fixture
async def server() -> AsyncIterator[FastAgiServer]:
    srv = FastAgiServer("127.0.0.1", 0, env_timeout=0.5, command_timeout=5.0)
    await srv.start()
    yield srv
    await srv.close()


async def wait_idle(srv: FastAgiServer) -> None:
    async with asyncio.timeout(2):
        while srv.active_sessions:
            await asyncio.sleep(0.01)


async def test_capture_02_session_replayed_then_ivr_done_and_close(server: FastAgiServer) -> None:
    """Asterisk's replies for the whole capture-02 IVR, in order; the handler sees them parsed."""
    recs = agi_records("02")[1:]
    commands = [p.decode() for d, p in recs if d == SENT]
    replies = [p for d, p in recs if d == RECEIVED]
    got: list[AgiReply] = []
    seen_env: list[AgiChannel] = []

    async def ivr(session: AgiSession) -> None:
        seen_env.append(session)
        for line in commands:
            verb_and_args = line.rstrip("\n")
            # Re-send the captured command lines as words: verb(s) then the rest as one raw argument tail.
            got.append(await session.command(verb_and_args))

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    for line, reply in zip(commands, replies, strict=True):
        assert await pbx.command() == line
        pbx.send(reply)
    assert await pbx.command() == "SET VARIABLE IVR_DONE 1\n"
    pbx.send("200 result=1\n")
    assert await pbx.closed_by_server() == b""
    env = seen_env[0].env
    assert env.script == "ivr" and env.channel == "Local/5551000@from-pstn-00000000;2"
    assert env.caller_name == "John Doe" and env.extension == "5551000"
    assert got[1].digit == "5" and got[1].endpos == 13120  # STREAM FILE interrupted by the caller's 5
    assert got[3].result == "1234"
    assert got[4].result == "" and got[4].timed_out  # GET DATA with no input
    assert got[8].data == "1234"  # GET VARIABLE ACCOUNT
    assert got[12].value == 6  # CHANNEL STATUS: up
    assert got[15].result == "9705" and got[15].timed_out and got[15].endpos == 29600  # RECORD FILE s=2
    assert got[17].value == -2  # EXEC of a missing application
    assert got[18].code == 510  # unknown command
    await wait_idle(server)


async def test_route_with_query_parameters(server: FastAgiServer) -> None:
    seen: list[dict[str, str]] = []

    @server.route("ivr")
    async def ivr(session: AgiSession) -> None:
        seen.append(session.env.params)

    pbx = await AsteriskSide.open(server.port, env_for("ivr?flow=main&lang=ko"))
    assert await pbx.command() == "SET VARIABLE IVR_DONE 1\n"
    pbx.send("200 result=1\n")
    await pbx.closed_by_server()
    assert seen == [{"flow": "main", "lang": "ko"}]


async def test_capture_03_hangup_line_and_511_raise_channel_hung_up(server: FastAgiServer) -> None:
    outcome: list[object] = []

    async def ivr_long(session: AgiSession) -> None:
        first = await session.command("STREAM FILE", "custom/long-prompt", "")
        outcome.append(first)
        try:
            await session.command("GET DATA", "beep", 3000, 4)
        except ChannelHungUp as exc:
            outcome.append(exc)
            raise

    server.route("ivr-long", ivr_long)
    pbx = await AsteriskSide.open(server.port, ENV_03)
    assert await pbx.command() == 'STREAM FILE custom/long-prompt ""\n'
    pbx.send("200 result=-1 endpos=31840\n")  # the caller hung up during the prompt (capture 03)
    assert (await pbx.command()).startswith("GET DATA beep 3000 4")
    pbx.send("HANGUP\n")
    await asyncio.sleep(0.02)  # 40 ms apart in the capture
    pbx.send("511 Command Not Permitted on a dead channel or intercept routine\n")
    # No IVR_DONE after a hangup; the socket closes so Asterisk can finish the channel's Hangup.
    assert await pbx.closed_by_server() == b""
    assert isinstance(outcome[0], AgiReply) and outcome[0].value == -1
    assert isinstance(outcome[1], ChannelHungUp)
    await wait_idle(server)


async def test_plain_511_also_means_hung_up(server: FastAgiServer) -> None:
    raised: list[BaseException] = []

    async def ivr(session: AgiSession) -> None:
        try:
            await session.command("CHANNEL STATUS")
        except ChannelHungUp as exc:
            raised.append(exc)

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await pbx.command()
    pbx.send("511 Command Not Permitted on a dead channel or intercept routine\n")
    assert await pbx.closed_by_server() == b""
    assert raised


async def test_peer_disconnects_mid_command_handler_unwinds(server: FastAgiServer) -> None:
    cleanup: list[str] = []

    async def ivr(session: AgiSession) -> None:
        try:
            await session.command("STREAM FILE", "custom/long-prompt", "0123456789#*")
        finally:
            cleanup.append("done")

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await pbx.command()
    pbx.close()
    await wait_idle(server)
    assert cleanup == ["done"]


async def test_hangup_while_idle_cancels_the_handler(server: FastAgiServer) -> None:
    states: list[str] = []
    forever = asyncio.Event()

    async def ivr(session: AgiSession) -> None:
        await session.command("ANSWER")
        try:
            await forever.wait()  # e.g. waiting for the ACD, no AGI command running
        except asyncio.CancelledError:
            states.append("cancelled")
            # Variables still work after a hangup (capture 03); the cancel was the hangup report.
            reply = await session.command("SET VARIABLE", "CTI_ABANDONED", "1")
            states.append(f"cleanup {reply.code}")
            raise

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await pbx.command()
    pbx.send("200 result=0\n")
    await asyncio.sleep(0.05)
    pbx.send("HANGUP\n")  # res_agi sends it as soon as it sees the hangup
    assert await pbx.command() == "SET VARIABLE CTI_ABANDONED 1\n"
    pbx.send("200 result=1\n")
    assert await pbx.closed_by_server() == b""
    assert states == ["cancelled", "cleanup 200"]
    await wait_idle(server)


async def test_eof_while_idle_cancels_the_handler(server: FastAgiServer) -> None:
    states: list[str] = []

    async def ivr(session: AgiSession) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            states.append("cancelled")
            raise

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await asyncio.sleep(0.05)
    pbx.close()
    await wait_idle(server)
    assert states == ["cancelled"]


async def test_crash_does_not_set_ivr_done(server: FastAgiServer, caplog: pytest.LogCaptureFixture) -> None:
    async def ivr(session: AgiSession) -> None:
        await session.command("ANSWER")
        raise RuntimeError("flow bug")

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    assert await pbx.command() == "ANSWER\n"
    pbx.send("200 result=0\n")
    # Capture 13: the dialplan can only tell a crash from a normal end by IVR_DONE missing.
    assert await pbx.closed_by_server() == b""
    assert any("crashed" in r.getMessage() for r in caplog.records)


async def test_unknown_script_sets_error_variable_and_closes(server: FastAgiServer) -> None:
    server.route("ivr", _noop)
    pbx = await AsteriskSide.open(server.port, env_for("nosuch"))
    assert await pbx.command() == "SET VARIABLE CTI_AGI_ERROR unknown-script\n"
    pbx.send("200 result=1\n")
    assert await pbx.closed_by_server() == b""


@pytest.mark.parametrize(
    "block",
    [
        b"garbage without a colon\n\n",
        b"agi_network: yes\n\n",  # no script
        b"agi_network: yes\nagi_x: " + b"y" * 9000 + b"\n\n",  # line over the limit
        b"agi_network: yes\n",  # never terminated: the env timeout ends it
    ],
)
async def test_bad_environment_block_is_logged_and_closed(
    server: FastAgiServer, block: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ctiserver.agi.server")
    called: list[int] = []

    async def ivr(session: AgiSession) -> None:
        called.append(1)

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port, block)
    assert await pbx.closed_by_server() == b""
    assert not called
    assert any("AGI environment" in r.getMessage() for r in caplog.records)


async def test_command_timeout_skips_the_late_reply(server: FastAgiServer) -> None:
    results: list[object] = []

    async def ivr(session: AgiSession) -> None:
        try:
            await session.command("WAIT FOR DIGIT", 5000, timeout=0.1)
        except TimeoutError as exc:
            results.append(exc)
        results.append(await session.command("GET VARIABLE", "ACCOUNT"))

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    assert await pbx.command() == "WAIT FOR DIGIT 5000\n"
    assert await pbx.command() == "GET VARIABLE ACCOUNT\n"
    pbx.send("200 result=35\n", "200 result=1 (1234)\n")  # the late reply first, as the wire orders them
    assert await pbx.command() == "SET VARIABLE IVR_DONE 1\n"
    pbx.send("200 result=1\n")
    await pbx.closed_by_server()
    assert isinstance(results[0], TimeoutError)
    assert isinstance(results[1], AgiReply) and results[1].data == "1234"


async def test_server_close_cancels_sessions_and_closes_sockets() -> None:
    srv = FastAgiServer("127.0.0.1", 0)
    started = asyncio.Event()

    async def ivr(session: AgiSession) -> None:
        started.set()
        await asyncio.sleep(60)

    srv.route("ivr", ivr)
    await srv.start()
    pbx = await AsteriskSide.open(srv.port)
    await asyncio.wait_for(started.wait(), 2)
    await srv.close()
    assert await pbx.closed_by_server() == b""
    assert srv.active_sessions == 0


def test_sync_handlers_are_refused_at_registration() -> None:
    srv = FastAgiServer()

    def plain(session: AgiSession) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        srv.route("ivr", plain)  # type: ignore[arg-type]


async def test_session_satisfies_the_agi_channel_protocol(server: FastAgiServer) -> None:
    async def ivr(session: AgiChannel) -> None:  # typed against the Protocol the IVR uses
        await session.command("ANSWER")

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await pbx.command()
    pbx.send("200 result=0\n")
    assert await pbx.command() == "SET VARIABLE IVR_DONE 1\n"


async def _noop(session: AgiSession) -> None:
    return None


# ------------------------------------------------------------------------------------ a hostile peer


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("ctiserver.agi") and r.levelno >= logging.WARNING]


async def cut_off(pbx: AsteriskSide) -> None:
    """Returns once the server has closed the connection: EOF, or a reset if it aborted with data unread."""
    with contextlib.suppress(ConnectionError):
        assert await pbx.closed_by_server(timeout=10) == b""


async def flood(pbx: AsteriskSide, total: int, line: bytes) -> int:
    """Write ``line`` over and over until ``total`` bytes or until the server cuts the connection."""
    chunk = line * (65536 // len(line))
    sent = 0
    try:
        while sent < total:
            pbx.writer.write(chunk)
            async with asyncio.timeout(10):
                await pbx.writer.drain()
            sent += len(chunk)
    except (ConnectionError, OSError):
        pass
    return sent


@pytest.mark.parametrize("size", [4 << 20, 64 << 20])
async def test_an_endless_520_block_is_cut_off_and_held_bytes_stay_bounded(
    server: FastAgiServer, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ctiserver.agi")
    sessions: list[AgiSession] = []
    outcome: list[BaseException] = []

    async def ivr(session: AgiSession) -> None:
        sessions.append(session)
        try:
            await session.command("GET DATA", "beep")
        except ChannelHungUp as exc:
            outcome.append(exc)

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    assert await pbx.command() == "GET DATA beep\n"
    pbx.send("520-Invalid command syntax.  Proper usage follows:\n")
    await flood(pbx, size, b"Usage: GET DATA <file to be streamed> [timeout] [maximum digits]\n")
    await cut_off(pbx)
    await wait_idle(server)
    [session] = sessions
    assert isinstance(outcome[0], ChannelHungUp) and session.dropped is not None
    # What the server took in and held does not depend on how much the peer sent.
    assert session.held_peak <= MAX_USAGE_BYTES
    assert session.bytes_read <= MAX_USAGE_BYTES + 2 * MAX_LINE
    assert len(warnings_of(caplog)) == 1 and "520 usage reply over" in warnings_of(caplog)[0]
    assert not [r for r in caplog.records if "caller gone" in r.getMessage()]


async def test_a_flood_of_unsolicited_replies_drops_the_peer(
    server: FastAgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ctiserver.agi")
    idle = asyncio.Event()

    async def ivr(session: AgiSession) -> None:
        await idle.wait()  # no command in flight: every reply is one nobody asked for

    server.route("ivr", ivr)
    pbx = await AsteriskSide.open(server.port)
    await flood(pbx, 4 << 20, b"200 result=0\n")
    await cut_off(pbx)
    await wait_idle(server)
    lines = warnings_of(caplog)
    assert len(lines) == 2, lines  # the first stray reply, then the drop
    assert "no command pending" in lines[0] and "dropping the peer" in lines[1]
    assert not [r for r in caplog.records if "caller gone" in r.getMessage()]


# ------------------------------------------------------------------------------------ allow-list


async def test_a_peer_not_on_the_allow_list_is_refused_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ctiserver.agi")
    srv = FastAgiServer("127.0.0.1", 0, allow=["10.0.0.0/24", "::1"])
    called: list[AgiSession] = []

    async def ivr(session: AgiSession) -> None:
        called.append(session)

    srv.route("ivr", ivr)
    async with srv:
        for _ in range(3):
            pbx = await AsteriskSide.open(srv.port)
            await cut_off(pbx)  # no command, no reply: closed
            pbx.close()
        assert srv.refused_total == 3 and srv.sessions_total == 0 and not called
    lines = warnings_of(caplog)
    assert len(lines) == 1, lines  # three refusals, one line: the log is rate-limited
    assert "127.0.0.1" in lines[0] and "agi.allow" in lines[0]


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["10.0.0.0/24", "127.0.0.0/8"]])
async def test_a_peer_on_the_allow_list_is_served(allow: list[str]) -> None:
    srv = FastAgiServer("127.0.0.1", 0, allow=allow)
    srv.route("ivr", _noop)
    async with srv:
        pbx = await AsteriskSide.open(srv.port)
        assert await pbx.command() == "SET VARIABLE IVR_DONE 1\n"
        pbx.send("200 result=1\n")
        assert await pbx.closed_by_server() == b""
        assert srv.refused_total == 0 and srv.sessions_total == 1
