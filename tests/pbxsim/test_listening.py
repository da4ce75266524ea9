"""The simulator records like Asterisk 22.10.1 for speech menus: captures 23 (MixMonitor r() beside the call,
WAIT FOR DIGIT slices, StopMixMonitor; RECORD FILE's silence rule) and 24 (AMI ControlPlayback stopping a
prompt started by AGI). The same FastAGI commands are sent to the simulator by a real FastAGI server on
loopback; the replies must be the capture's, word for word where they carry no timing, within a few frames
where they do (endpos, the time left)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctiserver.ami.protocol import AmiParser, Message, encode_action
from pbxsim.captures import capture
from pbxsim.people import CallerBehaviour
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

