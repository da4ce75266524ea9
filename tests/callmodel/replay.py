"""Replays the AMI side of a golden capture through the call model."""

from __future__ import annotations

from dataclasses import dataclass, field

from ctiserver.ami.protocol import AmiParser, Message
from ctiserver.callmodel.events import CallArrived, CallPhaseChanged
from ctiserver.callmodel.model import CallModel
from pbxsim.captures import RECEIVED, capture


@dataclass
class Replay:
    model: CallModel
    events: list[object] = field(default_factory=list)
    messages: list[tuple[float, Message]] = field(default_factory=list)

    def phases(self, call_id: str) -> list[str]:
        return [e.new.value for e in self.events if isinstance(e, CallPhaseChanged) and e.call_id == call_id]

    def of(self, kind: type, call_id: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (call_id is None or e.call_id == call_id)]

    def arrived(self) -> list[CallArrived]:
        return self.of(CallArrived)


def replay(name: str, *, until: float | None = None, stream: str = "AMI1") -> Replay:
    model = CallModel()
    parser = AmiParser()
    out = Replay(model)
    for rec in capture(name):
        if rec.stream != stream or rec.direction != RECEIVED:
            continue
        if until is not None and rec.t > until:
            break
        for frame in parser.feed(rec.payload):
            if isinstance(frame, Message):
                out.messages.append((rec.t, frame))
                out.events.extend(model.apply(frame, rec.t))
    return out
