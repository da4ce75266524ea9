"""The IVR's view of the server (ivr_flows.driver.FlowServices) for one call: CRM look-ups, queue
figures, speech, and the facts of the caller's way through the flow, journaled as they happen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from crmstore.model import FollowUpKind, FollowUpRequest
from crmstore.queries import Identity
from crmstore.store import CrmStore
from crmstore.surveys import SCORES, YES_NO
from ivr_flows.interpreter import FlowRun
from ivr_flows.speech import AudioFeed, Listening, RecognizerPool
from ivr_flows.steps import (
    PathEntry,
    QueueFigures,
    QueueHandoff,
    Recognition,
    Recognize,
    RequestCallback,
    SaveSurvey,
    SaveVoicemail,
)

from ..journal import facts as f
from .prompts import MissingPrompts
from .spool import SpeechSpool

log = logging.getLogger(__name__)

Record = Callable[[object], object]  # journals one fact (ctiserver.projections.recorder.Recorder.record)


class QueueFiguresSource(Protocol):
    """Live figures of a queue for `branch` nodes."""

    def figures(self, queue: str) -> QueueFigures: ...


@dataclass(slots=True)
class IvrCall:
    """The call the flow runs for, as far as the IVR needs it."""

    call_id: str
    caller_num: str
    caller_name: str = ""
    customer_id: int | None = None
    queue: str = ""
    priority: int = 0
    skills: tuple[str, ...] = ()  # extra skills the caller needs in the queue (the flow's queue node)
    campaign: str = ""  # an outbound survey campaign's line (no call record: the dialer journals it)


class BookCallback(Protocol):
    """Books a callback (ctiserver.outbound.callbacks.CallbackService.book): returns its id."""

    def __call__(self, number: str, *, source: str, queue: str = "", name: str = "", topic: str = "",
                 due_at: float | None = None, requested_by: str = "", call_id: str = "") -> str: ...


class IvrServices:
    def __init__(
        self,
        call: IvrCall,
        crm: CrmStore,
        figures: QueueFiguresSource,
        speech: RecognizerPool | None,
        record: Record,
        *,
        flow: str = "",
        missing_prompts: MissingPrompts | None = None,
        book_callback: BookCallback | None = None,
        spool: SpeechSpool | None = None,
        stop_prompt: Callable[[], Awaitable[None]] | None = None,
        open_stream: Callable[[], Awaitable[AudioFeed]] | None = None,
    ) -> None:
        self.call = call
        self._book_callback = book_callback
        self.crm = crm
        self._figures = figures
        self._speech = speech
        self._record = record
        self._flow = flow
        self._missing = missing_prompts or MissingPrompts(record)
        self._spool = spool
        self.recordings: set[str] = set()  # the speech recordings asked for: swept when the flow ends
        self._stop_prompt = stop_prompt
        self._open_stream = open_stream

    def path_entry(self, entry: PathEntry) -> None:
        self._record(f.IvrStep(self.call.call_id, entry.node, entry.event, entry.value, entry.confidence))
        conf = f" ({entry.confidence:.2f})" if entry.confidence is not None else ""
        log.info("ivr %s %s: %s %s%s", self.call.call_id, entry.node, entry.event, entry.value, conf)
        if entry.event == "prompt_missing":
            self._missing.report(entry.value, f"flow {self._flow}, node {entry.node}", self.call.call_id)

    async def lookup_customer(self, by: str, key: str) -> Mapping[str, object] | None:
        if by == "caller_number":
            identity = await self.crm.identify_by_phone(key or self.call.caller_num)
        elif by == "account":
            identity = await self.crm.identify_by_account(key)
        else:
            raise ValueError(f"unknown lookup {by!r}")
        if identity is None:
            return None
        self.identified(identity)
        return await self._self_service(identity)

    def identified(self, identity: Identity) -> None:
        self.call.customer_id = identity.customer_id
        self._record(f.CallerIdentified(self.call.call_id, identity.customer_id, identity.name,
                                        identity.grade.value if identity.grade else None, identity.vip))

    async def _self_service(self, identity: Identity) -> dict[str, object]:
        # Self-service figures from purchases: the amount bought in the last 30 days stands in for the
        # balance, and the age of the last order for its status (processing, shipped, delivered).
        purchases = await self.crm.purchases(identity.customer_id)
        today = datetime.now(UTC).date()
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
        self.recordings.add(request.audio_path)
        try:
            if self._speech is None:
                raise RuntimeError("no speech model configured")
            return await self._speech.recognize(request, recording_done)
        finally:
            # Decided (or abandoned: a key, a hang-up): the file is complete once Asterisk answered; before
            # that it may still be created, and the flow's end deletes it.
            if self._spool is not None and recording_done.is_set():
                self._spool.decided(request.audio_path)

    def listen(self, request: Recognize, wait_seconds: float, max_seconds: float) -> Listening:
        if self._speech is None:
            raise RuntimeError("no speech model configured")
        listening = self._speech.listen(request, wait_seconds, max_seconds)
        self.recordings.add(request.audio_path)
        spool = self._spool
        if spool is not None:
            run = listening.run

            async def run_then_delete() -> Recognition:
                try:
                    return await run()
                finally:
                    # Decided (or abandoned: a key, a hang-up). MixMonitor may still hold the file open until
                    # StopMixMonitor: unlinked now, what it writes after goes nowhere; a file created later
                    # than this (a key at once) goes when the flow ends.
                    spool.decided(request.audio_path)

            listening.run = run_then_delete  # type: ignore[method-assign]
        return listening

    async def listen_stream(self) -> AudioFeed:
        if self._open_stream is None:
            raise RuntimeError("no AudioSocket listener configured")
        return await self._open_stream()

    async def stop_prompt(self) -> None:
        if self._stop_prompt is None:
            raise RuntimeError("no AMI link to stop the prompt")
        await self._stop_prompt()

    async def save_survey(self, request: SaveSurvey) -> None:
        """The answer journaled; the CRM history keeps it with the customer (survey_responses) in the same
        batch. An inbound caller's score is also the call's satisfaction score (the satisfaction report)."""
        answer = request.answer or str(request.score)
        if answer not in SCORES and answer not in YES_NO:
            raise ValueError(f"survey answer must be a score 1..5, yes or no, got {answer!r}")
        call = self.call
        customer = call.customer_id
        if customer is None and call.caller_num:
            identity = await self.crm.identify_by_phone(call.caller_num)
            customer = identity.customer_id if identity is not None else None
        self._record(f.SurveyResponseGiven(call.call_id, request.flow, request.question[:100], answer,
                                           call.campaign, customer, call.caller_num))
        if answer in SCORES and not call.campaign:
            self._record(f.SurveyAnswered(call.call_id, int(answer)))

    async def request_callback(self, request: RequestCallback) -> bool:
        number = request.number or self.call.caller_num
        if self._book_callback is not None:
            # A task the ACD offers to an agent at once, dialled and retried by the rule (docs/callbacks.md).
            try:
                self._book_callback(number, source="ivr", queue=request.queue, name=self.call.caller_name,
                                    topic=f"IVR {self._flow}", requested_by=self.call.call_id)
            except ValueError:  # a queue no longer configured: the flow takes its failure branch
                return False
            self._record(f.CallbackPromised(self.call.call_id, number, request.queue))
            return True
        customer_id = self.call.customer_id
        if customer_id is None:
            customer_id = await self.crm.create_lead(number, self.call.caller_name)
        await self.crm.add_follow_up(
            customer_id,
            FollowUpRequest(FollowUpKind.CALLBACK, datetime.now(UTC) + timedelta(minutes=15), owner=request.queue,
                            note=f"IVR callback request from {number}"),
        )
        self._record(f.CallbackPromised(self.call.call_id, number, request.queue))
        return True

    async def save_voicemail(self, request: SaveVoicemail) -> None:
        self._record(f.VoicemailLeft(self.call.call_id, request.audio_path))

    async def enqueue(self, handoff: QueueHandoff, run: FlowRun) -> None:
        self.call.queue = handoff.queue
        self.call.priority = handoff.priority
        self.call.skills = handoff.skills
