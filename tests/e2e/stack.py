"""A whole contact center on loopback: the PBX simulator, the CTI server, a fresh SQLite CRM.

``running_stack`` yields a ``Stack``; tests drive the simulator (callers, phones, AMI faults) and read the
server's call model, ACD and CRM. Everything real: TCP on 127.0.0.1, the FastAGI sessions, SQLite on disk.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from acd import events as ev
from acd.config import AcdConfig, parse_config
from ctiserver.app import CtiServer, Pbx, PbxSettings, ServerSettings
from ctiserver.consoles.backend import ConsoleBackend
from ctiserver.gateway.auth import Principal, Role, hash_password
from pbxsim import wire
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator

DEMO = Path(__file__).resolve().parents[2] / "ctiserver" / "demo"
PASSWORD = "s3cret-pass"
_HASH = hash_password(PASSWORD)
AMI_USER, AMI_SECRET = "cti", "ctisecret"
T = TypeVar("T")


def accounts(agent_ids: list[str]) -> tuple[dict[str, str], ...]:
    out = [
        {"username": f"agent{a}", "role": "agent", "agent_id": a, "password_hash": _HASH} for a in agent_ids
    ]
    out.append({"username": "super", "role": "supervisor", "extension": "1900", "password_hash": _HASH})
    out.append({"username": "admin", "role": "admin", "password_hash": _HASH})
    return tuple(out)


def agent_principal(agent_id: str, extension: str | None = None) -> Principal:
    """Who an agent console speaks for, as the gateway would hand it to the backend after a login."""
    return Principal(
        f"agent{agent_id}",
        Role.AGENT,
        agent_id,
        extension or agent_id,
        f"Agent {agent_id}",
        f"session-{agent_id}",
        2**31,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _acd_config(acd: AcdConfig | str | None) -> tuple[AcdConfig, str]:
    """The queues configuration and its text (the server journals the text it runs with)."""
    if acd is None:
        text = (DEMO / "queues.yaml").read_text()
        return parse_config(text, str(DEMO / "queues.yaml")), text
    if isinstance(acd, str):
        return parse_config(acd, "<test>"), acd
    return acd, Path(acd.source).read_text()


@dataclass
class AmiTap:
    """Every event the simulator puts on its AMI stream, as (name, headers) in emission order."""

    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, pairs: wire.Pairs) -> None:
        fields = dict(pairs)
        self.events.append((fields.get("Event", ""), fields))

    def named(self, name: str, **match: str) -> list[dict[str, str]]:
        return [f for n, f in self.events if n == name and all(f.get(k) == v for k, v in match.items())]

    def agi_commands(self, channel: str) -> list[str]:
        """The AGI command lines run on one channel (AGIExecStart, as Asterisk reports them on AMI)."""
        return [f["Command"] for f in self.named("AGIExecStart", Channel=channel)]


@dataclass
class Stack:
    sim: Simulator
    server: CtiServer
    tmp: Path
    settings: ServerSettings
    tap: AmiTap

    @property
    def pbx(self) -> Pbx:
        return next(iter(self.server.pbxes.values()))

    def queue_log(self) -> str:
        """The queue_log file as it is now (lines are written with each journal batch, every 20 ms)."""
        path = self.tmp / "queue_log"
        return path.read_text() if path.exists() else ""

    def now(self) -> float:
        """The server's clock (epoch seconds): the router's and the journal's time."""
        return self.server.now()

    async def until(self, predicate: Callable[[], T], timeout: float = 10.0,
                    what: str | Callable[[], str] = "condition") -> T:
        """`what` names the wait in the failure; a callable says what was seen at the time."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
            await asyncio.sleep(0.02)

    async def until_async(
        self, probe: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "condition"
    ) -> T:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await probe()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)

    @property
    def console(self) -> ConsoleBackend:
        return self.server.console

    async def ready(self, agent_id: str) -> None:
        """The agent presses Ready on the console (ends wrap-up, or a pause)."""
        await self.console.agent_ready(agent_principal(agent_id))

    def hang_up(self, channel_name: str) -> None:
        """The simulated caller on this trunk channel hangs up (cause 16)."""
        run = next((r for r in self.sim.callers if r.chan.name == channel_name), None)
        assert run is not None, f"no simulated caller on {channel_name}"
        run.hang_up()

    def place_call(
        self, caller_num: str, behaviour: CallerBehaviour, name: str = "", did: str = "5551000"
    ) -> str:
        """A caller arrives on the demo DID; returns its trunk channel's name."""
        return self.sim.place_call(did, caller_num, name or f"Caller {caller_num[-2:]}", behaviour).name

    def login(self, *agent_ids: str) -> None:
        for a in agent_ids:
            self.server.queueing.command(ev.AgentLoggedIn(a, f"PJSIP/{a}", None))

    def agent_state(self, agent_id: str) -> str:
        return str(self.server.projector.router.agent_view(agent_id, self.server.now()).state)

    def call_state(self, call_id: str) -> str | None:
        view = self.server.projector.router.call_view(call_id)
        return None if view is None else str(view.state)

    def call_id_of(self, channel_name: str) -> str | None:
        call = self.pbx.model.call_of_channel(channel_name)
        return call.call_id if call else None

    def phase(self, call_id: str) -> str | None:
        call = self.pbx.model.calls.get(call_id)
        return None if call is None else call.phase.value

    async def restart_server(self, settings: ServerSettings | None = None) -> CtiServer:
        """Stop the CTI server and start a new one (same simulator, same CRM file)."""
        await self.server.stop()
        self.server = await start_server(self.sim, settings or self.settings)
        return self.server


