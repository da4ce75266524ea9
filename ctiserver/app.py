"""The server process: wires the capabilities together and runs their tasks in one TaskGroup.

Nothing is decided here. On start the journal is replayed into the projections (the ACD router, the day's
statistics, the call records, the queue_log), then the slices are built around them:

* calls      AMI links and call models; call facts; reconciliation after a restart or a dropped link
* queueing   the ACD's edge: callers waiting in FastAGI, offers, transfers, hold
* ivr        FastAGI entry points and the flows
* consoles   the gateway's backend and its pushes
* dialer     outbound campaigns: the pacer fed from the PBX and the ACD, its lines placed and bridged
* alerts     the figures judged against their targets; alerts raised and cleared as facts
* metrics    Prometheus's /metrics, served by the gateway
* journal    the durable record of facts; projections: recorder, projector, checkpoints, recovery;
             crm_history and queue_log write the projections that leave the process
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from acd.blacklist import refusal_prompts
from acd.config import AcdConfig
from crmstore.campaign_store import CampaignStore
from crmstore.schedule import grading_loop
from crmstore.store import CrmStore, open_store
from ivr_flows.registry import FlowRegistry, FlowWatcher
from ivr_flows.speech import REJECT_MARGIN, RecognizerPool
from ivr_flows.validator import FlowCatalog

from .admin.service import AdminFiles, AdminService
from .agi.peers import LOOPBACK, AllowList
from .agi.server import FastAgiServer
from .alerts.service import AlertService
from .allocator import give_back_free_memory
from .audiosocket.server import AudioSocketServer
from .bus import EventBus
from .calls.service import CallsService, Pbx, PbxSettings
from .clock import Clock
from .consoles.backend import ConsoleBackend
from .consoles.campaign_pops import CampaignPops
from .consoles.devices import Phones, PhoneSettings, answers_at_console
from .consoles.notifier import ConsoleNotifier
from .consoles.presence import ConsolePresence
from .consoles.views import ConsoleViews
from .crm_history.writer import CrmHistoryWriter
from .dialer.service import DialerService
from .dialer.settings import DialerSettings
from .gateway.auth import Accounts
from .gateway.posts import PostServer
from .gateway.server import Gateway, GatewayConfig
from .ivr.prompts import check_prompts
from .ivr.service import IvrService, IvrSettings
from .journal import facts as f
from .journal.journal import Journal
from .metrics.centre import CentreMetrics, link_states
from .outbound.callbacks import CallbackService, CallbackSettings
from .outbound.dialling import DialSettings, OutboundDialler
from .outbound.plugin import web_callbacks
from .outbound.web import PATH as WEB_CALLBACK_PATH
from .outbound.web import WebCallbacks, WebCallbackSettings
from .projections.projector import Projector
from .projections.recorder import Recorder
from .projections.recovery import Recovery, recover
from .queue_log.writer import QueueLogWriter
from .queueing.service import QUEUE_PROMPTS, QueueingService
from .recordings.files import RecordingFiles
from .recordings.media import MediaSite
from .recordings.service import RecordingService, RecordingSettings
from .reports.runner import ReportRunner
from .reports.writer import ReportsWriter
from .supervision.campaigns import CampaignBoard
from .supervision.notifier import SupervisionNotifier

log = logging.getLogger(__name__)

__all__ = ["CannotListen", "CtiServer", "Pbx", "PbxSettings", "ServerSettings"]

VERSION = "0.2.0"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    pbxes: tuple[PbxSettings, ...]
    acd: AcdConfig
    database_url: str
    flows_dir: Path
    accounts: tuple[Mapping[str, Any], ...]
    acd_text: str = ""  # the queues file as text (journaled, so a replay uses the rules in force); "" reads acd.source
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_allow: AllowList = LOOPBACK  # who may connect to FastAGI: the PBXes
    # Speech menus' audio streams (AudioSocket); None: off, menus listen to recording files. 0: any free port.
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int | None = None
    audiosocket_advertise: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8088
    default_country: str = "CN"
    flow_by_did: Mapping[str, str] = field(default_factory=dict)
    default_flow: str = "main"
    prompts_dir: Path | None = None
    recordings_dir: Path = Path("/var/spool/asterisk/recording")
    speech_models: Mapping[str, Path] = field(default_factory=dict)
    speech_keep_recordings_s: float = 0.0  # speech menus' recordings kept for review; 0: deleted once decided
    speech_reject_margin: float = REJECT_MARGIN  # out-of-menu rejection (ivr_flows.speech)
    token_secret: bytes | None = None
    token_ttl_s: int = 8 * 3600
    queue_log: Path | None = None
    ami_action_timeout: float = 10.0
    ami_ping_interval: float = 20.0
    fallback_scan_s: float = 1.0  # how often callers in [cti-fallback] are looked for (and at every reconnect)
    timezone: str | None = None  # the centre's day for statistics (IANA name); None: the machine's
    journal_batch_s: float = 0.02  # what a kill -9 can lose at most
    checkpoint_facts: int = 20_000
    checkpoint_s: float = 60.0
    grading_every: timedelta = timedelta(days=1)
    phones: PhoneSettings = field(default_factory=PhoneSettings)  # agents' and supervisors' phones (cti.yaml)
    console_lost_after_s: float = 30.0  # an agent with no console this long is paused (console_lost); 0: never
    console_ping_interval_s: float = 20.0  # websocket keepalive: finds a console whose network is gone
    console_ping_timeout_s: float = 20.0
    alert_every_s: float = 1.0  # how often the figures are judged against their targets (queues.yaml)
    metrics_allow: AllowList | None = LOOPBACK  # who may scrape /metrics (cti.yaml metrics.allow); None: not served
    admin_files: AdminFiles = field(default_factory=AdminFiles)  # what the admin page may write (cti.yaml, queues)
    call_recordings_dir: Path | None = None  # recorded calls, one WAV per call id; None: <recordings_dir>/calls
    call_recordings_pbx_dir: str | None = None  # the same directory as the PBX names it; None: as above
    recording_retention_days: int = 90  # 0: kept for ever
    recording_sweep_every_s: float = 3600.0
    outbound_dial: DialSettings = field(default_factory=DialSettings)  # tracked click-to-call
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)  # callbacks as tasks (docs/callbacks.md)
    web_callbacks: WebCallbackSettings = field(default_factory=WebCallbackSettings)
    web_api_port: int | None = None  # POST /api/callback for the company's web pages; None: not served
    dialer: DialerSettings | None = None  # outbound campaigns (docs/outbound.md); None: no dialer


class _Stop(Exception):
    pass


class CannotListen(Exception):
    """A listening socket could not be opened (port in use, address not on this host): nothing started."""

    def __init__(self, service: str, host: str, port: int, error: OSError) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.errno = error.errno
        # asyncio's message repeats the address ("error while attempting to bind on address ..."): the
        # system's words for the errno say it once.
        self.reason = os.strerror(error.errno).lower() if error.errno else str(error)
        super().__init__(f"{service} cannot listen on {host}:{port}: {self.reason}")


class CtiServer:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.crm: CrmStore
        self.clock: Clock
        self.journal: Journal
        self.recorder: Recorder
        self.recovery: Recovery
        self.calls: CallsService
        self.queueing: QueueingService
        self.ivr: IvrService
        self.agi: FastAgiServer
        self.gateway: Gateway
        self.console: ConsoleBackend
        self.presence: ConsolePresence
        self.notifier: ConsoleNotifier
        self.alerts: AlertService
        self.admin: AdminService
        self.supervision: SupervisionNotifier
        self.recordings: RecordingService
        self.outbound: OutboundDialler
        self.callbacks: CallbackService
        self.web_callbacks: WebCallbacks
        self.posts: PostServer | None = None
        self.metrics: CentreMetrics
        self.reports: ReportRunner
        self.flows: FlowRegistry
        self.speech: RecognizerPool | None = None
        self.dialer: DialerService | None = None
        self.campaign_pops: CampaignPops | None = None  # the agents' pops of campaign calls
        self._queue_log: QueueLogWriter | None = None
        self._history: CrmHistoryWriter
        self._runner: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stop_grading = asyncio.Event()
        self._intake: list[asyncio.Task[None]] = []  # tasks that bring calls in: stopped first on drain

    @property
    def projector(self) -> Projector:
        return self.recorder.projector

    @property
    def pbxes(self) -> dict[str, Pbx]:
        return self.calls.pbxes

    def now(self) -> float:
        return self.clock()

    def _acd_in_force(self) -> tuple[str, str]:
        """What a checkpoint stores: the queues file in force, which an administrator may have changed since
        the start (the file as it was at the start is only the fallback before any such fact)."""
        return self.projector.acd_text or self._acd_text()

    def _acd_text(self) -> tuple[str, str]:
        """The queues file given at start: recorded as the configuration in force when the server starts."""
        s = self.settings
        if s.acd_text:
            return s.acd.source, s.acd_text
        return s.acd.source, Path(s.acd.source).read_text(encoding="utf-8")

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Replay the journal, build the slices, open the listeners. On failure (a port in use: CannotListen)
        what was opened is closed again, so the process can exit."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        tz = ZoneInfo(s.timezone) if s.timezone else None
        self.crm = await open_store(s.database_url, default_country=s.default_country)
        self.journal = Journal(self.crm, batch_interval_s=s.journal_batch_s)
        await self._build(tz)
        self._runner = asyncio.get_running_loop().create_task(self._run(self.notifier), name="ctiserver")
        await self._started.wait()

    async def _build(self, tz: ZoneInfo | None) -> None:
        s = self.settings
        self.recovery = await recover(self.crm, s.acd, tz=tz, before_replay=self._attach_projections)
        for line in (*self.recovery.dropped, *self.recovery.problems):
            log.error("%s", line)
        self.clock = Clock(not_before=self.recovery.last_at or 0.0)
        self.journal.resume(self.recovery.last_seq, self.clock)
        self._history.audit = True
        self.recorder = Recorder(self.journal, self.recovery.projector, self._acd_in_force,
                                 checkpoint_facts=s.checkpoint_facts, checkpoint_s=s.checkpoint_s)
        self.projector.listeners.append(self._publish)
        source, text = self._acd_text()
        self.recorder.record(f.AcdConfigLoaded(source, text))
        self.recorder.record(f.ServerStarted(VERSION, self.recovery.last_at))
        log.info("journal: %d facts replayed after checkpoint %d; last fact %s", self.recovery.replayed,
                 self.recovery.checkpoint_seq, self.recovery.last_seq)

        self.calls = CallsService(s.pbxes, self.bus, self.recorder, self.clock, action_timeout=s.ami_action_timeout,
                                  ping_interval=s.ami_ping_interval, last_alive=self.recovery.last_at,
                                  fallback_scan_s=s.fallback_scan_s)
        self.callbacks = CallbackService(self.recorder, self.calls, self.bus, self.clock, s.callbacks,
                                         do_not_call=self.crm.on_do_not_call)
        self.queueing = QueueingService(self.recorder, self.calls, self.bus, self.clock,
                                        after_call=self._wants_survey,
                                        answers_at_console=self._answers_at_console, callbacks=self.callbacks)
        if s.speech_models:
            self.speech = RecognizerPool({k: str(v) for k, v in s.speech_models.items()},
                                         reject_margin=s.speech_reject_margin)
        # A speech menu's words are checked against its model's vocabulary (this loads the model now,
        # which start-up does anyway).
        self.flows = FlowRegistry(s.flows_dir, FlowCatalog(queues=frozenset(q.name for q in s.acd.queues),
                                                           skills=frozenset(s.acd.skills),
                                                           speech_words=self.speech.knows if self.speech else None))
        for error in self.flows.reload():
            log.error("IVR flow not loaded: %s", error)
        if s.prompts_dir is not None:  # a missing prompt is told, not fatal: callers go on without it
            queue_prompts = {**QUEUE_PROMPTS, **refusal_prompts((q.name, q.blacklist) for q in s.acd.queues)}
            for problem in check_prompts(s.prompts_dir, map(self.flows.get, self.flows.names()), queue_prompts):
                log.error("%s", problem)
        self.outbound = OutboundDialler(self.recorder, self.calls, self.bus, self.clock, s.outbound_dial)
        views = ConsoleViews(self.projector, self.clock, self.clock(), self.queueing.consulting, self._flow_labels)
        self.presence = ConsolePresence(self.queueing, self.bus, self.clock, s.console_lost_after_s)
        self.console = ConsoleBackend(recorder=self.recorder, queueing=self.queueing, calls=self.calls,
                                      crm=self.crm, views=views, clock=self.clock, bus=self.bus,
                                      phones=Phones(s.phones), presence=self.presence, outbound=self.outbound,
                                      callbacks=self.callbacks)
        self.audiosocket = (AudioSocketServer(s.audiosocket_host, s.audiosocket_port,
                                              advertise=s.audiosocket_advertise)
                            if s.audiosocket_port is not None else None)
        self.ivr = IvrService(IvrSettings(s.flow_by_did, s.default_flow, s.recordings_dir,
                                          s.speech_keep_recordings_s), self.flows, self.crm,
                              self.speech, self.recorder, self.calls, self.queueing, lambda: self.projector.config,
                              clock=self.clock, put_pop=views.put_pop, book_callback=self.callbacks.book,
                              audiosocket=self.audiosocket)
        self.agi = FastAgiServer(s.agi_host, s.agi_port, allow=s.agi_allow)
        self.ivr.routes(self.agi)
        self.ivr.spool.sweep()  # what a crash left in the spool, before the first caller
        self.alerts = AlertService(self.recorder, self.clock, s.alert_every_s)
        self.metrics = CentreMetrics(lambda: self.projector, self.journal, link_states(self.calls), self.bus,
                                     self.clock)
        self.reports = ReportRunner(s.database_url, tz, lambda: self.projector.config,
                                    lambda: self.projector.intervals, self.clock, s.default_country)
        self.recordings = self._recording_service()
        self.gateway = Gateway(
            self.console, Accounts.from_config(s.accounts, "accounts"),
            GatewayConfig(host=s.http_host, port=s.http_port, token_secret=s.token_secret, token_ttl_s=s.token_ttl_s,
                          ping_interval_s=s.console_ping_interval_s, ping_timeout_s=s.console_ping_timeout_s,
                          metrics_allow=s.metrics_allow,
                          phone_sockets=(s.phones.softphone.ws_url,) if s.phones.softphone is not None else ()),
            metrics=self.metrics.render, reports=self.reports, recordings=self.recordings,
            admin=lambda who, command, args: self.admin.handle(who, command, args),
        )
        self.admin = AdminService(s.admin_files, self.recorder, self.flows, self.crm, lambda: self.gateway,
                                  self.clock)
        self.gateway.media = MediaSite(self.recordings.tickets, self.clock, self.gateway.session_ok).respond
        self.gateway.signer.restore(self.projector.ended_sessions, self.projector.logged_out_users)
        self.notifier = ConsoleNotifier(views, self.gateway, self.bus, pop_pushed=self.metrics.pop_pushed)
        self.supervision = SupervisionNotifier(views, lambda: self.gateway, self.bus, self.clock)
        self.presence.start(self.projector.router.agent_ids())  # before any console can connect
        if s.dialer is not None:
            self.dialer = DialerService(s.dialer, CampaignStore(self.crm), self.recorder, self.calls,
                                        lambda: self.projector.router, self.bus, self.clock,
                                        push=lambda agent_id, kind, fields: self.gateway.push_to_agent(
                                            agent_id, kind, fields),
                                        flow_loaded=self.flows.__contains__)
            await self.dialer.start()  # settles the attempts a crash left dialling
            self.gateway.previews = self.dialer
            self.console.campaign_calls = self.dialer  # a campaign call's wrap-up settles its attempt
            self.campaign_pops = CampaignPops(self.bus, self.crm, CampaignStore(self.crm),
                                              lambda agent_id, kind, fields: self.gateway.push_to_agent(
                                                  agent_id, kind, fields))
        self.gateway.campaigns = CampaignBoard(CampaignStore(self.crm), lambda: self.dialer, self.recorder.record)
        if self.audiosocket is not None:
            await self._listen("speech audio (AudioSocket)", s.audiosocket_host, s.audiosocket_port or 0,
                               self.audiosocket.start())
        await self._listen("FastAGI", s.agi_host, s.agi_port, self.agi.start())
        await self._listen("the console gateway (http)", s.http_host, s.http_port, self.gateway.start())
        self.web_callbacks = web_callbacks(s.web_callbacks, self.callbacks, self.crm,
                                           lambda: self.projector.callbacks, self.clock)
        if s.web_api_port is not None:
            self.posts = PostServer(s.http_host, s.web_api_port, {WEB_CALLBACK_PATH: self.web_callbacks.handle},
                                    allow_origins=s.web_callbacks.allow_origins)
            await self._listen("the web callback API (http)", s.http_host, s.web_api_port, self.posts.start())
        if self.speech is not None:
            await self.speech.preload()

    def _recording_service(self) -> RecordingService:
        s = self.settings
        local = s.call_recordings_dir or s.recordings_dir / "calls"
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # told, not fatal: calls go on; recordings cannot be played until it exists
            log.error("recordings directory %s: %s", local, os.strerror(e.errno) if e.errno else e)

        def policy_of(queue: str) -> str:
            config = self.projector.config
            return config.queue(queue).recording if config.has_queue(queue) else "never"

        return RecordingService(
            RecordingSettings(RecordingFiles(local, s.call_recordings_pbx_dir or str(local)), s.recordings_dir,
                              s.recording_retention_days, s.recording_sweep_every_s),
            calls=self.calls, recorder=self.recorder, crm=self.crm, bus=self.bus, clock=self.clock,
            policy_of=policy_of,  # type: ignore[arg-type]
            has_agent=lambda agent_id: self.projector.config.has_agent(agent_id),
            push=lambda agent_id, kind, fields: self.gateway.push_to_agent(agent_id, kind, fields))

    @staticmethod
    async def _listen(service: str, host: str, port: int, opening: Coroutine[Any, Any, None]) -> None:
        try:
            await opening
        except OSError as e:
            raise CannotListen(service, host, port, e) from e

    def _attach_projections(self, projector: Projector) -> None:
        """Before the replay: the writers of the durable projections see the replayed facts too (the
        queue_log is cut back to the checkpoint and written again; CRM rows are rewritten as they were)."""
        s = self.settings
        self._history = CrmHistoryWriter(projector.records, self.journal, s.default_country)
        self._history.audit = False  # the replayed facts' audit rows are written already
        projector.listeners.append(self._history)
        projector.listeners.append(ReportsWriter(projector.intervals, self.journal, projector.stats.tz))
        if s.queue_log is not None:
            self._queue_log = QueueLogWriter(s.queue_log, projector.queue_log)
            self._queue_log.open()
            self.journal.before_commit.append(self._queue_log.flush)
        else:
            self.journal.before_commit.append(lambda: projector.queue_log.pending.clear())

    def _flow_labels(self, flow: str) -> Mapping[str, Mapping[str, str]]:
        return self.flows.get(flow).node_labels() if flow in self.flows else {}

    def _publish(self, fact: f.Fact | None, decisions: list[Any]) -> None:
        if fact is not None:
            self.bus.publish(fact.body)
        self.bus.publish_all(decisions)

    async def _run(self, notifier: ConsoleNotifier) -> None:
        s = self.settings
        # The journal goes on where the replay stopped: its sequence, then the facts recorded since.
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.journal.run(), name="journal")
                tg.create_task(notifier.run(), name="console-pushes")
                tg.create_task(notifier.run_wallboard(), name="wallboard")
                self._intake.append(tg.create_task(self.calls.run_fallback_scan(), name="fallback-take-back"))
                tg.create_task(FlowWatcher(self.flows).run(), name="flow-watcher")
                tg.create_task(self.presence.run(), name="console-presence")
                tg.create_task(self.alerts.run(), name="alerts")
                tg.create_task(self.supervision.run(), name="agent-figures")
                tg.create_task(self.recordings.run_retention(), name="recording-retention")
                tg.create_task(give_back_free_memory(), name="allocator-trim")
                tg.create_task(self.callbacks.run(), name="callbacks")
                if self.dialer is not None:
                    self._intake.append(tg.create_task(self.dialer.run(), name="dialer"))
                tg.create_task(grading_loop(self.crm, every=s.grading_every, stop=self._stop_grading),
                               name="grading")
                self.queueing.start()
                self.calls.pool.start()
                self._started.set()
                await asyncio.Event().wait()
        except* _Stop:
            pass

    async def stop(self) -> None:
        """Drain (SIGTERM, or a start that failed half-way: only what was opened is closed). First no new
        work: FastAGI stops taking callers, the fallback take-back stops sending them back to a server that
        is going, the ACD stops offering, the consoles disconnect. Then the AMI links close, and last the
        journal writes every fact it holds (the last one says the server stopped) before the database
        closes. The journal goes last: closing the links still records facts."""
        opened = vars(self)
        for task in self._intake:
            task.cancel()
        self._stop_grading.set()
        if "agi" in opened:
            with contextlib.suppress(Exception):
                await self.agi.close()
        listener = opened.get("audiosocket")
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
        if "queueing" in opened:
            await self.queueing.stop()
        if "outbound" in opened:
            await self.outbound.stop()
        if "callbacks" in opened:
            await self.callbacks.stop()
        if self.posts is not None:
            await self.posts.close()
        if "gateway" in opened:
            with contextlib.suppress(Exception):
                await self.gateway.stop()
        if "reports" in opened:
            with contextlib.suppress(Exception):
                await self.reports.close()
        if "calls" in opened:
            await self.calls.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, _Stop):
                await self._runner
        if "recorder" in opened:
            with contextlib.suppress(Exception):
                self.recorder.record(f.ServerStopping("stop"))
        if "journal" in opened:
            await self.journal.close()
        if self._queue_log is not None:
            self._queue_log.close()
        if "crm" in opened:
            await self.crm.close()

    @property
    def http_port(self) -> int:
        return self.gateway.port

    @property
    def agi_port(self) -> int:
        return self.agi.port

    def _answers_at_console(self, agent_id: str, endpoint: str) -> bool:
        cfg = self.projector.config
        return cfg.has_agent(agent_id) and answers_at_console(cfg.agent(agent_id), endpoint)

    def _wants_survey(self, call_id: str) -> bool:
        rec = self.projector.records.get(call_id)
        return bool(rec and rec.survey)
