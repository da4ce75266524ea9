"""The `ctiserver` command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ctiserver.gateway.auth import hash_password, verify_password
from pbxsim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "ctiserver.cli"]


def run_cli(*args: str, input: str | None = None, timeout: float = 60,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, input=input, timeout=timeout,
                          cwd=cwd, env=env)


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A user's mistake: exit code 2 and exactly one line on stderr, no traceback."""
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_flows_check_accepts_the_demo_flow_and_reports_errors_with_positions(tmp_path: Path):
    ok = run_cli("flows", "check", "ctiserver/demo/flows/main.yaml", "--queues", "ctiserver/demo/queues.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: bad\nstart: a\nnodes:\n  a: {type: play, prompts: [x], next: nowhere}\n"
                   "  q: {type: queue, queue: no_such_queue}\n")
    res = run_cli("flows", "check", str(bad), "--queues", "ctiserver/demo/queues.yaml")
    assert res.returncode == 1
    assert f"{bad}:4:" in res.stdout and "nowhere" in res.stdout
    assert "no_such_queue" in res.stdout


def test_flows_check_broken_yaml(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("flow: x\nnodes: [\n")
    res = run_cli("flows", "check", str(bad))
    assert res.returncode == 1 and str(bad) in res.stdout


def test_flows_check_finds_a_speech_word_the_model_does_not_know(tmp_path: Path):
    """The server refuses a speech menu whose word its model lacks; `flows check --speech-model` says so
    before the flow is deployed, at the word's line."""
    example = ROOT / "ivr_flows" / "examples" / "speech_menu_ko.yaml"
    bad = tmp_path / "menu.yaml"
    bad.write_text(example.read_text(encoding="utf-8").replace("keywords: [문의]", "keywords: [문의, 쀍뷁]"),
                   encoding="utf-8")
    assert run_cli("flows", "check", str(bad)).returncode == 0  # without a model the words are not checked
    res = run_cli("flows", "check", str(bad), "--speech-model", "ko")
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if "쀍뷁" in x)
    assert line.startswith(f"{bad}:21:") and "vocabulary" in line and "문의" not in line
    assert run_cli("flows", "check", str(example), "--speech-model", "ko").returncode == 0
    one_line_error(run_cli("flows", "check", str(bad), "--speech-model", f"ko={tmp_path}"),
                   "not a vosk model directory")
    one_line_error(run_cli("flows", "check", str(bad), "--speech-model", "xx"), "no installed model for 'xx'")


def test_hash_password_round_trip():
    res = run_cli("hash-password", "--stdin", input="correct horse battery\n")
    assert res.returncode == 0
    assert verify_password("correct horse battery", res.stdout.strip())
    assert not verify_password("wrong", res.stdout.strip())
    short = run_cli("hash-password", "--stdin", input="short\n")
    assert short.returncode != 0 and "8 characters" in short.stderr


def test_crm_import_gbk_csv_and_export(tmp_path: Path):
    csv_path = tmp_path / "customers.csv"
    csv_path.write_bytes("name,company,phones\n张伟,华为,13800138000\n李娜,,not-a-phone\n".encode("gbk"))
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    res = run_cli("crm", "import", str(csv_path), "--db", db)
    assert res.returncode == 0, res.stderr
    assert "张伟" not in res.stderr
    out = tmp_path / "export.json"
    exp = run_cli("crm", "export", str(out), "--db", db)
    assert exp.returncode == 0, exp.stderr
    assert "张伟" in out.read_text(encoding="utf-8")


def test_crm_import_prints_a_readable_report(tmp_path: Path):
    csv_path = tmp_path / "customers.csv"
    csv_path.write_text("name,phones\n张伟,13800138000\nZhang Wei,+86 138 0013 8000\nShort,12345\n")
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    res = run_cli("crm", "import", str(csv_path), "--db", db)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.splitlines() == [
        "row 2: merged into customer 1 ('张伟'): name '张伟' kept, 'Zhang Wei' added to the notes as another name",
        (
            "row 3: rejected: phone number '12345' is not valid (default country CN): no such number range"
            " in country code +86"
        ),
        f"{csv_path} (utf-8): 3 rows: 1 created, 1 merged, 1 rejected",
    ]


def test_crm_export_unknown_format(tmp_path: Path):
    res = run_cli("crm", "export", str(tmp_path / "out.xlsx"), "--db", f"sqlite:///{tmp_path / 'crm.db'}")
    one_line_error(res, "ctiserver crm export:", "'xlsx'", ".csv or .json")
    assert list(tmp_path.iterdir()) == []


def test_crm_export_into_a_missing_folder(tmp_path: Path):
    res = run_cli("crm", "export", str(tmp_path / "no" / "out.csv"), "--db", f"sqlite:///{tmp_path / 'crm.db'}")
    one_line_error(res, f"folder {tmp_path / 'no'} does not exist")


def test_crm_export_from_a_database_that_does_not_exist(tmp_path: Path):
    res = run_cli("crm", "export", str(tmp_path / "out.csv"), "--db", f"sqlite:///{tmp_path / 'crm.db'}")
    one_line_error(res, f"no CRM database at /{tmp_path / 'crm.db'}")
    assert list(tmp_path.iterdir()) == []  # neither an empty database nor an empty export


def test_crm_import_of_a_missing_file(tmp_path: Path):
    res = run_cli("crm", "import", str(tmp_path / "nope.csv"), "--db", f"sqlite:///{tmp_path / 'crm.db'}")
    one_line_error(res, f"cannot read {tmp_path / 'nope.csv'}: No such file or directory")
    assert list(tmp_path.iterdir()) == []  # no database created for nothing


