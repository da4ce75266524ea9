"""The pure parts of recordings: the state table, file names from ids, play tickets, byte ranges, the
queue policy and cti.yaml's recordings section (one line per problem, with file and line)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from acd.config import parse_config
from acd.errors import AcdConfigError
from ctiserver.config import ConfigError, load_config
from ctiserver.gateway.auth import Principal, Role
from ctiserver.recordings.files import RecordingFiles, file_stem, inside, sweep, wav_seconds
from ctiserver.recordings.media import ranged
from ctiserver.recordings.state import TRANSITIONS, IllegalMove, RecState, next_state
from ctiserver.recordings.tickets import Tickets

WHO = Principal("agent1", Role.AGENT, "1001", None, "", "s1", 2**31)


def test_state_table_allows_only_its_moves() -> None:
    assert next_state("start", None) is RecState.RECORDING
    assert next_state("pause", RecState.RECORDING) is RecState.PAUSED
    assert next_state("resume", RecState.PAUSED) is RecState.RECORDING
    assert next_state("stop", RecState.PAUSED) is RecState.STOPPED
    assert next_state("start", RecState.STOPPED) is RecState.RECORDING
    for move in ("start", "pause", "resume", "stop"):
        for state in (None, *RecState):
            if (move, state) not in TRANSITIONS:
                with pytest.raises(IllegalMove):
                    next_state(move, state)


def test_file_names_come_from_ids_and_stay_in_their_directory(tmp_path: Path) -> None:
    files = RecordingFiles(tmp_path, "/var/spool/asterisk/monitor/cti/")
    assert files.path("1795389470.0") == tmp_path / "1795389470.0.wav"
    assert files.pbx_path("1795389470.0") == "/var/spool/asterisk/monitor/cti/1795389470.0.wav"
    for hostile in ("../../etc/passwd", "..", "a/b", "x:y@z", ".hidden", "a" * 65):
        stem = file_stem(hostile)
        assert "/" not in stem and ".." not in stem and not stem.startswith(".")
        assert files.path(hostile).parent == tmp_path
    outside = tmp_path.parent / "outside.wav"
    outside.write_bytes(b"x")
    (tmp_path / "link.wav").symlink_to(outside)
    assert not inside(tmp_path / "link.wav", tmp_path)  # a symlink out of the directory is not in it
    assert not inside(tmp_path / ".." / "outside.wav", tmp_path)
    (tmp_path / "in.wav").write_bytes(b"x")
    assert inside(tmp_path / "in.wav", tmp_path)


def test_sweep_deletes_only_old_wav_files(tmp_path: Path) -> None:
    for name in ("old.wav", "new.wav", "old.txt"):
        (tmp_path / name).write_bytes(b"x")
    for name in ("old.wav", "old.txt"):
        os.utime(tmp_path / name, (1000.0, 1000.0))
    assert sweep(tmp_path, time.time() - 60) == ["old.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.wav", "old.txt"]
    assert sweep(tmp_path / "missing", time.time()) == []


def test_tickets_expire_and_name_one_grant(tmp_path: Path) -> None:
    tickets = Tickets(ttl_s=300)
    t = tickets.issue("recording", "c1", tmp_path / "c1.wav", WHO, now=1000.0)
    grant = tickets.redeem(t, 1299.0)
    assert grant is not None and (grant.kind, grant.call_id, grant.who) == ("recording", "c1", WHO)
    assert tickets.redeem(t, 1300.0) is None
    assert tickets.redeem("forged" * 5, 1000.0) is None
    small = Tickets(ttl_s=300, max_live=2)
    first = small.issue("voicemail", "a", tmp_path, WHO, 0.0)
    for n in range(2):
        small.issue("voicemail", str(n), tmp_path, WHO, 0.0)
    assert small.redeem(first, 1.0) is None  # the oldest went first


def test_byte_ranges() -> None:
    data = bytes(range(100))
    assert ranged(data, None).status_code == 200
    assert ranged(data, "bytes=0-").status_code == 206
    part = ranged(data, "bytes=10-19")
    assert (part.status_code, part.body, part.headers["Content-Range"]) == (206, data[10:20], "bytes 10-19/100")
    tail = ranged(data, "bytes=-5")
    assert tail.body == data[95:]
    assert ranged(data, "bytes=100-").status_code == 416
    assert ranged(data, "lines=1-2").status_code == 200  # not a byte range: the whole file


def test_wav_seconds_reads_the_header() -> None:
    header = (b"RIFF" + (36 + 16000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
              + (16000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + (16000).to_bytes(4, "little"))
    assert wav_seconds(header) == 1.0
    assert wav_seconds(b"not a wav" * 10) is None


QUEUES = """\
skills: [sales]
pause_reasons: [break]
queues:
  - {name: sales, skills: {sales: 1}, recording: always}
  - name: support
    skills: {sales: 1}
    recording: sometimes
agents:
  - {id: "1001", skills: {sales: 1}, queues: [sales, support]}
"""


def test_queue_recording_policy_is_validated_with_file_and_line() -> None:
    with pytest.raises(AcdConfigError) as err:
        parse_config(QUEUES, "queues.yaml")
    assert str(err.value).splitlines()[1:] == [
        ("  queues.yaml:7: queue 'support' field 'recording': unknown recording policy 'sometimes'; "
         "expected one of ('always', 'never', 'on_demand')")]
    config = parse_config(QUEUES.replace("sometimes", "on_demand"), "queues.yaml")
    assert [q.recording for q in config.queues] == ["always", "on_demand"]
    assert parse_config(QUEUES.replace("    recording: sometimes\n", ""), "q").queues[1].recording == "never"


def test_cti_yaml_recordings_section(tmp_path: Path) -> None:
    base = ("pbx: [{name: pbx1, host: 127.0.0.1, username: cti, secret: s}]\n"
            "security: {token_secret: 0123456789abcdef0123}\n")
    good = tmp_path / "cti.yaml"
    good.write_text(base + "recordings: {dir: rec/calls, pbx_dir: /var/spool/asterisk/monitor/cti, "
                           "retention_days: 30}\n")
    cfg = load_config(good)
    assert (cfg.recordings.dir, cfg.recordings.pbx_dir, cfg.recordings.retention_days) == (
        tmp_path / "rec/calls", "/var/spool/asterisk/monitor/cti", 30)
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "recordings:\n  pbx_dir: relative/dir\n  retention_days: soon\n  keep: yes\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    lines = [line for line in str(err.value).splitlines() if "recordings" in line]
    assert lines == [
        f"{bad}:4: recordings.pbx_dir: must be an absolute path on the PBX host",
        f"{bad}:5: recordings.retention_days: must be a whole number of days (0: never delete)",
        (f"{bad}:6: recordings.keep: unknown field; expected one of ['dir', 'pbx_dir', 'retention_days', "
         "'sweep_every_s']"),
    ]