async def start_server(sim: Simulator, settings: ServerSettings) -> CtiServer:
    server = CtiServer(settings)
    await server.start()
    # The dialplan's CTI_AGI points at port 4573; the simulator's FastAGI client goes to ours instead.
    sim.world.agi_host_override = ("127.0.0.1", server.agi_port)
    return server


def server_settings(
    tmp: Path,
    acd_config: AcdConfig,
    ami_port: int,
    *,
    acd_text: str = "",
    flows_dir: Path | None = None,
    database_url: str | None = None,
    ami_secret: str = AMI_SECRET,
) -> ServerSettings:
    return ServerSettings(
        pbxes=(PbxSettings("pbx1", "127.0.0.1", ami_port, AMI_USER, ami_secret),),
        acd=acd_config,
        acd_text=acd_text,
        database_url=database_url or f"sqlite:///{tmp / 'crm.db'}",
        flows_dir=flows_dir or DEMO / "flows",
        accounts=accounts([a.id for a in acd_config.agents]),
        agi_port=0,
        http_port=0,
        default_flow="main",
        recordings_dir=tmp / "recordings",
        token_secret=b"test-secret-0123456789abcdef",
        queue_log=tmp / "queue_log",
        ami_action_timeout=5.0,
        ami_ping_interval=5.0,
    )


@asynccontextmanager
async def running_stack(
    tmp: Path,
    *,
    acd: AcdConfig | str | None = None,
    flows_dir: Path | None = None,
    time_scale: float = 0.05,
    database_url: str | None = None,
    agents: tuple[str, ...] = ("1001", "1002"),
    ring_answer_after: float | None = 1.0,
    sim_globals: Mapping[str, str] | None = None,
    start_pbx: bool = True,
    ami_secret: str = AMI_SECRET,
    wait_up: bool = True,
) -> AsyncIterator[Stack]:
    """The simulator (with one phone per agent), then the CTI server pointed at it.

    ``start_pbx=False`` leaves the simulator's AMI port closed (the PBX is down when the server starts):
    call ``stack.sim.start()`` later. ``wait_up=False`` does not wait for the AMI link to come up.
    """
    acd_config, acd_text = _acd_config(acd)
    port = free_port()
    sim = Simulator(
        time_scale=time_scale,
        ami_port=port,
        ami_users={AMI_USER: AMI_SECRET},
        globals_override=dict(sim_globals or {}),
    )
    tap = AmiTap()
    sim.world.listeners.append(tap)
    if start_pbx:
        await sim.start()
    for a in agents:
        sim.add_agent_phone(a, answer_after=ring_answer_after)
    settings = server_settings(
        tmp, acd_config, port, acd_text=acd_text, flows_dir=flows_dir, database_url=database_url,
        ami_secret=ami_secret,
    )
    stack = Stack(sim, await start_server(sim, settings), tmp, settings, tap)
    try:
        if start_pbx and wait_up:
            await stack.pbx.link.wait_up(10)
        yield stack
    finally:
        await stack.server.stop()
        await sim.stop()


def model_view(stack: Stack) -> dict[str, Any]:
    """The CTI's belief about live channels, in the same shape as ``truth_view``."""
    model = stack.pbx.model
    return {
        "channels": {u: (c.name, c.bridge) for u, c in model.channels.items() if c.alive},
        "calls": sorted(
            sorted(u for u, c in call.legs.items() if c.alive)
            for call in model.calls.values()
            if any(c.alive for c in call.legs.values())
        ),
    }


def truth_view(stack: Stack) -> dict[str, Any]:
    """The simulator's truth: live channels with their bridge, grouped into calls by Linkedid."""
    snap = stack.sim.snapshot()
    groups: dict[str, list[str]] = {}
    for c in snap.channels:
        groups.setdefault(c.linkedid, []).append(c.uniqueid)
    return {
        "channels": {c.uniqueid: (c.name, c.bridge) for c in snap.channels},
        "calls": sorted(sorted(g) for g in groups.values()),
    }


async def settle(stack: Stack, timeout: float = 5.0) -> dict[str, Any]:
    """Wait until the model equals the truth (events are in flight on the socket for a moment)."""
    try:
        await stack.until(lambda: model_view(stack) == truth_view(stack), timeout, "model == truth")
    except AssertionError:
        model, truth = model_view(stack), truth_view(stack)
        if model != truth:
            raise AssertionError(f"call model != PBX truth\n model: {model}\n truth: {truth}") from None
    return truth_view(stack)
