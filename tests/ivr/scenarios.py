"""End-to-end IVR scenarios, written against an AgiChannel factory so the same scenarios run over the scripted
peer today and over the PBX simulator's FastAGI client later: ``await SCENARIOS[name](make_channel)``.

A factory takes the caller's actions (tests/ivr/agi_peer.py: Press, Digits, Silence, Speak, Talk, HangUp) and
returns a connected AgiChannel whose caller behaves that way.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from ivr_flows.driver import FlowResult, run_flow
from ivr_flows.interpreter import FlowRun
from ivr_flows.model import Flow
from ivr_flows.steps import CallerHungUp, Hangup, QueueFigures, QueueHandoff, Transfer, VoicemailDone
from ivr_flows.validator import load_checked

from .agi_peer import Action, ChannelFactory, Digits, HangUp, Press, Silence, Talk
from .services import MemoryServices

FLOWS = Path(__file__).parent / "flows"
OPEN = datetime(2025, 6, 3, 10, 0, tzinfo=UTC)  # a Tuesday, 11:00 in London
NIGHT = datetime(2025, 6, 3, 22, 0, tzinfo=UTC)
CHRISTMAS = datetime(2025, 12, 25, 10, 0, tzinfo=UTC)

KNOWN = {"5551234": {"customer_id": "4711", "name": "John Doe", "grade": "gold", "vip": "false", "balance": 1200}}
VIP = {"5551234": {"customer_id": "7", "name": "Jane Big", "grade": "platinum", "vip": "true", "balance": 99}}


def all_nodes_flow() -> Flow:
    flow, errors = load_checked(FLOWS / "all_nodes.yaml")
    assert flow is not None, errors
    return flow


async def call(make_channel: ChannelFactory, actions: list[Action], services: MemoryServices,
               now: datetime = OPEN, flow: Flow | None = None, spool: str = "/tmp") -> tuple[FlowResult, object]:
    channel = make_channel(actions)
    env = channel.env
    run = FlowRun(flow or all_nodes_flow(), {"caller_number": env.caller_num, "uniqueid": env.uniqueid}, now,
                  spool_dir=spool)
    result = await run_flow(channel, run, services)
    return result, channel


def events(result: FlowResult) -> list[tuple[str, str, str]]:
    return [(p.node, p.event, p.value) for p in result.path]


async def known_caller_balance_then_sales(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN), figures={"sales": QueueFigures(3, 2, 45.0)})
    result, channel = await call(make_channel, [Press("1"), Press("2")], services)
    assert result.outcome == QueueHandoff("sales", ("english", "sales"), 1)
    sent = channel.sent  # type: ignore[attr-defined]
    assert 'STREAM FILE custom/welcome ""' in sent
    assert "SAY NUMBER 1200 \"\"" in sent and "SAY DIGITS 4711 \"\"" in sent
    assert ("main_menu", "key", "1") in events(result) and ("main_menu", "key", "2") in events(result)
    assert result.variables["name"] == "John Doe" and result.variables["choice"] == "2"
    assert services.enqueued == [result.outcome]


async def vip_fast_lane(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(VIP))
    result, _ = await call(make_channel, [], services)
    assert result.outcome == QueueHandoff("vip", ("english",), 10)


async def unknown_caller_account_retries(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_account={"79927398713": KNOWN["5551234"]})
    # silence, a number failing the Luhn check, then a good one; then 9 = goodbye
    actions: list[Action] = [Silence(), Digits("79927398710"), Digits("79927398713"), Press("9")]
    result, channel = await call(make_channel, actions, services)
    assert isinstance(result.outcome, Hangup)
    ev = events(result)
    assert ("identify.ask", "no_input", "") in ev
    assert ("identify.ask", "no_match", "*******8710") in ev  # card-like numbers are masked in the path
    assert ("identify.ask", "collected", "*******8713") in ev
    assert result.variables["account"] == "79927398713" and result.variables["customer_id"] == "4711"
    assert "STREAM FILE custom/no-input \"\"" in channel.sent  # type: ignore[attr-defined]
    assert "STREAM FILE custom/invalid \"\"" in channel.sent  # type: ignore[attr-defined]
    assert channel.sent[-1] == "HANGUP"  # type: ignore[attr-defined]


async def menu_no_input_no_match_then_agent(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, channel = await call(make_channel, [Silence(), Press("7"), Silence()], services)
    assert result.outcome == Transfer("2001", False)
    ev = [e for e in events(result) if e[0] == "main_menu"]
    assert [e[1] for e in ev] == ["node", "no_input", "no_match", "no_input", "retries_exhausted"]
    sent = channel.sent  # type: ignore[attr-defined]
    assert sent.count("WAIT FOR DIGIT 3000") == 3
    assert "STREAM FILE custom/no-input 123409" in sent and "STREAM FILE custom/no-match 123409" in sent


async def random_keys_for_minutes(make_channel: ChannelFactory) -> None:
    rnd = random.Random(7)
    keys = [Press(rnd.choice("5678*#")) for _ in range(5000)]
    services = MemoryServices(by_number=dict(KNOWN))
    result, channel = await call(make_channel, list(keys), services)
    assert result.outcome == Transfer("2001", False)  # retries exhausted -> the final action, an agent
    assert len(channel.sent) < 30  # type: ignore[attr-defined]


async def caller_hangs_up_during_prompt(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, channel = await call(make_channel, [HangUp()], services)
    assert result.outcome == CallerHungUp("greet")
    assert ("greet", "hangup", "caller") in events(result)
    # capture 03: result=-1 during the prompt, then HANGUP + 511 on the next command
    assert channel.received[:3] == [  # type: ignore[attr-defined]
        "200 result=-1 endpos=31840", "HANGUP", "511 Command Not Permitted on a dead channel or intercept routine"]


async def caller_hangs_up_in_menu(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, _ = await call(make_channel, [Press("1"), HangUp()], services)
    assert result.outcome == CallerHungUp("main_menu")
    assert ("main_menu", "key", "1") in events(result)  # the path so far is kept


async def after_hours_voicemail(make_channel: ChannelFactory) -> None:
    for now in (NIGHT, CHRISTMAS):
        services = MemoryServices(by_number=dict(KNOWN))
        result, channel = await call(make_channel, [Talk(4)], services, now=now)
        assert isinstance(result.outcome, VoicemailDone) and result.outcome.mailbox == "sales"
        assert services.voicemails[0].audio_path == result.outcome.audio_path
        sent = channel.sent  # type: ignore[attr-defined]
        assert any(s.startswith("RECORD FILE /tmp/ivr-1795389319-1-closed-1 wav # 60000 0 BEEP s=5") for s in sent)
        assert sent[-1] == "HANGUP"


async def record_set_goto_survey(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, _channel = await call(make_channel, [Press("3"), Talk(600), Press("8"), Press("4")], services)
    assert isinstance(result.outcome, Hangup)
    ev = events(result)
    assert ("record_msg", "recorded", "30.0s") in ev  # a ten-minute message is capped at max_seconds
    assert result.variables["note"].startswith("message /tmp/ivr-")
    assert ("survey", "no_match", "8") in ev and ("survey", "survey", "overall=4") in ev
    assert [(s.question, s.score) for s in services.surveys] == [("overall", 4)]
    assert result.variables["score"] == "4"


async def callback_then_goodbye(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, _ = await call(make_channel, [Press("4")], services)
    assert isinstance(result.outcome, Hangup)
    assert [(c.number, c.queue) for c in services.callbacks] == [("5551234", "sales")]


async def long_wait_offers_callback(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN), figures={"sales": QueueFigures(40, 0, 900.0)})
    result, _ = await call(make_channel, [Press("2")], services)
    assert isinstance(result.outcome, Hangup) and len(services.callbacks) == 1


async def outside_transfer(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN))
    result, _ = await call(make_channel, [Press("0")], services)
    assert result.outcome == Transfer("+442071234567", True)


async def crm_down_means_not_found(make_channel: ChannelFactory) -> None:
    services = MemoryServices(by_number=dict(KNOWN), fail={"lookup_customer", "queue_figures"})
    result, _ = await call(make_channel, [Digits("1230"), Press("2")], services)
    # CRM down: the caller is asked for the account, then routed on the default path (figures unavailable)
    assert result.outcome == QueueHandoff("sales", ("english", "sales"), 1)
    assert ("identify.by_number", "lookup", "failed") in events(result)


SCENARIOS: dict[str, Callable[[ChannelFactory], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        known_caller_balance_then_sales, vip_fast_lane, unknown_caller_account_retries,
        menu_no_input_no_match_then_agent, random_keys_for_minutes, caller_hangs_up_during_prompt,
        caller_hangs_up_in_menu, after_hours_voicemail, record_set_goto_survey, callback_then_goodbye,
        long_wait_offers_callback, outside_transfer, crm_down_means_not_found,
    )
}
