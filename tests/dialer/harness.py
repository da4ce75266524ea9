"""A contact centre with a dialer on loopback: the PBX simulator (with tests/dialer/customers.conf as the
far end of the trunk), the CTI server with its dialer, a fresh SQLite CRM, campaigns in it.

Customers by number (+1 212 555 01xx people, 02xx machines, 03xx busy, 04xx no answer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from acd import events as ev
from acd.config import parse_config
from crmstore.campaign_store import CampaignStore
from crmstore.campaigns import AttemptOutcome, CallingWindow, Campaign, DialingMode, RetryRule
from ctiserver.dialer.settings import CampaignLines, DialerSettings
from ctiserver.journal import facts as f
from pbxsim.simulator import Simulator, product_dialplan
from tests.ami_relay import AmiRelay
from tests.e2e.stack import AMI_SECRET, AMI_USER, AmiTap, Stack, free_port, server_settings, start_server

CUSTOMERS = Path(__file__).with_name("customers.conf")
PERSON, PERSON2, PERSON3 = "+12125550101", "+12125550102", "+12125550103"
MACHINE, MACHINE2 = "+12125550201", "+12125550202"
BUSY = "+12125550301"
NO_ANSWER = "+12125550401"
SLOW_PERSON = "+12125550501"
LONG_PERSON = "+12125550701"

QUEUES = """\
skills: [outbound]
pause_reasons: [break]
queues:
  - {name: outbound, skills: {outbound: 1}, ring_timeout_s: 10, wrap_up_s: 30}
agents:
  - {id: "1001", name: Wang Fang, skills: {outbound: 5}, queues: [outbound], endpoint: PJSIP/1001}
  - {id: "1002", name: Alice Smith, skills: {outbound: 5}, queues: [outbound], endpoint: PJSIP/1002}
  - {id: "1003", name: Li Lei, skills: {outbound: 5}, queues: [outbound], endpoint: PJSIP/1003}
"""

# Blended agents: the campaign's queue and an inbound queue, callers arriving on any DID queue for sales.
BLENDED_QUEUES = """\
skills: [outbound, sales]
pause_reasons: [break]
queues:
  - {name: outbound, skills: {outbound: 1}, ring_timeout_s: 10, wrap_up_s: 30}
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 10, wrap_up_s: 0}
agents:
  - {id: "1001", name: Wang Fang, skills: {outbound: 5, sales: 5}, queues: [outbound, sales], endpoint: PJSIP/1001}
  - {id: "1002", name: Alice Smith, skills: {outbound: 5, sales: 5}, queues: [outbound, sales], endpoint: PJSIP/1002}
"""
SALES_FLOW = """\
flow: main
language: en-US
fallback: {queue: sales, skills: []}
start: line
nodes:
  line: {type: queue, queue: sales}
