"""The server process: wires the AMI links, call models, FastAGI server, IVR, ACD, CRM and gateway.

Everything long-lived is created in ``start`` and torn down in ``stop``; the edges translate between the
wire and the pure parts (call model, router, interpreter) and the bus carries typed events between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acd import decisions as d
from acd import events as ev
from acd.config import AcdConfig
from acd.router import Router
from crmstore.model import CallFacts, Outcome
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import CrmStore, open_store
from ivr_flows.driver import FlowResult, run_flow
from ivr_flows.interpreter import FlowRun
from ivr_flows.registry import FlowRegistry, FlowWatcher
from ivr_flows.speech import RecognizerPool
from ivr_flows.steps import QueueFigures, QueueHandoff, Transfer, VoicemailDone

from .acd_service import AcdService, OfferStarted, Site, WaitResult
from .agi.peers import LOOPBACK, AllowList
from .agi.server import AgiSession, FastAgiServer
from .ami.link import AmiLink
from .ami.pool import AmiPool
from .ami.resync import PbxSnapshot, resync_hook
from .bus import EventBus
from .callmodel.model import UNUSED_EVENTS, CallModel, resync
from .calls import CallContext, CallRegistry, utcnow
from .console_backend import ConsoleBackend
from .control import CallControl
from .events import CallConnected, CallEnded, CallHeld, CallResumed
from .gateway.auth import Accounts
from .gateway.backend import AgentView, CallView, OfferView
from .gateway.server import Gateway, GatewayConfig
from .ivr_services import IvrServices

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = "cti-fallback"  # asterisk-config/extensions.conf: where calls go when the CTI is gone


@dataclass(frozen=True, slots=True)
class PbxSettings:
    name: str
    host: str
    port: int
    username: str
    secret: str


@dataclass(frozen=True, slots=True)
class ServerSettings:
    pbxes: tuple[PbxSettings, ...]
    acd: AcdConfig
    database_url: str
    flows_dir: Path
    accounts: tuple[Mapping[str, Any], ...]
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_allow: AllowList = LOOPBACK  # who may connect to FastAGI: the PBXes
    http_host: str = "127.0.0.1"
    http_port: int = 8088
    default_country: str = "CN"
    flow_by_did: Mapping[str, str] = field(default_factory=dict)
    default_flow: str = "main"
    recordings_dir: Path = Path("/var/spool/asterisk/recording")
    speech_models: Mapping[str, Path] = field(default_factory=dict)
    token_secret: bytes | None = None
    token_ttl_s: int = 8 * 3600
    queue_log: Path | None = None
    ami_action_timeout: float = 10.0
    ami_ping_interval: float = 20.0


@dataclass(slots=True)
class Pbx:
    name: str
    link: AmiLink
    model: CallModel
    control: CallControl


class CtiServer:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.acd_config = settings.acd
        self.calls = CallRegistry()
        self.pbxes: dict[str, Pbx] = {}
        self.pool = AmiPool()
        self.open_offers: dict[str, OfferView] = {}  # call_id -> the pop on the agent's screen
        self.consults: dict[str, str] = {}  # call_id -> "kind:target" while its agent consults (Atxfer)
        self._offer_ids = itertools.count(1)
        self._pushes: asyncio.Queue[Callable[[], Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_wallboard: dict[str, dict[str, object]] = {}
        self._take_backs: dict[str, int] = {}  # caller uniqueid -> attempts to take it back from the fallback
        self._queue_log_file: Any = None
        self.crm: CrmStore
        self.acd: AcdService
        self.gateway: Gateway
        self.agi: FastAgiServer
        self.flows: FlowRegistry
        self.speech: RecognizerPool | None = None
        self.console = ConsoleBackend(self)
        self.started_mono = 0.0

    # ------------------------------------------------------------------ life

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        s = self.settings
        # The router's clock starts at 0: an agent never seen is "logged out since the server started".
        self.started_mono = self.now()
        self.crm = await open_store(s.database_url, default_country=s.default_country)
        self.flows = FlowRegistry(s.flows_dir)
        errors = self.flows.reload()
        for e in errors:
            log.error("IVR flow not loaded: %s", e)
        if s.speech_models:
            self.speech = RecognizerPool({k: str(v) for k, v in s.speech_models.items()})
        if s.queue_log is not None:
            s.queue_log.parent.mkdir(parents=True, exist_ok=True)
            self._queue_log_file = s.queue_log.open("a", encoding="utf-8", buffering=1)
        for p in s.pbxes:
            self._add_pbx(p)
        self.acd = AcdService(Router(self.acd_config), self._site_of, self.bus, clock=self.now,
                              queue_log=self._write_queue_log, after_call=self._wants_survey)
        self._subscribe()
        self.agi = FastAgiServer(s.agi_host, s.agi_port, allow=s.agi_allow)
        self.agi.route("ivr", self._agi_ivr)
        self.agi.route("wait", self._agi_wait)
        self.agi.route("after-call", self._agi_after_call)
        await self.agi.start()
        self.gateway = Gateway(
            self.console,
            Accounts.from_config(s.accounts, "accounts"),
            GatewayConfig(host=s.http_host, port=s.http_port, token_secret=s.token_secret,
                          token_ttl_s=s.token_ttl_s),
        )
        await self.gateway.start()
        self.acd.start()
        self.pool.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._push_loop(), name="gateway-pushes"),
            loop.create_task(self._wallboard_loop(), name="wallboard"),
            loop.create_task(self._fallback_loop(), name="fallback-take-back"),
            loop.create_task(FlowWatcher(self.flows).run(), name="flow-watcher"),
        ]
        if self.speech is not None:
            await self.speech.preload()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.acd.stop()
        await self.pool.close()
        with contextlib.suppress(Exception):
            await self.gateway.stop()
        with contextlib.suppress(Exception):
            await self.agi.close()
        await self.crm.close()
        if self._queue_log_file is not None:
            self._queue_log_file.close()

    @property
    def http_port(self) -> int:
        return self.gateway.port

    @property
    def agi_port(self) -> int:
        return self.agi.port

    def _write_queue_log(self, line: str) -> None:
        if self._queue_log_file is not None:
            self._queue_log_file.write(line + "\n")

    # ------------------------------------------------------------------ PBXes and the call model

    def _add_pbx(self, p: PbxSettings) -> None:
        model = CallModel(p.name)
        publish = self.bus.publish_all
        clock = self.now

        def on_event(msg: Any) -> None:
            publish(model.apply(msg, clock()))

        def on_snapshot(snap: PbxSnapshot) -> None:
            publish(resync(model, list(snap.channels), clock()))
            self._scan_fallback()

        link = AmiLink(p.name, p.host, p.port, p.username, p.secret, on_event=on_event,
                       on_connected=resync_hook(on_snapshot), action_timeout=self.settings.ami_action_timeout,
                       ping_interval=self.settings.ami_ping_interval, ignore_events=UNUSED_EVENTS)
        self.pool.add(link)
        self.pbxes[p.name] = Pbx(p.name, link, model, CallControl(link))

    def _scan_fallback(self) -> None:
        """Callers whose FastAGI session died (with a previous CTI process, or a crash) went on to the
        dialplan's fallback: captures 13 and 13b, Asterisk never reconnects an AGI. Send each back to
        waiting, twice at most so a broken wait script cannot bounce a caller forever; CTI_QUEUE on the
        channel says which queue they were in."""
        for pbx in self.pbxes.values():
            if not pbx.link.is_up:
                continue
            for call in pbx.model.live_calls():
                leg = call.caller_leg
                if leg is None or leg.context != FALLBACK_CONTEXT:
                    continue
                tries = self._take_backs.get(leg.uniqueid, 0)
                if tries < 2:
                    self._take_backs[leg.uniqueid] = tries + 1
                    self._spawn(self._take_back(pbx, leg.name), f"take-back-{leg.uniqueid}")

    async def _take_back(self, pbx: Pbx, channel: str) -> None:
        try:
            await pbx.control.redirect(channel, "cti-wait", "s")
            log.info("took %s back from the fallback into the ACD", channel)
        except Exception as e:  # noqa: BLE001 - an edge: log it, the call goes on
            log.warning("could not take back %s: %s", channel, e)

    async def _fallback_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._scan_fallback()
            if len(self._take_backs) > 10_000:
                self._take_backs.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _site_of(self, call_id: str) -> Site:
        ctx = self.calls.get(call_id)
        pbx = self.pbxes[ctx.pbx] if ctx else next(iter(self.pbxes.values()))
        return Site(pbx.name, pbx.model, pbx.control)

    async def _find_call(self, uniqueid: str, timeout: float = 2.0) -> tuple[Pbx, str] | None:
        """The call a FastAGI channel belongs to. AMI and FastAGI are separate sockets (README: events
        caused by AGI may arrive before or after), so give the AMI stream a moment to catch up."""
        deadline = self.now() + timeout
        while True:
            for pbx in self.pbxes.values():
                call = pbx.model.call_of(uniqueid)
                if call is not None:
                    return pbx, call.call_id
            if self.now() >= deadline:
                return None
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ FastAGI entry points

    async def _context_for(self, session: AgiSession) -> CallContext:
        env = session.env
        found = await self._find_call(env.uniqueid)
        if found is None:
            log.warning("AGI channel %s not (yet) known on AMI; using its uniqueid as call id", env.channel)
            pbx_name, call_id = next(iter(self.pbxes)), env.uniqueid
        else:
            pbx_name, call_id = found[0].name, found[1]
        ctx = self.calls.get(call_id)
        if ctx is None:
            ctx = self.calls.add(CallContext(call_id, pbx_name, env.channel, env.caller_num, env.caller_name,
                                             env.extension))
        return ctx

    async def _agi_ivr(self, session: AgiSession) -> None:
        ctx = await self._context_for(session)
        name = session.env.params.get("flow") or self.settings.flow_by_did.get(ctx.dialed) or \
            self.settings.default_flow
        try:
            flow = self.flows.get(name)
        except KeyError:
            log.error("no IVR flow %r for %s; caller goes to the first queue", name, ctx.call_id)
            await self._queue_caller(session, ctx, self.acd_config.queues[0].name, 0)
            return
        ctx.flow = name
        ctx.survey = any(type(n).__name__ == "SurveyNode" for n in _all_nodes(flow))
        result = await self._run_flow(session, ctx, flow, {
            "caller_number": ctx.caller_num, "caller_name": ctx.caller_name, "dnid": ctx.dialed,
            "uniqueid": session.env.uniqueid, "call_id": ctx.call_id, "language": session.env.language,
        })
        ctx.ivr_path = tuple(_path_text(p) for p in result.path)
        outcome = result.outcome
        if isinstance(outcome, QueueHandoff):
            await self._queue_caller(session, ctx, outcome.queue, outcome.priority)
        elif isinstance(outcome, Transfer):
            context = "cti-outbound" if outcome.external else "cti-dial"
            await session.command("EXEC", "Goto", f"{context},{outcome.destination},1")
        elif isinstance(outcome, VoicemailDone):
            ctx.outcome = "voicemail"

    async def _agi_wait(self, session: AgiSession) -> None:
        """A caller sent back to waiting: a queue transfer, or a call recovered after a CTI restart."""
        ctx = await self._context_for(session)
        reply = await session.command("GET VARIABLE", "CTI_QUEUE")
        queue = reply.data if reply.value == 1 and reply.data else (ctx.queue or self.acd_config.queues[0].name)
        await self._queue_caller(session, ctx, queue, ctx.priority)

    async def _agi_after_call(self, session: AgiSession) -> None:
        """After the agent hung up: the post-call survey, when the flow has one."""
        ctx = await self._context_for(session)
        if ctx.answered_at is None:
            return
        try:
            flow = self.flows.get(ctx.flow)  # the flow the caller came through: it owns the survey
        except KeyError:
            return
        await self._run_flow(session, ctx, flow,
                             {"caller_number": ctx.caller_num, "call_id": ctx.call_id, "post_call": "yes"})

    async def _run_flow(self, session: AgiSession, ctx: CallContext, flow: Any,
                        variables: dict[str, str]) -> FlowResult:
        run = FlowRun(flow, variables, lambda: datetime.now(UTC),
                      spool_dir=str(self.settings.recordings_dir), call_id=ctx.call_id)
        return await run_flow(session, run, IvrServices(ctx, self.crm, self, self.speech))

    async def _queue_caller(self, session: AgiSession, ctx: CallContext, queue: str, priority: int) -> None:
        if not self.acd_config.has_queue(queue):
            log.error("flow sent %s to unknown queue %r; using %r", ctx.call_id, queue,
                      self.acd_config.queues[0].name)
            queue = self.acd_config.queues[0].name
        ctx.queue, ctx.priority, ctx.queued_at = queue, priority, utcnow()
        sticky = None
        try:
            # One CRM round for both: the pop (shown the moment an agent is chosen) and the sticky agent.
            ctx.pop = await asyncio.wait_for(
                self.crm.screen_pop(viewer=Viewer("acd", CrmRole.AGENT), phone=ctx.caller_num), 2.0)
            sticky = getattr(ctx.pop, "last_agent", None)
            if ctx.customer_id is None and getattr(ctx.pop, "customer", None) is not None:
                card = ctx.pop.customer  # type: ignore[attr-defined]
                ctx.customer_id, ctx.customer_name = card.id, card.name
                ctx.grade = card.grade.value if card.grade else None
                ctx.vip = any(str(f.flag) == "vip" for f in ctx.pop.flags)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - the caller waits even when the CRM does not answer
            log.warning("screen pop for %s failed: %r", ctx.call_id, e)
        if sticky is not None and not self.acd_config.has_agent(sticky):
            sticky = None
        self._push(self._call_row_push(ctx))
        # Kept on the channel, so a CTI restarted while the caller waits can put them back in this queue.
        with contextlib.suppress(Exception):
            await session.command("SET VARIABLE", "CTI_QUEUE", queue)
        result: WaitResult = await self.acd.wait_in_queue(session, ev.CallEnqueued(
            ctx.call_id, queue, priority, ctx.caller_num, sticky, ctx.vip, ctx.grade))
        if result.outcome == "voicemail":
            ctx.outcome = "voicemail"
            with contextlib.suppress(Exception):
                await session.command("EXEC", "Goto", f"cti-voicemail,{queue},1")
        elif result.outcome == "callback":
            ctx.outcome = "callback"

    def _wants_survey(self, call_id: str) -> bool:
        ctx = self.calls.get(call_id)
        return bool(ctx and ctx.survey)

    def figures(self, queue: str) -> QueueFigures:
        """Live figures for IVR branch nodes (ivr_services.QueueFiguresSource)."""
        snap = self.acd.stats.snapshot(self.now()).get(queue)
        if snap is None:
            return QueueFigures(0, 0, 0.0)
        available = snap.agents_by_state.get("available", 0)
        per_call = snap.aht_s or 180.0
        ewt = snap.calls_waiting * per_call / max(1, available + snap.agents_by_state.get("on_call", 0))
        return QueueFigures(snap.calls_waiting, available, ewt)

    # ------------------------------------------------------------------ events -> consoles and CRM

    def _subscribe(self) -> None:
        bus = self.bus
        bus.subscribe(OfferStarted, self._on_offer_started)
        bus.subscribe(d.AgentStateChanged, self._on_agent_state)
        bus.subscribe(d.CallStateChanged, self._on_acd_call_state)
        bus.subscribe(d.CancelOffer, self._on_offer_cancelled)
        bus.subscribe(CallConnected, self._on_connected)
        bus.subscribe(CallHeld, self._on_held)
        bus.subscribe(CallResumed, self._on_resumed)
        bus.subscribe(CallEnded, self._on_call_ended)

    def _push(self, make: Callable[[], Any]) -> None:
        # Bus handlers are synchronous; pushes keep their order through one queue and one task.
        self._pushes.put_nowait(make)

    async def _push_loop(self) -> None:
        while True:
            make = await self._pushes.get()
            try:
                await make()
            except Exception:
                log.exception("push to the consoles failed")

    def _on_offer_started(self, e: OfferStarted) -> None:
        ctx = self.calls.get(e.call_id)
        if ctx is None:
            return
        ctx.agent_id = e.agent_id
        view = self.acd.router.call_view(e.call_id)
        q = self.acd_config.queue(e.queue) if self.acd_config.has_queue(e.queue) else None
        offer = OfferView(
            offer_id=f"{e.call_id}#{next(self._offer_ids)}", call_id=e.call_id, agent_id=e.agent_id,
            queue=e.queue, caller=ctx.caller_num, offered_at=time.time(),
            ring_timeout_s=q.ring_timeout_s if q else 15.0, caller_name=ctx.customer_name or ctx.caller_name,
            ivr_path=ctx.ivr_path, ivr_said=ctx.said, priority=view.level_stage if view else 0,
            pop=ctx.pop,
        )
        self.open_offers[e.call_id] = offer
        gw = self.gateway
        self._push(lambda: gw.push_offer(e.agent_id, offer))

    def _on_offer_cancelled(self, e: d.CancelOffer) -> None:
        offer = self.open_offers.pop(e.call_id, None)
        if offer is not None:
            gw = self.gateway
            self._push(lambda: gw.push_offer_cancelled(e.agent_id, offer.offer_id, e.reason))

    def _on_agent_state(self, e: d.AgentStateChanged) -> None:
        view: AgentView = self.console.agent_view(e.agent_id)
        row = self.agent_row(e.agent_id)
        gw = self.gateway
        self._push(lambda: gw.push_agent_state(view))
        self._push(lambda: gw.push_agent_grid_delta(e.agent_id, row))
        if e.old == "reserved" and e.new != "on_call":
            offer = self.open_offers.get(e.call_id or "")
            if offer is not None and offer.agent_id == e.agent_id:
                del self.open_offers[offer.call_id]
                self._push(lambda: gw.push_offer_cancelled(e.agent_id, offer.offer_id, e.reason))
        if e.call_id and e.old in _ON_CALL and e.new not in _ON_CALL:
            # The agent's part is over (hung up, or transferred the caller, whose call goes on without
            # them): their console closes the call now, not when the caller's side ends.
            ctx = self.calls.get(e.call_id)
            if ctx is not None and ctx.agent_id == e.agent_id:
                self.consults.pop(e.call_id, None)
                self._push_call_state(ctx, "ended")

    def _on_acd_call_state(self, e: d.CallStateChanged) -> None:
        ctx = self.calls.get(e.call_id)
        if ctx is not None:
            self._push(self._call_row_push(ctx))

    def _on_connected(self, e: CallConnected) -> None:
        ctx = self.calls.get(e.call_id)
        if ctx is None or ctx.agent_id is None:
            return
        if ctx.answered_at is None:
            ctx.answered_at = utcnow()
            ctx.outcome = "answered"
        self.open_offers.pop(e.call_id, None)
        self._push_call_state(ctx, "talking")

    def _on_held(self, e: CallHeld) -> None:
        ctx = self.calls.get(e.call_id)
        if ctx is not None and ctx.agent_id is not None:
            ctx.held_since = utcnow()
            self._push_call_state(ctx, "held")

    def _on_resumed(self, e: CallResumed) -> None:
        ctx = self.calls.get(e.call_id)
        if ctx is not None and ctx.held_since is not None:
            ctx.hold_s += (utcnow() - ctx.held_since).total_seconds()
            ctx.held_since = None
            self._push_call_state(ctx, "talking")

    def _on_call_ended(self, e: CallEnded) -> None:
        ctx = self.calls.end(e.call_id)
        if ctx is None:
            return
        ctx.ended_at = utcnow()
        if ctx.outcome == "ivr_only" and ctx.queued_at is not None and ctx.answered_at is None:
            ctx.outcome = "abandoned"
        self.open_offers.pop(e.call_id, None)
        self.consults.pop(e.call_id, None)
        gw = self.gateway
        call_id = e.call_id
        self._push(lambda: gw.push_call_list_delta(call_id, None))
        if ctx.agent_id is not None and ctx.answered_at is not None:
            if self._agent_on(ctx):  # otherwise _on_agent_state closed it when the agent left
                self._push_call_state(ctx, "ended")
        else:
            # Nobody will wrap this call up: its history is written now.
            facts = self.call_facts(ctx)
            crm = self.crm

            async def log_it() -> None:
                try:
                    await crm.log_interaction(facts)
                    ctx.logged = True
                except Exception:  # the history write must not take the server down
                    log.exception("could not log call %s in the CRM", facts.call_id)

            # Its own task, not the push queue: a slow disk must not delay anybody's screen pop.
            self._spawn(log_it(), f"log-{call_id}")

    def _agent_on(self, ctx: CallContext) -> bool:
        """Is the call's agent still on it (the ACD's view)?"""
        if ctx.agent_id is None or not self.acd_config.has_agent(ctx.agent_id):
            return False
        view = self.acd.router.agent_view(ctx.agent_id, self.now())
        return view.call_id == ctx.call_id and view.state in ("reserved", *_ON_CALL)

    def _push_call_state(self, ctx: CallContext, state: str) -> None:
        if state != "ended" and not self._agent_on(ctx):
            return  # the caller's side moved on (a transfer) after the agent left: not the agent's call now
        view: CallView = self.console.call_view(ctx, state)
        gw = self.gateway
        self._push(lambda: gw.push_call_state(view))

    def _call_row_push(self, ctx: CallContext) -> Callable[[], Any]:
        row = self.call_row(ctx)
        gw = self.gateway
        return lambda: gw.push_call_list_delta(ctx.call_id, row)

    def call_facts(self, ctx: CallContext) -> CallFacts:
        outcome = {"answered": Outcome.ANSWERED, "abandoned": Outcome.ABANDONED}.get(ctx.outcome,
                                                                                      Outcome.IVR_ONLY)
        ended = ctx.ended_at or utcnow()
        wait_s = ((ctx.answered_at or ended) - ctx.queued_at).total_seconds() if ctx.queued_at else 0.0
        talk_s = (ended - ctx.answered_at).total_seconds() - ctx.hold_s if ctx.answered_at else 0.0
        return CallFacts(
            call_id=ctx.call_id, caller=ctx.caller_num, started_at=ctx.started_at, outcome=outcome,
            answered_at=ctx.answered_at, ended_at=ctx.ended_at, queue=ctx.queue, agent=ctx.agent_id or "",
            wait_s=max(0.0, wait_s), talk_s=max(0.0, talk_s), hold_s=ctx.hold_s,
            ivr_path=ctx.ivr_path, customer_id=ctx.customer_id,
        )

    # ------------------------------------------------------------------ supervisor rows

    def agent_row(self, agent_id: str) -> dict[str, object]:
        v = self.acd.router.agent_view(agent_id, self.now())
        name = self.acd_config.agent(agent_id).name
        since = time.time() - min(v.time_in_state_s, self.now() - self.started_mono)
        return {"agent_id": agent_id, "name": name, "state": v.state, "since": since,
                "reason": v.pause_reason or "", "extension": v.endpoint.rsplit("/", 1)[-1] if v.endpoint else "",
                "queues": list(v.queues), "call_id": v.call_id or "", "answered": v.calls_answered}

    def call_row(self, ctx: CallContext) -> dict[str, object]:
        view = self.acd.router.call_view(ctx.call_id)
        # The call list speaks the consoles' call states (docs/protocol.md), as push_call_state does.
        state = _CALL_LIST_STATE.get(view.state, view.state) if view else "ivr"
        if state == "talking" and ctx.held_since is not None:
            state = "held"
        return {"call_id": ctx.call_id, "caller": ctx.caller_num,
                "caller_name": ctx.customer_name or ctx.caller_name,
                "queue": view.queue if view else ctx.queue,  # a supervisor may have moved it
                "state": state, "agent_id": ctx.agent_id or "",
                "position": view.position if view else None, "vip": ctx.vip,
                "since": (ctx.queued_at or ctx.started_at).timestamp()}

    def wallboard_rows(self) -> dict[str, dict[str, object]]:
        rows: dict[str, dict[str, object]] = {}
        wall_now = time.time()
        for name, q in self.acd.stats.snapshot(self.now()).items():
            handled = q.answered + q.abandoned
            rows[name] = {
                # Field names of docs/protocol.md. The oldest caller's arrival, not the longest wait: it
                # does not change every second, so it costs no delta; the console ticks it locally.
                "waiting": q.calls_waiting,
                "oldest_since": round(wall_now - q.longest_wait_s, 1) if q.calls_waiting else None,
                "answered": q.answered, "abandoned": q.abandoned, "short_abandoned": q.short_abandoned,
                "sl": None if q.service_level_pct is None else round(q.service_level_pct, 1),
                "abandon_rate": round(100.0 * q.abandoned / handled, 1) if handled else None,
                "asa_s": None if q.asa_s is None else round(q.asa_s, 1),
                "aht_s": None if q.aht_s is None else round(q.aht_s, 1),
                "agents_by_state": dict(q.agents_by_state),
                "occupancy_pct": None if q.occupancy_pct is None else round(q.occupancy_pct, 1),
            }
        return rows

    async def _wallboard_loop(self) -> None:
        """Push what changed on the wallboard once a second: deltas, never whole snapshots."""
        while True:
            await asyncio.sleep(1.0)
            for queue, row in self.wallboard_rows().items():
                last = self._last_wallboard.get(queue, {})
                changed = {k: v for k, v in row.items() if last.get(k) != v}
                if changed:
                    self._last_wallboard[queue] = row
                    await self.gateway.push_wallboard_delta(queue, changed)


_ON_CALL = ("on_call", "on_hold")
_CALL_LIST_STATE = {"new": "ivr", "offered": "ringing", "connected": "talking"}  # acd CallState -> console


def _all_nodes(flow: Any) -> list[Any]:
    return [n for graph in (flow.main, *flow.subflows.values()) for n in graph.nodes.values()]


def _path_text(entry: Any) -> str:
    if entry.event == "node":
        return entry.node
    if entry.event == "speech" and entry.confidence is not None:
        return f"{entry.node}:speech={entry.value}({entry.confidence:.2f})"
    return f"{entry.node}:{entry.event}={entry.value}" if entry.value else f"{entry.node}:{entry.event}"
