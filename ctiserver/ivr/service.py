"""The IVR's FastAGI entry points: `ivr` (a new caller runs the flow of their DID), `wait` (a caller sent
back to waiting: a queue transfer, or a caller taken back after a restart) and `after-call` (the post-call
survey once the agent hung up).

The caller's way through the flow is journaled step by step (a caller who hangs up mid-menu keeps it in
the CRM), then the caller is handed to the queueing slice to wait for an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acd import events as ev
from acd.blacklist import BlacklistPolicy, Refuse, admit
from acd.config import AcdConfig
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import CrmStore
from ivr_flows.driver import FlowResult, run_flow
from ivr_flows.interpreter import FlowRun
from ivr_flows.model import FlowBlacklist
from ivr_flows.registry import FlowRegistry
from ivr_flows.speech import AudioFeed, RecognizerPool
from ivr_flows.steps import QueueFigures, QueueHandoff, Transfer, VoicemailDone

from ..agi.server import AgiSession, FastAgiServer
from ..audiosocket.server import AudioSocketServer
from ..calls.service import CallsService
from ..journal import facts as f
from ..projections.recorder import Recorder
from ..queueing.service import QueueingService
from .prompts import MissingPrompts
from .services import BookCallback, IvrCall, IvrServices
from .spool import SpeechSpool
from .stream import open_stream

log = logging.getLogger(__name__)

# Said when a refusing blacklist policy's own prompt is not on the PBX: one of Asterisk's core sounds, so
# the caller hears something before the line drops, not silence (a real 22.10.1 answers a missing file at
# once, result=-1 endpos=0, capture 14).
REFUSAL_FALLBACK = "vm-goodbye"


@dataclass(frozen=True, slots=True)
class IvrSettings:
    flow_by_did: Mapping[str, str]
    default_flow: str
    recordings_dir: Path
    speech_keep_s: float = 0.0  # speech menus' recordings kept this long for review; 0: deleted once decided


class IvrService:
    def __init__(
        self,
        settings: IvrSettings,
        flows: FlowRegistry,
        crm: CrmStore,
        speech: RecognizerPool | None,
        recorder: Recorder,
        calls: CallsService,
        queueing: QueueingService,
        acd_config: Callable[[], AcdConfig],
        *,
        clock: Callable[[], float],
        put_pop: Callable[[str, object], None] = lambda call_id, pop: None,
        missing_prompts: MissingPrompts | None = None,
        book_callback: BookCallback | None = None,
        audiosocket: AudioSocketServer | None = None,
    ) -> None:
        self.settings = settings
        self.audiosocket = audiosocket  # where speech menus' audio streams arrive; None: they listen to files
        self.book_callback = book_callback  # the flow's callback step books a callback (ctiserver.outbound)
        self.flows = flows
        self.crm = crm
        self.speech = speech
        self.recorder = recorder
        self.calls = calls
        self.queueing = queueing
        self._acd_config = acd_config
        self.clock = clock
        self._put_pop = put_pop
        self.missing_prompts = missing_prompts or MissingPrompts(recorder.record)
        self.spool = SpeechSpool(settings.recordings_dir, settings.speech_keep_s)

    def routes(self, agi: FastAgiServer) -> None:
        agi.route("ivr", self.on_ivr)
        agi.route("wait", self.on_wait)
        agi.route("after-call", self.on_after_call)
        agi.route("survey", self.on_survey)

    # ------------------------------------------------------------------ entry points

    async def _call_for(self, session: AgiSession) -> IvrCall:
        env = session.env
        found = await self.calls.find_call(env.uniqueid)
        if found is None:
            log.warning("AGI channel %s not (yet) known on AMI; using its uniqueid as call id", env.channel)
            call_id = env.uniqueid
        else:
            call_id = found[1]
        rec = self.recorder.projector.records.get(call_id)
        if rec is None:
            pbx = found[0].name if found else next(iter(self.calls.pbxes), "")
            self.recorder.record(f.CallArrived(call_id, pbx, env.channel, env.caller_num, env.caller_name,
                                               env.extension))
            rec = self.recorder.projector.records.get(call_id)
        assert rec is not None
        return IvrCall(call_id, rec.caller_num or env.caller_num, rec.caller_name or env.caller_name,
                       rec.customer_id, rec.queue, rec.priority)

    async def on_ivr(self, session: AgiSession) -> None:
        call = await self._call_for(session)
        rec = self.recorder.projector.records.get(call.call_id)
        dialed = rec.dialed if rec is not None else session.env.extension
        name = session.env.params.get("flow") or self.settings.flow_by_did.get(dialed) or self.settings.default_flow
        try:
            flow = self.flows.get(name)
        except KeyError:
            log.error("no IVR flow %r for %s; caller goes to the first queue", name, call.call_id)
            await self._queue_caller(session, call, self._acd_config().queues[0].name, 0)
            return
        survey = flow.after_call is not None or any(type(n).__name__ == "SurveyNode" for n in _all_nodes(flow))
        self.recorder.record(f.IvrStarted(call.call_id, name, survey))
        env = session.env
        result = await self._run_flow(session, call, flow, {
            "caller_number": call.caller_num, "caller_name": call.caller_name, "dnid": dialed,
            "uniqueid": env.uniqueid, "call_id": call.call_id, "language": env.language,
            "extension": env.extension, "channel": env.channel,
        })
        outcome = result.outcome
        if isinstance(outcome, QueueHandoff):  # by the flow, or its fallback: both may name skills
            await self._queue_caller(session, call, outcome.queue, outcome.priority, outcome.skills,
                                     flow_blacklist=_policy(flow.blacklist))
        elif isinstance(outcome, Transfer):
            context = "cti-outbound" if outcome.external else "cti-dial"
            await session.command("EXEC", "Goto", f"{context},{outcome.destination},1")
        elif isinstance(outcome, VoicemailDone):
            log.info("call %s left a voicemail", call.call_id)

    async def on_wait(self, session: AgiSession) -> None:
        """A caller sent back to waiting: a queue transfer, or a call recovered after a CTI restart. The
        router still holds such a caller, extra skills included; one it lost is queued without them."""
        call = await self._call_for(session)
        reply = await session.command("GET VARIABLE", "CTI_QUEUE")
        view = self.recorder.projector.router.call_view(call.call_id)
        queue = view.queue if view is not None else (
            reply.data if reply.value == 1 and reply.data else (call.queue or self._acd_config().queues[0].name))
        await self._queue_caller(session, call, queue, call.priority)

    async def on_after_call(self, session: AgiSession) -> None:
        """After the agent hung up: the post-call survey, when the flow has one."""
        call = await self._call_for(session)
        rec = self.recorder.projector.records.get(call.call_id)
        if rec is None or not rec.parts or not rec.flow:
            return
        try:
            flow = self.flows.get(rec.flow)  # the flow the caller came through: it owns the survey
            if flow.after_call is not None:  # or names the survey flow, the one survey campaigns run too
                flow = self.flows.get(flow.after_call)
        except KeyError as e:
            log.error("no post-call survey flow %s for %s", e, call.call_id)
            return
        await self._run_flow(session, call, flow, {"caller_number": call.caller_num, "call_id": call.call_id,
                                                   "post_call": "yes", "campaign": ""})

    async def on_survey(self, session: AgiSession) -> None:
        """An outbound survey campaign's answered line, sent here by the dialer ([cti-survey]): the
        campaign's flow asks its questions; the answers go with the customer to the CRM. The line has no
        call record (the dialer journals it): its channel id is the dialer's call id."""
        names = ("CTI_CAMPAIGN", "CTI_SURVEY_FLOW", "CTI_CONTACT_NUMBER", "CTI_CUSTOMER_ID")
        values: dict[str, str] = {}
        for name in names:
            reply = await session.command("GET VARIABLE", name)
            values[name] = (reply.data or "") if reply.value == 1 else ""
        env = session.env
        try:
            flow = self.flows.get(values["CTI_SURVEY_FLOW"])
        except KeyError:
            log.error("survey line %s: no IVR flow %r (campaign %r); hung up", env.uniqueid,
                      values["CTI_SURVEY_FLOW"], values["CTI_CAMPAIGN"])
            with contextlib.suppress(Exception):
                await session.command("HANGUP")
            return
        customer = values["CTI_CUSTOMER_ID"]
        call = IvrCall(env.uniqueid, values["CTI_CONTACT_NUMBER"], customer_id=int(customer) if customer.isdigit()
                       else None, campaign=values["CTI_CAMPAIGN"])
        await self._run_flow(session, call, flow, {
            "caller_number": call.caller_num, "call_id": call.call_id, "campaign": call.campaign,
            "customer_id": customer, "post_call": "", "language": env.language})

    async def _run_flow(self, session: AgiSession, call: IvrCall, flow: Any, variables: dict[str, str]) -> FlowResult:
        language = sounds_language(flow.language)
        if language and language != session.env.language:
            # Asterisk looks a prompt up under the channel's language (sounds/<language>/...): a Korean
            # flow on a channel that came in as "en" would play English core sounds and miss its own.
            with contextlib.suppress(Exception):  # a caller already gone: the flow's first command says so
                await session.command("SET VARIABLE", "CHANNEL(language)", language)
            variables = {**variables, "language": language}
        run = FlowRun(flow, variables, lambda: datetime.now(UTC), spool_dir=str(self.settings.recordings_dir),
                      call_id=call.call_id)
        channel = session.env.channel

        async def stop_prompt() -> None:
            # The caller talks over a prompt: AMI ControlPlayback stops a STREAM FILE that AGI started
            # (capture 24 A).
            pbx = self.calls.pbx_of(call.call_id)
            if pbx is None:
                raise RuntimeError("no PBX for the call")
            await pbx.link.action("ControlPlayback", {"Channel": channel, "Control": "stop"})

        async def open_stream() -> AudioFeed:
            return await self._open_stream(call.call_id, channel)

        services = IvrServices(call, self.crm, self, self.speech, self.recorder.record, flow=flow.name,
                               missing_prompts=self.missing_prompts, book_callback=self.book_callback,
                               spool=self.spool, stop_prompt=stop_prompt, open_stream=open_stream)
        try:
            return await run_flow(session, run, services)
        finally:  # hung up, ended, or failed: nothing of this call's speech stays in the spool
            self.spool.call_ended(services.recordings)

    async def _open_stream(self, call_id: str, channel: str) -> AudioFeed:
        if self.audiosocket is None:
            raise RuntimeError("no AudioSocket listener configured")
        pbx = self.calls.pbx_of(call_id)
        if pbx is None:
            raise RuntimeError("no PBX for the call")
        return await open_stream(self.audiosocket, pbx.link.action, channel)

    async def _queue_caller(self, session: AgiSession, call: IvrCall, queue: str, priority: int,
                            skills: tuple[str, ...] = (), flow_blacklist: BlacklistPolicy | None = None) -> None:
        config = self._acd_config()
        if not config.has_queue(queue):
            log.error("flow sent %s to unknown queue %r; using %r", call.call_id, queue, config.queues[0].name)
            queue = config.queues[0].name
        unknown = [s for s in skills if s not in config.skills]
        if unknown:
            # The flow was checked against an older queues file: the router leaves these out.
            log.warning("flow asks skill(s) %s the ACD does not know for %s; queued without them",
                        unknown, call.call_id)
        sticky = None
        vip, grade, blacklisted = False, None, False
        try:
            # One CRM round for both: the pop (shown the moment an agent is chosen) and the sticky agent.
            pop = await asyncio.wait_for(
                self.crm.screen_pop(viewer=Viewer("acd", CrmRole.AGENT), phone=call.caller_num), 2.0)
            self._put_pop(call.call_id, pop)
            sticky = getattr(pop, "last_agent", None)
            card = getattr(pop, "customer", None)
            if card is not None:
                grade = card.grade.value if card.grade else None
                vip = any(str(flag.flag) == "vip" for flag in pop.flags)
                blacklisted = any(str(flag.flag) == "blacklist" for flag in pop.flags)
                rec = self.recorder.projector.records.get(call.call_id)
                if rec is not None and rec.customer_id is None:
                    self.recorder.record(f.CallerIdentified(call.call_id, card.id, card.name, grade, vip))
        except Exception as e:  # noqa: BLE001 - the caller waits even when the CRM does not answer
            log.warning("screen pop for %s failed: %r", call.call_id, e)
        if sticky is not None and not config.has_agent(sticky):
            sticky = None
        rec = self.recorder.projector.records.get(call.call_id)
        site = rec.pbx if rec is not None else ""
        # The flow's policy, when it has one, is the one in force for its callers; else the queue's.
        entry = admit(flow_blacklist or config.queue(queue).blacklist, ev.CallEnqueued(
            call.call_id, queue, priority, call.caller_num, sticky, vip, grade, skills, site), blacklisted)
        if isinstance(entry, Refuse):
            await self._refuse(session, call, entry)
            return
        if not config.has_queue(entry.queue):  # a flow checked against an older queues file
            log.error("blacklist policy routes %s to unknown queue %r; kept in %r", call.call_id, entry.queue, queue)
            entry = dataclasses.replace(entry, queue=queue)
        # Kept on the channel, so a CTI restarted while the caller waits can put them back in this queue.
        with contextlib.suppress(Exception):
            await session.command("SET VARIABLE", "CTI_QUEUE", entry.queue)
        result = await self.queueing.wait_in_queue(session, entry)
        if result.outcome == "voicemail":
            with contextlib.suppress(Exception):
                await session.command("EXEC", "Goto", f"cti-voicemail,{entry.queue},1")

    async def _refuse(self, session: AgiSession, call: IvrCall, refusal: Refuse) -> None:
        """A blacklisted caller the queue does not take: journaled, told why, and the line dropped."""
        self.recorder.record(f.CallerRefused(call.call_id, refusal.queue, "blacklist", refusal.message))
        with contextlib.suppress(Exception):  # a caller already gone (ChannelHungUp): the end is the same
            reply = await session.command("STREAM FILE", refusal.message, "")
            if reply.value == -1:
                await session.command("CHANNEL STATUS")  # -1 with the channel up: the file is missing
                self.missing_prompts.report(refusal.message, f"blacklist refusal of queue {refusal.queue}",
                                            call.call_id)
                await session.command("STREAM FILE", REFUSAL_FALLBACK, "")
        with contextlib.suppress(Exception):
            await session.command("HANGUP")

    def figures(self, queue: str) -> QueueFigures:
        """Live figures for IVR branch nodes (services.QueueFiguresSource)."""
        snap = self.recorder.projector.stats.live.snapshot(self.clock()).get(queue)
        if snap is None:
            return QueueFigures(0, 0, 0.0)
        available = snap.agents_by_state.get("available", 0)
        per_call = snap.aht_s or 180.0
        ewt = snap.calls_waiting * per_call / max(1, available + snap.agents_by_state.get("on_call", 0))
        return QueueFigures(snap.calls_waiting, available, ewt)


def sounds_language(flow_language: str) -> str:
    """The channel language Asterisk's sounds directories use for a flow's language: "en-US" -> "en"."""
    short = flow_language.replace("_", "-").split("-")[0].lower()
    return short if short.isalpha() else ""


def _policy(flow_policy: FlowBlacklist | None) -> BlacklistPolicy | None:
    if flow_policy is None:
        return None
    return BlacklistPolicy(flow_policy.action, flow_policy.message, flow_policy.queue)  # type: ignore[arg-type]


def _all_nodes(flow: Any) -> list[Any]:
    return [n for graph in (flow.main, *flow.subflows.values()) for n in graph.nodes.values()]
