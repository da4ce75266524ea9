"""The IVR over the PBX simulator: real FastAgiServer, real Simulator (its FastAGI client, the product dialplan
asterisk-config/extensions.conf), a real SQLite CRM behind the product's IvrServices, real vosk.

Nothing of ours is faked: the flow's facts go through the real journal into the real call records and CRM
history. Only the queue figures come from a small deterministic source (the ACD is not part of these tests),
and the clock is injected so business hours and holidays can be chosen per test.

``IvrRig.call(did, caller, behaviour)`` places a trunk call on the simulator; the dialplan runs
``AGI(${CTI_AGI}/ivr)``, the simulator's FastAGI client connects to our server, and the handler below (the
part of ``ctiserver.ivr.service.IvrService.on_ivr`` that runs a flow) runs the flow the DID maps to. The rig
plays the calls slice's part too: it journals the call's arrival and, when the channel is gone, its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from acd.config import parse_config
from crmstore.model import Interaction
from crmstore.privacy import SYSTEM
from crmstore.store import CrmStore, open_store
from ctiserver.agi.protocol import AgiEnvironment, AgiReply, format_command
from ctiserver.agi.server import AgiSession, FastAgiServer
from ctiserver.ami.protocol import AmiParser, Message, encode_action
from ctiserver.audiosocket.server import AudioSocketServer
from ctiserver.crm_history.records import CallRecord
from ctiserver.crm_history.writer import CrmHistoryWriter
from ctiserver.ivr.prompts import MissingPrompts
from ctiserver.ivr.services import IvrCall, IvrServices, QueueFiguresSource
from ctiserver.ivr.spool import SpeechSpool
from ctiserver.ivr.stream import open_stream
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder
from ivr_flows.driver import FlowResult, run_flow
from ivr_flows.interpreter import FlowRun
from ivr_flows.registry import FlowRegistry
from ivr_flows.speech import AudioFeed, RecognizerPool
from ivr_flows.steps import QueueFigures, Transfer
from ivr_flows.validator import FlowCatalog, static_prompts
from pbxsim.channels import Channel
from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator

FLOWS = Path(__file__).parent / "flows"
# Fast enough for a whole suite well under a minute; slow enough that the IVR's own round trips (a few ms of
# real time each) stay small against prompt lengths and key delays.
TIME_SCALE = 0.02
OPEN = datetime(2025, 6, 3, 3, 0, tzinfo=UTC)  # a Tuesday, 11:00 in Shanghai
NIGHT = datetime(2025, 6, 3, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
HOLIDAY = datetime(2025, 10, 1, 3, 0, tzinfo=UTC)  # a Wednesday, 11:00, National Day

CATALOG_QUEUES = frozenset({"general", "vip", "sales", "support", "billing"})
CATALOG_SKILLS = frozenset({"english", "sales", "korean", "billing", "support"})
ACD_YAML = """\
skills: [english, sales, korean, billing, support]
pause_reasons: [break]
queues:
""" + "".join(f"  - {{name: {q}, skills: {{english: 1}}}}\n" for q in sorted(CATALOG_QUEUES)) + """\
agents:
  - {id: "2001", name: Agent, skills: {english: 1}, queues: [billing, general, sales, support, vip]}
"""


class FixedFigures(QueueFiguresSource):
    """Queue figures for ``branch`` nodes: a plain table the test sets (the ACD is not part of these tests)."""

    def __init__(self) -> None:
        self.table: dict[str, QueueFigures] = {}

    def figures(self, queue: str) -> QueueFigures:
        return self.table.get(queue, QueueFigures(waiting=0, available_agents=3, estimated_wait=20.0))


class Witness:
    """A simulator observer on the caller's channel: what the caller heard and whom they reached."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.recordings = 0
        self.connected_to: list[str] = []
        self.gone = asyncio.Event()
        self.on_gone: Callable[[], object] | None = None

    def prompt_started(self, chan: Channel, name: str, interruptible: bool) -> None:
        self.prompts.append(name)

    def input_wanted(self, chan: Channel, max_digits: int) -> None:
        return None

    def record_started(self, chan: Channel) -> None:
        self.recordings += 1

    def waiting_started(self, chan: Channel) -> None:
        return None

    def connected(self, chan: Channel, peer: Channel) -> None:
        self.connected_to.append(peer.name)

    def channel_gone(self, chan: Channel) -> None:
        if not self.gone.is_set() and self.on_gone is not None:
            self.on_gone()
        self.gone.set()


