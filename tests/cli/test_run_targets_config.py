"""`ctiserver run` with a mistake in the targets (queues.yaml) or in the metrics section (cti.yaml): one line
naming the file and the line, exit code 2, nothing started."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import ROOT, one_line_error, run_cli

QUEUES = """\
skills: [support]
pause_reasons: [break]
agent_targets: {long_pause_by_reason_s: {nap: 60}}
queues:
  - {name: support, skills: {support: 1}, service_level: {percent: 80, within_s: 20, formula: answered_only}}
agents:
  - {id: "2001", skills: {support: 1}, queues: [support]}
"""


def _config(tmp_path: Path, queues: Path, metrics: str = "") -> Path:
    cfg = tmp_path / "cti.yaml"
    cfg.write_text(f"""\
pbx: [{{name: pbx1, host: 127.0.0.1, port: 5038, username: cti, secret: x}}]
agi: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: 0}}
crm: {{url: "sqlite:///{tmp_path / 'crm.db'}"}}
ivr: {{flows_dir: {ROOT / 'ctiserver/demo/flows'}, default_flow: main}}
acd: {{queues_file: {queues}}}
security: {{token_secret: "0123456789abcdef0123"}}
{metrics}""")
    return cfg


def test_a_bad_metrics_allow_is_one_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ROOT / "ctiserver/demo/queues.yaml", "metrics:\n  allow: [prometheus.lan]\n")
    res = run_cli("run", "--config", str(cfg), timeout=60)
    one_line_error(res, f"ctiserver run: {cfg}:9: metrics.allow[0]: not an IP address or network: 'prometheus.lan'")
    assert not (tmp_path / "crm.db").exists()


def test_bad_targets_are_one_line_each(tmp_path: Path) -> None:
    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUES)
    res = run_cli("run", "--config", str(_config(tmp_path, queues)), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [
        (f"ctiserver run: {queues}:3: field 'agent_targets.long_pause_by_reason_s.nap': unknown pause reason "
         "'nap'; declare it under 'pause_reasons'"),
        (f"ctiserver run: {queues}:5: queue 'support' field 'service_level.formula': unknown service level "
         "formula 'answered_only'; expected one of ('abandons_count', 'abandons_ignored', 'short_abandons_excluded')"),
    ]
    assert not (tmp_path / "crm.db").exists()
