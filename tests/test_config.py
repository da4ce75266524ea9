from ipaddress import ip_network
from pathlib import Path

import pytest

from ctiserver.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads():
    cfg = load_config(ROOT / "docs" / "cti.example.yaml")
    assert [p.name for p in cfg.pbxes] == ["pbx1"]
    assert cfg.agi.port == 4573 and cfg.flow_by_did["4008001234"] == "main"
    assert cfg.database_url == "sqlite:///var/crm.db"


def test_errors_name_file_line_and_field(tmp_path: Path):
    p = tmp_path / "cti.yaml"
    p.write_text("pbx:\n  - {name: a, host: h, port: 99999, username: u, secret: s}\n"
                 "  - {name: a, host: h, username: u}\nhttp: {port: eighty}\nsecurity: {token_secret: short}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert f"{p}:2: pbx[0].port" in text
    assert f"{p}:3: pbx[1]: missing secret" in text
    assert "http.port: must be a whole number" in text
    assert "token_secret: must be at least 16" in text


def test_broken_yaml_is_a_clear_error(tmp_path: Path):
    p = tmp_path / "cti.yaml"
    p.write_text("pbx: [\n")
    with pytest.raises(ConfigError, match=r"cti.yaml:2:1: not valid YAML"):
        load_config(p)


# ------------------------------------------------------------------------------------ agi.allow

_BASE = "security: {token_secret: a-long-enough-secret}\n"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cti.yaml"
    p.write_text(text + _BASE)
    return p


def test_example_config_binds_fastagi_to_the_pbx_network_and_lists_the_pbx():
    cfg = load_config(ROOT / "docs" / "cti.example.yaml")
    assert cfg.agi.host not in ("0.0.0.0", "::", "")
    assert cfg.agi_allow == (ip_network("10.0.0.10"),)


def test_agi_allow_takes_addresses_and_networks(tmp_path: Path):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: pbx.invalid, username: u, secret: s}\n"
                         "agi:\n  allow: [10.0.0.10, 10.0.1.0/24, '::1', 'fd00::/8']\n")
    # With agi.allow given, the PBX host is not looked up: a name that does not resolve is no error here.
    assert load_config(p).agi_allow == tuple(map(ip_network, ["10.0.0.10", "10.0.1.0/24", "::1", "fd00::/8"]))


def test_agi_allow_defaults_to_the_pbx_hosts_addresses(tmp_path: Path):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.10, username: u, secret: s}\n"
                         "  - {name: b, host: localhost, username: u, secret: s}\n"
                         "  - {name: c, host: 10.0.0.10, port: 5039, username: u, secret: s}\n")
    allow = load_config(p).agi_allow
    assert allow[0] == ip_network("10.0.0.10") and allow.count(ip_network("10.0.0.10")) == 1
    rest = allow[1:]
    assert rest and all(net.is_loopback for net in rest)  # localhost, as /etc/hosts resolves it


def test_a_pbx_host_that_does_not_resolve_is_a_config_error_when_agi_allow_is_unset(tmp_path: Path):
    p = _write(tmp_path, "pbx:\n  - name: a\n    host: pbx.invalid\n    username: u\n    secret: s\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:3: pbx[0].host: 'pbx.invalid' does not resolve" in str(e.value)
    assert "agi.allow" in str(e.value)


def test_agi_allow_errors_name_file_line_and_entry(tmp_path: Path):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.10, username: u, secret: s}\n"
                         "agi:\n  allow:\n    - 10.0.0.1/24\n    - pbx1.example\n    - 10:20\n    - [1]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert f"{p}:5: agi.allow[0]: not an IP address or network: '10.0.0.1/24'" in text  # host bits set
    assert f"{p}:6: agi.allow[1]: not an IP address or network: 'pbx1.example'" in text
    assert f"{p}:7: agi.allow[2]: not an IP address or network: '10:20'" in text  # not YAML's 620
    assert f"{p}:8: agi.allow[3]: must be an IP address or network" in text


@pytest.mark.parametrize("allow", ["[]", "10.0.0.10", "{a: 1}"])
def test_agi_allow_must_be_a_non_empty_list(tmp_path: Path, allow: str):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.10, username: u, secret: s}\n"
                         f"agi: {{host: 10.0.0.20, allow: {allow}}}\n")
    with pytest.raises(ConfigError, match=r"cti.yaml:3: agi.allow: list the PBXes"):
        load_config(p)


def test_binary_file_names_file_and_line(tmp_path: Path):
    p = tmp_path / "cti.yaml"
    p.write_bytes(b"pbx: []\n" + bytes(range(128, 256)))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.errors == [f"{p}:2: not UTF-8 text (byte 8)"]


def test_oversized_file_is_refused_unread(tmp_path: Path):
    p = tmp_path / "cti.yaml"
    with p.open("wb") as fh:  # sparse: 50 MB of size and no disk
        fh.truncate(50_000_000)
    with pytest.raises(ConfigError, match="larger than 2000000 bytes"):
        load_config(p)


