"""A flow's `skills: [korean]` end to end: the IVR hands the caller to the shared sales queue needing Korean;
the caller waits there while only a non-Korean agent is free (who takes a plain sales caller meanwhile),
and goes to the Korean-speaking agent when they become ready. Through the PBX simulator, the real FastAGI
sessions and the server's router."""

from __future__ import annotations

from pathlib import Path

from pbxsim.people import CallerBehaviour

from .stack import Stack, running_stack, settle

QUEUES = """\
priority_aging_per_s: 1.0
skills: [sales, korean, english]
pause_reasons: [break]
queues:
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4}
agents:
  - {id: "1001", name: Wang Fang, skills: {sales: 5, english: 5}, queues: [sales], endpoint: PJSIP/1001}
  - {id: "1002", name: Kim Minji, skills: {sales: 3, korean: 4}, queues: [sales], endpoint: PJSIP/1002}
"""

# Key 1: the Korean line of the sales queue; key 2: plain sales.
FLOW = """\
flow: main
language: en-US
fallback: {queue: sales}
start: menu
nodes:
  menu:
    type: menu
    prompts: [demo/main-menu]
    no_input: [demo/no-input]
    no_match: [demo/no-match]
    retries: 2
    on_fail: plain
    options:
      - {key: "1", next: korean}
      - {key: "2", next: plain}
  korean: {type: queue, queue: sales, skills: [korean], priority: 3}
  plain: {type: queue, queue: sales}
"""

KOREAN = CallerBehaviour(keys=("1",), patience=10_000)
PLAIN = CallerBehaviour(keys=("2",), patience=10_000)


async def _waiting(st: Stack, channel: str) -> str:
    call_id = await st.until(lambda: st.call_id_of(channel), what=f"{channel} known")
    await st.until(lambda: st.call_state(call_id) == "waiting", what=f"{channel} waiting")
    return call_id


async def test_a_korean_caller_waits_for_the_korean_agent(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW, encoding="utf-8")
    async with running_stack(tmp_path, acd=QUEUES, flows_dir=flows, agents=("1001", "1002")) as st:
        assert st.server.flows.get("main").name == "main"
        st.login("1001")
        korean = st.place_call("13800138021", KOREAN)
        korean_call = await _waiting(st, korean)
        view = st.server.projector.router.call_view(korean_call)
        assert view is not None and (view.queue, view.skills) == ("sales", ("korean",))
        # 1001 is free all along, yet the caller hears their place announced, again and again.
        await st.until(lambda: st.tap.agi_commands(korean).count("STREAM FILE queue-youarenext *") >= 2,
                       what="two announcements to the Korean caller")
        assert st.agent_state("1001") == "available" and st.call_state(korean_call) == "waiting"

        # A plain sales caller arriving behind them goes to 1001 at once.
        plain = st.place_call("13800138022", PLAIN)
        plain_call = await st.until(lambda: st.call_id_of(plain), what="plain caller known")
        await st.until(lambda: st.phase(plain_call) == "connected", what="plain caller connected to 1001")
        assert st.server.projector.router.call_view(plain_call).agent_id == "1001"  # type: ignore[union-attr]
        assert st.call_state(korean_call) == "waiting"

        # The Korean-speaking agent logs in and gets the Korean caller.
        st.login("1002")
        await st.until(lambda: st.phase(korean_call) == "connected", what="Korean caller connected")
        assert st.server.projector.router.call_view(korean_call).agent_id == "1002"  # type: ignore[union-attr]
        # The queue_log names the queue, as for any caller of it.
        await st.until(lambda: f"|{korean_call}|sales|1002|CONNECT|" in st.queue_log(), what="CONNECT line")
        assert f"|{korean_call}|sales|NONE|ENTERQUEUE|" in st.queue_log()
        await settle(st)
