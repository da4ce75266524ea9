"""The speech spool: recordings deleted once decided and at a flow's end, leftovers swept at start, a
retention for quality review, voicemails never touched, a failure told once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ctiserver.ivr.spool import SpeechSpool


def touch(path: Path, age_s: float = 0.0, now: float = 1_000_000.0) -> Path:
    path.write_bytes(b"RIFF")
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_decided_and_call_end_delete_only_speech_recordings(tmp_path: Path) -> None:
    spool = SpeechSpool(tmp_path)
    answer = touch(tmp_path / "speech-1795389319-1-menu-1.wav")
    retry = touch(tmp_path / "speech-1795389319-1-menu-2.wav")
    voicemail = touch(tmp_path / "ivr-1795389319-1-closed-3.wav")
    spool.decided(str(answer))
    spool.decided(str(voicemail))  # not a speech recording: the CRM refers to it
    spool.decided(str(tmp_path / "speech-never-written.wav"))  # a key pressed at once: nothing to delete
    assert sorted(p.name for p in tmp_path.iterdir()) == [voicemail.name, retry.name]
    spool.call_ended({str(retry), str(voicemail)})
    assert [p.name for p in tmp_path.iterdir()] == [voicemail.name]


def test_sweep_at_start_removes_what_a_crash_left(tmp_path: Path) -> None:
    for i in range(5):
        touch(tmp_path / f"speech-crashed-menu-{i}.wav")
    touch(tmp_path / "ivr-kept-record_msg-1.wav")
    (tmp_path / "calls").mkdir()
    assert SpeechSpool(tmp_path).sweep() == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls", "ivr-kept-record_msg-1.wav"]
    assert SpeechSpool(tmp_path / "missing").sweep() == 0  # a spool not there yet is not an error


def test_retention_keeps_recordings_for_review_until_they_are_old(tmp_path: Path) -> None:
    now = 1_000_000.0
    spool = SpeechSpool(tmp_path, keep_s=3600, clock=lambda: now)
    fresh = touch(tmp_path / "speech-a-menu-1.wav", age_s=60, now=now)
    old = touch(tmp_path / "speech-b-menu-1.wav", age_s=7200, now=now)
    spool.decided(str(fresh))
    spool.call_ended({str(fresh)})  # the first call's end sweeps by age
    assert [p.name for p in tmp_path.iterdir()] == [fresh.name]
    assert not old.exists()


def test_a_spool_that_refuses_deletes_is_told_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = SpeechSpool(tmp_path)
    # A directory where a recording should be: unlink fails (IsADirectoryError), as a read-only spool would.
    for i in range(3):
        (tmp_path / f"speech-x-menu-{i}.wav").mkdir()
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            spool.decided(str(tmp_path / f"speech-x-menu-{i}.wav"))
        spool.sweep()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot be deleted" in errors[0].getMessage() and errors[0].exc_info is None
