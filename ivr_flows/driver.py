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
from typing import Any, Protocol

from .channel import AgiChannel, AgiReply, ChannelHungUp
from .interpreter import FlowRun
from .speech import AudioFeed, Listening
from .steps import (
    AgiCommand,
    Listen,
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
REPLY_TIMEOUT = 10.0  # a command that answers at once (EXEC MixMonitor, WAIT FOR DIGIT 100)
# Listening polls for keys in slices this long: a key ends it, and the flow learns of the end of speech at
# most one slice late. Each slice is one AGI round trip (AGIExecStart/End on AMI: capture 23 A).
LISTEN_SLICE_MS = 100
# AMI ControlPlayback's answer to stop a prompt the caller talks over (capture 24 A).
STOP_PROMPT_TIMEOUT = 2.0
# WAIT FOR DIGIT's result when a prompt stop arrives while it waits (capture 24 B): not a key.
STREAM_STOP_RESULT = "1000"


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

    def listen(self, request: Recognize, wait_seconds: float, max_seconds: float) -> Listening:
        """A Listening for the recording at request.audio_path, which the driver is about to start.
        Raises when speech cannot be recognized here (no model): the menu goes keypad-only."""
        ...

    async def listen_stream(self) -> AudioFeed:
        """Have the PBX stream the caller's voice here in 20 ms frames (AudioSocket beside the call).
        Raises when it cannot within a short bound: the menu then listens to a recording file."""
        ...

    async def stop_prompt(self) -> None:
        """Stop the prompt playing on the caller's channel (AMI ControlPlayback stop), because the caller
        talks over it. May raise: the prompt then plays on and the speech is still heard."""
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
            elif isinstance(step, Listen):
                result = await _listen(channel, step, services, service_timeout)
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


async def _listen(channel: AgiChannel, step: Listen, services: FlowServices, service_timeout: float) -> SpeechCapture:
    """The caller's voice comes to the server as a stream (AudioSocket, 20 ms frames) while the prompts play
    and then while WAIT FOR DIGIT slices wait for keys; the server says when the utterance is over, and
    that ends the stream. Without a stream, MixMonitor (caller's direction only, so the prompt is not in it:
    capture 24 A) records beside the call, the server decodes the growing file, and StopMixMonitor ends it.
    A hang-up ends either (captures 23 C, 32 D): ChannelHungUp goes up to run_flow."""
    try:
        listening = services.listen(step.recognize, step.wait_seconds, step.max_seconds)
    except Exception as e:  # noqa: BLE001 - no recognizer means keypad, not a dropped call
        log.warning("speech unavailable for %s: %r", step.recognize.audio_path, e)
        return SpeechCapture(AgiReply(200, "0"), error=f"{type(e).__name__}: {e}", ended="error")
    path = step.recognize.audio_path
    feed = await _stream(services, service_timeout)
    if feed is not None:
        listening.follow(feed)
        reply = AgiReply(200, "0")
    else:
        reply = await channel.command("EXEC", "MixMonitor", f",r({path})", timeout=REPLY_TIMEOUT)
    task = asyncio.create_task(listening.run())
    barged_in = False
    missing: list[str] = []
    ended = ""
    try:
        played = 0  # samples of prompt played (endpos): where the prompts end in the recording
        for prompt in step.prompts:
            if listening.speech_started.is_set():
                break
            reply, stopped = await _prompt(channel, prompt, step.keys, listening, services)
            barged_in = barged_in or stopped
            if reply.result == "-1":
                missing.append(prompt)
            played += max(0, reply.endpos or 0)
            if reply.digit and reply.digit in step.keys:
                ended = "key"
                break
        # A stream is live: the prompts end now. A file starts with the prompts' time in it.
        listening.prompts_ended(None if feed is not None else played / 8000 if step.prompts else 0.0)
        while not ended and not listening.ended.is_set() and not task.done():
            reply = await channel.command("WAIT FOR DIGIT", LISTEN_SLICE_MS, timeout=REPLY_TIMEOUT)
            if reply.result != STREAM_STOP_RESULT and reply.digit and reply.digit in step.keys:
                ended = "key"
            elif reply.result == "-1":
                ended = "hangup"  # the next command raises ChannelHungUp
        if feed is not None and task.done() and not task.cancelled() and task.exception() is not None:
            # The stream ended by itself: it does when the caller hangs up (capture 32 D), and the channel
            # says so here (ChannelHungUp) before the menu takes its error path.
            await channel.command("CHANNEL STATUS", timeout=REPLY_TIMEOUT)
        if ended:
            listening.stop(ended)
        if feed is None:
            await channel.command("EXEC", "StopMixMonitor", timeout=REPLY_TIMEOUT)
        elif ended == "hangup":
            raise ChannelHungUp("the caller hung up while the menu listened")  # no command left to say so
    except BaseException:
        listening.stop("hangup")
        if feed is not None:
            feed.close()
        await _cancel(task)
        raise
    try:
        async with asyncio.timeout(service_timeout):
            recognition = await task
    except Exception as e:  # noqa: BLE001 - a broken recognizer or recording means keypad, not a dropped call
        log.error("speech listening failed for %s: %s", path, e)
        await _cancel(task)
        return SpeechCapture(reply, error=f"{type(e).__name__}: {e}", ended="error", barged_in=barged_in,
                             prompts_missing=tuple(missing))
    if ended == "key":
        return SpeechCapture(reply, ended="key", barged_in=barged_in, prompts_missing=tuple(missing))
    return SpeechCapture(reply, recognition, ended=ended or listening.reason, barged_in=barged_in,
                         prompts_missing=tuple(missing))


async def _stream(services: FlowServices, service_timeout: float) -> AudioFeed | None:
    """The caller's voice as a stream, or None (logged once) when the PBX cannot send it: the menu then
    listens to a recording file as before."""
    try:
        async with asyncio.timeout(service_timeout):
            return await services.listen_stream()
    except Exception as e:  # noqa: BLE001 - a file is the fallback, not a dropped call
        log.warning("no audio stream for the speech menu (%s); listening to a recording file instead",
                    str(e) or type(e).__name__)
        return None


async def _prompt(channel: AgiChannel, prompt: str, keys: str, listening: Listening,
                  services: FlowServices) -> tuple[AgiReply, bool]:
    """STREAM FILE one prompt; stop it when the caller starts talking. Returns (reply, stopped)."""
    play = asyncio.create_task(channel.command("STREAM FILE", prompt, keys, timeout=DEFAULT_COMMAND_TIMEOUT))
    talk = asyncio.create_task(listening.speech_started.wait())
    try:
        await asyncio.wait({play, talk}, return_when=asyncio.FIRST_COMPLETED)
        stopped = False
        if talk.done() and not play.done():
            stopped = True
            try:
                async with asyncio.timeout(STOP_PROMPT_TIMEOUT):
                    await services.stop_prompt()
            except Exception as e:  # noqa: BLE001 - the prompt plays on; the speech is recorded all the same
                log.warning("could not stop the prompt %s: %r", prompt, e)
        return await play, stopped
    finally:
        talk.cancel()
        if not play.done():
            play.cancel()


async def _salvage(req: ServiceRequest, services: FlowServices, timeout: float, run: FlowRun) -> None:
    """Finish what the caller's hang-up interrupted (the voicemail they were leaving)."""
    result = await _service(req, services, timeout)
    note = "saved after hang-up" if not isinstance(result, ServiceFailed) else f"lost: {result.error[:80]}"
    run.path.append(PathEntry(run.current_node, "note", note))


async def _cancel(task: asyncio.Task[Any]) -> None:
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