def test_deep_nesting_is_a_clear_error(tmp_path: Path):
    p = tmp_path / "cti.yaml"
    p.write_text("pbx: []\nextra: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=r"cti.yaml:2:\d+: not valid YAML: nested deeper than 64 levels"):
        load_config(p)


# ------------------------------------------------------------------------------------ agents (phones)


def test_agents_phones_default_to_pjsip_extensions_without_auto_answer(tmp_path: Path):
    cfg = load_config(_write(tmp_path, "pbx: [{name: a, host: 127.0.0.1, username: u, secret: s}]\n"))
    assert (cfg.agents.device, cfg.agents.auto_answer) == ("PJSIP/{extension}", False)
    example = load_config(ROOT / "docs" / "cti.example.yaml")
    assert (example.agents.device, example.agents.auto_answer) == ("PJSIP/{extension}", False)
    assert "agents" not in example.extra


def test_agents_device_template_and_auto_answer(tmp_path: Path):
    pbx = "pbx: [{name: a, host: 127.0.0.1, username: u, secret: s}]\n"
    cfg = load_config(_write(tmp_path, pbx + 'agents: {device: "Local/{extension}@agent-phones"}\n'))
    assert cfg.agents.device == "Local/{extension}@agent-phones/n"
    cfg = load_config(_write(tmp_path, pbx + 'agents: {device: "PJSIP/{extension}", auto_answer: true}\n'))
    assert cfg.agents.auto_answer is True


@pytest.mark.parametrize(("agents", "message"), [
    ('{device: "PJSIP/{extension}&PJSIP/9999"}', "agents.device: 'PJSIP/{extension}&PJSIP/9999' is not a dial"),
    ('{device: "PJSIP/{ext}"}', "agents.device: 'PJSIP/{ext}': only {extension} may stand in braces"),
    ('{device: "IAX2/office/{extension}", auto_answer: true}', "agents.auto_answer: auto-answer is a SIP header"),
    ("{auto_answer: often}", "agents.auto_answer: must be true or false"),
    ("{ring_s: 10}", "agents.ring_s: unknown field"),
    ("[PJSIP]", "agents: must be a mapping"),
])
def test_agents_mistakes_name_the_line(tmp_path: Path, agents: str, message: str):
    p = _write(tmp_path, "pbx: [{name: a, host: 127.0.0.1, username: u, secret: s}]\n" + f"agents: {agents}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:2: {message}" in str(e.value)


# ------------------------------------------------------------------------------------ consoles


def test_consoles_settings(tmp_path: Path):
    cfg = load_config(ROOT / "docs" / "cti.example.yaml")
    assert (cfg.consoles.lost_after_s, cfg.consoles.ping_interval_s, cfg.consoles.ping_timeout_s) == (30, 20, 20)
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.1, username: u, secret: s}\n"
                         "consoles: {lost_after_s: 0, ping_interval_s: 2.5}\n")
    consoles = load_config(p).consoles
    assert (consoles.lost_after_s, consoles.ping_interval_s, consoles.ping_timeout_s) == (0, 2.5, 20)
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.1, username: u, secret: s}\n"
                         "consoles:\n  lost_after_s: soon\n  ping_timeout_s: 0\n  grace: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.errors == [
        f"{p}:4: consoles.lost_after_s: must be a number of seconds from 0 to 86400, not 'soon'",
        f"{p}:5: consoles.ping_timeout_s: must be a number of seconds from 0.1 to 86400, not 0",
        f"{p}:6: consoles.grace: unknown setting (lost_after_s, ping_interval_s, ping_timeout_s)",
    ]


# ------------------------------------------------------------------------------------ metrics


def test_metrics_default_to_loopback_and_take_addresses_and_networks(tmp_path: Path):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.1, username: u, secret: s}\n")
    metrics = load_config(p).metrics
    assert metrics.enabled and metrics.allow == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    cfg = load_config(ROOT / "docs" / "cti.example.yaml")
    assert cfg.metrics.enabled and cfg.metrics.allow == (ip_network("127.0.0.1"), ip_network("10.0.5.0/24"))
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.1, username: u, secret: s}\n"
                         "metrics: {enabled: false}\n")
    assert not load_config(p).metrics.enabled


@pytest.mark.parametrize(("metrics", "line", "message"), [
    ("metrics: {allow: [10.0.0.0/33]}\n", 3, "metrics.allow[0]: not an IP address or network: '10.0.0.0/33'"),
    ("metrics:\n  allow:\n    - 127.0.0.1\n    - prometheus.lan\n", 6,
     "metrics.allow[1]: not an IP address or network: 'prometheus.lan'"),
    ("metrics: {allow: []}\n", 3, "metrics.allow: list the Prometheus servers' addresses or networks"),
    ("metrics: {enabled: sometimes}\n", 3, "metrics.enabled: must be true or false"),
    ("metrics:\n  enabled: true\n  port: 9100\n", 5, "metrics.port: unknown field; expected one of"),
    ("metrics: on\n", 3, "metrics: must be a mapping"),
])
def test_metrics_mistakes_are_one_line_with_the_file_and_line(tmp_path: Path, metrics: str, line: int,
                                                              message: str):
    p = _write(tmp_path, "pbx:\n  - {name: a, host: 10.0.0.1, username: u, secret: s}\n" + metrics)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert len(e.value.errors) == 1, e.value.errors
    assert e.value.errors[0].startswith(f"{p}:{line}: {message}"), e.value.errors
