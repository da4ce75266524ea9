"""The async edge of the IVR: moves Steps between a FlowRun, the caller's AgiChannel and FlowServices.

Nothing here decides anything about the flow; it only fulfils requests and turns every failure into either
a clean end (the caller hung up) or the flow's safe fallback (anything else), so a call is never dropped by
the IVR's own fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .channel import AgiChannel, ChannelHungUp
from .interpreter import FlowRun
from .steps import (
    AgiCommand,
    LookupCustomer,
    Outcome,
    PathEntry,
    QueueFigures,
    QueueFiguresRequest,
    QueueHandoff,
    Recognition,
    Recognize,
    RequestCallback,
    SaveSurvey,
    SaveVoicemail,
    ServiceFailed,
    ServiceRequest,
    SpeechCapture,
)

log = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUT = 120.0  # a STREAM FILE of a long prompt; nodes that wait longer pass their own
DEFAULT_SERVICE_TIMEOUT = 5.0


class FlowServices(Protocol):
    """What a running flow needs from the rest of the server. Every method may raise: the driver turns an
    exception or a timeout into ServiceFailed and the flow takes its not-found / default path."""

    async def lookup_customer(self, by: str, key: str) -> Mapping[str, object] | None:
        """Identify the caller: by "caller_number" or "account". None when unknown."""
        ...

    async def queue_figures(self, queue: str) -> QueueFigures: ...

    async def recognize(self, request: Recognize, recording_done: asyncio.Event) -> Recognition:
        """Recognize request.audio_path against request.phrases. Called when RECORD FILE is sent, so the
        implementation may tail the growing file; ``recording_done`` is set when Asterisk's reply arrived.
        ivr_flows.speech.RecognizerPool.recognize has exactly this signature."""
        ...

    async def save_survey(self, request: SaveSurvey) -> None: ...

    async def request_callback(self, request: RequestCallback) -> bool: ...

    async def save_voicemail(self, request: SaveVoicemail) -> None: ...

    async def enqueue(self, handoff: QueueHandoff, run: FlowRun) -> None:
        """The run ended in a queue handoff (by flow, or the safe fallback): hand the caller to the ACD.
        run.path and run.variables go to the screen pop."""
        ...

    def path_entry(self, entry: PathEntry) -> None:
        """One step of the caller's way, told as it happens (a caller who hangs up mid-flow keeps it)."""
        ...


@dataclass(frozen=True, slots=True)
class FlowResult:
    outcome: Outcome
    path: tuple[PathEntry, ...]
    variables: Mapping[str, str]
    flow: str
    version: str


async def run_flow(
    channel: AgiChannel,
    run: FlowRun,
    services: FlowServices,
    *,
    service_timeout: float = DEFAULT_SERVICE_TIMEOUT,
) -> FlowResult:
    told = 0

    def tell() -> None:
        nonlocal told
        for entry in run.path[told:]:
            services.path_entry(entry)
        told = len(run.path)

    step = run.start()
    tell()
    while not isinstance(step, Outcome):
        try:
            if isinstance(step, AgiCommand):
                result: object = await _agi(channel, step, services, service_timeout)
            else:
                result = await _service(step, services, service_timeout)
        except ChannelHungUp:
            salvage, run.on_hangup = run.on_hangup, None
            step = run.caller_hung_up()
            if salvage is not None:
                await _salvage(salvage, services, service_timeout, run)
            break
        except Exception as e:
            log.exception("flow %s: %s failed in node %r; caller goes to the fallback queue",
                          run.flow.name, type(step).__name__, run.current_node)
            step = run.fail_safe(f"{type(e).__name__}: {e}")
            break
        step = run.feed(result)
        tell()
    tell()
    if isinstance(step, QueueHandoff):
        try:
            async with asyncio.timeout(service_timeout):
                await services.enqueue(step, run)
        except Exception:
            log.exception("flow %s: enqueue to %s failed", run.flow.name, step.queue)
    return FlowResult(step, tuple(run.path), dict(run.variables), run.flow.name, run.flow.version)


async def _agi(channel: AgiChannel, cmd: AgiCommand, services: FlowServices, service_timeout: float) -> object:
    timeout = cmd.timeout if cmd.timeout is not None else DEFAULT_COMMAND_TIMEOUT
    if cmd.listen is None:
        return await channel.command(*cmd.words, timeout=timeout)
    # Recognition starts with the recording so it can follow the growing file; only the tail remains to be
    # decoded when Asterisk reports the end of the recording.
    done = asyncio.Event()
    task = asyncio.create_task(services.recognize(cmd.listen, done))
    try:
        reply = await channel.command(*cmd.words, timeout=timeout)
    except BaseException:
        await _cancel(task)
        raise
    done.set()
    if reply.data == "dtmf" or reply.result == "-1" or reply.code != 200:
        await _cancel(task)
        return SpeechCapture(reply)
    try:
        async with asyncio.timeout(service_timeout):
            recognition = await task
    except Exception as e:  # noqa: BLE001 - a broken recognizer means keypad, not a dropped call
        log.warning("speech recognition failed for %s: %r", cmd.listen.audio_path, e)
        await _cancel(task)
        return SpeechCapture(reply, error=f"{type(e).__name__}: {e}")
    return SpeechCapture(reply, recognition)


async def _salvage(req: ServiceRequest, services: FlowServices, timeout: float, run: FlowRun) -> None:
    """Finish what the caller's hang-up interrupted (the voicemail they were leaving)."""
    result = await _service(req, services, timeout)
    note = "saved after hang-up" if not isinstance(result, ServiceFailed) else f"lost: {result.error[:80]}"
    run.path.append(PathEntry(run.current_node, "note", note))


async def _cancel(task: asyncio.Task[Recognition]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def _service(req: ServiceRequest, services: FlowServices, timeout: float) -> object:
    try:
        async with asyncio.timeout(timeout):
            if isinstance(req, LookupCustomer):
                answer = await services.lookup_customer(req.by, req.key)
                return {k: str(v) for k, v in answer.items()} if answer else None
            if isinstance(req, QueueFiguresRequest):
                return await services.queue_figures(req.queue)
            if isinstance(req, SaveSurvey):
                await services.save_survey(req)
                return True
            if isinstance(req, RequestCallback):
                return await services.request_callback(req)
            if isinstance(req, SaveVoicemail):
                await services.save_voicemail(req)
                return True
    except Exception as e:  # noqa: BLE001 - the flow has a path for "service failed"
        log.warning("flow service %s failed: %r", type(req).__name__, e)
        return ServiceFailed(f"{type(e).__name__}: {e}")
    raise TypeError(f"unknown service request {type(req).__name__}")
