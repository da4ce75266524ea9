"""An in-memory FlowServices for the IVR tests (the CRM and ACD are other teams' parts)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr_flows.interpreter import FlowRun
from ivr_flows.speech import Listening, RecognizerPool
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


@dataclass
class MemoryServices:
    by_number: dict[str, dict[str, object]] = field(default_factory=dict)
    by_account: dict[str, dict[str, object]] = field(default_factory=dict)
    figures: dict[str, QueueFigures] = field(default_factory=dict)
    speech: RecognizerPool | None = None
    fail: set[str] = field(default_factory=set)  # names of methods that raise
    surveys: list[SaveSurvey] = field(default_factory=list)
    callbacks: list[RequestCallback] = field(default_factory=list)
    voicemails: list[SaveVoicemail] = field(default_factory=list)
    enqueued: list[QueueHandoff] = field(default_factory=list)
    recognitions: list[Recognition] = field(default_factory=list)
    told: list[PathEntry] = field(default_factory=list)  # the path as the driver told it, step by step
    prompts_stopped: int = 0

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise RuntimeError(f"{name} is down")

    async def lookup_customer(self, by: str, key: str) -> Mapping[str, object] | None:
        self._maybe_fail("lookup_customer")
        return (self.by_number if by == "caller_number" else self.by_account).get(key)

    async def queue_figures(self, queue: str) -> QueueFigures:
        self._maybe_fail("queue_figures")
        return self.figures.get(queue, QueueFigures(0, 1, 0.0))

    async def recognize(self, request: Recognize, recording_done: asyncio.Event) -> Recognition:
        self._maybe_fail("recognize")
        if self.speech is None:
            raise RuntimeError("no recognizer")
        rec = await self.speech.recognize(request, recording_done)
        self.recognitions.append(rec)
        return rec

    def listen(self, request: Recognize, wait_seconds: float, max_seconds: float) -> Listening:
        self._maybe_fail("listen")
        if self.speech is None:
            raise RuntimeError("no recognizer")
        return self.speech.listen(request, wait_seconds, max_seconds)

    async def stop_prompt(self) -> None:
        self._maybe_fail("stop_prompt")
        self.prompts_stopped += 1

    async def save_survey(self, request: SaveSurvey) -> None:
        self._maybe_fail("save_survey")
        self.surveys.append(request)

    async def request_callback(self, request: RequestCallback) -> bool:
        self._maybe_fail("request_callback")
        self.callbacks.append(request)
        return True

    async def save_voicemail(self, request: SaveVoicemail) -> None:
        self._maybe_fail("save_voicemail")
        self.voicemails.append(request)

    async def enqueue(self, handoff: QueueHandoff, run: FlowRun) -> None:
        self.enqueued.append(handoff)

    def path_entry(self, entry: PathEntry) -> None:
        self.told.append(entry)
