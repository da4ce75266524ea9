"""The one thing the gateway's protocol and browser tests know about the server: a `Site`.

Tests are functions of a running site (its URLs, its accounts, and a way to make the telephone
side happen), so the same tests run against the temporary in-memory backend today and against
the real app with the PBX simulator once the lead wires it: implement `Site` over the real
server and return it from the `site` fixture.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from ctiserver.gateway.auth import Account, Accounts, Role, hash_password
from ctiserver.gateway.server import Gateway, GatewayConfig
from tests.gateway.gw_memory_backend import InMemoryTestBackend

XSS_NAME = '<img src=x onerror="window.__xss=1">王<script>window.__xss=2</script>'


class Site(Protocol):
    http_url: str
    ws_url: str
    passwords: Mapping[str, str]  # agent1, agent2 (agents), super1 (supervisor), admin1 (admin)

    async def ring_agent(self, agent_id: str, caller: str, caller_name: str = "") -> tuple[str, str]:
        """Make a call ring at this agent (the only one available); returns (offer_id, call_id)."""
        ...

    async def answer(self, call_id: str) -> None:
        """The agent picks up the phone."""
        ...

    async def add_waiting_call(self, queue: str, caller: str) -> str:
        """A caller waits in a queue nobody serves; returns the call id."""
        ...

    async def saved_wrapup(self, call_id: str) -> Mapping[str, object] | None:
        """What the CRM holds for this call's wrap-up (disposition, notes), None if nothing."""
        ...

    async def break_next_wrapup(self) -> None:
        """Make the next wrap-up save fail (the real site: lock the database)."""
        ...


# Cheap hashes for tests only: the scrypt cost lives in the stored string.
def _account(username: str, role: Role, password: str, **extra: str) -> Account:
    return Account(username=username, role=role, password_hash=hash_password(password, n=2**10),
                   display_name=extra.pop("display_name", username), **extra)  # type: ignore[arg-type]


def test_accounts() -> tuple[Accounts, dict[str, str]]:
    passwords = {name: secrets.token_urlsafe(8) for name in ("agent1", "agent2", "super1", "admin1")}
    accounts = Accounts([
        _account("agent1", Role.AGENT, passwords["agent1"], agent_id="agent1", display_name="李娜 Li Na"),
        _account("agent2", Role.AGENT, passwords["agent2"], agent_id="agent2"),
        _account("super1", Role.SUPERVISOR, passwords["super1"], extension="2001"),
        _account("admin1", Role.ADMIN, passwords["admin1"]),
    ])
    return accounts, passwords


def sample_pop(name: str = "张伟", vip: bool = True) -> dict[str, object]:
    """A pop shaped like crmstore.model.ScreenPop after schema.to_wire."""
    flags = [{"flag": "vip", "reason": "top 1% revenue", "set_at": "2024-01-02T00:00:00", "set_by": "crm"},
             {"flag": "blacklist", "reason": "abusive <b>twice</b>", "set_at": "2024-03-01T00:00:00",
              "set_by": "super1"}] if vip else []
    return {
        "caller": "+8613800000001",
        "customer": {"id": 42, "name": name, "company": "华为 <Huawei>", "email": "z@example.com",
                     "phones": ["+8613800000001"], "accounts": ["AC-1001"], "tags": ["gold"],
                     "notes": "<script>alert(1)</script> prefers mornings", "preferred_language": "zh",
                     "contact_time": "weekdays 9-12", "contact_channel": "phone", "is_lead": False,
                     "grade": "A", "created_at": "2023-05-01T10:00:00"},
        "flags": flags,
        "grade": "A",
        "grade_change": None,
        "interactions": [{"id": 7, "call_id": "c-7", "started_at": "2024-05-01T09:30:00", "direction": "inbound",
                          "outcome": "answered", "queue": "sales", "agent": "agent2", "disposition": "resolved",
                          "notes": "asked about <invoice>", "talk_s": 120.0}],
        "open_tickets": [{"id": 3, "category": "complaint", "subject": "late delivery <x>", "status": "open",
                          "opened_at": "2024-05-01T09:00:00", "due_at": "2024-05-06T09:00:00"}],
        "due_follow_ups": [{"id": 5, "kind": "callback", "owner": "agent1", "due_at": "2024-05-02T10:00:00",
                            "status": "open", "note": "call back about refund"}],
        "churn": [],
        "actions": [{"kind": "ticket", "text": "complaint open 5 days", "priority": 1}],
        "last_agent": "agent2",
    }


@dataclass
class MemorySite:
    """A Site over the TEMPORARY in-memory backend."""

    gateway: Gateway
    backend: InMemoryTestBackend
    passwords: Mapping[str, str]

    @property
    def http_url(self) -> str:
        return self.gateway.url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    async def ring_agent(self, agent_id: str, caller: str, caller_name: str = "") -> tuple[str, str]:
        offer = await self.backend.offer_call(
            agent_id, caller, caller_name, pop=sample_pop(caller_name or "张伟"),
            ivr_path=("welcome", "menu", "sales"), ivr_said=("我想查询订单",))
        return offer.offer_id, offer.call_id

    async def answer(self, call_id: str) -> None:
        await self.backend.answer(call_id)

    async def add_waiting_call(self, queue: str, caller: str) -> str:
        return await self.backend.add_waiting_call(queue, caller)

    async def saved_wrapup(self, call_id: str) -> Mapping[str, object] | None:
        form = self.backend.saved_wrapups.get(call_id)
        return None if form is None else {"disposition": form.disposition, "notes": form.notes,
                                          "follow_up": form.follow_up}

    async def break_next_wrapup(self) -> None:
        self.backend.fail_next_wrapup = True


@asynccontextmanager
async def memory_site(config: GatewayConfig | None = None) -> AsyncIterator[MemorySite]:
    accounts, passwords = test_accounts()
    backend = InMemoryTestBackend(customers=[
        {"id": 42, "name": "张伟", "company": "华为", "phone": "+8613800000001", "grade": "A"},
        {"id": 43, "name": XSS_NAME, "company": "<b>Evil</b> Ltd", "phone": "+8613800000002", "grade": "C"},
    ])
    gateway = Gateway(backend, accounts, config or GatewayConfig(port=0))
    backend.gateway = gateway
    async with gateway:
        yield MemorySite(gateway, backend, passwords)
