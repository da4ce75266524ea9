"""`ctiserver campaign …` as an operator runs it: a real process on a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DEFINITION = """\
name: spring
kind: sales
mode: predictive
script: |
  Good morning, this is Example Co.
dispositions: [sale, not_interested, call_back]
windows:
  - {days: mon-fri, from: "09:00", to: "17:00"}
max_attempts: 3
retry:
  busy: {retries: 2, after: 10m}
  wrong_number: {retries: 0}
abandon_cap: 3%
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ctiserver.cli", "campaign", *args], check=False,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_save_import_status_pause_resume(tmp_path: Path):
    db = f"sqlite://{tmp_path}/crm.db"
    yaml_file = tmp_path / "spring.yaml"
    yaml_file.write_text(DEFINITION)
    res = run("save", str(yaml_file), "--db", db)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "campaign spring created (paused)\n"

    contacts = tmp_path / "list.csv"
    contacts.write_bytes("手机,姓名\n13800138000,张伟\n12345,错号\n13800138000,重复\n+18005550123,Toll free\n"
                         .encode("gbk"))
    res = run("import", "--campaign", "spring", str(contacts), "--db", db)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "row 1: added",
        ("row 2: rejected: phone number '12345' is not valid (default country CN): no such number range in country"
        " code +86"),
        "row 3: rejected: +8613800138000 is a duplicate of row 1",
        ("row 4: rejected: never callable: +18005550123 may be in any of 42 time zones (America/Adak … Pacific/Saipan)"
        " and no moment is inside the calling windows (mon-fri 09:00-17:00) in all of them; give its timezone"),
        f"{contacts} (gbk): 4 rows: 1 added, 3 rejected",
    ]
    res = run("status", "spring", "--db", db)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == ("campaign spring (paused): 1 contacts, 1 remaining (1 never dialled,"
                                          " 0 waiting for a retry, 0 dialling), 0 done, 0 excluded")
    assert run("resume", "spring", "--db", db).stdout == "campaign spring active\n"
    assert run("resume", "spring", "--db", db).stdout == "campaign spring active (it already was)\n"
    assert run("list", "--db", db).stdout == "spring: sales, predictive, active; 1 contacts, 1 remaining\n"
    assert run("pause", "spring", "--db", db).stdout == "campaign spring paused\n"


def test_bad_input_is_one_line(tmp_path: Path):
    db = f"sqlite://{tmp_path}/crm.db"
    greedy = tmp_path / "greedy.yaml"
    greedy.write_text(DEFINITION.replace("busy: {retries: 2", "busy: {retries: 5"))
    one_line_error(run("save", str(greedy), "--db", db),
                   "ctiserver campaign save:", "retry.busy: 5 retries would call a number 6 times, more than"
                   " max_attempts 3")
    assert not (tmp_path / "crm.db").exists()  # refused before the database was opened
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nwindows: [\n")
    one_line_error(run("save", str(broken), "--db", db), "not valid YAML at line 3")

    good = tmp_path / "spring.yaml"
    good.write_text(DEFINITION)
    assert run("save", str(good), "--db", db).returncode == 0
    big = tmp_path / "big.csv"
    big.write_text("phone\n" + "+12125550123\n" * 100_000)
    one_line_error(run("import", "--campaign", "spring", str(big), "--db", db, "--max-size", "1"),
                   "larger than the import limit of 1.0 MiB")
    contacts = tmp_path / "c.csv"
    contacts.write_text("phone\n+12125550123\n")
    one_line_error(run("import", "--campaign", "autumn", str(contacts), "--db", db), "no campaign 'autumn'")
    one_line_error(run("status", "autumn", "--db", db), "ctiserver campaign status: no campaign 'autumn'")
    one_line_error(run("select", "--campaign", "spring", "everyone", "--db", db), "no selection 'everyone'")
    one_line_error(run("select", "--campaign", "spring", "bought_3_days_ago", "--today", "25/11", "--db", db),
                   "--today '25/11'")
    res = run("select", "--campaign", "spring", "bought_3_days_ago", "--today", "2026-11-25", "--db", db)
    assert res.stdout == "selection bought_3_days_ago: 0 rows: 0 added, 0 rejected\n", res.stderr
    one_line_error(run("list", "--db", f"sqlite://{tmp_path}/none.db"), "no CRM database at")
