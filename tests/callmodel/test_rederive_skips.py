"""The call model skips re-deriving a phase when no fact it reads changed. That is sound only if, for every
call it does not mark stale, deriving again would publish nothing: checked here after every event of the
captures, shuffled, thinned, interleaved and sprinkled with events that change nothing."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.ami.protocol import AmiParser, Message
from ctiserver.callmodel.events import CallPhaseChanged, LegRinging
from ctiserver.callmodel.model import CallModel
from pbxsim.captures import RECEIVED, capture

NAMES = ("01", "02", "03", "04", "05", "06", "07", "08", "13")


@cache
def messages(name: str) -> tuple[Message, ...]:
    parser = AmiParser()
    out: list[Message] = []
    for rec in capture(name):
        if rec.stream == "AMI1" and rec.direction == RECEIVED:
            out.extend(f for f in parser.feed(rec.payload) if isinstance(f, Message))
    return tuple(out)


def assert_nothing_left_to_derive(model: CallModel, now: float) -> None:
    for call in list(model.calls.values()):
        if not call.stale:
            assert model._rederive(call, now) == [], call.call_id


@st.composite
def streams(draw: st.DrawFn) -> list[Message]:
    first = list(messages(draw(st.sampled_from(NAMES))))
    if draw(st.booleans()):
        second = list(messages(draw(st.sampled_from(NAMES))))
        picks = draw(st.lists(st.booleans(), min_size=len(first) + len(second), max_size=len(first) + len(second)))
        merged = []
        for take_first in picks:
            src = first if (take_first and first) or not second else second
            merged.append(src.pop(0))
        first = merged
    if draw(st.booleans()):  # swap neighbours: events a lossy or reordered feed could show
        for i in draw(st.lists(st.integers(0, max(0, len(first) - 2)), max_size=len(first) // 8)):
            first[i : i + 2] = first[i : i + 2][::-1]
    drop = draw(st.integers(0, 12))  # drop every n-th event (0: none)
    echo = draw(st.integers(1, 4))  # after every n-th event, repeat a channel's snapshot
    out: list[Message] = []
    latest: dict[str, Message] = {}
    for i, msg in enumerate(first):
        if drop and i % drop == drop - 1:
            continue
        if msg.get("Event") == "Newchannel" and draw(st.integers(0, 5)) == 0:
            msg = Message({**msg, "ChannelState": draw(st.sampled_from(["4", "5", "6"]))})
        out.append(msg)
        if "Uniqueid" in msg and "ChannelState" in msg:
            latest[msg["Uniqueid"]] = msg
        if latest and i % echo == 0:
            snap = list(latest.values())[draw(st.integers(0, len(latest) - 1))]
            kind = draw(st.sampled_from(["NewCallerid", "NewConnectedLine", "Newstate"]))
            out.append(Message({**snap, "Event": kind}))
    return out


@settings(max_examples=60, deadline=None)
@given(stream=streams())
def test_a_call_not_marked_stale_has_nothing_to_publish(stream: list[Message]) -> None:
    model = CallModel()
    for t, msg in enumerate(stream):
        model.apply(msg, float(t))
        assert_nothing_left_to_derive(model, float(t))


def test_a_leg_that_arrives_ringing_shows_at_the_next_event_of_its_call() -> None:
    """Newchannel publishes nothing by itself; the next event of the call, even one that changes
    nothing, derives the phase again (as the model always did)."""
    model = CallModel()
    caller = {
        "Channel": "PJSIP/trunk-00000001", "ChannelState": "6", "CallerIDNum": "5551234",
        "CallerIDName": "John", "ConnectedLineNum": "", "ConnectedLineName": "", "Context": "from-pstn",
        "Exten": "5551000", "Uniqueid": "100.1", "Linkedid": "100.1",
    }
    model.apply(Message({"Event": "Newchannel", **caller}), 1.0)
    model.apply(Message({"Event": "Newexten", **caller, "Application": "Wait", "AppData": "5"}), 1.0)
    agent = {**caller, "Channel": "PJSIP/agent1-00000002", "ChannelState": "5", "Uniqueid": "100.2"}
    assert model.apply(Message({"Event": "Newchannel", **agent}), 2.0) == []
    echo = model.apply(Message({"Event": "NewCallerid", **caller}), 3.0)
    assert [type(e) for e in echo] == [LegRinging, CallPhaseChanged]
    assert model.apply(Message({"Event": "NewCallerid", **caller}), 4.0) == []
