"""Builders shared by the ACD tests: configs from Python data, and a router driver."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig, parse_config
from acd.router import Router


def make_config(queues: list[dict[str, Any]], agents: list[dict[str, Any]], *,
                skills: Iterable[str] = ("billing", "sales", "tech", "korean", "english"),
                aging: float = 0.0) -> AcdConfig:
    doc = {
        "priority_aging_per_s": aging,
        "skills": list(skills),
        "pause_reasons": ["break", "lunch", "training"],
        "queues": queues,
        "agents": [{"endpoint": f"PJSIP/{a['id']}", **a} for a in agents],
    }
    return parse_config(yaml.safe_dump(doc, sort_keys=False), source="test.yaml")


def agent(agent_id: str, queues: list[str], **skills: int) -> dict[str, Any]:
    return {"id": agent_id, "name": f"Agent {agent_id}", "skills": skills, "queues": queues}


class Driver:
    """A router plus the clock, keeping every decision for assertions."""

    def __init__(self, config: AcdConfig) -> None:
        self.router = Router(config)
        self.now = 0.0
        self.log: list[d.Decision] = []

    def at(self, now: float) -> Driver:
        self.now = now
        return self

    def __call__(self, event: ev.Event) -> list[d.Decision]:
        out = self.router.handle(event, self.now)
        self.log.extend(out)
        return out

    def tick(self, now: float) -> list[d.Decision]:
        self.now = now
        return self(ev.Tick())

    def login(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            out = self(ev.AgentLoggedIn(agent_id))
            assert not refusals(out), out

    def enqueue(self, call_id: str, queue: str, **kw: Any) -> list[d.Decision]:
        return self(ev.CallEnqueued(call_id, queue, **kw))

    def state(self, agent_id: str) -> str:
        return self.router.agent_view(agent_id, self.now).state

    def busy(self, agent_id: str, call_id: str = "") -> None:
        """Put an available agent on a call so they stop taking offers."""
        call_id = call_id or f"busy-{agent_id}"
        queue = self.router.agent_view(agent_id, self.now).queues[0]
        out = self.enqueue(call_id, queue, sticky_agent_id=agent_id)
        assert offers(out) == [(call_id, agent_id)], out
        self(ev.OfferAnswered(call_id, agent_id))

    def free(self, agent_id: str) -> list[d.Decision]:
        """End the agent's call and wrap-up; returns the decisions of the moment they are free."""
        call_id = self.router.agent_view(agent_id, self.now).call_id
        assert call_id is not None
        self(ev.AgentCallEnded(agent_id, call_id))
        return self(ev.WrapUpDone(agent_id))


def offers(out: Iterable[d.Decision]) -> list[tuple[str, str]]:
    return [(x.call_id, x.agent_id) for x in out if isinstance(x, d.Offer)]


def refusals(out: Iterable[d.Decision]) -> list[d.Refusal]:
    return [x for x in out if isinstance(x, d.Refusal)]


def of_type(out: Iterable[d.Decision], kind: type) -> list[Any]:
    return [x for x in out if isinstance(x, kind)]
