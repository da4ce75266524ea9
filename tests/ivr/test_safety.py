"""No call is dropped by the IVR's own fault; no caller value reaches an AGI command unchecked."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.agi.protocol import AgiEnvironment, AgiReply
from ivr_flows.driver import run_flow
from ivr_flows.interpreter import FlowRun, luhn_ok, render_prompt
from ivr_flows.loader import parse_flow
from ivr_flows.model import Template
from ivr_flows.steps import AgiCommand, CallerHungUp, Hangup, Outcome, QueueHandoff, Transfer, VoicemailDone

from .agi_peer import Digits, HangUp, Press, Silence, Talk, env_for, scripted
from .scenarios import KNOWN, OPEN, all_nodes_flow
from .services import MemoryServices


def flow_of(text: str) -> object:
    flow, errors = parse_flow(text, "t.yaml")
    assert flow is not None and not errors, errors
    return flow


BAD_TRANSFER = """flow: t
fallback: {queue: general, priority: 2}
start: a
nodes:
  a: {type: set, values: {dest: "{caller_name}"}, next: b}
  b: {type: transfer, to: "{dest}"}
"""


async def test_interpreter_error_goes_to_safe_fallback() -> None:
    run = FlowRun(flow_of(BAD_TRANSFER), {"caller_name": "John Doe"}, OPEN)  # type: ignore[arg-type]
    result = await run_flow(scripted([]), run, MemoryServices())
    assert result.outcome == QueueHandoff("general", (), 2, reason="ivr_error")
    assert result.path[-1].event == "error" and "not a number" in result.path[-1].value


class SilentChannel:
    """A channel whose replies never come (Asterisk stuck): the command times out."""

    env: AgiEnvironment = env_for()

    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        raise TimeoutError


async def test_channel_timeout_goes_to_safe_fallback() -> None:
    run = FlowRun(all_nodes_flow(), {"caller_number": "5551234"}, OPEN)
    result = await run_flow(SilentChannel(), run, MemoryServices(by_number=dict(KNOWN)))
    assert isinstance(result.outcome, QueueHandoff) and result.outcome.reason == "ivr_error"


INJECT = """flow: t
start: a
nodes:
  a: {type: play, prompts: ["greetings/{name}", "custom/after"], next: b}
  b: {type: say, say: digits, value: "{name}", next: c}
  c: {type: hangup}
"""


async def test_variables_cannot_inject_into_agi_commands() -> None:
    evil = "x\nHANGUP"
    run = FlowRun(flow_of(INJECT), {"name": evil}, OPEN)  # type: ignore[arg-type]
    channel = scripted([])
    result = await run_flow(channel, run, MemoryServices())
    assert isinstance(result.outcome, Hangup)
    assert channel.sent == ['STREAM FILE custom/after ""', "HANGUP"]
    assert [p.event for p in result.path].count("note") == 2  # both unsafe uses were skipped and noted
    assert render_prompt(Template("greetings/{name}"), {"name": "../../etc/passwd"}) is None
    assert render_prompt(Template("greetings/{name}"), {"name": "gold"}) == "greetings/gold"


def test_step_by_step_is_pure() -> None:
    run = FlowRun(flow_of(INJECT), {"name": "ann"}, OPEN)  # type: ignore[arg-type]
    assert run.start() == AgiCommand(("STREAM FILE", "greetings/ann", ""))
    step = run.feed(AgiReply(200, "0", endpos=100))
    assert step == AgiCommand(("STREAM FILE", "custom/after", ""))
    step = run.feed(AgiReply(200, "0", endpos=100))
    assert step == AgiCommand(("HANGUP",))  # "ann" is not digits: say is skipped, not failed
    assert run.feed(AgiReply(200, "1")) == Hangup("flow")


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710") and not luhn_ok("12a4")


actions = st.lists(
    st.one_of(
        st.builds(Press, st.sampled_from(list("0123456789*#"))),
        st.builds(Digits, st.text("0123456789#", min_size=1, max_size=14)),
        st.just(Silence()), st.just(HangUp()), st.builds(Talk, st.floats(0.1, 3.0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(actions=actions, known=st.booleans(), crm_down=st.booleans())
async def test_any_caller_behaviour_ends_in_an_outcome(actions: list[object], known: bool, crm_down: bool) -> None:
    services = MemoryServices(by_number=dict(KNOWN) if known else {}, fail={"lookup_customer"} if crm_down else set())
    channel = scripted(actions)  # type: ignore[arg-type]
    run = FlowRun(all_nodes_flow(), {"caller_number": "5551234", "uniqueid": "1.1"}, OPEN, spool_dir="/tmp")
    result = await run_flow(channel, run, services)
    assert isinstance(result.outcome, Outcome)
    assert isinstance(result.outcome, (QueueHandoff, Transfer, Hangup, VoicemailDone, CallerHungUp))
    # Asterisk answers GET DATA with '*' in the result ("200 result=*"), which ctiserver.agi.protocol's
    # parse_reply does not accept yet (reported to the lead): the caller then takes the safe fallback.
    star = any(isinstance(a, (Press, Digits)) and "*" in getattr(a, "key", getattr(a, "digits", "")) for a in actions)
    assert star or not (isinstance(result.outcome, QueueHandoff) and result.outcome.reason == "ivr_error")
    assert len(channel.sent) < 120
    assert all(Path(p).parent == Path("/tmp") for p in [run.variables.get("message", "/tmp/x")])
