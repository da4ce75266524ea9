"""`ctiserver demo`: the server against the built-in PBX simulator, a sample CRM, simulated callers and
simulated agents, with the consoles on 127.0.0.1. Agents 1001 and 1002 are left for people in a browser."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from acd import events as ev
from acd.config import load_config
from crmstore.sample import SampleSpec, ensure_callers
from crmstore.store import open_store
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator

from ..admin.service import AdminFiles
from ..app import CtiServer, PbxSettings, ServerSettings
from ..gateway.auth import Principal, Role, hash_password
from ..gateway.backend import WrapUpForm

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
PASSWORD = "demo"
HUMAN_AGENTS = ("1001", "1002")
DEMO_CALLERS = [f"+86139{n:08d}" for n in range(10000001, 10000015)] + ["+442071838750", "+12025550143"]
DISPOSITIONS = ("resolved", "follow_up", "sale", "complaint")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    data_dir: Path = Path("var/demo")
    http_port: int = 8088
    agi_port: int = 4573
    calls_per_minute: float = 6.0
    duration_s: float | None = None  # None: until interrupted
    seed: int = 1


async def _prepare_crm(url: str) -> None:
    store = await open_store(url, default_country="CN")
    try:
        if (await store.counts()).get("customers", 0) == 0:
            from crmstore.bulk import bulk_load

            await store.close()
            # Purchases dated up to today: the daily ABC grading (a year of revenue) then spreads A, B and C.
            await bulk_load(url, SampleSpec(customers=2000, interactions=20000, now=datetime.now(UTC)))
            store = await open_store(url, default_country="CN")
        await ensure_callers(store, DEMO_CALLERS)
    finally:
        await store.close()


def _accounts(agent_ids: list[str]) -> tuple[dict[str, str], ...]:
    h = hash_password(PASSWORD)
    out = [{"username": f"agent{a}", "role": "agent", "agent_id": a, "password_hash": h} for a in agent_ids]
    out.append({"username": "supervisor", "role": "supervisor", "extension": "1900", "password_hash": h,
                "display_name": "Supervisor"})
    out.append({"username": "admin", "role": "admin", "password_hash": h})
    return tuple(out)


async def _simulated_agent(server: CtiServer, agent_id: str, rng: random.Random) -> None:
    """Logs in, takes calls; after each call saves a wrap-up to the CRM after a short think."""
    backend = server.console
    who = Principal(f"agent{agent_id}", Role.AGENT, agent_id, agent_id, f"agent{agent_id}", "sim",
                    int(time.time()) + 10**8)
    server.queueing.command(ev.AgentLoggedIn(agent_id, f"PJSIP/{agent_id}", None))
    server.presence.console_presence(agent_id, True)  # at their desk: never paused for a lost console
    while True:
        await asyncio.sleep(1.0)
        view = server.projector.router.agent_view(agent_id, server.now())
        if view.state == "wrap_up" and view.call_id and view.time_in_state_s > rng.uniform(2, 6):
            form = WrapUpForm(rng.choice(DISPOSITIONS), notes="handled by a simulated agent")
            try:
                await backend.save_wrapup(who, view.call_id, form)
            except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
                log.info("simulated agent %s: wrap-up not saved: %s", agent_id, e)
        elif view.state == "not_responding":
            await asyncio.sleep(rng.uniform(5, 15))
            server.queueing.command(ev.AgentReady(agent_id))


async def _callers(sim: Simulator, options: DemoOptions, rng: random.Random) -> None:
    known = DEMO_CALLERS
    n = 0
    while True:
        await asyncio.sleep(rng.expovariate(options.calls_per_minute / 60.0))
        n += 1
        number = rng.choice(known) if rng.random() < 0.8 else f"+8613{rng.randrange(10**9):09d}"
        behaviour = CallerBehaviour(
            keys=(rng.choice("123"), rng.choice("123")),  # the greeting may take the first key (barge-in)
            patience=rng.uniform(60, 180),
            hangup_after_connect=rng.uniform(20, 60),
        )
        sim.place_call("5551000", number.lstrip("+"), f"Caller {n}", behaviour)


async def _status(server: CtiServer) -> None:
    """One line every 10 s, so the terminal shows the contact center is alive."""
    while True:
        await asyncio.sleep(10)
        snap = server.projector.stats.live.snapshot(server.now())
        waiting = sum(q.calls_waiting for q in snap.values())
        answered = sum(q.answered for q in snap.values())
        abandoned = sum(q.abandoned + q.short_abandoned for q in snap.values())
        states: dict[str, int] = {}
        for a in server.projector.router.agent_ids():
            st = server.projector.router.agent_view(a, server.now()).state
            states[st] = states.get(st, 0) + 1
        agents = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        live = sum(1 for rec in server.projector.records.calls.values() if rec.live)
        print(f"[demo] calls live {live}, waiting {waiting}, answered {answered}, "
              f"abandoned {abandoned}; agents: {agents}", flush=True)


async def run_demo(options: DemoOptions) -> None:
    data = options.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data / 'crm.db'}"
    print("Preparing the sample CRM (first run: about 2,000 customers) ...", flush=True)
    await _prepare_crm(url)
    queues = data / "queues.yaml"
    if not queues.exists():  # the administration page writes this copy, never the one shipped
        shutil.copy(HERE / "queues.yaml", queues)
    acd = load_config(queues)
    sim = Simulator(time_scale=1.0)
    ami_port = await sim.start()
    rng = random.Random(options.seed)
    for a in acd.agents:
        sim.add_agent_phone(a.id, answer_after=rng.uniform(1.5, 3.0))
    sim.add_agent_phone("1900", answer_after=1.0)  # the supervisor's phone for listen/whisper/barge
    server = CtiServer(ServerSettings(
        pbxes=(PbxSettings("demo-pbx", "127.0.0.1", ami_port, "cti", "ctisecret"),),
        acd=acd,
        database_url=url,
        flows_dir=HERE / "flows",
        accounts=_accounts([a.id for a in acd.agents]),
        agi_port=options.agi_port,
        http_port=options.http_port,
        default_flow="main",
        recordings_dir=data / "recordings",
        token_secret=secrets.token_bytes(32),
        queue_log=data / "queue_log",
        admin_files=AdminFiles(queues_file=queues),
    ))
    await server.start()
    sim.world.agi_host_override = ("127.0.0.1", server.agi_port)
    base = f"http://127.0.0.1:{server.http_port}"
    print(f"""
ctiserver demo is running (PBX simulator on AMI port {ami_port}, FastAGI on {server.agi_port}).

  Agent console:       {base}/agent        log in as agent1001 or agent1002, password '{PASSWORD}', extension 1001/1002
  Supervisor monitor:  {base}/supervisor   log in as supervisor, password '{PASSWORD}'
  Administration:      {base}/admin        log in as admin, password '{PASSWORD}' (agents' skills and queues,
                                            pause reasons: written to {queues})

Simulated callers arrive about {options.calls_per_minute:g} a minute; agents 1003-1008 are simulated.
Press Ctrl+C to stop.
""", flush=True)
    try:
        async with asyncio.TaskGroup() as tg:
            for a in acd.agents:
                if a.id not in HUMAN_AGENTS:
                    tg.create_task(_simulated_agent(server, a.id, random.Random(hash(a.id))))
            tg.create_task(_callers(sim, options, rng))
            tg.create_task(_status(server))
            if options.duration_s is not None:
                await asyncio.sleep(options.duration_s)
                raise _Stop
    except* _Stop:
        pass
    finally:
        await server.stop()
        await sim.stop()


class _Stop(Exception):
    pass