class PromptControl:
    """AMI on the simulator, for what the IVR asks of it during a flow: ControlPlayback stop when a caller
    talks over a prompt (the product sends it on its AMI link)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.parser = AmiParser()
        self.responses: list[Message] = []
        self.n = 0
        self.stopped: list[str] = []  # channels whose prompt was stopped

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.action("Login", {"Username": "cti", "Secret": "ctisecret"})

    async def action(self, name: str, headers: dict[str, str]) -> Message:
        async with self.lock:
            self.n += 1
            aid = f"rig-{self.n}"
            self.writer.write(encode_action(name, aid, headers))
            while True:
                for frame in self.responses:
                    if frame.get("ActionID") == aid:
                        self.responses.remove(frame)
                        return frame
                data = await asyncio.wait_for(self.reader.read(65536), 5.0)
                if not data:
                    raise ConnectionError("AMI closed")
                self.responses += [f for f in self.parser.feed(data)
                                   if isinstance(f, Message) and f.get("Response") is not None]

    async def stop_prompt(self, channel: str) -> None:
        self.stopped.append(channel)
        answer = await self.action("ControlPlayback", {"Channel": channel, "Control": "stop"})
        if answer.get("Response") != "Success":
            raise RuntimeError(f"ControlPlayback: {answer.get('Message')}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class SentLog:
    """The caller's real AgiSession, keeping the text of each command sent (for assertions on the wire)."""

    def __init__(self, session: AgiSession) -> None:
        self.session = session
        self.env: AgiEnvironment = session.env
        self.sent: list[str] = []
        self.replies: list[AgiReply] = []

    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        self.sent.append(format_command(*words).decode().rstrip("\n"))
        reply = await self.session.command(*words, timeout=timeout)
        self.replies.append(reply)
        return reply


@dataclass
class Call:
    did: str
    chan: Channel
    witness: Witness
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[FlowResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    ivr: IvrCall | None = None
    record: CallRecord | None = None  # the call's record, as the journal's projection holds it
    log: SentLog | None = None
    session: AgiSession | None = None
    flow_version: str = ""
    streams: list[Tap] = field(default_factory=list)  # each listening's audio stream, as the server read it

    @property
    def sent(self) -> list[str]:
        assert self.log is not None, "the flow never started"
        return self.log.sent

    async def result(self, timeout: float = 15.0) -> FlowResult:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self.done)

    async def ended(self, timeout: float = 15.0) -> None:
        """The caller's channel is gone on the simulator (hung up by the flow, the caller or the dialplan)."""
        async with asyncio.timeout(timeout):
            await self.witness.gone.wait()


