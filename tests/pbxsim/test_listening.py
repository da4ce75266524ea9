"""The simulator listens like Asterisk 22.10.1 for speech menus: captures 23 (MixMonitor r() beside the call,
WAIT FOR DIGIT slices, StopMixMonitor; RECORD FILE's silence rule), 24 (AMI ControlPlayback stopping a
prompt started by AGI) and 32 (the caller's voice streamed to an AudioSocket server by ChanSpy on a Local
channel: its AMI events, the stream's first bytes and cadence). The same FastAGI commands are sent to the simulator by a real FastAGI server on
loopback; the replies must be the capture's, word for word where they carry no timing, within a few frames
where they do (endpos, the time left)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import uuid
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctiserver.ami.protocol import AmiParser, Message, encode_action
from pbxsim.captures import capture
from pbxsim.people import CallerBehaviour, voiced_seconds
from pbxsim.simulator import Simulator

TIME_SCALE = 0.1
BUFFER = 32768  # Asterisk's stdio buffer for recordings (main/file.c)
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


def agi_replies(name: str, stream: str) -> list[str]:
    """The reply lines Asterisk sent on one FastAGI session of a capture (the environment left out)."""
    return [r.payload.decode().rstrip("\n") for r in capture(name)
            if r.stream == stream and r.direction == "<<<" and not r.payload.startswith(b"agi_")]


def agi_commands(name: str, stream: str) -> list[str]:
    return [r.payload.decode().rstrip("\n") for r in capture(name) if r.stream == stream and r.direction == ">>>"]


def notes(name: str) -> list[str]:
    return [r.note for r in capture(name) if r.stream == "NOTE"]


@dataclass
class Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    channel: str = ""
    replies: list[str] = field(default_factory=list)

    async def cmd(self, line: str) -> str:
        self.writer.write(f"{line}\n".encode())
        await self.writer.drain()
        while True:
            reply = (await asyncio.wait_for(self.reader.readline(), 10)).decode().rstrip("\n")
            self.replies.append(reply)
            if reply != "HANGUP":
                return reply


Script = Callable[[Session], Awaitable[None]]


@dataclass
class Pbx:
    sim: Simulator
    scripts: asyncio.Queue[Script]
    done: asyncio.Queue[Session]
    ami_port: int

    async def run(self, script: Script, behaviour: CallerBehaviour) -> Session:
        await self.scripts.put(script)
        self.sim.place_call("8100", "13800138001", "Caller", behaviour)
        return await asyncio.wait_for(self.done.get(), 30)


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    scripts: asyncio.Queue[Script] = asyncio.Queue()
    done: asyncio.Queue[Session] = asyncio.Queue()

    async def on_agi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = (await reader.readuntil(b"\n\n")).decode()
        s = Session(reader, writer, re.search(r"agi_channel: (.*)", env).group(1))  # type: ignore[union-attr]
        try:
            await (await scripts.get())(s)
        finally:
            writer.close()
            await done.put(s)

    server = await asyncio.start_server(on_agi, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sim = Simulator(time_scale=TIME_SCALE, globals_override={"CTI_AGI": f"agi://127.0.0.1:{port}"})
    ami_port = await sim.start()
    yield Pbx(sim, scripts, done, ami_port)
    await sim.stop()
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="module")
def word(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng's 예약 at 8 kHz, as the capture's caller said it."""
    out = tmp_path_factory.mktemp("voice")
    raw, wav = out / "raw.wav", out / "yeyak.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(raw), "예약"], check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True)
    return wav


def pcm(wav: Path) -> bytes:
    import wave

    with wave.open(str(wav), "rb") as w:
        return w.readframes(w.getnframes())


def decimated(path: Path) -> bytes:
    wide = array("h")
    wide.frombytes(path.read_bytes())
    return wide[::6].tobytes()


async def watch(path: Path, sizes: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        size = path.stat().st_size if path.exists() else -1
        if not sizes or sizes[-1] != size:
            sizes.append(size)
        await asyncio.sleep(0.001)


async def listen(s: Session, path: Path, slices: int, sizes: list[int]) -> None:
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(path, sizes, stop))
    for _ in range(slices):
        if await s.cmd("WAIT FOR DIGIT 100") != "200 result=0":
            break
    stop.set()
    await watcher


