"""The IVR's view of the server (ivr_flows.driver.FlowServices) for one call: CRM look-ups, queue
figures, speech, surveys, callbacks and voicemail."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Protocol

from crmstore.errors import CrmNotFound
from crmstore.model import CallFacts, FollowUpKind, FollowUpRequest, Outcome
from crmstore.queries import Identity
from crmstore.store import CrmStore
from ivr_flows.interpreter import FlowRun
from ivr_flows.speech import RecognizerPool
from ivr_flows.steps import (
    QueueFigures,
    QueueHandoff,
    Recognition,
    Recognize,
    RequestCallback,
    SaveSurvey,
    SaveVoicemail,
)

from .calls import CallContext, utcnow


class QueueFiguresSource(Protocol):
    """Implemented by the app: live figures of a queue for `branch` nodes."""

    def figures(self, queue: str) -> QueueFigures: ...


class IvrServices:
    def __init__(
        self,
        ctx: CallContext,
        crm: CrmStore,
        figures: QueueFiguresSource,
        speech: RecognizerPool | None,
    ) -> None:
        self.ctx = ctx
        self.crm = crm
        self._figures = figures
        self._speech = speech

    async def lookup_customer(self, by: str, key: str) -> Mapping[str, object] | None:
        if by == "caller_number":
            identity = await self.crm.identify_by_phone(key or self.ctx.caller_num)
        elif by == "account":
            identity = await self.crm.identify_by_account(key)
        else:
            raise ValueError(f"unknown lookup {by!r}")
        if identity is None:
            return None
        self._remember(identity)
        return await self._self_service(identity)

    def _remember(self, identity: Identity) -> None:
        self.ctx.customer_id = identity.customer_id
        self.ctx.customer_name = identity.name
        self.ctx.vip = identity.vip
        self.ctx.grade = identity.grade.value if identity.grade else None

    async def _self_service(self, identity: Identity) -> dict[str, object]:
        # Self-service figures from purchases: the amount bought in the last 30 days stands in for the
        # balance, and the age of the last order for its status (processing, shipped, delivered).
        purchases = await self.crm.purchases(identity.customer_id)
        today = utcnow().date()
        recent = [p for p in purchases if (today - p.purchased_on).days <= 30]
        balance = sum((Decimal(str(p.amount)) for p in recent), Decimal(0))
        out: dict[str, object] = {
            "customer_id": identity.customer_id,
            "name": identity.name,
            "grade": identity.grade.value if identity.grade else "",
            "vip": "true" if identity.vip else "false",
            "balance": str(int(balance)),
        }
        if purchases:
            age = (today - max(p.purchased_on for p in purchases)).days
            out["order_status"] = "processing" if age < 2 else "shipped" if age < 7 else "delivered"
        return out

    async def queue_figures(self, queue: str) -> QueueFigures:
        return self._figures.figures(queue)

    async def recognize(self, request: Recognize, recording_done: asyncio.Event) -> Recognition:
        if self._speech is None:
            raise RuntimeError("no speech model configured")
        result = await self._speech.recognize(request, recording_done)
        if result.text:
            self.ctx.said = (*self.ctx.said, result.text)
        return result

    async def save_survey(self, request: SaveSurvey) -> None:
        try:
            await self.crm.save_survey(self.ctx.call_id, request.score)
        except CrmNotFound:
            # The post-call survey usually beats the agent's wrap-up: log the call first; the wrap-up
            # later updates the same row (upsert by call id) and keeps the score.
            ctx = self.ctx
            await self.crm.log_interaction(CallFacts(
                call_id=ctx.call_id, caller=ctx.caller_num, started_at=ctx.started_at,
                outcome=Outcome.ANSWERED if ctx.answered_at else Outcome.IVR_ONLY,
                answered_at=ctx.answered_at, queue=ctx.queue, agent=ctx.agent_id or "",
                ivr_path=ctx.ivr_path, customer_id=ctx.customer_id,
            ))
            await self.crm.save_survey(ctx.call_id, request.score)

    async def request_callback(self, request: RequestCallback) -> bool:
        customer_id = self.ctx.customer_id
        if customer_id is None:
            customer_id = await self.crm.create_lead(request.number or self.ctx.caller_num,
                                                     self.ctx.caller_name)
        await self.crm.add_follow_up(
            customer_id,
            FollowUpRequest(FollowUpKind.CALLBACK, utcnow() + timedelta(minutes=15), owner=request.queue,
                            note=f"IVR callback request from {request.number or self.ctx.caller_num}"),
        )
        self.ctx.outcome = "callback"
        return True

    async def save_voicemail(self, request: SaveVoicemail) -> None:
        self.ctx.outcome = "voicemail"
        await self.crm.log_interaction(CallFacts(
            call_id=self.ctx.call_id, caller=self.ctx.caller_num, started_at=self.ctx.started_at,
            outcome=Outcome.IVR_ONLY, ivr_path=self.ctx.ivr_path, recording_ref=request.audio_path,
            customer_id=self.ctx.customer_id,
        ))

    async def enqueue(self, handoff: QueueHandoff, run: FlowRun) -> None:
        self.ctx.queue = handoff.queue
        self.ctx.priority = handoff.priority
