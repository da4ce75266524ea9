"""Every golden capture replays through the call model to the right states."""

from __future__ import annotations

from ctiserver.ami.protocol import Message
from ctiserver.callmodel.events import (
    CallConnected,
    CallEnded,
    CallHeld,
    CallResumed,
    CallTransferred,
    LegHungUp,
    LegRinging,
)
from ctiserver.callmodel.model import CallModel, resync
from ctiserver.callmodel.states import CallPhase
from tests.callmodel.replay import replay


def _callers(r):
    """Calls whose caller leg ran the inbound context: the ones a contact center cares about."""
    return [a for a in r.arrived() if a.channel.startswith("Local/555")]


def test_01_idle_system_and_failed_originate_leave_no_call():
    r = replay("01")
    assert r.model.calls == {}
    # The synchronous Originate to a nonexistent extension creates a short-lived pair: cause 0.
    ended = r.of(CallEnded)
    assert ended[0].cause == 0
    # The caller put on music on hold waits, and ends with the CTI's Hangup Cause 16.
    [moh_call] = _callers(r)
    assert r.phases(moh_call.call_id) == ["queued", "ended"]
    assert r.of(CallEnded, moh_call.call_id)[0].cause == 16


def test_02_inbound_call_walks_the_fastagi_ivr():
    r = replay("02")
    [call] = _callers(r)
    assert (call.caller_num, call.caller_name, call.dialed) == ("5551234", "John Doe", "5551000")
    assert call.channel == "Local/5551000@from-pstn-00000000;2"  # ;2 runs the dialplan, ;1 is the phone
    assert r.phases(call.call_id) == ["ivr", "arriving", "ended"]
    assert r.of(CallEnded, call.call_id)[0].cause == 16
    assert not r.of(CallConnected)


def test_02_mid_ivr_the_call_is_in_the_ivr():
    r = replay("02", until=10.0)
    [call] = r.model.live_calls()
    assert call.phase is CallPhase.IVR
    assert call.caller_leg is not None and call.caller_leg.application == "AGI"
    assert call.answered_at is not None


def test_03_caller_hangs_up_during_agi_both_variants():
    r = replay("03")
    first, second = _callers(r)
    # Variant 1: the caller's phone hangs up (Cause 16) while STREAM FILE plays: the call ends then,
    # even though the AGI leg's own Hangup waits for the FastAGI socket to close.
    assert r.phases(first.call_id) == ["ivr", "ended"]
    assert r.of(CallEnded, first.call_id)[0].cause == 16
    hangups = r.of(LegHungUp, first.call_id)
    assert hangups[0].is_caller and hangups[0].channel.endswith(";1")
    # Variant 2: the CTI hangs up the IVR leg with Cause 17: both halves end "User busy".
    assert r.phases(second.call_id) == ["ivr", "ended"]
    assert r.of(CallEnded, second.call_id)[0].cause_txt == "User busy"
    assert {h.cause for h in r.of(LegHungUp, second.call_id)} == {17}
    assert r.model.calls == {}


def test_04_caller_bridged_to_agent():
    r = replay("04")
    [call] = _callers(r)
    # The agent hangs up: the call goes from connected to ended, not through the dialplan steps between.
    assert r.phases(call.call_id) == ["ivr", "arriving", "offered", "connected", "ended"]
    [ring] = r.of(LegRinging, call.call_id)
    [conn] = r.of(CallConnected, call.call_id)
    assert ring.channel == conn.peer_channel == "Local/agent1@agents-00000001;1"
    assert ring.at < conn.at
    assert r.model.calls == {}


def test_04_while_talking_the_model_knows_who_talks_to_whom():
    r = replay("04", until=3.0)
    [call] = r.model.live_calls()
    assert call.phase is CallPhase.CONNECTED
    assert r.model.channels[call.peer].name == "Local/agent1@agents-00000001;1"
    caller = call.caller_leg
    assert caller is not None and caller.bridge is not None
    assert r.model.bridges[caller.bridge] >= {caller.uniqueid, call.peer}