def test_crm_import_of_a_binary_file(tmp_path: Path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"name\n" + bytes(range(256)) * 4)
    res = run_cli("crm", "import", str(junk), "--db", f"sqlite:///{tmp_path / 'crm.db'}")
    one_line_error(res, str(junk), "cannot decode the file as UTF-8 or GBK")


def test_crm_database_in_a_missing_folder(tmp_path: Path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("name\nx\n")
    res = run_cli("crm", "import", str(csv_path), "--db", f"sqlite:///{tmp_path / 'no' / 'crm.db'}")
    one_line_error(res, "cannot open the CRM database", "does not exist")


def test_crm_postgresql_down(tmp_path: Path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("name\nx\n")
    for command, file in (("import", csv_path), ("export", tmp_path / "out.json")):
        res = run_cli("crm", command, str(file), "--db", f"postgresql://crm:s3cret@127.0.0.1:{port}/crm")
        line = one_line_error(res, "cannot open the CRM database", f"127.0.0.1:{port}")
        assert "s3cret" not in line


def test_crm_needs_a_database(tmp_path: Path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("name\nx\n")
    res = run_cli("crm", "import", str(csv_path), cwd=tmp_path)
    one_line_error(res, "--db", "--config")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]  # no var/crm.db made on the way


def test_crm_takes_the_database_from_the_server_config(tmp_path: Path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("name,phones\nLi,13800138000\n")
    cfg = _config(tmp_path, 5038, "x")
    res = run_cli("crm", "import", str(csv_path), "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "crm.db").is_file()
    broken = tmp_path / "broken.yaml"
    broken.write_bytes(b"crm: {url: x}\n\xff")
    one_line_error(run_cli("crm", "import", str(csv_path), "--config", str(broken)), f"{broken}:2: not UTF-8")


def test_run_and_flows_check_refuse_unreadable_files_in_one_line(tmp_path: Path):
    binary = tmp_path / "cti.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    one_line_error(run_cli("run", "--config", str(binary)), "ctiserver run:", f"{binary}:1: not UTF-8")
    deep = tmp_path / "queues.yaml"
    deep.write_text("skills: " + "[" * 100_000 + "]" * 100_000 + "\n")
    res = run_cli("flows", "check", "ctiserver/demo/flows/main.yaml", "--queues", str(deep))
    one_line_error(res, "ctiserver flows check:", f"{deep}:1", "nesting depth")
    flow = tmp_path / "flow.yaml"
    flow.write_text("flow: x\nstart: a\nnodes: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n")
    res = run_cli("flows", "check", str(flow))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.startswith(f"{flow}:3:") and "nested deeper than 64 levels" in res.stdout


def _config(tmp_path: Path, ami_port: int, secret: str) -> Path:
    cfg = tmp_path / "cti.yaml"
    cfg.write_text(f"""
pbx:
  - {{name: pbx1, host: 127.0.0.1, port: {ami_port}, username: cti, secret: {secret}}}
agi: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: 0}}
crm: {{url: "sqlite:///{tmp_path / 'crm.db'}"}}
ivr: {{flows_dir: {ROOT / 'ctiserver/demo/flows'}, default_flow: main}}
acd: {{queues_file: {ROOT / 'ctiserver/demo/queues.yaml'}}}
accounts:
  - {{username: agent1001, role: agent, agent_id: "1001", password_hash: "{hash_password('s3cret-pass')}"}}
security: {{token_secret: "0123456789abcdef0123"}}
""")
    return cfg


async def test_run_with_wrong_ami_credentials_exits_non_zero(tmp_path: Path):
    sim = Simulator()
    port = await sim.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "run", "--config", str(_config(tmp_path, port, "wrong-secret")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sim.stop()
    assert proc.returncode == 3
    assert b"AMI login refused" in err


def test_run_with_a_broken_config_names_file_and_line(tmp_path: Path):
    cfg = tmp_path / "cti.yaml"
    cfg.write_text("pbx:\n  - {name: a, host: h, port: 99999, username: u, secret: s}\nsecurity: {}\n")
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 2
    assert f"{cfg}:2" in res.stderr and "port" in res.stderr
    assert "token_secret" in res.stderr


def test_demo_serves_the_consoles_and_handles_calls(tmp_path: Path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*CLI, "demo", "--data-dir", str(tmp_path / "demo"), "--http-port", "0", "--agi-port", "0",
         "--calls-per-minute", "60", "--duration", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Agent console:" in line:
                url = line.split()[2]
            if line.startswith("[demo]") and "answered" in line:
                answered = int(line.split("answered ")[1].split(",")[0])
                if answered > 0:
                    break
        assert url is not None, "".join(lines)
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "<html" in page.lower()
        sup = urllib.request.urlopen(url.replace("/agent", "/supervisor"), timeout=5).read().decode()
        assert "<html" in sup.lower()
        assert any(line.startswith("[demo]") and "answered 0," not in line for line in lines), "".join(lines)
    finally:
        proc.terminate()
        proc.wait(20)


def test_run_refuses_a_journal_written_by_a_newer_version(tmp_path: Path):
    import sqlite3

    from crmstore.store import open_store

    async def make() -> None:  # a CRM database of this version...
        await (await open_store(f"sqlite:///{tmp_path / 'crm.db'}")).close()

    asyncio.run(make())
    with sqlite3.connect(tmp_path / "crm.db") as con:  # then a later ctiserver wrote its journal here
        con.execute("INSERT INTO journal_meta VALUES ('format', '99')")
    res = run_cli("run", "--config", str(_config(tmp_path, 1, "secret")))
    one_line_error(res, "ctiserver:", "format 99, newer than this ctiserver understands")
