"""Faults end to end: the AMI link dropped mid-call, the PBX's AMI gone for a while, the CTI server
restarted with calls in progress, the PBX down when the server starts, wrong AMI credentials.

After every fault the CTI's call model must equal the simulator's truth: the same live channels (uniqueid,
name, bridge), grouped into the same calls, with sensible phases; the ACD and the CRM must have heard of what
happened while the link was down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from acd import decisions as d
from crmstore.model import Outcome
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from ctiserver.ami.errors import AmiAuthError
from ctiserver.ami.link import LinkState
from ctiserver.gateway.backend import WrapUpForm
from pbxsim.people import CallerBehaviour
from pbxsim.world import OriginateRequest

from .queues import TEST_QUEUES
from .stack import AMI_USER, Stack, agent_principal, running_stack, settle, start_server, truth_view

SUPPORT = CallerBehaviour(keys=("", "2"), patience=10_000)  # greeting, then "2" in the menu: support
# A caller the CTI lost waits this long (virtual seconds) in [cti-fallback] before the operator is dialled.
SLOW_FALLBACK = {"CTI_FALLBACK_WAIT": "100000"}
SUPERVISOR = Viewer("e2e", CrmRole.SUPERVISOR)


async def _connected_and_waiting(st: Stack) -> tuple[str, str]:
    """Caller A talking to agent 1001, caller B waiting in the support queue (inside its FastAGI session)."""
    st.login("1001")
    a = st.place_call("13800138001", SUPPORT)
    await st.until(lambda: st.agent_state("1001") == "on_call", what="A connected to 1001")
    b = st.place_call("13800138002", SUPPORT)
    await st.until(lambda: st.call_state(st.call_id_of(b) or "?") == "waiting", what="B waiting")
    return a, b


def _bridge_of(st: Stack, name: str) -> str | None:
    chan = st.sim.snapshot().by_name().get(name)
    return chan.bridge if chan else None


async def test_link_dropped_mid_call_resyncs_to_the_truth(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        a, b = await _connected_and_waiting(st)
        c = st.place_call("13800138003", SUPPORT)
        await st.until(lambda: st.call_state(st.call_id_of(c) or "?") == "waiting", what="C waiting")
        await settle(st)
        c_call = st.call_id_of(c)
        assert c_call is not None
        link = st.pbx.link

        assert st.sim.drop_ami_clients() == 1
        # While the link is down: C gives up, D arrives (its FastAGI session opens before AMI knows it).
        st.hang_up(c)
        d = st.place_call("13800138004", SUPPORT)

        await st.until(lambda: link.connects == 2 and link.is_up, what="reconnect + resync")
        truth = await settle(st)
        assert c not in {name for name, _ in truth["channels"].values()}
        assert {a, b, d} <= {name for name, _ in truth["channels"].values()}

        a_call, b_call = st.call_id_of(a), st.call_id_of(b)
        assert a_call and b_call
        assert st.phase(a_call) == "connected"
        assert st.phase(b_call) == "queued"
        # The ended call: gone from the model, the ACD counts an abandon, the CRM has its history. The
        # FastAGI session saw C hang up while AMI was away, at its true time: a wait of a moment, so a
        # short abandon.
        assert c_call not in st.pbx.model.calls and c_call in st.pbx.model.ended
        assert st.call_state(c_call) is None
        await st.until(
            lambda: (q := st.server.projector.stats.live.snapshot(st.now())["support"]).abandoned
            + q.short_abandoned == 1,
            what="C counted as abandoned",
        )
        row = await st.until_async(lambda: st.server.crm.interaction(c_call, SUPERVISOR), what="C in the CRM")
        assert row.outcome is Outcome.ABANDONED and row.queue == "support"
        # The call that arrived during the outage is known, waits in the queue, and was not duplicated.
        d_call = await st.until(lambda: st.call_id_of(d), what="D known")
        await st.until(lambda: st.call_state(d_call) == "waiting", what="D waiting")
        assert st.phase(d_call) == "queued"
        assert len(st.pbx.model.live_calls()) == 3

        # Life goes on: A hangs up, the agent wraps up, B (first in line) reaches the agent.
        st.hang_up(a)
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="1001 in wrap-up")
        await st.ready("1001")
        await st.until(lambda: st.phase(b_call) == "connected", what="B connected after the resync")
        await settle(st)


async def test_calls_that_change_while_ami_is_away_are_reflected(tmp_path: Path) -> None:
    """The PBX's AMI is gone for a while (not just one dropped socket) and A's call ends meanwhile. After
    AMI comes back, the model, the ACD and the CRM agree with what happened."""
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        a, b = await _connected_and_waiting(st)
        a_call, b_call = st.call_id_of(a), st.call_id_of(b)
        assert a_call and b_call
        agent_leg = st.server.queueing.agent_leg(a_call)
        assert agent_leg and _bridge_of(st, agent_leg) == _bridge_of(st, a) is not None
        link = st.pbx.link

        await st.sim.stop_ami()
        await st.until(lambda: link.state is LinkState.CONNECTING, what="link down")
        st.hang_up(a)
        await st.until(
            lambda: st.sim.channel(a) is None and st.sim.channel(agent_leg) is None,
            what="A's call torn down in the PBX",
        )
        # The CTI cannot know yet: its model still shows the call connected.
        assert st.phase(a_call) == "connected"
        assert st.agent_state("1001") == "on_call"
        await asyncio.sleep(0.3)
        await st.sim.start()

        await st.until(lambda: link.connects == 2 and link.is_up, timeout=15, what="reconnect + resync")
        await settle(st)
        assert a_call not in st.pbx.model.calls
        ended = st.pbx.model.ended[a_call]
        assert ended.phase.value == "ended" and ended.cause == 0  # we did not see how it ended
        # The ACD heard of it: the agent's call ended (wrap-up), B is still first in line.
        await st.until(lambda: st.agent_state("1001") == "wrap_up", what="1001 in wrap-up after resync")
        assert st.call_state(a_call) is None
        assert st.call_state(b_call) == "waiting" and st.phase(b_call) == "queued"
        # The agent wraps up the call that ended during the outage; the CRM gets its history.
        await st.console.save_wrapup(agent_principal("1001"), a_call, WrapUpForm("resolved", "cut off"))
        row = await st.server.crm.interaction(a_call, SUPERVISOR)
        assert row is not None and row.outcome is Outcome.ANSWERED and row.agent == "1001"
        # Saving the wrap-up ends it: B, first in line, is offered to the agent and connected.
        assert st.agent_state("1001") in ("reserved", "on_call")
        await st.until(lambda: st.phase(b_call) == "connected", what="B connected")
        await settle(st)


async def test_server_restart_recovers_calls_in_progress(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, acd=TEST_QUEUES, agents=("1001", "1002"), sim_globals=SLOW_FALLBACK
    ) as st:
        a, b = await _connected_and_waiting(st)
        before = await settle(st)
        a_call, b_call = st.call_id_of(a), st.call_id_of(b)
        assert a_call and b_call

        # The periodic scan is off: the scan at the reconnect must find B.
        new = await st.restart_server(replace(st.settings, fallback_scan_s=3600))
        await new.pbxes["pbx1"].link.wait_up(10)
        truth = await settle(st)
        # The same channels, in the same bridges, grouped into the same calls.
        assert truth == before
        assert st.call_id_of(a) == a_call and st.call_id_of(b) == b_call
        assert st.phase(a_call) == "connected"

        # B's FastAGI session died with the old server: Asterisk went on in the dialplan (capture 13,
        # AGISTATUS SUCCESS but no IVR_DONE) to [cti-fallback]'s music. The new server finds it there and
        # takes it back into its queue (Redirect to cti-wait; CTI_QUEUE on the channel names the queue).
        def b_where() -> tuple[str, bool]:
            t = st.sim.snapshot().by_name()[b]
            return (t.context, t.in_agi)

        await st.until(lambda: b_where() == ("cti-wait", True), what="B taken back into the ACD")
        await st.until(lambda: st.call_state(b_call) == "waiting", what="B waiting in its queue")
        assert new.projector.router.call_view(b_call).queue == "support"  # type: ignore[union-attr]
        a_truth = st.sim.snapshot().by_name()[a]
        assert a_truth.bridge is not None and not a_truth.in_agi

        # The new server routes callers: agent 1002 logs in and gets B, who waited longest; C waits.
        st.login("1002")
        c = st.place_call("13800138005", SUPPORT)
        await st.until(lambda: st.phase(b_call) == "connected", what="B connected")
        assert _bridge_of(st, b) is not None
        await st.until(lambda: st.phase(st.call_id_of(c) or "?") == "queued", what="C waiting")
        await settle(st)


async def test_a_caller_in_the_fallback_is_taken_back_at_the_reconnect_and_then_left_with_its_agent(
        tmp_path: Path) -> None:
    """After a restart a caller whose FastAGI session died with the old server hears the fallback's music.
    The new server takes it back as soon as its AMI link is up (the periodic scan is off here), before any
    agent can be offered it; once connected, later scans leave it with its agent (a redirect would tear
    it out of the conversation and queue it again)."""
    async with running_stack(
        tmp_path, acd=TEST_QUEUES, agents=("1001", "1002"), sim_globals=SLOW_FALLBACK
    ) as st:
        _, b = await _connected_and_waiting(st)
        b_call = st.call_id_of(b)
        assert b_call
        new = await st.restart_server(replace(st.settings, fallback_scan_s=3600))
        await new.pbxes["pbx1"].link.wait_up(10)
        await st.until(lambda: st.sim.snapshot().by_name()[b].context == "cti-wait", what="B taken back")
        st.login("1002")
        await st.until(lambda: st.phase(b_call) == "connected", what="B connected to 1002")
        bridge = _bridge_of(st, b)
        assert bridge is not None
        assert new.calls.scan_fallback() == []  # nobody to take back
        await settle(st)
        assert _bridge_of(st, b) == bridge
        assert st.agent_state("1002") == "on_call"
        assert st.call_state(b_call) == "connected"


async def test_an_offer_leg_the_journal_never_heard_of_is_hung_up_after_a_restart(tmp_path: Path) -> None:
    """A kill -9 loses at most the journal's last batch interval, and with it maybe an offer the router had
    just made and the server rung, the agent answering. After the restart the router has never heard of
    that leg, yet it is up on the agent's phone (in cti-agent-ready, waiting an hour for a bridge): it must
    be hung up, or the agent's next offer rings on top of it."""
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",)) as st:
        st.login("1001")
        await st.server.stop()
        lost = await st.sim.world.originate(OriginateRequest(
            "PJSIP/1001", context="cti-agent-ready", exten="s", channel_id="cti-offer-99-1001",
            callerid=("Caller 01", "13800138001")))
        assert lost.ok and lost.channel is not None
        st.server = await start_server(st.sim, st.settings)
        await st.pbx.link.wait_up(10)
        await st.until(lambda: lost.channel is not None and lost.channel.dead, what="the lost offer's leg hung up")

        st.place_call("13800138002", SUPPORT)
        await st.until(lambda: st.agent_state("1001") == "on_call", what="1001 takes the next caller")
        phones = [c.name for c in st.sim.world.channels.values() if not c.dead and c.name.startswith("PJSIP/1001-")]
        assert len(phones) == 1, phones
        await settle(st)
        # ... and it is no caller: nothing of it in the journal, no call history row
        await st.server.journal.flush()
        with sqlite3.connect(tmp_path / "crm.db") as con:
            assert con.execute("SELECT count(*) FROM journal WHERE call_id = 'cti-offer-99-1001'").fetchone() == (0,)
            callers = [r[0] for r in con.execute("SELECT caller FROM interactions")]
        assert "+8613800138001" not in callers, callers


