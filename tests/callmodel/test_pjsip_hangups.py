"""Who hung up, and PBX restarts, on real SIP phones: capture 17 (Asterisk 22.10.1, sipp callers on a trunk,
sipp desk phones, the calls driven by the CTI server)."""

from __future__ import annotations

import re

from ctiserver.ami.protocol import AmiParser, Message
from ctiserver.callmodel.events import CallArrived, CallEnded, CallPhaseChanged, PbxShutdown
from ctiserver.callmodel.model import CallModel
from pbxsim.captures import RECEIVED, capture

_PRESSES_HANGUP = re.compile(r"agent (\d+) presses hang-up")


def _replay(*, cti_hangups: bool = True) -> tuple[CallModel, list[object]]:
    """Capture 17 through the model. The CTI's own AMI Hangup (step 4) is a NOTE there: with
    ``cti_hangups`` the model is told, as CallsService.hang_up does before sending the action."""
    model, parser, out = CallModel(), AmiParser(), []
    for rec in capture("17"):
        if rec.stream == "NOTE":
            m = _PRESSES_HANGUP.search(rec.note)
            if m and cti_hangups:
                [leg] = [c.name for c in model.channels.values() if c.name.startswith(f"PJSIP/{m[1]}-")]
                model.hangup_requested(leg)
            continue
        if rec.stream != "AMI1" or rec.direction != RECEIVED:
            continue
        for frame in parser.feed(rec.payload):
            if isinstance(frame, Message):
                out.extend(model.apply(frame, rec.t))
    return model, out


def _calls(events: list[object]) -> dict[str, str]:
    """Trunk channel -> call id."""
    return {e.channel: e.call_id for e in events if isinstance(e, CallArrived)}


def _end(events: list[object], call_id: str) -> CallEnded:
    [end] = [e for e in events if isinstance(e, CallEnded) and e.call_id == call_id]
    return end


def test_a_phones_bye_tells_the_side() -> None:
    _model, events = _replay()
    calls = _calls(events)
    # 1: the caller's BYE while bridged; 2: the agent's phone's BYE; 3: the caller's BYE while waiting.
    assert _end(events, calls["PJSIP/trunk-00000000"]).hung_up_by == "caller"
    assert _end(events, calls["PJSIP/trunk-00000002"]).hung_up_by == "agent"
    waiting = _end(events, calls["PJSIP/trunk-00000004"])
    assert (waiting.hung_up_by, waiting.cause) == ("caller", 0)  # Hangup says 0 Unknown after an AGI


def test_the_ctis_own_hangup_of_the_agents_leg_is_the_agents() -> None:
    # Step 4: the caller's own dialplan hang-up shows before the agent leg's Hangup, and nothing shows
    # on the agent's leg before it: only the CTI knows the agent pressed hang-up.
    _model, events = _replay()
    end = _end(events, _calls(events)["PJSIP/trunk-00000005"])
    assert (end.hung_up_by, end.observed, end.cause) == ("agent", True, 16)


def test_a_consulted_agent_let_go_does_not_end_the_call() -> None:
    # Step 5: a cancelled consultation (the consulted leg hangs up), then the caller's BYE.
    _model, events = _replay()
    end = _end(events, _calls(events)["PJSIP/trunk-00000007"])
    assert end.hung_up_by == "caller"


def test_core_restart_now_ends_every_call_as_a_pbx_restart() -> None:
    model, events = _replay()
    calls = _calls(events)
    restarted = [calls[f"PJSIP/trunk-0000000{n}"] for n in "abc"]
    for call_id in restarted:
        end = _end(events, call_id)
        assert (end.reason, end.cause, end.hung_up_by, end.observed) == ("pbx_restart", 0, "unknown", False)
        # connected (or waiting) -> ended: no phase on the way down.
        phases = [e.new.value for e in events if isinstance(e, CallPhaseChanged) and e.call_id == call_id]
        assert phases[-1] == "ended" and phases[-2] in ("connected", "ivr")
    # Shutdown comes after every call has ended.
    last_end = max(i for i, e in enumerate(events) if isinstance(e, CallEnded))
    [shutdown] = [i for i, e in enumerate(events) if isinstance(e, PbxShutdown)]
    assert shutdown > last_end
    assert model.live_calls() == []
