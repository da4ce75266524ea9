"""What the shipped dialplan dials must exist on the PBX these files make: a [globals] dial string names a
pjsip.conf endpoint or an extension of this dialplan, so the placeholder values load and work anywhere; and the
transfers and outside calls follow [globals] (CTI_AGENT_TECH, CTI_TRUNK) rather than assuming PJSIP."""

from __future__ import annotations

import re
from pathlib import Path

from pbxsim import dialplan as dp
from tests.asterisk_config.ini import parse_file

CONF_DIR = Path(__file__).resolve().parents[2] / "asterisk-config"
PLAN = dp.load([CONF_DIR / "extensions.conf"])
# PJSIP_HEADER only exists on PJSIP channels: the auto-answer context is PJSIP by nature.
PJSIP_ONLY = {"cti-agent-dial"}


def pjsip_endpoints() -> set[str]:
    return {s.name for s in parse_file(CONF_DIR / "pjsip.conf") if not s.template and s.get("type") == "endpoint"}


def dial_string_problem(value: str, endpoints: set[str]) -> str | None:
    tech, _, rest = value.partition("/")
    if tech == "PJSIP":
        resource, _, endpoint = rest.partition("@")  # PJSIP/<endpoint> or PJSIP/<number>@<endpoint>
        name = endpoint or resource
        return None if name in endpoints else f"no endpoint [{name}] in pjsip.conf"
    if tech == "Local":
        exten, _, context = rest.split("/", 1)[0].partition("@")
        return None if PLAN.exists(context, exten) else f"no extension {exten} in [{context}]"
    return None


def test_dial_strings_in_globals_reach_something_this_pbx_has() -> None:
    endpoints = pjsip_endpoints()
    assert {"trunk", "1001"} <= endpoints
    problems = [f"{name} = {value}: {why}" for name, value in PLAN.globals.items()
                if re.match(r"(PJSIP|Local)/", value) and (why := dial_string_problem(value, endpoints))]
    assert not problems, problems
    assert PLAN.globals["CTI_FALLBACK_DIAL"].startswith("Local/")  # the documented placeholder


def test_transfers_and_outside_calls_take_the_technology_from_the_globals() -> None:
    hard_coded = [f"[{ctx.name}] {ext.name},{step.priority}: Dial({step.data})"
                  for ctx in PLAN.contexts.values() if ctx.name not in PJSIP_ONLY
                  for ext in ctx.extensions.values() for step in ext.steps.values()
                  if step.app == "Dial" and not step.data.startswith("${")]
    assert not hard_coded, hard_coded
    assert PLAN.globals["CTI_AGENT_TECH"] == "PJSIP" and PLAN.globals["CTI_TRUNK"] == "PJSIP/%s@trunk"


def test_the_auto_answer_contexts_are_wired() -> None:
    dial = PLAN.step("cti-agent-dial", "1001", 1)
    assert dial is not None and dial.app == "Dial" and dial.data.endswith(",b(cti-autoanswer^s^1)")
    handler = [PLAN.step("cti-autoanswer", "s", n) for n in (1, 2, 3)]
    assert [(s.app, s.data.split("=", 1)[0]) for s in handler if s] == [
        ("Set", "PJSIP_HEADER(add,Call-Info)"), ("Set", "PJSIP_HEADER(add,Alert-Info)"), ("Return", "")]
