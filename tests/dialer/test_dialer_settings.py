"""cti.yaml's `dialer:` section: checked once, one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.config import ConfigError, load_config

BASE = ("pbx:\n  - {name: pbx1, host: 127.0.0.1, username: cti, secret: s}\n"
        "security: {token_secret: a-long-enough-secret}\n")


def test_the_dialer_section_is_read(tmp_path: Path) -> None:
    p = tmp_path / "cti.yaml"
    p.write_text(BASE + "dialer:\n  trunk: PJSIP/{number}@carrier\n  wrap_up_s: 20\n"
                 "  lines: {caller_id_num: '4008001234', abandon_message: custom/sorry}\n"
                 "  campaigns:\n    survey: {machine_action: message, machine_message: custom/later}\n")
    dialer = load_config(p).dialer
    assert dialer is not None
    assert dialer.dial_string("+8613800138000") == "PJSIP/+8613800138000@carrier"
    assert dialer.wrap_up_s == 20.0 and dialer.lines.abandon_message == "custom/sorry"
    survey = dialer.lines_of("survey")
    assert (survey.machine_action, survey.machine_message, survey.caller_id_num) == (
        "message", "custom/later", "4008001234")  # the site's lines, with the campaign's changes
    assert dialer.lines_of("other") == dialer.lines


def test_no_dialer_section_no_dialer(tmp_path: Path) -> None:
    p = tmp_path / "cti.yaml"
    p.write_text(BASE)
    assert load_config(p).dialer is None


@pytest.mark.parametrize(("section", "error"), [
    ("dialer: {trunk: PJSIP/x@carrier}", "dialer.trunk: 'PJSIP/x@carrier' has no {number}"),
    ("dialer: {ring_timeout_s: 10}", "dialer.ring_timeout_s: 10.0 is under the 15 s a line must ring"),
    ("dialer: {lines: {machine_action: shout}}", "dialer.lines.machine_action: 'shout' is not one of"),
    ("dialer: {campaigns: {a: {tone: 1}}}", "dialer.campaigns.a.tone: unknown setting"),
    ("dialer: {pace: fast}", "dialer.pace: unknown setting"),
    ("dialer: [trunk]", "dialer: must be a mapping"),
])
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, section: str, error: str) -> None:
    p = tmp_path / "cti.yaml"
    p.write_text(BASE + section + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:4: {error}" in str(e.value)