class IvrRig:
    def __init__(self, tmp: Path, *, speech: RecognizerPool | None = None, time_scale: float = TIME_SCALE,
                 flows_dir: Path | None = None) -> None:
        self.tmp = tmp
        self.spool = tmp / "spool"
        self.spool.mkdir(exist_ok=True)
        self.speech_spool = SpeechSpool(self.spool)  # as IvrService keeps it: recordings go once decided
        self.flows_dir = flows_dir or FLOWS
        self.catalog = FlowCatalog(queues=CATALOG_QUEUES, skills=CATALOG_SKILLS,
                                   speech_languages=frozenset({"ko"}))
        self.registry = FlowRegistry(self.flows_dir, self.catalog)
        self.flow_by_did: dict[str, str] = {"8000": "service_line", "8100": "speech_ko", "8200": "speech_ko_barge"}
        self.extra_variables: dict[str, Mapping[str, str]] = {}
        self.clock = OPEN
        self.figures = FixedFigures()
        self.speech = speech
        self.time_scale = time_scale
        self.calls: dict[str, Call] = {}  # by the trunk channel's uniqueid
        self.deleted_prompts: set[str] = set()  # not on the PBX even though a flow plays them
        self.run_spool: Path | None = None  # where flows record, when not the shared spool
        # Speech menus listen to a stream (AudioSocket, as the server does); None: no listener, they fall back
        # to a recording file.
        self.audiosocket: AudioSocketServer | None = AudioSocketServer("127.0.0.1", 0)
        self.crm: CrmStore
        self.server: FastAgiServer
        self.sim: Simulator
        self.recorder: Recorder
        self.missing_prompts: MissingPrompts

    async def start(self) -> None:
        errors = self.registry.reload()
        assert errors == [], errors
        self.crm = await open_store(f"sqlite:///{self.tmp / 'crm.db'}")
        journal = Journal(self.crm, batch_interval_s=0.01)
        projector = Projector(parse_config(ACD_YAML, "<ivr rig>"))
        projector.listeners.append(CrmHistoryWriter(projector.records, journal, "CN"))
        self.recorder = Recorder(journal, projector, lambda: ("<ivr rig>", ACD_YAML))
        self.missing_prompts = MissingPrompts(self.recorder.record)  # one per server, as IvrService has
        self._journal_task = asyncio.get_running_loop().create_task(journal.run())
        if self.audiosocket is not None:
            await self.audiosocket.start()
        self.server = FastAgiServer("127.0.0.1", 0, command_timeout=30.0)
        self.server.route("ivr", self._ivr)
        await self.server.start()
        self.sim = Simulator(time_scale=self.time_scale,
                             globals_override={"CTI_AGI": f"agi://127.0.0.1:{self.server.port}"})
        ami_port = await self.sim.start()
        self.sim.add_agent_phone("2001", answer_after=1.0)
        self.prompts = PromptControl()
        await self.prompts.connect(ami_port)

    async def close(self) -> None:
        await self.prompts.close()
        await self.sim.stop()
        await self.server.close()
        if self.audiosocket is not None:
            await self.audiosocket.close()
        self._journal_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._journal_task
        await self.recorder.journal.close()
        await self.crm.close()

    async def history(self, call: Call, timeout: float = 15.0) -> Interaction | None:
        """The call's row in the CRM history: written by the journal's projection once the call ended."""
        await call.ended(timeout)
        await self.recorder.journal.durable(self.recorder.journal.last_seq, timeout)
        return await self.crm.interaction(call.chan.uniqueid, SYSTEM)

    def now(self) -> datetime:
        return self.clock

    def delete_prompts(self, *names: str) -> None:
        """These prompts are missing on the PBX (never installed, or deleted since)."""
        self.deleted_prompts.update(names)
        self.sim.sounds.remove(*names)

    def call(self, did: str, caller_num: str, behaviour: CallerBehaviour | None = None,
             caller_name: str = "Caller") -> Call:
        chan = self.sim.place_call(did, caller_num, caller_name, behaviour or CallerBehaviour())
        witness = Witness()
        chan.observers.append(witness)
        # The FastAGI client connects only after the dialplan's Answer() on a later loop turn, so the call is
        # known here before the handler can ask for it.
        call = Call(did, chan, witness)
        self.calls[chan.uniqueid] = call
        self.recorder.record(f.CallArrived(chan.uniqueid, "sim", chan.name, caller_num, caller_name, did))
        call.record = self.recorder.projector.records.get(chan.uniqueid)
        witness.on_gone = lambda: self.recorder.record(f.CallEnded(chan.uniqueid, 16, "Normal Clearing", "caller"))
        return call

    async def _ivr(self, session: AgiSession) -> None:
        env = session.env
        call = self.calls[env.uniqueid]
        call.session = session
        did = env.dnid
        ivr = IvrCall(env.uniqueid, env.caller_num, env.caller_name)
        call.ivr = ivr
        flow = self.registry.get(self.flow_by_did[did])
        # The flow's prompts are in the PBX's sounds directory, as the install step puts them there.
        self.sim.sounds.install(*{name for _, name in static_prompts(flow)} - self.deleted_prompts)
        variables = {
            "caller_number": ivr.caller_num, "caller_name": ivr.caller_name, "dnid": did,
            "uniqueid": env.uniqueid, "call_id": ivr.call_id, "language": env.language,
            **self.extra_variables.get(did, {}),
        }
        run = FlowRun(flow, variables, self.now, spool_dir=str(self.run_spool or self.spool), call_id=ivr.call_id)
        call.flow_version = flow.version
        call.log = SentLog(session)
        call.started.set()
        services = IvrServices(ivr, self.crm, self.figures, self.speech, self.recorder.record, flow=flow.name,
                               missing_prompts=self.missing_prompts, spool=self.speech_spool,
                               stop_prompt=lambda: self.prompts.stop_prompt(env.channel),
                               open_stream=self._open_stream(env.channel, call))
        try:
            result = await run_flow(call.log, run, services)
        except BaseException as e:
            if not call.done.done():
                call.done.set_exception(e)
            raise
        finally:
            self.speech_spool.call_ended(services.recordings)
        call.done.set_result(result)
        outcome = result.outcome
        if isinstance(outcome, Transfer):
            # As ctiserver.app does: the dialplan continues at the transfer context once the AGI ends.
            context = "cti-outbound" if outcome.external else "cti-dial"
            with contextlib.suppress(Exception):
                await call.log.command("EXEC", "Goto", f"{context},{outcome.destination},1", timeout=5.0)


    def _open_stream(self, channel: str, call: Call) -> Callable[[], Awaitable[AudioFeed]] | None:
        listener = self.audiosocket
        if listener is None:
            return None

        async def opening() -> AudioFeed:
            tap = Tap(await open_stream(listener, self.prompts.action, channel))
            call.streams.append(tap)
            return tap

        return opening


class Tap:
    """The server's own stream, with a copy of the audio it handed to the listening (for the tests to look
    into what was heard) and whether the server ended it."""

    def __init__(self, feed: AudioFeed) -> None:
        self.feed = feed
        self.audio = bytearray()
        self.closed_by_server = False

    def read_nowait(self) -> bytes | None:
        return self._keep(self.feed.read_nowait())

    async def read(self) -> bytes | None:
        return self._keep(await self.feed.read())

    def close(self) -> None:
        if not self.closed_by_server and not getattr(self.feed, "closed", False):
            self.closed_by_server = True  # before the PBX's side ended it
        self.feed.close()

    def _keep(self, pcm: bytes | None) -> bytes | None:
        if pcm:
            self.audio += pcm
        return pcm


def events(result: FlowResult) -> list[tuple[str, str, str]]:
    return [(p.node, p.event, p.value) for p in result.path]
