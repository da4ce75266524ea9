"""Queue entry to agent ringing, end to end: PBX simulator + CTI server over loopback.

500 simulated agents (phones that answer after a moment and hang up after a short talk), callers
arriving at a fixed rate into a flow that queues them at once. Measured on the server's bus: from the
ACD's CallStateChanged "waiting" (queue entry) to the call model's LegRinging for the offered leg (the
agent's phone reports Ringing over AMI), which is when the screen pop is due.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
from pathlib import Path
from typing import Any

from acd import decisions as d
from acd.config import parse_config
from acd.events import AgentLoggedIn
from ctiserver.app import CtiServer, PbxSettings, ServerSettings
from ctiserver.callmodel.events import LegRinging
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator

FLOW = "flow: main\nlanguage: en-US\nfallback: {queue: q0}\nstart: q\nnodes:\n  q: {type: queue, queue: q0}\n"


def _acd_yaml(agents: int, queues: int) -> str:
    lines = ["skills: [s0, s1, s2, s3]", "pause_reasons: [break]", "queues:"]
    for q in range(queues):
        lines.append(f"  - {{name: q{q}, skills: {{s{q % 4}: 1}}, wrap_up_s: 1, ring_timeout_s: 10}}")
    lines.append("agents:")
    for a in range(agents):
        qs = ", ".join(f"q{q}" for q in range(queues))
        lines.append(f"  - {{id: '{2000 + a}', name: A{a}, skills: {{s0: 5, s1: 5, s2: 5, s3: 5}}, "
                     f"queues: [{qs}], endpoint: PJSIP/{2000 + a}}}")
    return "\n".join(lines) + "\n"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _measure(agents: int, rate: float, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="acd-offer-"))
    (tmp / "flows").mkdir()
    (tmp / "flows" / "main.yaml").write_text(FLOW)
    acd_text = _acd_yaml(agents, 1)
    acd = parse_config(acd_text, "<bench>")
    sim = Simulator(time_scale=1.0)
    port = await sim.start()
    for a in acd.agents:
        sim.add_agent_phone(a.id, answer_after=0.3, talk_time=2.0)
    server = CtiServer(ServerSettings(
        pbxes=(PbxSettings("bench", "127.0.0.1", port, "cti", "ctisecret"),), acd=acd,
        database_url=f"sqlite:///{tmp / 'crm.db'}", flows_dir=tmp / "flows", accounts=(), agi_port=0,
        http_port=0, default_flow="main", recordings_dir=tmp / "rec", acd_text=acd_text))
    await server.start()
    sim.world.agi_host_override = ("127.0.0.1", server.agi_port)
    pbx = next(iter(server.pbxes.values()))
    await pbx.link.wait_up(10)
    for a in acd.agents:
        server.queueing.command(AgentLoggedIn(a.id, None, None))
    gc.collect()
    gc.freeze()
    entered: dict[str, float] = {}
    latencies: list[float] = []

    def on_call_state(e: d.CallStateChanged) -> None:
        if e.new == "waiting" and e.old == "new":
            entered[e.call_id] = server.now()

    def on_ringing(e: LegRinging) -> None:
        t0 = entered.pop(e.call_id, None)
        if t0 is not None:
            latencies.append((server.now() - t0) * 1000.0)

    server.bus.subscribe(d.CallStateChanged, on_call_state)
    server.bus.subscribe(LegRinging, on_ringing)
    behaviour = CallerBehaviour(patience=30.0, hangup_after_connect=1.0)
    start = server.now()
    placed = 0
    while server.now() - start < seconds:
        sim.place_call("5551000", f"1390000{placed:04d}", f"Bench {placed}", behaviour)
        placed += 1
        await asyncio.sleep(1.0 / rate)
    await asyncio.sleep(3.0)
    elapsed = server.now() - start
    await server.stop()
    await sim.stop()
    if not latencies:
        raise RuntimeError("no call reached an agent")
    return {
        "offer_p50_ms": round(statistics.median(latencies), 2),
        "offer_p99_ms": round(_pct(latencies, 99), 2),
        "offer_calls_placed": placed,
        "offer_calls_ringing": len(latencies),
        "offer_calls_per_s": round(len(latencies) / elapsed, 1),
        "offer_agents": agents,
    }


def measure(quick: bool) -> dict[str, Any]:
    if quick:
        return asyncio.run(_measure(agents=500, rate=10.0, seconds=8.0))
    return asyncio.run(_measure(agents=500, rate=25.0, seconds=30.0))
