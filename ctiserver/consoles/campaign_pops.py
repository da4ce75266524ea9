"""The screen pop of a campaign call: when the dialer gives an answered person to an agent, the agent's
consoles get the customer's card (the CRM's pop by number, as an inbound pop has it), the campaign's name,
script and dispositions (the wrap-up offers exactly those), and the call's state.

A projection of the dialer's journaled facts: dialer.line_dialled names the number, dialer.step `connect`
(the pacer gave the line to the agent: their phone rings) pops the card, `connected` (bridged; a preview
line once the customer answers) says talking. Only the lines under way are remembered here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from crmstore.campaign_store import CampaignStore
from crmstore.errors import CrmError
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import CrmStore

from ..bus import EventBus
from ..journal import facts as f

log = logging.getLogger(__name__)

KIND = "campaign_call"  # the server message (ctiserver/gateway/schema.py)
_STATES = {"connect": "connecting", "connected": "talking"}
_POP_TIMEOUT_S = 2.0  # as the inbound pop: a slow CRM must not hold the card back past the agent's hello
_MAX_LINES = 2000  # lines whose end was never heard (a crash of the dialer's task): the oldest go

Push = Callable[[str, str, Mapping[str, object]], None]


class CampaignPops:
    def __init__(self, bus: EventBus, crm: CrmStore, campaigns: CampaignStore, push: Push) -> None:
        self.crm = crm
        self.campaigns = campaigns
        self.push = push
        self._dialled: dict[str, f.DialerLineDialled] = {}
        self._cards: dict[str, asyncio.Task[dict[str, object]]] = {}  # call id -> its card, fetched once
        self._last: dict[str, asyncio.Task[None]] = {}  # call id -> its latest push: pushes keep their order
        bus.subscribe(f.DialerLineDialled, self._on_dialled)
        bus.subscribe(f.DialerStep, self._on_step)
        bus.subscribe(f.DialerLineEnded, self._on_ended)

    def _on_dialled(self, e: f.DialerLineDialled) -> None:
        self._dialled[e.call_id] = e
        while len(self._dialled) > _MAX_LINES:
            del self._dialled[next(iter(self._dialled))]

    def _on_ended(self, e: f.DialerLineEnded) -> None:
        self._dialled.pop(e.call_id, None)
        self._cards.pop(e.call_id, None)

    def _on_step(self, e: f.DialerStep) -> None:
        state = _STATES.get(e.step)
        dialled = self._dialled.get(e.call_id)
        if state is None or dialled is None or not e.agent_id or e.campaign != dialled.campaign:
            return  # no line given to an agent (a survey line goes to its flow, not to a console)
        loop = asyncio.get_running_loop()
        card = self._cards.get(e.call_id)
        if card is None:
            card = self._cards[e.call_id] = loop.create_task(self._card(dialled), name=f"card {e.call_id}")
        before = self._last.get(e.call_id)
        task = loop.create_task(self._send(e.agent_id, e.call_id, state, card, before), name=f"pop {e.call_id}")
        self._last[e.call_id] = task
        task.add_done_callback(partial(self._sent, e.call_id))

    def _sent(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._last.get(call_id) is task:
            del self._last[call_id]

    async def _send(self, agent_id: str, call_id: str, state: str, card: asyncio.Task[dict[str, object]],
                    before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        try:
            fields = await asyncio.shield(card)
        except Exception:
            log.exception("campaign call %s: no card for agent %s", call_id, agent_id)
            return
        self.push(agent_id, KIND, {**fields, "state": state})

    async def _card(self, line: f.DialerLineDialled) -> dict[str, object]:
        """What the agent sees: the customer's card, the campaign's script and its dispositions."""
        pop: Any = None
        try:
            pop = await asyncio.wait_for(
                self.crm.screen_pop(viewer=Viewer("acd", CrmRole.AGENT), phone=line.number), _POP_TIMEOUT_S)
        except (CrmError, TimeoutError, ValueError, OSError) as e:
            log.warning("campaign call %s: no CRM card for %s: %s", line.call_id, line.number, e)
        script, queue, dispositions = "", "", list[dict[str, object]]()
        try:
            campaign = (await self.campaigns.get(line.campaign)).campaign
        except (CrmError, ValueError, LookupError) as e:
            log.warning("campaign call %s: campaign %r not read: %s", line.call_id, line.campaign, e)
        else:
            script, queue = campaign.script, campaign.queue
            for name in campaign.disposition_names():
                meaning = campaign.disposition(name)
                dispositions.append({"name": name, "then": meaning.then.value if meaning else "done",
                                     "right_party": meaning.right_party if meaning else True})
        customer = getattr(pop, "customer", None)
        return {"call_id": line.call_id, "campaign": line.campaign, "queue": queue, "number": line.number,
                "name": getattr(customer, "name", "") or "", "script": script, "dispositions": dispositions,
                "pop": pop}