"""

DIALER = DialerSettings(trunk="Local/{number}@customers", ring_timeout_s=25.0, agent_ring_s=10.0, wrap_up_s=0.3,
                        poll_s=0.2, lines=CampaignLines(caller_id_name="Example Co", caller_id_num="4008001234"))


def open_now(zone_offset_h: int = 0) -> tuple[CallingWindow, ...]:
    """A window around the current hour (UTC), every day: contacts in UTC are inside it, a zone 12 hours
    away is not."""
    hour = datetime.now(UTC).hour
    return (CallingWindow(frozenset(range(7)), time(max(0, hour - 1)), time(min(23, hour + 1), 59)),)


def campaign(name: str, mode: DialingMode, **changes: Any) -> Campaign:
    retry = {AttemptOutcome.BUSY: RetryRule(2, 600), AttemptOutcome.NO_ANSWER: RetryRule(2, 7200),
             AttemptOutcome.ANSWERING_MACHINE: RetryRule(1, 14400), AttemptOutcome.ABANDONED: RetryRule(1, 3600),
             AttemptOutcome.FAILED: RetryRule(2, 900), AttemptOutcome.WRONG_NUMBER: RetryRule(0)}
    return dataclasses.replace(Campaign(name, mode=mode, queue="outbound", windows=open_now(), max_attempts=3,
                                        retry=retry, script="Good morning, this is Example Co."), **changes)


@dataclasses.dataclass
class DialerStack:
    stack: Stack
    campaigns: CampaignStore
    facts: list[Any]

    @property
    def server(self) -> Any:
        return self.stack.server

    def dialer_facts(self, kind: type, **match: Any) -> list[Any]:
        return [x for x in self.facts if isinstance(x, kind) and all(getattr(x, k) == v for k, v in match.items())]

    def steps(self, step: str, **match: Any) -> list[f.DialerStep]:
        return self.dialer_facts(f.DialerStep, step=step, **match)

    async def add_campaign(self, c: Campaign, rows: Sequence[tuple[str, str, str]]) -> None:
        """Saved, its list imported (phone, name, timezone), then resumed: the dialer sees it at its next poll."""
        await self.campaigns.save(c)
        path = self.stack.tmp / f"{c.name}.csv"
        path.write_text("phone,name,timezone\n" + "".join(f"{p},{n},{z}\n" for p, n, z in rows), encoding="utf-8")
        report = await self.campaigns.import_list(c.name, path)
        assert report.added == len(rows), report.summary()
        await self.campaigns.resume(c.name)

    def ready(self, *agent_ids: str) -> None:
        for a in agent_ids:
            self.server.queueing.command(ev.AgentLoggedIn(a, f"PJSIP/{a}", None))  # available at once

    async def outcome_of(self, name: str, number: str, timeout: float = 15.0) -> str:
        async def probe() -> str:
            for c in await self.campaigns.contacts(name):
                if c.e164 == number and c.status.value not in ("pending", "dialing"):
                    return c.status.value
            return ""
        return await self.stack.until_async(probe, timeout, f"{number} dialled and ended")

    def ended(self, number: str) -> list[f.DialerLineEnded]:
        calls = {x.call_id for x in self.dialer_facts(f.DialerLineDialled, number=number)}
        return [x for x in self.dialer_facts(f.DialerLineEnded) if x.call_id in calls]


@asynccontextmanager
async def dialer_stack(tmp: Path, *, agents: tuple[str, ...] = ("1001", "1002", "1003"),
                       dialer: DialerSettings = DIALER, time_scale: float = 0.05, queues: str = QUEUES,
                       flow: str = "", relay: AmiRelay | None = None) -> AsyncIterator[DialerStack]:
    acd = parse_config(queues, "<test>")
    port = free_port()
    sim = Simulator(dialplan_paths=[product_dialplan(), CUSTOMERS], time_scale=time_scale, ami_port=port,
                    ami_users={AMI_USER: AMI_SECRET},
                    # the PBX counts virtual seconds (x time_scale), the CTI's 2 s are real ones
                    globals_override={"CTI_DIALER_WAIT": str(round(30 / time_scale))})
    tap = AmiTap()
    sim.world.listeners.append(tap)
    await sim.start()
    if relay is not None:  # the CTI reaches the simulator through it (tests/ami_relay.py)
        relay.pbx_port = port
        port = await relay.start()
    for a in agents:
        sim.add_agent_phone(a, answer_after=1.0)
    flows = tmp / "flows"  # no inbound flows unless given: this centre only dials
    flows.mkdir(exist_ok=True)
    if flow:
        (flows / "main.yaml").write_text(flow, encoding="utf-8")
    settings = dataclasses.replace(server_settings(tmp, acd, port, acd_text=queues, flows_dir=flows), dialer=dialer)
    server = await start_server(sim, settings)
    stack = Stack(sim, server, tmp, settings, tap)
    facts: list[Any] = []
    kinds = (f.DialerLineDialled, f.DialerStep, f.DialerLineEnded)
    server.bus.subscribe_all(lambda body: facts.append(body) if isinstance(body, kinds) else None)
    try:
        await stack.pbx.link.wait_up(10)
        yield DialerStack(stack, CampaignStore(server.crm), facts)
    finally:
        await stack.server.stop()
        if relay is not None:
            await relay.stop()
        await sim.stop()