async def test_pbx_down_at_start_retries_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ctiserver.ami.link")
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001",), start_pbx=False) as st:
        link = st.pbx.link
        await st.until(lambda: len(_retries(caplog)) >= 2, what="two failed attempts")
        assert link.state is LinkState.CONNECTING
        assert "refused" in (link.last_error or "").lower()
        # The server itself is up meanwhile (FastAGI and the consoles' port listen).
        _, writer = await asyncio.open_connection("127.0.0.1", st.server.agi_port)
        writer.close()
        retries = _retries(caplog)
        assert [n for n, _ in retries] == list(range(1, len(retries) + 1))
        delays = [d for _, d in retries]
        assert delays == sorted(delays) and delays[0] >= 0.25  # exponential backoff, never a hot loop

        await st.sim.start()
        await link.wait_up(10)
        assert link.connects == 1
        st.login("1001")
        a = st.place_call("13800138006", SUPPORT)
        await st.until(lambda: st.phase(st.call_id_of(a) or "?") == "connected", what="A connected")
        await settle(st)


def _retries(caplog: pytest.LogCaptureFixture) -> list[tuple[int, float]]:
    out = []
    for rec in caplog.records:
        m = re.search(r"cannot connect to .* \(attempt (\d+)\): .*retrying in ([0-9.]+) s", rec.getMessage())
        if m:
            out.append((int(m.group(1)), float(m.group(2))))
    return out


