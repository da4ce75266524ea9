"""The caller's wait inside our FastAGI session (hold music, position announcements,
the callback key), the offer (ring, bridge, ring-no-answer), abandons, all through the PBX simulator.

What the caller hears is read from the simulator's AMI stream (AGIExecStart: the commands Asterisk ran for
the CTI on that channel), which is what a real Asterisk reports.
"""

from __future__ import annotations

from pathlib import Path

from crmstore.model import Outcome
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from pbxsim.people import CallerBehaviour

from .queues import TEST_QUEUES
from .stack import Stack, running_stack, settle

SUPPORT = CallerBehaviour(keys=("", "2"), patience=10_000)  # greeting, then "2" in the menu: support
COMPLAINTS = CallerBehaviour(keys=("", "3"), patience=10_000)  # the demo flow gives complaints priority 10
SUPERVISOR = Viewer("e2e", CrmRole.SUPERVISOR)


def _bridged_to(st: Stack, caller: str) -> str | None:
    """The name of the channel sharing the caller's bridge in the PBX (the agent's leg), if any."""
    snap = st.sim.snapshot()
    me = snap.by_name().get(caller)
    if me is None or me.bridge is None:
        return None
    others = [n for n in snap.bridges.get(me.bridge, ()) if n != caller]
    return others[0] if others else None


async def _waiting(st: Stack, channel: str) -> str:
    call_id = await st.until(lambda: st.call_id_of(channel), what=f"{channel} known")
    await st.until(lambda: st.call_state(call_id) == "waiting", what=f"{channel} waiting")
    return call_id


