"""A contact centre on loopback for tests and benchmarks that must kill the server: this process runs the
PBX simulator; the CTI server runs as a child process (`ctiserver run`), so it can be killed with SIGKILL
and started again on the same configuration, CRM database and queue_log, as on a real machine.

The simulator knows nothing of the server's insides (no import of ctiserver): the site writes a cti.yaml
and a queues file, starts `python -m ctiserver.cli run`, and waits for its ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .simulator import Simulator

AMI_USER, AMI_SECRET = "cti", "ctisecret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SiteConfig:
    queues_yaml: str
    flows_dir: Path
    accounts: Sequence[Mapping[str, Any]]  # cti.yaml accounts (username, role, agent_id, password_hash ...)
    token_secret: str = "site-token-secret-0123456789"
    default_flow: str = "main"
    extra: Mapping[str, Any] = field(default_factory=dict)  # more cti.yaml sections


class ProcessSite:
    """`await site.start()`: the simulator, then the server process; `kill()`; `start_server()` again."""

    def __init__(self, tmp: Path, config: SiteConfig, *, time_scale: float = 0.05,
                 sim_globals: Mapping[str, str] | None = None) -> None:
        self.tmp = tmp
        self.config = config
        self.agi_port = free_port()
        self.http_port = free_port()
        self.sim = Simulator(time_scale=time_scale, ami_users={AMI_USER: AMI_SECRET},
                             globals_override={"CTI_AGI": f"agi://127.0.0.1:{self.agi_port}",
                                               **dict(sim_globals or {})})
        self.proc: subprocess.Popen[bytes] | None = None
        self.ami_port = 0
        self.db = tmp / "crm.db"
        self.queue_log = tmp / "queue_log"
        self.log = tmp / "server.log"
        self.starts = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/ws"

    def _write_config(self) -> Path:
        (self.tmp / "queues.yaml").write_text(self.config.queues_yaml, encoding="utf-8")
        cfg = {
            "pbx": [{"name": "pbx1", "host": "127.0.0.1", "port": self.ami_port, "username": AMI_USER,
                     "secret": AMI_SECRET}],
            "agi": {"host": "127.0.0.1", "port": self.agi_port, "allow": ["127.0.0.1"]},
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "crm": {"url": f"sqlite:///{self.db}", "default_country": "CN"},
            "ivr": {"flows_dir": str(self.config.flows_dir), "default_flow": self.config.default_flow,
                    "recordings_dir": str(self.tmp / "recordings")},
            "acd": {"queues_file": "queues.yaml"},
            "accounts": [dict(a) for a in self.config.accounts],
            "security": {"token_secret": self.config.token_secret},
            **self.config.extra,
        }
        path = self.tmp / "cti.yaml"
        path.write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")  # JSON is YAML
        return path

    async def start(self) -> None:
        self.ami_port = await self.sim.start()
        await self.start_server()

    async def start_server(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the server is running"
        config = self._write_config()
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            log.write(f"\n==== start {self.starts} ====\n".encode())
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - spawning only; the ports are awaited below
                [sys.executable, "-m", "ctiserver.cli", "run", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        deadline = asyncio.get_running_loop().time() + timeout
        while not (await listening(self.http_port) and await listening(self.agi_port)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ctiserver exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"ctiserver did not listen in {timeout} s: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye, as a crash or `kill -9`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop_server(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the server drains and exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.proc.wait, timeout)

    async def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(Exception):
            await self.sim.stop()


async def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