async def test_late_speaker_recorded_beside_the_call_as_in_capture_23a(pbx: Pbx, tmp_path: Path, word: Path) -> None:
    path = tmp_path / "ivr" / "l21a.sln48"  # a directory that does not exist yet: MixMonitor makes it
    sizes: list[int] = []

    async def script(s: Session) -> None:
        await s.cmd(f"EXEC MixMonitor ,r({path})")
        await listen(s, path, 30, sizes)
        await s.cmd("EXEC StopMixMonitor")
        await s.cmd("EXEC StopMixMonitor")  # none running any more: still 200 result=0

    s = await pbx.run(script, CallerBehaviour(utterance=word, speak_delay=1.5))
    assert s.replies == agi_replies("23-speech-listening-mixmonitor", "AGI1")
    # The file grows in whole 32 KiB steps while the recording runs (capture 23 A: 0, 32768, 65536 ...)
    assert sizes[0] in (-1, 0) and all(n % BUFFER == 0 for n in sizes if n > 0) and max(sizes) >= 8 * BUFFER
    final = path.stat().st_size
    # 23 A: 289,920 bytes (3.02 s) for 30 slices of 100 ms: at least that; the rest written at the stop
    assert final % BUFFER != 0 and final >= 289920 - 96000 * 0.1
    audio = decimated(path)
    at = audio.find(pcm(word))  # the caller's words, where they said them
    assert at >= 0 and abs(at / 16000 - 1.5) < 0.1
    assert not any(audio[:at])  # silence before: a phone sends silence, nothing else is recorded


async def test_key_while_listening_as_in_capture_23b(pbx: Pbx, tmp_path: Path) -> None:
    path = tmp_path / "l21b.sln48"

    async def script(s: Session) -> None:
        await s.cmd(f"EXEC MixMonitor ,r({path})")
        await listen(s, path, 20, [])
        await s.cmd("EXEC StopMixMonitor")

    s = await pbx.run(script, CallerBehaviour(keys=("2",), key_delay=0.55))
    want = agi_replies("23-speech-listening-mixmonitor", "AGI2")
    assert want[-2:] == ["200 result=50", "200 result=0"]
    assert s.replies[-2:] == want[-2:] and set(s.replies) == set(want)
    assert path.stat().st_size > 0 and path.stat().st_size % BUFFER != 0  # the rest written at the stop


async def test_hang_up_while_listening_as_in_capture_23c(pbx: Pbx, tmp_path: Path, word: Path) -> None:
    path = tmp_path / "l21c.sln48"
    sizes: list[int] = []

    async def script(s: Session) -> None:
        await s.cmd(f"EXEC MixMonitor ,r({path})")
        await listen(s, path, 60, sizes)
        await s.cmd("EXEC StopMixMonitor")  # a dead channel still runs it: HANGUP, then 200
        await s.cmd("WAIT FOR DIGIT 100")

    s = await pbx.run(script, CallerBehaviour(utterance=word, speak_delay=0.3, patience=2.3))
    want = agi_replies("23-speech-listening-mixmonitor", "AGI3")
    assert want[-4:] == ["200 result=-1", "HANGUP", "200 result=0", DEAD]
    # The hang-up lands inside a slice (the capture: -1, then HANGUP before the next reply) or, now and then on a
    # busy machine, in the round trip between two slices: then HANGUP comes first and the next slice is refused.
    # Either way HANGUP is said once and StopMixMonitor still runs on the dead channel.
    between = ["HANGUP", DEAD, "200 result=0", DEAD]
    assert s.replies[-4:] in (want[-4:], between)
    assert s.replies.count("HANGUP") == 1
    final = path.stat().st_size
    assert final >= max(sizes) and final % BUFFER != 0  # closed, and the buffer written, at the hang-up


