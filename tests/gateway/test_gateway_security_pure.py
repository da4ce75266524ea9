"""The gateway's security parts without sockets: default origins, their validation, the log filter."""

from __future__ import annotations

import logging

import pytest
from websockets.frames import Frame, Opcode

from ctiserver.gateway.server import GatewayConfig, SecretFilter, default_origins


def test_default_origins() -> None:
    assert default_origins("127.0.0.1", 8088) == {
        "http://127.0.0.1:8088", "http://localhost:8088", "http://[::1]:8088"}
    assert default_origins("0.0.0.0", 80) == {"http://127.0.0.1", "http://localhost", "http://[::1]"}
    assert default_origins("CTI.example.com", 8088) == {"http://cti.example.com:8088"}
    assert default_origins("192.0.2.10", 8088) == {"http://192.0.2.10:8088"}


def test_allowed_origins_are_checked_at_load() -> None:
    assert GatewayConfig(allowed_origins=("https://cti.example.com", "http://10.0.0.5:8088")).allowed_origins
    for bad in ("cti.example.com", "null", "*", "https://cti.example.com/agent", "ftp://cti.example.com"):
        with pytest.raises(ValueError, match="allowed_origins"):
            GatewayConfig(allowed_origins=(bad,))


def test_secret_filter_on_frames_and_headers() -> None:
    def render(msg: str, *args: object) -> str:
        record = logging.LogRecord("websockets.server", logging.DEBUG, __file__, 1, msg, args, None)
        assert SecretFilter().filter(record)
        return record.getMessage()

    whole = Frame(Opcode.TEXT, b'{"v":1,"type":"auth","username":"' + b"u" * 80 + b'","password":"s3cr3t"}')
    shown = render("< %s", whole)
    assert "s3cr3t" not in shown and '"password":"***"' in shown and "u" * 80 in shown, shown
    # A fragment cannot be judged alone: its payload is not shown at all.
    for fragment in (Frame(Opcode.TEXT, b'{"type":"auth","password":"s3c', fin=False), Frame(Opcode.CONT, b'r3t"}')):
        assert "s3c" not in render("< %s", fragment) and "r3t" not in render("> %s", fragment)
    assert render("< %s: %s", "Authorization", "Basic czNjcjN0") == "< Authorization: ***"
    assert render("< %s: %s", "Host", "127.0.0.1") == "< Host: 127.0.0.1"
    assert "1000" in render("< %s", Frame(Opcode.CLOSE, b"\x03\xe8bye"))
