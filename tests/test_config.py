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
