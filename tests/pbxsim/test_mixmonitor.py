"""MixMonitor, MixMonitorMute and StopMixMonitor in the simulator against capture 20, and the file it writes."""

from __future__ import annotations

import wave
from pathlib import Path

from tests.pbxsim.pbxsim_replay import compare, replay

DIALPLAN = Path(__file__).resolve().parents[2] / "pbxsim" / "dialplans" / "mixmonitor.conf"
# The bridge re-publishes BRIDGEPEER from its own thread when an audiohook comes or goes: before
# MixMonitorStart in 07 B, after it in 20 D (and either way in two takes of 20 B).
RACY = frozenset({"BRIDGEPEER"})


async def test_replay_matches_capture_20() -> None:
    expected, got, _, _ = await replay("20", dialplan_paths=[DIALPLAN])
    assert compare(expected["AMI1"], got["AMI1"], racy_vars=RACY) == []
    assert len(got["AMI1"]) == len(expected["AMI1"])
    errors = [(f["ActionID"], f["Message"]) for f in got["AMI1"] if f.get("Response") == "Error"]
    assert errors == [  # capture 20 C, word for word
        ("ami1-007", "Cannot set mute flag"),
        ("ami1-008", "No direction specified. Must be read, write or both"),
        ("ami1-009", "Invalid direction specified. Must be read, write or both"),
        ("ami1-010", "No state specified"),
        ("ami1-011", "No such channel"),
        ("ami1-012", "Could not stop monitoring channel"),
        ("ami1-013", "No such channel"),
    ]
    mutes = [(f["Direction"], f["State"]) for f in got["AMI1"] if f.get("Event") == "MixMonitorMute"]
    assert mutes == [("both", "1"), ("both", "0"), ("both", "1")]


async def test_compare_sees_a_missing_mixmonitor_mute_event() -> None:
    expected, got, _, _ = await replay("20", dialplan_paths=[DIALPLAN])
    frames = [f for f in got["AMI1"] if f.get("Event") != "MixMonitorMute"]
    assert compare(expected["AMI1"], frames, racy_vars=RACY) != []


def test_recording_writes_muted_time_as_silence(tmp_path: Path) -> None:
    from pbxsim.mixmonitor import Recording

    rec = Recording(str(tmp_path / "call.wav"), started_at=100.0)
    rec.mute(True, 101.5)
    rec.mute(False, 103.0)
    rec.finish(104.5)
    with wave.open(str(tmp_path / "call.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        frames = w.readframes(w.getnframes())
    assert len(frames) == 2 * 8000 * 45 // 10  # 4.5 s: the muted stretch is kept, as silence (capture 20 B)
    talk, muted, again = frames[:2 * 12000], frames[2 * 12000:2 * 24000], frames[2 * 24000:]
    assert any(talk) and any(again) and not any(muted)


def test_option_a_appends_to_the_same_file(tmp_path: Path) -> None:
    from pbxsim.mixmonitor import Recording

    first = Recording(str(tmp_path / "call.wav"), started_at=0.0)
    first.finish(2.0)
    again = Recording(str(tmp_path / "call.wav"), started_at=5.0, append=True)
    again.finish(6.5)
    with wave.open(str(tmp_path / "call.wav")) as w:
        assert w.getnframes() == 8000 * 35 // 10  # 2 s, then 1.5 s more: one file per call
