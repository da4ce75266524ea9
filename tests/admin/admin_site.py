"""A site whose configuration lives in files the administration page writes: cti.yaml (accounts),
queues.yaml and a flows directory (the demo flow and a line with business hours)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from acd.config import parse_config
from ctiserver.admin.service import AdminFiles
from tests.gateway.gw_harness import ACCOUNTS, DEMO, AppSite, app_site

# Agent 1002 starts without the complaints skill and queue: 1001 is the only one who can serve complaints.
QUEUES_YAML = """\
# Queues of the administration tests.
priority_aging_per_s: 1.0
skills: [sales, support, complaints, english]
pause_reasons: [break, lunch, training, coaching, supervisor]
queues:
  - {name: vip, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: support, skills: {support: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: complaints, skills: {complaints: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
  - {name: general, skills: {english: 1}, ring_timeout_s: 600, wrap_up_s: 30, announce_every_s: 60}
agents:
  - {id: "1001", name: 李娜 Li Na, skills: {sales: 5, support: 5, complaints: 5, english: 5},
     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/1001}
  - {id: "1002", name: Alice Smith, skills: {sales: 5, support: 5, english: 5},
     queues: [vip, sales, support, general], endpoint: PJSIP/1002}
"""

HOURS_FLOW = """\
# A line open in office hours.
flow: hours_line
calendars:
  office:
    timezone: Asia/Shanghai
    hours:
      mon-fri: "09:00-18:00"
    holidays: ["2026-10-01"]
start: check
nodes:
  check:
    type: branch
    cases:
      - when: {open: office}
        next: to_sales
    default: bye
  to_sales: {type: queue, queue: sales}
  bye: {type: hangup}
"""


def cti_yaml() -> str:
    return "# The site of the administration tests.\n" + yaml.safe_dump({
        "pbx": [{"name": "pbx1", "host": "127.0.0.1", "port": 5038, "username": "cti", "secret": "ctisecret"}],
        "agi": {"host": "127.0.0.1", "port": 4573, "allow": ["127.0.0.1"]},
        "http": {"host": "127.0.0.1", "port": 8088},
        "acd": {"queues_file": "queues.yaml"},
        "accounts": [dict(a) for a in ACCOUNTS],
        "security": {"token_secret": "gateway-tests-secret-0123456789"},
    }, allow_unicode=True, sort_keys=False)


@asynccontextmanager
async def admin_site(tmp: Path, **settings: Any) -> AsyncIterator[AppSite]:
    cti, queues, flows = tmp / "cti.yaml", tmp / "queues.yaml", tmp / "flows"
    cti.write_text(cti_yaml(), encoding="utf-8")
    queues.write_text(QUEUES_YAML, encoding="utf-8")
    flows.mkdir()
    shutil.copy(DEMO / "flows" / "main.yaml", flows / "main.yaml")
    (flows / "hours_line.yaml").write_text(HOURS_FLOW, encoding="utf-8")
    async with app_site(tmp, acd_yaml=QUEUES_YAML, acd=parse_config(QUEUES_YAML, str(queues)), flows_dir=flows,
                        admin_files=AdminFiles(accounts_file=cti, queues_file=queues), **settings) as site:
        yield site