async def test_caller_hears_position_announcements_then_reaches_an_agent(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        first = st.place_call("13800138011", SUPPORT)
        first_call = await _waiting(st, first)
        second = st.place_call("13800138012", SUPPORT)
        second_call = await _waiting(st, second)
        # Nobody is logged in: both wait; announcements come every 0.4 s (announce_every_s).
        await st.until(
            lambda: st.tap.agi_commands(second).count("STREAM FILE queue-holdtime *") >= 2,
            what="two announcements to the second caller",
        )
        heard_first = st.tap.agi_commands(first)
        heard_second = st.tap.agi_commands(second)
        assert "STREAM FILE cti/hold-music *" in heard_first
        assert "STREAM FILE queue-youarenext *" in heard_first
        assert "STREAM FILE queue-thereare *" not in heard_first
        # Second in line: "there are 1 calls waiting ahead of you", then the estimated hold time.
        i = heard_second.index("STREAM FILE queue-thereare *")
        assert heard_second[i : i + 6] == [
            "STREAM FILE queue-thereare *",
            "SAY NUMBER 1 *",
            "STREAM FILE queue-callswaiting *",
            "STREAM FILE queue-holdtime *",
            heard_second[i + 4],
            "STREAM FILE queue-minutes *",
        ]
        assert heard_second[i + 4].startswith("SAY NUMBER ")
        assert st.phase(first_call) == "queued" and st.phase(second_call) == "queued"

        st.login("1001")
        await st.until(lambda: st.phase(first_call) == "connected", what="first caller connected")
        agent_leg = _bridged_to(st, first)
        assert agent_leg is not None and agent_leg.startswith("PJSIP/1001-")
        assert st.agent_state("1001") == "on_call" and st.call_state(first_call) == "connected"
        # The caller left the waiting loop (the bridge pulled it out of AGI); no more hold music for it.
        assert not st.sim.snapshot().by_name()[first].in_agi
        # The second caller moves up: next announcement says "you are next".
        said = len(st.tap.agi_commands(second))
        await st.until(
            lambda: "STREAM FILE queue-youarenext *" in st.tap.agi_commands(second)[said:],
            what="second caller hears it is next",
        )
        assert st.call_state(second_call) == "waiting"
        stats = st.server.projector.stats.live.snapshot(st.now())["support"]
        assert (stats.answered, stats.calls_waiting, stats.abandoned) == (1, 1, 0)
        await settle(st)


async def test_ring_no_answer_puts_agent_not_responding_and_caller_back_at_the_head(tmp_path: Path) -> None:
    # Support rings 30 virtual seconds (1.5 s here): time enough for a complaints caller to queue meanwhile.
    acd = TEST_QUEUES.replace(
        "{name: support, skills: {support: 1}, ring_timeout_s: 10",
        "{name: support, skills: {support: 1}, ring_timeout_s: 30",
    )
    async with running_stack(tmp_path, acd=acd, agents=("1001", "1002")) as st:
        st.sim.add_agent_phone("1001", answer_after=None)  # rings, nobody picks up
        st.login("1001")
        x = st.place_call("13800138021", SUPPORT)
        x_call = await st.until(lambda: st.call_id_of(x), what="X known")
        await st.until(lambda: st.call_state(x_call) == "ringing", what="X ringing agent 1001")
        assert st.agent_state("1001") == "reserved"
        # Y waits in complaints, priority 10: normally ahead of X (priority 0) for an agent serving both.
        y = st.place_call("13800138022", COMPLAINTS)
        y_call = await _waiting(st, y)

        await st.until(lambda: st.agent_state("1001") == "not_responding", what="ring-no-answer")
        assert st.call_state(x_call) == "waiting"
        # The PBX drops the unanswered leg (cause 19) just after the OriginateResponse the ACD acted on.
        await st.until(
            lambda: any(
                h["Channel"].startswith("PJSIP/1001-") and h["Cause"] == "19" for h in st.tap.named("Hangup")
            ),
            what="agent leg hung up, no answer",
        )
        await st.until(lambda: st.phase(x_call) == "queued", what="X back to queued in the model")
        await st.until(lambda: "RINGNOANSWER" in st.queue_log(), what="RINGNOANSWER in the queue_log")

        st.login("1002")
        await st.until(lambda: st.phase(x_call) == "connected", what="X re-offered and connected")
        leg = _bridged_to(st, x)
        assert leg is not None and leg.startswith("PJSIP/1002-")
        assert st.call_state(y_call) == "waiting" and st.agent_state("1002") == "on_call"
        assert st.agent_state("1001") == "not_responding"
        await settle(st)


async def test_caller_hangs_up_while_waiting_is_an_abandon(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        impatient = CallerBehaviour(keys=("", "2"), patience=30)  # 1.5 s at time_scale 0.05
        a = st.place_call("13800138031", impatient)
        a_call = await _waiting(st, a)
        await st.until(lambda: st.call_state(a_call) is None, timeout=5, what="A gave up")
        assert a_call not in st.pbx.model.calls
        stats = await st.until(
            lambda: (s := st.server.projector.stats.live.snapshot(st.now())["support"]).abandoned and s,
            what="abandon counted",
        )
        assert (stats.abandoned, stats.short_abandoned, stats.answered, stats.calls_waiting) == (1, 0, 0, 0)
        row = await st.until_async(lambda: st.server.crm.interaction(a_call, SUPERVISOR), what="CRM row")
        assert row.outcome is Outcome.ABANDONED
        assert row.queue == "support" and row.agent == "" and row.answered_at is None
        assert row.wait_s > 0.5 and "main_menu" in " ".join(row.ivr_path)
        await st.until(lambda: "ABANDON" in st.queue_log(), what="ABANDON in the queue_log")


async def test_callback_request_keeps_the_callers_place(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        # X presses * on the hold music: a callback, then X hangs up (the dialplan ends the call).
        x = st.place_call("13800138041", CallerBehaviour(keys=("", "2", "*"), patience=10_000))
        x_call = await st.until(lambda: st.call_id_of(x), what="X known")
        await st.until(lambda: st.call_state(x_call) == "callback", what="X is a virtual caller")
        # The confirmation is played after the router has made X virtual: wait for it, don't race it.
        await st.until(
            lambda: any(c.startswith("STREAM FILE cti/callback-confirmed") for c in st.tap.agi_commands(x)),
            what="callback confirmed to X",
        )
        await st.until(lambda: st.sim.channel(x) is None, what="X's line hung up")
        # Y arrives after X and waits on the line.
        y = st.place_call("13800138042", SUPPORT)
        y_call = await _waiting(st, y)
        assert st.call_state(x_call) == "callback"
        assert st.server.projector.router.call_view(y_call).position == 2  # type: ignore[union-attr]

        st.login("1001")
        # X's turn comes first: the agent's phone rings, then the PBX dials X back and bridges the two.
        await st.until(lambda: st.call_state(x_call) == "connected", what="callback offered and answered")
        assert st.agent_state("1001") == "on_call"
        assert st.server.projector.router.agent_view("1001", st.now()).call_id == x_call
        assert st.call_state(y_call) == "waiting"

        def dialled_back() -> bool:
            snap = st.sim.snapshot()
            agent = next((c for c in snap.channels if c.name.startswith("PJSIP/1001-")), None)
            if agent is None or agent.bridge is None:
                return False
            peers = [n for n in snap.bridges[agent.bridge] if n != agent.name]
            # The customer's own leg (ctiserver.outbound: its Originate tells busy, no answer or answer).
            return any(p.startswith("Local/13800138041@cti-customer-") for p in peers)

        await st.until(dialled_back, what="agent bridged to X's number")
        # app_queue's grammar has no callback verb: the caller left the line with the callback key.
        await st.until(lambda: f"|{x_call}|support|NONE|EXITWITHKEY|*|" in st.queue_log(), what="the key in the log")
