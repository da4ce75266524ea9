"""``Simulator``: the PBX simulator's facade for tests, benchmarks and the demo.

It is also where the parts meet: the PBX core (world.py) knows no feature, so the facade gives it its
applications and hands the queues and the parking lot to the applications and to the AMI server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxsim import dialplan as dp
from pbxsim import wire
from pbxsim.amd import settings_from_conf
from pbxsim.ami_server import AmiServer
from pbxsim.apps import Apps
from pbxsim.channels import Channel
from pbxsim.parking import ParkingLot
from pbxsim.people import CallerBehaviour, CallerRun, sanitize_sip_text
from pbxsim.prompts import Sounds
from pbxsim.queues import Queues
from pbxsim.world import PhoneProfile, World

HERE = Path(__file__).resolve().parent
CAPTURE_DIALPLAN = HERE / "dialplans" / "captures.conf"  # package data (pbxsim/dialplans/*.conf)
CONFIG_ENV = "CTISERVER_ASTERISK_CONFIG"


def product_dialplan() -> Path:
    """asterisk-config/extensions.conf: $CTISERVER_ASTERISK_CONFIG (the folder), else the repo checkout
    this package runs from, else the current directory. It is not package data (it is the reference
    configuration for a real Asterisk), so an installed wheel needs the variable or a checkout."""
    env = os.environ.get(CONFIG_ENV)
    candidates = [Path(env) / "extensions.conf"] if env else []
    candidates += [parent / "asterisk-config" / "extensions.conf" for parent in HERE.parents]
    candidates.append(Path.cwd() / "asterisk-config" / "extensions.conf")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"asterisk-config/extensions.conf not found (looked beside the package and in the "
                            f"current directory); set {CONFIG_ENV} to the asterisk-config folder")


def _product_or_none() -> Path | None:
    try:
        return product_dialplan()
    except FileNotFoundError:
        return None


PRODUCT_DIALPLAN = HERE.parent / "asterisk-config" / "extensions.conf"  # in a checkout


@dataclass(frozen=True, slots=True)
class ChannelTruth:
    name: str
    uniqueid: str
    linkedid: str
    state: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: int
    application: str
    bridge: str | None
    in_agi: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    channels: tuple[ChannelTruth, ...]
    bridges: dict[str, tuple[str, ...]]

    def by_name(self) -> dict[str, ChannelTruth]:
        return {c.name: c for c in self.channels}


class Simulator:
    def __init__(self, *, dialplan_paths: Sequence[str | Path] | None = None, time_scale: float = 1.0,
                 agi_host: str | None = None, agi_port: int | None = None,
                 ami_users: dict[str, str] | None = None, ami_port: int = 0,
                 globals_override: dict[str, str] | None = None, capture_mode: bool = False,
                 fixed_challenge: str | None = None, sounds: Sounds | None = None) -> None:
        paths = list(dialplan_paths) if dialplan_paths else [product_dialplan()]
        plan = dp.load(paths)
        if globals_override:
            plan.globals.update(globals_override)
        self.world = World(plan, time_scale=time_scale)
        # The sounds directory: the captures' PBX, or the product's (core sounds + asterisk-config/prompts.tsv).
        self.world.sounds = sounds or (Sounds.captures() if capture_mode else Sounds.product(product_dialplan().parent))
        self.queues = Queues(self.world)
        self.parking = ParkingLot(self.world)
        self.world.apps = Apps(self.world, self.queues, self.parking)
        product = paths[0] if not dialplan_paths else _product_or_none()
        if product is not None and any(Path(p).resolve() == Path(product).resolve() for p in paths):
            # The product's config folder decides whether app_amd loads, and with which settings.
            amd_conf = Path(product).parent / "amd.conf"
            if amd_conf.is_file():
                self.world.apps.amd_settings = settings_from_conf(amd_conf.read_text(encoding="utf-8"))
            else:
                self.world.apps.unload("AMD")
        if agi_host is not None or agi_port is not None:
            self.world.agi_host_override = (agi_host or "127.0.0.1", agi_port or 4573)
        self.ami = AmiServer(self.world, ami_users or {"cti": "ctisecret"}, queues=self.queues,
                             parking=self.parking, port=ami_port, fixed_challenge=fixed_challenge)
        self.capture_mode = capture_mode
        self.callers: list[CallerRun] = []

    @property
    def time_scale(self) -> float:
        return self.world.time_scale

    @property
    def sounds(self) -> Sounds:
        """The prompts installed on this PBX: ``sim.sounds.remove("cti/hold-music")`` deletes one."""
        return self.world.sounds

    async def start(self) -> int:
        """Start (or restart) the AMI server; returns its port. Calls in progress are kept."""
        return await self.ami.start()

    async def stop_ami(self) -> None:
        """Stop the AMI server only (the PBX keeps its calls); ``start()`` again brings it back."""
        await self.ami.stop()

    def drop_ami_clients(self) -> int:
        return self.ami.drop_clients()

    async def restart_pbx(self, down_s: float = 0.2) -> None:
        """Asterisk's `core restart now` (main/asterisk.c can_safely_quit, really_quit): every channel is
        soft-hung-up with AST_SOFTHANGUP_SHUTDOWN (SoftHangupRequest Cause 4), the calls clear (their
        Hangup events say Normal Clearing), the Shutdown event goes out, the AMI connections close; the
        new process listens again after ``down_s`` real seconds, with no calls."""
        world = self.world
        for chan in [c for c in world.channels.values() if not c.dead and not c.hungup]:
            world.chan_event("SoftHangupRequest", chan, ("Cause", "4"))
            world.soft_hangup(chan, 16)
        await world.wait_idle(10.0)
        world.emit(wire.event("Shutdown", [], [("Shutdown", "Cleanly"), ("Restart", "True")]))
        await self.ami.stop()
        await asyncio.sleep(down_s)
        await self.ami.start()

    async def stop(self) -> None:
        await self.ami.stop()
        self.ami.close()
        for c in list(self.world.channels.values()):
            c.hungup = True
            c.wake()
        await self.world.close()

    # ---------------------------------------------------------------- people
    def add_agent_phone(self, ext: str, *, answer_after: float | None = 1.0, busy: bool = False,
                        talk_time: float | None = None, registered: bool = True,
                        auto_answer: bool = False) -> PhoneProfile:
        profile = PhoneProfile(answer_after=answer_after, busy=busy, talk_time=talk_time, registered=registered,
                               auto_answer=auto_answer)
        self.world.phones[ext] = profile
        return profile

    def place_call(self, did: str, caller_num: str, caller_name: str = "",
                   behaviour: CallerBehaviour | None = None) -> Channel:
        """A caller arrives from the trunk on ``did``; returns the trunk channel (PJSIP/pstn-XXXXXXXX)."""
        chan = self.world.inbound_call(did, sanitize_sip_text(caller_num), sanitize_sip_text(caller_name))
        run = CallerRun(self.world, chan, behaviour or CallerBehaviour())
        self.callers.append(run)
        run.start()
        return chan

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.world.wait_idle(timeout)

    def snapshot(self) -> Snapshot:
        chans = []
        for c in self.world.channels.values():
            if c.dead:
                continue
            chans.append(ChannelTruth(
                name=c.name, uniqueid=c.uniqueid, linkedid=c.linkedid,
                state={0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}.get(c.state, str(c.state)),
                caller_num=c.cid_num, caller_name=c.cid_name, context=c.context, exten=c.exten,
                priority=c.priority, application=c.app, bridge=c.bridge.uniqueid if c.bridge else None,
                in_agi=c.agi_active))
        bridges = {b.uniqueid: tuple(c.name for c in b.channels) for b in self.world.bridges.values()}
        return Snapshot(tuple(chans), bridges)

    def channel(self, name: str) -> Channel | None:
        return self.world.find(name)

    def info(self) -> dict[str, Any]:
        return {"ami_port": self.ami.port, "channels": len(self.world.channels)}
