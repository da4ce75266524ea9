"""What the server remembers about one customer call beyond the call model: who the caller is in the CRM,
the way through the IVR, the queue, the agent, the timings the CRM history needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class CallContext:
    call_id: str
    pbx: str
    channel: str
    caller_num: str
    caller_name: str
    dialed: str
    started_at: datetime = field(default_factory=utcnow)
    customer_id: int | None = None
    customer_name: str = ""
    vip: bool = False
    grade: str | None = None
    ivr_path: tuple[str, ...] = ()  # "node", "node:key=1", "node:speech=환불(0.93)"
    said: tuple[str, ...] = ()  # what the caller said, as recognized
    queue: str = ""
    priority: int = 0
    queued_at: datetime | None = None
    pop: object | None = None  # crmstore ScreenPop, fetched when the caller is queued
    agent_id: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    held_since: datetime | None = None
    hold_s: float = 0.0
    outcome: str = "ivr_only"  # ivr_only, answered, abandoned, callback, voicemail
    flow: str = ""  # the IVR flow the caller came through (the post-call survey runs the same one)
    survey: bool = False  # the caller's flow has a post-call survey
    logged: bool = False  # written to the CRM history (abandon, IVR-only) or wrapped up by the agent


class CallRegistry:
    """The contexts of live calls plus a bounded tail of ended ones (for late wrap-ups)."""

    def __init__(self, keep_ended: int = 2000) -> None:
        self.live: dict[str, CallContext] = {}
        self._ended: dict[str, CallContext] = {}
        self._keep = keep_ended

    def get(self, call_id: str) -> CallContext | None:
        return self.live.get(call_id) or self._ended.get(call_id)

    def add(self, ctx: CallContext) -> CallContext:
        return self.live.setdefault(ctx.call_id, ctx)

    def end(self, call_id: str) -> CallContext | None:
        ctx = self.live.pop(call_id, None)
        if ctx is not None:
            self._ended[call_id] = ctx
            if len(self._ended) > self._keep:
                del self._ended[next(iter(self._ended))]
        return ctx