def test_05_redirect_bridge_and_originate_outcomes():
    r = replay("05")
    a, b = _callers(r)
    # A) MusicOnHold wait, Redirect to connect-agent, Dial, bridge.
    assert r.phases(a.call_id) == ["queued", "arriving", "offered", "connected", "ended"]
    # B) Wait(), agent leg originated into agent-ready, AMI Bridge: the originated leg takes the caller's
    # Linkedid at BridgeEnter and the model moves it into the caller's call.
    assert r.phases(b.call_id)[:2] == ["queued", "connected"]
    [conn] = r.of(CallConnected, b.call_id)
    assert conn.peer_channel == "Local/agent-long@agents-00000003;1"
    assert r.model.ended[b.call_id].legs[conn.peer_uniqueid].linkedid == b.call_id
    # C) originate outcomes: a no-answer leg ends with cause 19, busy/invalid with cause 0.
    causes = {e.call_id: e.cause for e in r.of(CallEnded)}
    assert 19 in causes.values()
    # D) ChannelId/OtherChannelId: the call id is the Uniqueid the CTI chose.
    assert "cti-call-0001-a" in causes
    assert r.model.calls == {}


def test_06_transfers_blind_redirect_blindtransfer_and_attended():
    r = replay("06")
    a, b, c = _callers(r)
    [ta] = r.of(CallTransferred, a.call_id)
    assert (ta.kind, ta.from_peer, ta.to_peer) == (
        "redirect", "Local/agent-long@agents-00000001;1", "Local/agent2@agents-00000002;1",
    )
    [tb] = r.of(CallTransferred, b.call_id)
    assert tb.kind == "blind" and tb.to_peer.startswith("Local/agent2@agents")
    [tc] = r.of(CallTransferred, c.call_id)
    assert tc.kind == "attended" and tc.to_peer.startswith("Local/2009@agents")
    # During the consultation the caller hears music: the call is on hold, not offered or ended.
    assert r.phases(c.call_id) == ["ivr", "arriving", "offered", "connected", "on_hold", "connected", "ended"]
    assert len(r.of(CallHeld, c.call_id)) == 1
    assert r.model.calls == {}


def test_07_hold_unhold_spy_and_park():
    r = replay("07")
    a = _callers(r)[0]
    phases = r.phases(a.call_id)
    # CTI hold by dual Redirect, un-hold by Bridge (section A).
    assert phases[:6] == ["ivr", "arriving", "offered", "connected", "arriving", "on_hold"]
    assert phases[6] == "connected"
    assert r.of(CallResumed, a.call_id)
    # Supervisor spy legs are calls of their own and never touch the caller's phase.
    spies = [x for x in r.arrived() if x.channel.startswith("Local/sup@")]
    assert len(spies) == 2
    # Park (F): the parked caller is on hold, then connected to the retrieving leg.
    parked = _callers(r)[1]
    assert r.phases(parked.call_id)[-3:] == ["on_hold", "connected", "ended"]
    assert r.of(CallTransferred, parked.call_id)


def test_07_on_hold_snapshot():
    r = replay("07", until=4.5)
    [call] = [c for c in r.model.live_calls() if c.call_id.endswith(".0")]
    assert call.phase is CallPhase.ON_HOLD
    assert call.caller_leg is not None and call.caller_leg.moh


def test_08_app_queue_caller_waits_is_connected_and_another_abandons():
    r = replay("08")
    served, abandoned = _callers(r)
    assert r.phases(served.call_id)[:3] == ["queued", "offered", "connected"]
    assert r.phases(abandoned.call_id) == ["queued", "ended"]
    assert not r.of(CallConnected, abandoned.call_id)


def test_09_burst_of_50_calls_all_tracked_and_all_ended():
    r = replay("09")
    arrived = r.arrived()
    assert len(arrived) == 50
    assert len({a.call_id for a in arrived}) == 50
    ended = r.of(CallEnded)
    assert len(ended) == 50 and all(e.cause == 16 for e in ended)
    assert r.model.calls == {} and r.model.channels == {} and r.model.anomalies == 0


def test_09_burst_mid_flight_every_call_is_waiting():
    r = replay("09", until=1.0)
    live = r.model.live_calls()
    assert len(live) == 50
    assert all(c.phase is CallPhase.QUEUED for c in live)  # Wait(2) in [burst]


def test_13_fastagi_server_dies_call_survives_into_fallback():
    r = replay("13-")
    [call] = _callers(r)
    # The dead FastAGI server does not end the call: it goes on to the fallback MOH.
    assert r.phases(call.call_id) == ["ivr", "arriving", "queued", "arriving", "ended"]


def test_13b_fastagi_server_down_call_goes_to_fallback():
    r = replay("13b")
    [call] = _callers(r)
    assert "queued" in r.phases(call.call_id)
    assert r.of(CallEnded, call.call_id)[0].cause == 16


