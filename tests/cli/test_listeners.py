"""The parts behind `ctiserver run`'s one-line answer to a port in use: who holds a port (/proc), and a
server start that cannot listen closing what it opened."""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from ctiserver.app import CannotListen, CtiServer
from ctiserver.cli import listening_inodes, port_holder
from ctiserver.consoles.devices import PhoneSettings
from tests.gateway.gw_harness import ACD_YAML, _settings, crm_template


@pytest.fixture
def taken() -> Iterator[tuple[socket.socket, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock, sock.getsockname()[1]


def test_the_holder_of_a_port_is_read_from_proc(taken: tuple[socket.socket, int]) -> None:
    sock, port = taken
    assert port_holder(port) == port_holder(port) is not None
    assert (port_holder(port) or "").startswith(f"pid {os.getpid()} (")
    rows = ["  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 4242 1",
            "  1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000 0 4343 1"]
    assert listening_inodes(rows, 8080) == {"4242"}  # the established connection is not the listener
    sock.close()
    assert port_holder(port) is None


async def test_a_start_that_cannot_listen_closes_what_it_opened(tmp_path: Path,
                                                                taken: tuple[socket.socket, int]) -> None:
    """The race the CLI's own check cannot close (the port is taken between check and bind): start() raises
    CannotListen with nothing left running, so the process exits (before, the CRM's thread kept it up)."""
    _, port = taken
    db = tmp_path / "crm.db"
    db.write_bytes((await crm_template()).read_bytes())
    before = {t for t in threading.enumerate() if isinstance(t, aiosqlite.Connection)}
    settings = dataclasses.replace(_settings(tmp_path, db, 5999, 3600, ACD_YAML, PhoneSettings()), agi_port=port)
    server = CtiServer(settings)
    with pytest.raises(CannotListen) as failed:
        await server.start()
    assert (failed.value.service, failed.value.port, failed.value.reason) == (
        "FastAGI", port, "address already in use")
    assert {t for t in threading.enumerate() if isinstance(t, aiosqlite.Connection) and t.is_alive()} <= before
    kinds = [row[0] for row in sqlite3.connect(db).execute("SELECT kind FROM journal ORDER BY seq")]
    assert kinds[-1] == "system.stopping"  # what start() journaled is written, and that it stopped
