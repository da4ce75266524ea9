"""cti.yaml's outbound sections (callbacks, web_callbacks, click_to_call): read into typed settings, and every
bad value is one line naming the file, the line and the field."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from ctiserver.config import ConfigError, load_config
from ivr_flows.interpreter import is_open

BASE = ("pbx:\n  - {name: pbx1, host: 127.0.0.1, username: cti, secret: s}\n"
        "security: {token_secret: a-long-enough-secret}\n"
        "crm: {default_country: GB}\n")

FULL = """\
callbacks:
  queue: sales
  customer_ring_s: 40
  caller_id_num: "+442071234567"
  retry: {max_attempts: 4, busy_s: 120, no_answer_s: 600, failed_s: 900}
web_callbacks:
  port: 8091
  queue: web
  countries: [GB, IE]
  per_number: 3
  per_number_s: 43200
  per_client: 10
  per_client_s: 600
  horizon_s: 604800
  allow_origins: [https://www.example.com]
  window:
    timezone: Europe/London
    hours: {mon-fri: ["09:00-18:00"], sat: ["10:00-13:00"]}
    holidays: [2026-12-25]
click_to_call: {agent_ring_s: 15, customer_ring_s: 45, caller_id_num: "4008001234"}
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "cti.yaml"
    p.write_text(BASE + text)
    return load_config(p)


def test_the_outbound_sections_are_read(tmp_path: Path) -> None:
    cfg = _load(tmp_path, FULL)
    cb = cfg.callbacks
    assert (cb.queue, cb.customer_ring_s, cb.caller_id_num) == ("sales", 40.0, "+442071234567")
    assert (cb.retry.max_attempts, cb.retry.busy_s, cb.retry.no_answer_s, cb.retry.failed_s) == (4, 120, 600, 900)
    web = cfg.web_callbacks
    assert cfg.web_api_port == 8091
    assert (web.queue, web.countries, web.default_country) == ("web", ("GB", "IE"), "GB")
    assert (web.per_number, web.per_number_s, web.per_client, web.per_client_s) == (3, 43200.0, 10, 600.0)
    assert web.horizon_s == 604800.0 and web.allow_origins == ("https://www.example.com",)
    assert web.window is not None and web.window.timezone == "Europe/London"
    assert web.window.hours[5] == ((time(10), time(13)),) and 6 not in web.window.hours
    assert is_open(web.window, datetime(2026, 11, 30, 9, 30, tzinfo=UTC))  # a Monday, 09:30 in London
    assert not is_open(web.window, datetime(2026, 12, 25, 11, 0, tzinfo=UTC))  # the holiday
    click = cfg.click_to_call
    assert (click.agent_ring_s, click.customer_ring_s, click.caller_id_num) == (15.0, 45.0, "4008001234")


def test_without_the_sections_the_defaults_hold_and_the_web_api_is_not_served(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    assert cfg.web_api_port is None and cfg.callbacks.retry.max_attempts == 3
    assert (cfg.web_callbacks.countries, cfg.web_callbacks.default_country) == (("GB",), "GB")  # the CRM's


@pytest.mark.parametrize(("section", "error"), [
    ("callbacks: {customer_ring_s: 5}", "callbacks.customer_ring_s: must be a number of seconds from 15 to 300, not 5"),
    ("callbacks: {retry: {max_attempts: 0}}", "callbacks.retry.max_attempts: must be a whole number from 1 to 20, not 0"),
    ("callbacks: {retry: {busy: 60}}", "callbacks.retry.busy: unknown setting (max_attempts, busy_s"),
    ("callbacks: {caller_id_num: 'ACME'}", "callbacks.caller_id_num: must be digits"),
    ("callbacks: {queue_name: sales}", "callbacks.queue_name: unknown setting"),
    ("callbacks: [sales]", "callbacks: must be a mapping"),
    ("web_callbacks: {port: 70000}", "web_callbacks.port: must be a whole number from 1 to 65535, not 70000"),
    ("web_callbacks: {port: '8091'}", "web_callbacks.port: must be a whole number from 1 to 65535, not '8091'"),
    ("web_callbacks: {per_client: -1}", "web_callbacks.per_client: must be a whole number from 1 to 100000"),
    ("web_callbacks: {per_number_s: soon}", "web_callbacks.per_number_s: must be a number of seconds"),
    ("web_callbacks: {countries: [XX]}", "web_callbacks.countries[0]: 'XX' is not a country code"),
    ("web_callbacks: {countries: []}", "web_callbacks.countries: list the countries"),
    ("web_callbacks: {allow_origins: ['https://example.com/page']}",
     "web_callbacks.allow_origins[0]: 'https://example.com/page' is not an origin"),
    ("web_callbacks: {window: {timezone: Mars/Base, hours: {mon: ['09:00-17:00']}}}",
     "web_callbacks.window.timezone: 'Mars/Base' is not a time zone"),
    ("web_callbacks: {window: {timezone: UTC, hours: {mon: ['17:00-09:00']}}}",
     "web_callbacks.window.hours.mon: '17:00-09:00' is not a range"),
    ("web_callbacks: {window: {timezone: UTC, hours: {moon: ['09:00-17:00']}}}",
     "web_callbacks.window.hours.moon: 'moon' is not days"),
    ("web_callbacks: {window: {timezone: UTC}}", "web_callbacks.window.hours: give the hours per day"),
    ("web_callbacks: {window: {timezone: UTC, hours: {mon: ['09:00-17:00']}, holidays: [tomorrow]}}",
     "web_callbacks.window.holidays[0]: 'tomorrow' is not a date"),
    ("click_to_call: {agent_ring_s: 0}", "click_to_call.agent_ring_s: must be a number of seconds from 5 to 120"),
])
def test_a_bad_outbound_setting_is_one_line_naming_it(tmp_path: Path, section: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, section + "\n")
    lines = str(e.value).splitlines()
    assert any(f"cti.yaml:{BASE.count(chr(10)) + 1}: {error}" in line for line in lines), lines
    assert len([x for x in lines if "cti.yaml:" in x]) == 1


def test_the_example_cti_yaml_documents_the_outbound_sections() -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "docs" / "cti.example.yaml")
    assert cfg.web_api_port == 8091 and cfg.web_callbacks.window is not None
    assert cfg.callbacks.queue == "sales" and cfg.dialer is not None and cfg.click_to_call.agent_ring_s == 20.0
