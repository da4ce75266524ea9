"""The one thing the gateway's protocol and browser tests know about the server: a `Site`.

A site is the real thing on loopback: the PBX simulator (callers dial in, agents' phones ring), the CTI
server (`ctiserver.app.CtiServer`: AMI link, call model, FastAGI IVR running the demo flow, ACD, call
control, the gateway with the console backend) and a SQLite CRM on disk seeded with known customers.
Tests drive the telephone side through the simulator and read the CRM file with their own connection.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from acd.config import parse_config
from crmstore.model import COMPLAINT, CallFacts, Flag, NewCustomer, WrapUp
from crmstore.sample import ensure_callers
from crmstore.store import open_store
from ctiserver.app import CtiServer, PbxSettings, ServerSettings
from ctiserver.consoles.devices import PhoneSettings
from ctiserver.gateway.auth import hash_password
from ctiserver.gateway.server import Gateway, GatewayConfig
from pbxsim.channels import Channel
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator, product_dialplan
from tests.ami_relay import AmiRelay

DEMO = Path(__file__).resolve().parents[2] / "ctiserver" / "demo"
T = TypeVar("T")

XSS_NAME = '<img src=x onerror="window.__xss=1">王<script>window.__xss=2</script>'
AGENT1, AGENT2 = "1001", "1002"  # ACD agent ids (= their extensions) of the accounts agent1 and agent2
SUPERVISOR_EXTENSION = "2001"
DID = "4000"  # the demo flow answers every DID

# Callers the CRM knows (crmstore.sample rotation by index: VIP grade A, plain B, plain C, key account A...).
VIP_CALLER = "+8613800000001"  # VIP, grade A: the demo flow sends VIPs straight to the vip queue
HOSTILE_CALLER = "+8613800000002"  # a VIP whose name, company, notes and history carry HTML and script
PLAIN_CALLER = "+8613800000003"  # grade B, no flag: the demo flow's menu, key 1 = sales
KEY_ACCOUNT_CALLER = "+8613800000004"  # key account, grade A
KNOWN_CALLERS = (VIP_CALLER, HOSTILE_CALLER, PLAIN_CALLER, KEY_ACCOUNT_CALLER)
MENU_KEYS = {"sales": "1", "support": "2", "complaints": "3"}  # ctiserver/demo/flows/main.yaml

# The demo's queue names (its flow routes to them) with two agents. ring_timeout_s is the Originate
# Timeout, counted by the simulator in virtual seconds: 600 at TIME_SCALE is 30 real seconds of ringing,
# so an offer stays on screen until a test answers it. "supervisor" is the reason the monitor's force-pause
# button sends (docs/protocol.md default): the ACD refuses reasons it was not configured with.
TIME_SCALE = 0.05
ACD_YAML = """\
priority_aging_per_s: 1.0
skills: [sales, support, complaints, english]
pause_reasons: [break, lunch, training, coaching, supervisor]
queues:
  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: support, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: complaints, skills: {complaints: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: general, skills: {english: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
agents:
  - {id: "1001", name: 李娜 Li Na, skills: {sales: 5, support: 5, complaints: 5, english: 5},
     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/1001}
  - {id: "1002", name: Alice Smith, skills: {sales: 5, support: 5, complaints: 5, english: 5},
     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/1002}
"""
ACD_CONFIG = parse_config(ACD_YAML, "<gateway tests>")
PASSWORDS = {"agent1": "agent1-pass", "agent2": "agent2-pass", "super1": "super1-pass", "admin1": "admin1-pass"}


def _hash(password: str) -> str:
    return hash_password(password, n=2**10)  # cheap for tests: the cost lives in the stored string


ACCOUNTS: tuple[dict[str, str], ...] = (
    {"username": "agent1", "role": "agent", "agent_id": AGENT1, "display_name": "李娜 Li Na",
     "password_hash": _hash(PASSWORDS["agent1"])},
    {"username": "agent2", "role": "agent", "agent_id": AGENT2, "display_name": "Alice Smith",
     "password_hash": _hash(PASSWORDS["agent2"])},
    {"username": "super1", "role": "supervisor", "extension": SUPERVISOR_EXTENSION,
     "password_hash": _hash(PASSWORDS["super1"])},
    {"username": "admin1", "role": "admin", "password_hash": _hash(PASSWORDS["admin1"])},
)


# ---------------------------------------------------------------------------- the CRM, seeded once

_template: Path | None = None


async def _seed(db: Path) -> None:
    store = await open_store(f"sqlite:///{db}")
    try:
        now = datetime.now(UTC)
        hostile = await store.create_customer(NewCustomer(
            name=XSS_NAME, company="<b>Evil</b> Ltd", phones=(HOSTILE_CALLER,), accounts=("EVIL-1",),
            notes="<script>window.__xss=4</script> prefers mornings", preferred_language="zh"))
        await store.set_flag(hostile, Flag.VIP, "top 1% revenue")
        await store.set_flag(hostile, Flag.BLACKLIST, "abusive <b>twice</b>")
        start = now - timedelta(days=3)
        await store.save_wrapup(WrapUp(
            CallFacts("seed-hostile-1", HOSTILE_CALLER, start, queue="sales", agent=AGENT2,
                      answered_at=start + timedelta(seconds=9), ended_at=start + timedelta(minutes=2),
                      wait_s=9, talk_s=111, customer_id=hostile),
            disposition="resolved", notes="asked about <invoice>", wrapup_s=15))
        await store.open_ticket(hostile, COMPLAINT, "late delivery <x>", opened_at=now - timedelta(days=2))
        await ensure_callers(store, list(KNOWN_CALLERS))
    finally:
        await store.close()


async def crm_template() -> Path:
    """A seeded CRM file, built once per test session and copied for each site (seeding costs fsyncs)."""
    global _template
    if _template is None:
        db = Path(tempfile.mkdtemp(prefix="gw-crm-")) / "crm.db"
        await _seed(db)
        _template = db
    return _template


class ManualClock:
    """Unix time that moves only when a test says so: lockouts and backoff without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------------------- the site


@dataclass
class AppSite:
    sim: Simulator
    server: CtiServer
    db: Path
    passwords: Mapping[str, str] = field(default_factory=lambda: dict(PASSWORDS))
    _lock: sqlite3.Connection | None = None

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway

    @property
    def http_url(self) -> str:
        return self.gateway.url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    async def until(self, predicate: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.01)

    async def until_async(self, probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await probe():
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)

    def _call_id_of(self, chan: Channel) -> str | None:
        for pbx in self.server.pbxes.values():
            call = pbx.model.call_of_channel(chan.name)
            if call is not None:
                return call.call_id
        return None

    def call(self, caller: str, queue: str = "sales", **behaviour: object) -> Channel:
        """A caller dials in; the demo flow's menu takes them to `queue` (VIPs go to vip by themselves)."""
        keys = (MENU_KEYS[queue],) if queue in MENU_KEYS else ()
        return self.sim.place_call(DID, caller, "", CallerBehaviour(keys=keys, press_on_prompt=False, **behaviour))  # type: ignore[arg-type]

    async def ring_agent(self, agent_id: str, caller: str, queue: str = "sales") -> tuple[str, str]:
        """A real call through the IVR and the ACD until it rings at `agent_id` (who must be the only
        available agent of its queue); returns (offer_id, call_id)."""
        chan = self.call(caller, queue)
        call_id = await self.until(lambda: self._call_id_of(chan), f"the call model to see {chan.name}")

        def offered() -> tuple[str, str] | None:
            view = self.server.projector.router.call_view(call_id)
            ok = view is not None and view.state in ("offered", "ringing") and view.agent_id
            # ... and the PBX has made the agent's leg (the Originate is on its way once the ACD offers)
            ok = ok and any(c.uniqueid == view.leg_id and not c.dead  # type: ignore[union-attr]
                            for c in self.sim.world.channels.values())
            return (view.agent_id, view.leg_id) if ok else None  # type: ignore[union-attr, return-value]

        offered_to, leg_id = await self.until(offered, f"an offer of {call_id}")
        assert offered_to == agent_id, (offered_to, agent_id)
        return leg_id, call_id  # an offer is named by its agent leg

    def _leg_id(self, call_id: str) -> str | None:
        view = self.server.projector.router.call_view(call_id)
        return view.leg_id if view is not None and view.leg_id else None

    def agent_leg(self, call_id: str) -> Channel:
        leg = self._leg_id(call_id)
        found = [c for c in self.sim.world.channels.values() if c.uniqueid == leg and not c.dead]
        assert found, f"no agent leg ringing for {call_id}"
        return found[0]

    async def answer(self, call_id: str) -> None:
        """The agent picks up the ringing desk phone (a simulated PJSIP phone set never to answer)."""
        leg = await self.until(lambda: self._leg_id(call_id), f"the agent leg of {call_id}")
        chan = await self.until(
            lambda: next((c for c in self.sim.world.channels.values() if c.uniqueid == leg and c.state == 5), None),
            f"{leg} ringing")
        self.sim.world.new_state(chan, 6)
        self.sim.world.device_state(chan.device, "INUSE")

    async def add_waiting_call(self, queue: str, caller: str) -> str:
        """A caller waits in a queue nobody serves now; returns the call id."""
        chan = self.call(caller, queue)
        call_id = await self.until(lambda: self._call_id_of(chan), f"the call model to see {chan.name}")

        def waiting() -> bool:
            view = self.server.projector.router.call_view(call_id)
            return view is not None and view.state == "waiting" and view.queue == queue
        await self.until(waiting, f"{call_id} waiting in {queue}")
        return call_id

    def hang_up_caller(self, call_id: str) -> None:
        for run in self.sim.callers:
            if self._call_id_of(run.chan) == call_id:
                run.hang_up()
                return
        raise AssertionError(f"no caller for {call_id}")

    def crm_rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        """Read the CRM file with our own connection: what is there is durable, not in a cache."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    async def saved_wrapup(self, call_id: str) -> Mapping[str, object] | None:
        """What the CRM holds for this call's wrap-up (disposition, notes, follow-up), None if nothing."""
        rows = self.crm_rows("SELECT * FROM interactions WHERE call_id = ? AND disposition != ''", call_id)
        if not rows:
            return None
        row = rows[0]
        follow_ups = self.crm_rows("SELECT kind, note, owner FROM follow_ups WHERE source_call_id = ?", call_id)
        return {"disposition": row["disposition"], "notes": row["notes"], "agent": row["agent"],
                "customer_id": row["customer_id"], "talk_s": row["talk_s"],
                "follow_up": dict(follow_ups[0]) if follow_ups else None}

    def lock_crm(self) -> None:
        """Another process holds the CRM's write lock (a wrap-up save fails after busy_timeout_ms)."""
        assert self._lock is None
        self._lock = sqlite3.connect(self.db, isolation_level=None)
        self._lock.execute("BEGIN IMMEDIATE")

    def unlock_crm(self) -> None:
        assert self._lock is not None
        self._lock.execute("ROLLBACK")
        self._lock.close()
        self._lock = None

    async def use_gateway(self, config: GatewayConfig, clock: Callable[[], float] | None = None) -> Gateway:
        """Serve the consoles through a gateway with other settings (heartbeat, timeouts, outbox sizes)
        and, if given, its own clock. The app reads `server.gateway` at every push, so the new one gets
        everything from now on."""
        old = self.server.gateway
        gateway = Gateway(self.server.console, old.accounts, config, **({"clock": clock} if clock else {}))
        await gateway.start()
        self.server.gateway = gateway
        self.server.notifier.gateway = gateway
        await old.stop()
        return gateway


def _settings(tmp: Path, db: Path, ami_port: int, token_ttl_s: int, acd_yaml: str,
              phones: PhoneSettings) -> ServerSettings:
    return ServerSettings(
        pbxes=(PbxSettings("pbx1", "127.0.0.1", ami_port, "cti", "ctisecret"),),
        acd=ACD_CONFIG if acd_yaml == ACD_YAML else parse_config(acd_yaml, "<gateway tests>"),
        acd_text=acd_yaml,
        phones=phones,
        # A short busy timeout: a locked CRM fails a wrap-up save in 0.2 s instead of 5.
        database_url=f"sqlite:///{db}?busy_timeout_ms=200",
        flows_dir=DEMO / "flows",
        accounts=ACCOUNTS,
        agi_port=0,
        http_port=0,
        default_flow="main",
        recordings_dir=tmp / "recordings",
        token_secret=b"gateway-tests-secret-0123456789",
        token_ttl_s=token_ttl_s,
        ami_action_timeout=5.0,
        ami_ping_interval=5.0,
    )


@asynccontextmanager
async def app_site(tmp: Path, *, token_ttl_s: int = 3600, acd_yaml: str = ACD_YAML,
                   phones: PhoneSettings | None = None, dialplans: Sequence[Path] = (),
                   relay: AmiRelay | None = None, **settings: Any) -> AsyncIterator[AppSite]:
    """The site; ``acd_yaml`` and ``phones`` (cti.yaml's agents section) change how agents are rung,
    ``dialplans`` are loaded after the product's extensions.conf (contexts a site adds); ``settings``
    override ServerSettings fields (prompts_dir, console_lost_after_s ...)."""
    db = tmp / "crm.db"
    shutil.copy(await crm_template(), db)
    sim = Simulator(time_scale=TIME_SCALE, ami_users={"cti": "ctisecret"},
                    dialplan_paths=[product_dialplan(), *dialplans] if dialplans else None)
    port = await sim.start()
    if relay is not None:  # the CTI reaches the simulator through it (tests/ami_relay.py)
        relay.pbx_port = port
        port = await relay.start()
    for ext in (AGENT1, AGENT2, SUPERVISOR_EXTENSION):
        sim.add_agent_phone(ext, answer_after=None)  # desk phones: the test picks them up (AppSite.answer)
    server = CtiServer(replace(_settings(tmp, db, port, token_ttl_s, acd_yaml, phones or PhoneSettings()),
                               **settings))
    await server.start()
    site = AppSite(sim, server, db)
    try:
        # The dialplan's CTI_AGI points at port 4573; the simulator's FastAGI client goes to ours instead.
        sim.world.agi_host_override = ("127.0.0.1", server.agi_port)
        await next(iter(server.pbxes.values())).link.wait_up(10)
        yield site
    finally:
        if site._lock is not None:
            site.unlock_crm()
        await server.stop()
        if site.server is not server:  # a test restarted the server: the new one holds a store and threads too
            await site.server.stop()
        if relay is not None:
            await relay.stop()
        await sim.stop()