def test_resync_from_core_show_channels_in_capture_01():
    r = replay("01")
    listing = [m for _, m in r.messages if m.get("Event") == "CoreShowChannel"]
    assert len(listing) == 2  # the caller's Local pair on music on hold
    fresh = CallModel()
    events = resync(fresh, listing, now=100.0)
    [call] = fresh.live_calls()
    assert call.phase is CallPhase.QUEUED
    assert call.caller_leg is not None and call.caller_leg.name.endswith(";2")
    assert any(type(e).__name__ == "CallArrived" for e in events)


def test_resync_hangs_up_channels_the_pbx_no_longer_has():
    r = replay("04", until=3.0)
    [call] = r.model.live_calls()
    events = resync(r.model, [], now=5.0)
    assert r.model.calls == {}
    assert any(isinstance(e, CallEnded) and e.call_id == call.call_id for e in events)


def test_resync_matches_an_uninterrupted_stream():
    """Resync from a listing built off a replay lands on the same calls and phases as the replay."""
    r = replay("04", until=3.0)
    listing = []
    for ch in r.model.channels.values():
        listing.append(Message({
            "Event": "CoreShowChannel", "Channel": ch.name, "ChannelState": str(ch.state),
            "CallerIDNum": ch.caller_num, "CallerIDName": ch.caller_name, "Context": ch.context,
            "Exten": ch.exten, "Uniqueid": ch.uniqueid, "Linkedid": ch.linkedid,
            "Application": ch.application, "ApplicationData": ch.app_data, "BridgeId": ch.bridge or "",
        }))
    fresh = CallModel()
    resync(fresh, listing, now=3.0)
    assert fresh.snapshot()["bridges"] == r.model.snapshot()["bridges"]
    [a] = r.model.live_calls()
    [b] = fresh.live_calls()
    assert (a.call_id, a.phase, a.caller, a.peer) == (b.call_id, b.phase, b.caller, b.peer)


def test_who_hung_up_comes_from_the_first_hang_up_request():
    # 04: the agent's dialplan ends (SoftHangupRequest on agent1;2) before the caller's side moves.
    r = replay("04")
    [call] = _callers(r)
    [end] = r.of(CallEnded, call.call_id)
    assert (end.hung_up_by, end.observed, end.cause) == ("agent", True, 16)
    agent_leg = next(h for h in r.of(LegHungUp, call.call_id) if not h.is_caller)
    assert agent_leg.hung_up_by == "agent"
    # 03, variant 1: the caller's phone hangs up during the prompt.
    r = replay("03")
    first, _second = _callers(r)
    assert r.of(CallEnded, first.call_id)[0].hung_up_by == "caller"


def test_a_pbx_shutdown_ends_calls_with_cause_unknown():
    """Asterisk's `core restart now`: SoftHangupRequest with Cause 4 (AST_SOFTHANGUP_SHUTDOWN) on every
    channel, then Hangup events that say Cause 16 Normal Clearing, which is not how the calls ended."""
    r = replay("04", until=3.0)
    [call] = r.model.live_calls()
    events: list[object] = []
    for uid in [u for u in call.legs if call.legs[u].alive]:
        call.legs[uid]
        events += r.model.apply(Message({"Event": "SoftHangupRequest", "Uniqueid": uid, "Cause": "4"}), 3.1)
    for uid in [u for u in call.legs if call.legs[u].alive]:
        events += r.model.apply(Message({"Event": "Hangup", "Uniqueid": uid, "Cause": "16",
                                         "Cause-txt": "Normal Clearing"}), 3.2)
    [end] = [e for e in events if isinstance(e, CallEnded)]
    assert (end.cause, end.hung_up_by, end.observed, end.reason) == (0, "unknown", False, "pbx_restart")
    phases = [e.new.value for e in events if hasattr(e, "new")]
    assert phases == ["ended"]  # connected, then ended: no phase on the way down


def test_ends_found_at_a_resync_are_inferred_with_bounds():
    r = replay("04", until=3.0)
    [_call] = r.model.live_calls()
    out = resync(r.model, [], 15.0, gone_since=3.0)
    [end] = [e for e in out if isinstance(e, CallEnded)]
    assert (end.observed, end.not_before, end.at, end.hung_up_by, end.cause) == (False, 3.0, 15.0, "unknown", 0)
    assert all(not h.observed for h in out if isinstance(h, LegHungUp))