async def test_recording_that_cannot_be_written_as_in_capture_23d(pbx: Pbx, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    path = blocker / "ivr" / "l21d.sln48"
    commands = agi_commands("23-speech-listening-mixmonitor", "AGI4")
    assert commands[0] == "EXEC MixMonitor ,r(/etc/hostname/ivr/l21d.sln48)"

    async def script(s: Session) -> None:
        await s.cmd(f"EXEC MixMonitor ,r({path})")
        await listen(s, path, 5, [])
        await s.cmd("EXEC StopMixMonitor")
        await s.cmd(f"RECORD FILE {path.with_suffix('')} wav 0123 2000 0 s=1")

    s = await pbx.run(script, CallerBehaviour())
    assert s.replies == agi_replies("23-speech-listening-mixmonitor", "AGI4")
    assert not path.exists()
    assert s.replies[-1] == "200 result=-1 (writefile)"


@pytest.mark.parametrize(("stream", "delay"), [("AGI5", 1.5), ("AGI6", 0.5)])
async def test_record_file_silence_counts_from_the_start_as_in_capture_23e(pbx: Pbx, tmp_path: Path, word: Path,
                                                                         stream: str, delay: float) -> None:
    base = tmp_path / "r21"

    async def script(s: Session) -> None:
        await s.cmd(f"RECORD FILE {base} wav 0123 5000 0 s=1")

    s = await pbx.run(script, CallerBehaviour(utterance=word, speak_delay=delay))
    [want] = agi_replies("23-speech-listening-mixmonitor", stream)
    pattern = r"200 result=(\d+) \(timeout\) endpos=(\d+)"
    left, endpos = map(int, re.fullmatch(pattern, want).groups())  # type: ignore[union-attr]
    got = re.fullmatch(pattern, s.replies[0])
    assert got is not None, s.replies
    got_left, got_endpos = int(got.group(1)), int(got.group(2))
    if delay > 1.0:
        # over after the 1 s of silence counted from the start, before the caller said a word (8160, 3993)
        assert endpos < 8000 * delay and left > 5000 - 1000 * delay
        assert got_endpos < 8000 * delay and got_left > 5000 - 1000 * delay
    else:
        # 1 s after the voice (0.5 s in, 0.45 s long): 15680 samples, 3046 ms left; nothing cut (s=1)
        assert 8000 * 1.9 <= endpos <= 8000 * 2.2 and 8000 * 1.9 <= got_endpos <= 8000 * 2.6
        assert left < 5000 - 1900 and got_left < 5000 - 1900
    kept = (base.with_suffix(".wav").stat().st_size - 44) // 2
    assert kept == got_endpos


class Ami:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.parser, self.n = reader, writer, AmiParser(), 0
        self.pending: list[Message] = []

    @classmethod
    async def login(cls, port: int) -> Ami:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        ami = cls(r, w)
        await ami.action("Login", Username="cti", Secret="ctisecret")
        return ami

    async def action(self, name: str, **headers: str) -> Message:
        self.n += 1
        aid = f"t-{self.n}"
        self.writer.write(encode_action(name, aid, headers))
        while True:
            for f in self.pending:
                if f.get("ActionID") == aid and "Response" in f:
                    return f
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            self.pending += [f for f in self.parser.feed(data) if isinstance(f, Message)]

    def close(self) -> None:
        self.writer.close()


def capture_responses(name: str) -> list[tuple[str, str]]:
    """(Response, Message) of every ControlPlayback in a capture, in order."""
    recs = capture(name)
    ids = [re.search(r"ActionID: (\S+)", r.payload.decode()).group(1)  # type: ignore[union-attr]
           for r in recs if r.direction == ">>>" and r.payload.startswith(b"Action: ControlPlayback")]
    out = []
    for aid in ids:
        for r in recs:
            text = r.payload.decode()
            if r.direction == "<<<" and f"ActionID: {aid}\r\n" in text and text.startswith("Response:"):
                resp = re.search(r"Response: (\S+)", text).group(1)  # type: ignore[union-attr]
                msg = re.search(r"Message: ([^\r]*)", text)
                out.append((resp, msg.group(1) if msg else ""))
    return out


@pytest.mark.parametrize(("verb", "stream"), [("STREAM FILE", "AGI1"), ("CONTROL STREAM FILE", "AGI2")])
async def test_controlplayback_stops_a_prompt_started_by_agi_as_in_capture_24a(
        pbx: Pbx, tmp_path: Path, word: Path, verb: str, stream: str) -> None:
    path = tmp_path / "b22.sln48"
    ami = await Ami.login(pbx.ami_port)
    stopped: list[Message] = []

    async def script(s: Session) -> None:
        await s.cmd(f"EXEC MixMonitor ,r({path})")
        play = asyncio.create_task(s.cmd(f'{verb} vm-intro "12"'))
        await asyncio.sleep(1.4 * TIME_SCALE)
        stopped.append(await ami.action("ControlPlayback", Channel=s.channel, Control="stop"))
        await play
        if verb.startswith("CONTROL"):
            await s.cmd("GET VARIABLE CPLAYBACKSTATUS")
        await listen(s, path, 10, [])
        await s.cmd("EXEC StopMixMonitor")

    try:
        s = await pbx.run(script, CallerBehaviour(utterance=word, speak_over_prompt=1.0))
    finally:
        ami.close()
    want = agi_replies("24-speech-barge-in-controlplayback", stream)
    nth = 0 if stream == "AGI1" else 1
    assert [(m["Response"], m.get("Message", "")) for m in stopped] == [
        capture_responses("24-speech-barge-in-controlplayback")[nth]]
    shape = re.compile(r"endpos=\d+")
    assert [shape.sub("endpos=<n>", r) for r in s.replies] == [shape.sub("endpos=<n>", r) for r in want]
    played = int(s.replies[1].rsplit("=", 1)[1])
    wanted = int(want[1].rsplit("=", 1)[1])  # samples for STREAM FILE, milliseconds for CONTROL STREAM FILE
    unit = 8000 if verb == "STREAM FILE" else 1000
    assert wanted == round(1.42 * unit) and unit * 1.0 < played < unit * 3.0  # stopped, not at the end (3 s)
    audio = decimated(path)
    at = audio.find(pcm(word))
    assert at >= 0 and not any(audio[:at])  # only the caller's side: the prompt is not in the recording


async def test_controlplayback_errors_and_idle_stop_as_in_capture_24b(pbx: Pbx) -> None:
    ami = await Ami.login(pbx.ami_port)
    answers: list[tuple[str, str]] = []

    async def script(s: Session) -> None:
        for headers in ({"Channel": "Local/nobody@nowhere-00000099;2", "Control": "stop"}, {"Channel": s.channel}):
            m = await ami.action("ControlPlayback", **headers)
            answers.append((m["Response"], m.get("Message", "")))
        wait = asyncio.create_task(s.cmd("WAIT FOR DIGIT 500"))
        await asyncio.sleep(0.1 * TIME_SCALE)
        m = await ami.action("ControlPlayback", Channel=s.channel, Control="stop")
        answers.append((m["Response"], m.get("Message", "")))
        await wait
        await s.cmd('STREAM FILE beep ""')

    try:
        s = await pbx.run(script, CallerBehaviour())
    finally:
        ami.close()
    assert answers == capture_responses("24-speech-barge-in-controlplayback")[2:]
    want = agi_replies("24-speech-barge-in-controlplayback", "AGI3")
    assert s.replies[0] == want[0] == "200 result=1000"  # the stop reached WAIT FOR DIGIT
    assert s.replies[1].startswith("200 result=0 endpos=") and want[1].startswith("200 result=0 endpos=")


async def test_a_stop_between_commands_is_dropped(pbx: Pbx) -> None:
    """res_agi reads and drops the control frame while it waits for the next command (a late stop must
    not cut the next prompt short)."""
    ami = await Ami.login(pbx.ami_port)

    async def script(s: Session) -> None:
        await ami.action("ControlPlayback", Channel=s.channel, Control="stop")
        await s.cmd('STREAM FILE beep ""')

    try:
        s = await pbx.run(script, CallerBehaviour())
    finally:
        ami.close()
    assert s.replies == ["200 result=0 endpos=3404"]



# ---------------------------------------------------------------------- capture 32: a stream beside the call
class Listener:
    """An AudioSocket server as plain as the capture's: every message with the (virtual-free) wall time it came."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, bytes, bytes]] = []  # (time, header, payload)
        self.writers: list[asyncio.StreamWriter] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        loop = asyncio.get_running_loop()
        try:
            while True:
                header = await reader.readexactly(3)
                payload = await reader.readexactly(int.from_bytes(header[1:], "big"))
                self.messages.append((loop.time(), header, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()

    def voice_frames(self) -> list[bytes]:
        return [p for _, h, p in self.messages if h[0] == 0x10]

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()


class EventLog:
    """Every AMI event of one session, read as it comes."""

    def __init__(self, ami: Ami) -> None:
        self.ami = ami
        self.events: list[Message] = []

    def take(self) -> None:
        self.events += [m for m in self.ami.pending if "Event" in m and m not in self.events]

    async def until(self, pred: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                self.take()
                found = next((m for m in self.events if pred(m)), None)
                if found is not None:
                    return found
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(self.ami.reader.read(65536), 0.05)
                    self.ami.pending += [f for f in self.ami.parser.feed(data) if isinstance(f, Message)]


def halves(events: list[Message], one: str) -> list[tuple[str, str]]:
    """(event, half) of the listening pair's events, in order: half is ";1" or ";2"."""
    out = []
    for m in events:
        name = m.get("Channel") or m.get("SpyerChannel") or ""
        if name.startswith(one.rsplit(";", 1)[0] + ";"):
            out.append((m["Event"], name[-2:]))
    return out


def capture_halves(first: str) -> list[tuple[str, str]]:
    """The same for the pair whose ;1 is ``first`` in capture 32."""
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/11.0.0\r\n")
    msgs = [parser.feed(r.payload) for r in capture("32-speech-stream-audiosocket")
            if r.stream == "AMI1" and r.direction == "<<<" and r.payload.startswith(b"Event:")]
    return halves([m for batch in msgs for m in batch if isinstance(m, Message)], first)


async def originate_ear(ami: Ami, channel: str, port: int) -> tuple[str, Message]:
    call = str(uuid.uuid4())
    answer = await ami.action("Originate", Channel="Local/s@cti-listen", Application="AudioSocket",
                              Data=f"{call},127.0.0.1:{port}", Variable=f"CTI_LISTEN_CHANNEL={channel}",
                              Async="true", ChannelId=f"cti-listen-{call}", OtherChannelId=f"cti-listen-{call}-2")
    return call, answer


async def test_the_callers_voice_streams_beside_the_call_as_in_capture_32a(pbx: Pbx, word: Path) -> None:
    listener = Listener()
    await listener.start()
    ami = await Ami.login(pbx.ami_port)
    log = EventLog(ami)
    found: dict[str, object] = {}

    async def script(s: Session) -> None:
        call, answer = await originate_ear(ami, s.channel, listener.port)
        found["call"], found["answer"] = call, answer
        await log.until(lambda m: m.get("Event") == "ChanSpyStart")
        for _ in range(60):  # WAIT FOR DIGIT slices until 0.3 s after the last voiced frame, as the capture
            await s.cmd("WAIT FOR DIGIT 100")
            voiced = [i for i, p in enumerate(listener.voice_frames()) if any(abs(x) > 400 for x in _samples(p))]
            if voiced and len(listener.voice_frames()) - voiced[-1] > 15:
                break
        listener.writers[0].write(b"\x00\x00\x00")  # the hang-up message ends it at once
        await log.until(lambda m: m.get("Event") == "Hangup" and "cti-listen" in m.get("Channel", "")
                        and m["Channel"].endswith(";2"))
        await s.cmd("WAIT FOR DIGIT 100")

    try:
        s = await pbx.run(script, CallerBehaviour(utterance=word, speak_delay=1.5))
        await asyncio.wait_for(listener.closed.wait(), 5)
    finally:
        ami.close()
        await listener.close()
    assert found["answer"]["Response"] == "Success"  # type: ignore[index]
    # The UUID first, then 20 ms of slin per message (header 10 01 40), as Asterisk's (AS1)
    real = [r.payload for r in capture("32-speech-stream-audiosocket") if r.stream == "AS1" and r.direction == "<<<"]
    first = listener.messages[0]
    assert first[1] == real[0][:3] and first[2] == uuid.UUID(str(found["call"])).bytes
    assert {h for _, h, _ in listener.messages[1:]} == {real[1]} == {b"\x10\x01\x40"}
    # in real (scaled) time: one frame per 20 ms of the PBX's clock
    times = [t for t, h, _ in listener.messages if h[0] == 0x10]
    span = (times[-1] - times[0]) / TIME_SCALE
    assert abs(span - 0.02 * (len(times) - 1)) < 0.25 + 0.05 * span
    # the caller's word, where they said it (1.5 s after the ear opened), and only the caller's side
    audio = b"".join(listener.voice_frames())
    at = audio.find(pcm(word)[: int(voiced_seconds(word) * 8000) * 2])
    assert at >= 0 and abs(at / 16000 - 1.5) < 0.1 and not any(audio[:at])
    # the events of the listening pair, as the capture's (the order of a few racing ones aside)
    one = next(m["Channel"] for m in log.events if m.get("Event") == "Newchannel" and "cti-listen" in m["Channel"])
    got, want = halves(log.events, one), capture_halves("Local/s@cti-listen-00000001;1")
    assert sorted(got) == sorted(want), (got, want)
    assert got.index(("ChanSpyStart", ";2")) > got.index(("OriginateResponse", ";1"))
    # The end, the hang-up message's: ;1 goes, then ChanSpy stops and ;2 goes (Cdr comes from the CDR engine's
    # own thread: before or after ChanSpyStop in the real runs)
    tail = [e for e in got if e[0] != "Cdr"][-5:]
    assert tail == [e for e in want if e[0] != "Cdr"][-5:] == [
        ("HangupRequest", ";2"), ("Hangup", ";1"), ("ChanSpyStop", ";2"), ("SoftHangupRequest", ";2"),
        ("Hangup", ";2")], tail
    hangups = {m["Channel"][-2:]: m["Cause"] for m in log.events if m.get("Event") == "Hangup"
               and "cti-listen" in m.get("Channel", "")}
    assert hangups == {";1": "0", ";2": "0"}
    assert all(r == "200 result=0" for r in s.replies)


async def test_a_stream_to_nobody_ends_the_ear_at_once_as_in_capture_32e(pbx: Pbx) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    ami = await Ami.login(pbx.ami_port)
    log = EventLog(ami)

    async def script(s: Session) -> None:
        await originate_ear(ami, s.channel, port)
        await log.until(lambda m: m.get("Event") == "Hangup" and "cti-listen" in m.get("Channel", "")
                        and m["Channel"].endswith(";2"))
        await asyncio.sleep(0.2)
        await s.cmd("WAIT FOR DIGIT 100")

    try:
        await pbx.run(script, CallerBehaviour())
    finally:
        ami.close()
    one = next(m["Channel"] for m in log.events if m.get("Event") == "Newchannel" and "cti-listen" in m["Channel"])
    got, want = halves(log.events, one), capture_halves("Local/s@cti-listen-00000009;1")
    assert ("ChanSpyStart", ";2") not in got and ("ChanSpyStart", ";2") not in want
    assert sorted(got) == sorted(want), (got, want)


@pytest.mark.parametrize(("first_frame", "real_ms"), [(False, 602), (True, 115)])
async def test_chanspy_starts_sooner_once_the_server_sends_a_frame_as_in_capture_32g(
        pbx: Pbx, first_frame: bool, real_ms: int) -> None:
    notes_ = " ".join(notes("32-speech-stream-audiosocket"))
    assert f"ChanSpyStart {real_ms} ms after the Originate" in notes_
    listener = Listener()
    await listener.start()
    ami = await Ami.login(pbx.ami_port)
    log = EventLog(ami)
    took: list[float] = []

    async def script(s: Session) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await originate_ear(ami, s.channel, listener.port)
        if first_frame:
            while not listener.writers:
                await asyncio.sleep(0.001)
            listener.writers[0].write(b"\x10\x01\x40" + bytes(320))
        await log.until(lambda m: m.get("Event") == "ChanSpyStart")
        took.append((loop.time() - t0) / TIME_SCALE)
        listener.writers[0].write(b"\x00\x00\x00")
        await s.cmd("WAIT FOR DIGIT 100")

    try:
        await pbx.run(script, CallerBehaviour())
    finally:
        ami.close()
        await listener.close()
    [seconds] = took
    assert abs(seconds - real_ms / 1000) < 0.15, seconds


def _samples(pcm_: bytes) -> array[int]:
    a = array("h")
    a.frombytes(pcm_)
    return a
