"""A line the CTI placed (a campaign's, through a Local trunk as in the dialer's tests) and the agent's leg
the dialer bridges to it: told of the leg, the model keeps one call, connected, ended with the line."""

from __future__ import annotations

from ctiserver.ami.protocol import Message
from ctiserver.callmodel.events import CallArrived, CallConnected, CallEnded
from ctiserver.callmodel.model import CallModel

LINE = "dial-1-1"
LEG = f"{LINE}-agent"


def _channel(event: str, uid: str, name: str, linkedid: str, **more: str) -> Message:
    return Message({"Event": event, "Uniqueid": uid, "Channel": name, "Linkedid": linkedid, "ChannelState": "6",
                    **more})


def _feed(model: CallModel, tell: bool) -> list[object]:
    out: list[object] = []
    trunk = "Local/+12125550101@customers-00000001"
    out += model.apply(_channel("Newchannel", LINE, f"{trunk};1", LINE), 1.0)
    out += model.apply(_channel("Newchannel", f"{LINE};2", f"{trunk};2", LINE), 1.0)
    out += model.apply(_channel("Newexten", f"{LINE};2", f"{trunk};2", LINE, Application="Wait"), 1.1)
    out += model.apply(_channel("Newexten", LINE, f"{trunk};1", LINE, Application="Wait"), 1.2)
    if tell:
        out += model.expect_line_agent(LINE, LEG, 2.0)
    out += model.apply(_channel("Newchannel", LEG, "PJSIP/1001-00000001", LEG), 2.0)
    out += model.apply(_channel("Newexten", LEG, "PJSIP/1001-00000001", LEG, Application="Wait"), 2.1)
    out += model.apply(Message({"Event": "BridgeCreate", "BridgeUniqueid": "b1"}), 3.0)
    for uid, name in ((LINE, f"{trunk};1"), (LEG, "PJSIP/1001-00000001")):
        out += model.apply(_channel("BridgeEnter", uid, name, LINE, BridgeUniqueid="b1"), 3.0)
    return out


def test_the_agents_leg_of_a_placed_line_is_the_lines_and_the_call_connects_and_ends_with_it() -> None:
    model = CallModel()
    out = _feed(model, tell=True)
    assert [e.call_id for e in out if isinstance(e, CallArrived)] == [LINE]
    assert [(c.call_id, c.phase.value) for c in model.live_calls()] == [(LINE, "connected")]
    assert [(e.call_id, e.peer_uniqueid) for e in out if isinstance(e, CallConnected)] == [(LINE, LEG)]
    ended = model.apply(_channel("Hangup", LINE, "Local/+12125550101@customers-00000001;1", LINE,
                                 Cause="16"), 9.0)
    assert [e.call_id for e in ended if isinstance(e, CallEnded)] == [LINE]
    assert not model.live_calls()


def test_untold_the_agents_leg_is_a_call_of_its_own() -> None:
    model = CallModel()
    out = _feed(model, tell=False)
    assert LEG in {e.call_id for e in out if isinstance(e, CallArrived)}
    assert not any(isinstance(e, CallConnected) and e.call_id == LINE for e in out)
