"""`ctiserver report`: the hand-computed day (test_day.py) as a table, CSV, JSON and an Excel workbook, in
English and Chinese; every mistake one line and exit code 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from crmstore.store import open_store

from .test_day import QUEUES, the_day

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")

    async def build() -> None:
        store = await open_store(f"sqlite:///{tmp / 'crm.db'}")
        try:
            r, _ = the_day(store)
            await r.journal.flush()
        finally:
            await store.close()

    asyncio.run(build())
    (tmp / "queues.yaml").write_text(QUEUES)
    (tmp / "cti.yaml").write_text(f"""
pbx: [{{name: pbx1, host: 127.0.0.1, port: 5038, username: cti, secret: s}}]
crm: {{url: "sqlite:///{tmp / 'crm.db'}"}}
ivr: {{flows_dir: {ROOT / 'ctiserver/demo/flows'}, default_flow: main}}
acd: {{queues_file: queues.yaml}}
centre: {{timezone: UTC}}
security: {{token_secret: "0123456789abcdef0123"}}
""")
    return tmp


def report(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctiserver.cli", "report", *args, "--config", str(site / "cti.yaml")],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def test_a_table_in_english_and_in_chinese(site: Path) -> None:
    res = report(site, "inbound-summary", "--from", "2027-01-15", "--interval", "total")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Inbound summary  2027-01-15 00:00 – 2027-01-16 00:00 (UTC)")
    support = re.split(r"\s{2,}", next(line for line in lines if " support " in line))
    assert support[:8] == ["2027-01-15 – 2027-01-15", "support", "6", "3", "2", "1", "16.7", "50.0"]
    assert any("not running" in line for line in lines)  # the gap is said
    zh = report(site, "agent-load", "--from", "2027-01-15", "--interval", "total", "--lang", "zh")
    assert zh.returncode == 0 and "座席负载率" in zh.stdout and "示忙：break" in zh.stdout


def test_csv_json_and_excel_carry_the_same_figures(site: Path, tmp_path: Path) -> None:
    args = ("call-loss", "--from", "2027-01-15", "--interval", "hour", "--queue", "support")
    rows = list(csv.reader(io.StringIO(report(site, *args, "--format", "csv").stdout)))
    assert rows[0][:3] == ["Period", "Queue", "Offered"]
    assert [r[:3] for r in rows[1:] if not r[0].startswith("#")] == [["2027-01-15 08:00", "support", "6"]]
    doc = json.loads(report(site, *args, "--format", "json").stdout)
    assert doc["rows"] == [{"period": "2027-01-15 08:00", "queue": "support", "offered": 6, "answered": 3,
                            "abandoned": 2, "timed_out": 0, "lost": 1, "lost_calls": 3, "loss_rate": 50.0}]
    out = tmp_path / "loss.xlsx"
    res = report(site, *args, "--format", "xlsx", "--output", str(out), "--lang", "zh")
    assert res.returncode == 0, res.stderr
    sheet = openpyxl.load_workbook(out).active
    assert sheet["A1"].value.startswith("呼损率") and sheet["I3"].value == "呼损率"
    assert [c.value for c in sheet[4]] == ["2027-01-15 08:00", "support", 6, 3, 2, 0, 1, 3, 50]


@pytest.mark.parametrize(("args", "needle"), [
    (("no-such-report", "--from", "2027-01-15"), "unknown report 'no-such-report'"),
    (("inbound-summary",), "say which period"),
    (("inbound-summary", "--from", "2027-01-15", "--to", "2027-01-10"), "the period is empty or inverted"),
    (("inbound-summary", "--from", "2020-01-01", "--to", "2027-01-10"), "longer than three years"),
    (("inbound-summary", "--from", "15/01/2027"), "is not a date"),
    (("inbound-summary", "--from", "2027-01-15", "--queue", "billing"), "unknown queue 'billing'"),
    (("agent-load", "--from", "2027-01-15", "--agent", "zz"), "unknown agent 'zz'"),
    (("inbound-summary", "--from", "2027-01-15", "--format", "pdf"), "unknown format 'pdf'"),
    (("inbound-summary", "--from", "2027-01-15", "--interval", "week"), "unknown interval 'week'"),
    (("inbound-summary", "--from", "2027-01-15", "--format", "xlsx"), "add --output"),
    (("inbound-summary", "--from", "2027-01-15", "--format", "xlsx", "--output", "/no/such/dir/x.xlsx"),
     "does not exist"),
])
def test_every_mistake_is_one_line(site: Path, args: tuple[str, ...], needle: str) -> None:
    res = report(site, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr and needle in lines[0], res.stderr


def test_a_database_that_is_not_there(site: Path, tmp_path: Path) -> None:
    res = report(site, "inbound-summary", "--from", "2027-01-15", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert res.returncode == 2 and "no CRM database" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_the_outbound_report_from_the_command_line(site: Path) -> None:
    # A day without campaigns: the columns and the note, no rows, never an error.
    rows = list(csv.reader(io.StringIO(report(site, "outbound", "--from", "2027-01-15", "--format", "csv",
                                              "--lang", "zh").stdout)))
    assert rows[0][:5] == ["日期", "外呼活动", "拨打次数", "接通", "本人接通"] and "名单渗透率" in rows[0]
    doc = json.loads(report(site, "outbound", "--from", "2027-01-15", "--format", "json").stdout)
    assert doc["report"] == "outbound" and doc["rows"] == [] and doc["interval"] == "day"
    assert [c["key"] for c in doc["columns"]][:5] == ["period", "campaign", "attempts", "connects", "right_party"]