async def test_wrong_ami_credentials_fail_clearly(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, ami_secret="not-the-secret", wait_up=False) as st:
        link = st.pbx.link
        with pytest.raises(AmiAuthError) as err:
            await link.wait_up(10)
        assert link.state is LinkState.AUTH_FAILED
        assert f"user {AMI_USER!r}" in str(err.value) and "refused" in str(err.value)
        assert link.connects == 0
        # Terminal: no retry storm against the PBX (one login attempt, one session seen by the simulator).
        await asyncio.sleep(0.3)
        assert link.state is LinkState.AUTH_FAILED


async def test_ctiserver_run_exits_non_zero_on_refused_login(tmp_path: Path) -> None:
    async with running_stack(tmp_path, acd=TEST_QUEUES, wait_up=True) as st:
        (tmp_path / "queues.yaml").write_text(TEST_QUEUES)
        (tmp_path / "flows").symlink_to(st.settings.flows_dir)
        (tmp_path / "cti.yaml").write_text(
            "pbx:\n"
            f"  - {{name: pbx1, host: 127.0.0.1, port: {st.sim.ami.port}, username: {AMI_USER}, secret: wrong}}\n"
            "agi: {host: 127.0.0.1, port: 0}\n"
            "http: {host: 127.0.0.1, port: 0}\n"
            f"crm: {{url: 'sqlite:///{tmp_path / 'run.db'}'}}\n"
            "security: {token_secret: abcdefghijklmnopqrstuvwxyz}\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ctiserver.cli",
            "run",
            "--config",
            str(tmp_path / "cti.yaml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 3, err.decode()
        assert "AMI login refused" in err.decode()
        assert truth_view(st)["channels"] == {}


async def test_no_offers_while_the_link_is_down_callers_keep_their_places_agents_keep_their_state(
        tmp_path: Path) -> None:
    """The AMI link is down: an Originate would fail at once, and each failure used to cost an agent
    (not responding), offer after offer. Now the site is unavailable: nobody is offered a caller of it,
    waiting callers keep their places (their FastAGI sessions go on), agents stay available; when the link
    is back the callers are offered in their order."""
    async with running_stack(tmp_path, acd=TEST_QUEUES, agents=("1001", "1002")) as st:
        lines = []
        for n in range(3):
            lines.append(st.place_call(f"1380013810{n}", SUPPORT))
            call = await st.until(lambda: st.call_id_of(lines[-1]), what="caller known")
            await st.until(lambda c=call: st.call_state(c) == "waiting", what="caller waiting")
        calls = [st.call_id_of(line) for line in lines]
        offers: list[str] = []
        st.server.bus.subscribe(d.Offer, lambda o: offers.append(o.call_id))
        await st.sim.stop_ami()
        await st.until(lambda: st.pbx.link.state is LinkState.CONNECTING, what="link down")
        st.login("1001", "1002")  # agents come in meanwhile: nothing can be offered
        await asyncio.sleep(1.0)
        assert [st.agent_state(a) for a in ("1001", "1002")] == ["available"] * 2
        assert [st.call_state(c) for c in calls] == ["waiting"] * 3  # type: ignore[arg-type]
        positions = [st.server.projector.router.call_view(c).position for c in calls]  # type: ignore[union-attr, arg-type]
        assert positions == [1, 2, 3]
        assert "RINGNOANSWER" not in st.queue_log() and offers == []

        await st.sim.start()
        await st.until(lambda: st.pbx.link.is_up, timeout=15, what="link back")
        await st.until(lambda: all(st.call_state(c) == "connected" for c in calls[:2]),  # type: ignore[arg-type]
                       what="the first two callers connected")
        assert st.call_state(calls[2]) == "waiting"  # type: ignore[arg-type]
        assert offers == calls[:2]  # one offer each, in their order, no retries
        assert "RINGNOANSWER" not in st.queue_log()
        await settle(st)
