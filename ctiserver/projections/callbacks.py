"""The callback book: every callback to make, folded from the journal's facts and the ACD's decisions. Pure.

A callback is booked (`callback.booked`: the IVR, a supervisor, the web API) or made by the ACD itself when
a waiting caller pressed the callback key or reached the queue's timeout (a `CallStateChanged` to
"callback": the caller's place in line is kept). When its time comes it enters its queue as a virtual
caller (`acd.call_enqueued` + `acd.callback_requested`, call id ``<callback id>-<attempt>``); the ACD offers
it to an agent like a call; the dial's outcome is `callback.attempted`, with the time of the next try by
`RetryRule`; `callback.closed` ends it. The book is part of the projector's state, so a restart (checkpoint
plus the facts after it) or a replay finds every pending callback again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from acd import decisions as d
from acd import events as acd

from ..journal import facts as f

PENDING, QUEUED, DONE, GIVEN_UP, CANCELLED = "pending", "queued", "done", "given_up", "cancelled"
OPEN = (PENDING, QUEUED)


@dataclass(frozen=True, slots=True)
class RetryRule:
    """How a callback is tried again: after a busy line, no answer or a failure, that long later, up to
    `max_attempts` dials in all. When the agent's phone did not answer (or the agent gave up) the customer
    was not called: it goes back in line at once and counts no attempt."""

    max_attempts: int = 3
    busy_s: float = 300.0
    no_answer_s: float = 900.0
    failed_s: float = 1800.0

    def next_try(self, outcome: str, attempts: int, now: float) -> float | None:
        """When to try again after `outcome` (attempts counted so far, this one included); None: no more."""
        if outcome in ("agent_no_answer", "cancelled"):
            return now
        if outcome == "answered" or attempts >= self.max_attempts:
            return None
        wait = {"busy": self.busy_s, "no_answer": self.no_answer_s}.get(outcome, self.failed_s)
        return now + wait


@dataclass(slots=True)
class Callback:
    callback_id: str
    number: str
    queue: str
    source: str
    name: str = ""
    topic: str = ""
    due_at: float | None = None  # when to queue it next (None: at once)
    booked_at: float = 0.0
    state: str = PENDING
    attempts: int = 0  # dials of the customer so far
    call_id: str = ""  # the ACD's call of the attempt in line now
    calls: int = 0  # ACD calls made for it so far (names the next: <id>-<calls + 1>)
    last_outcome: str = ""
    requested_by: str = ""


@dataclass(slots=True)
class CallbackBook:
    callbacks: dict[str, Callback] = field(default_factory=dict)
    by_call: dict[str, str] = field(default_factory=dict)  # ACD call id -> callback id (open ones)
    booked: int = 0  # numbers the callbacks: cb-1, cb-2 ...
    closed_recently: list[str] = field(default_factory=list)

    def next_id(self) -> str:
        return f"cb-{self.booked + 1}"

    def get(self, callback_id: str) -> Callback | None:
        return self.callbacks.get(callback_id)

    def of_call(self, call_id: str) -> Callback | None:
        cb_id = self.by_call.get(call_id)
        return self.callbacks.get(cb_id) if cb_id is not None else None

    def open(self) -> list[Callback]:
        return [cb for cb in self.callbacks.values() if cb.state in OPEN]

    def due(self, now: float) -> list[Callback]:
        """Callbacks whose time has come and that are not in line: each is to be queued now."""
        return [cb for cb in self.callbacks.values()
                if cb.state == PENDING and (cb.due_at is None or cb.due_at <= now)]

    def next_due(self) -> float | None:
        times = [cb.due_at or 0.0 for cb in self.callbacks.values() if cb.state == PENDING]
        return min(times) if times else None

    def pending_for(self, number: str) -> Callback | None:
        return next((cb for cb in self.callbacks.values() if cb.number == number and cb.state in OPEN), None)

    @staticmethod
    def call_id_for(cb: Callback) -> str:
        """The ACD call id of its next time in line."""
        return f"{cb.callback_id}-{cb.calls + 1}"

    # ------------------------------------------------------------------ the fold

    def apply(self, fact: f.Fact | None, decisions: Iterable[d.Decision],
              number_of: Callable[[str], str] = lambda call_id: "") -> None:
        """`number_of` gives a caller's number (the call records'): a callback keeping a caller's place is
        dialled on it unless the caller gave another."""
        if fact is not None:
            self._fact(fact.body, fact.at)
        for x in decisions:
            if isinstance(x, d.CallStateChanged) and x.new == "callback" and x.old == "waiting" \
                    and x.call_id not in self.by_call:
                given = fact.body.number if fact is not None and isinstance(fact.body, acd.CallbackRequested) \
                    and fact.body.call_id == x.call_id else None
                self._kept_place(x, given or number_of(x.call_id))
            elif isinstance(x, d.CallStateChanged) and x.new == "ended":
                self._left_line(x)

    def _fact(self, body: Any, at: float) -> None:
        if isinstance(body, f.CallbackBooked):
            if body.callback_id in self.callbacks:
                return
            self.booked += 1
            cb = Callback(body.callback_id, body.number, body.queue, body.source, body.name, body.topic,
                          body.due_at, at, requested_by=body.requested_by)
            if body.call_id:  # the caller's own call keeps its place: the first attempt is that call
                cb.state, cb.call_id, cb.calls = QUEUED, body.call_id, 1
                self.by_call[body.call_id] = cb.callback_id
            self.callbacks[cb.callback_id] = cb
        elif isinstance(body, acd.CallEnqueued):
            cb_id = body.call_id.rsplit("-", 1)[0]
            queued = self.callbacks.get(cb_id)
            if queued is not None and queued.state == PENDING and body.call_id == self.call_id_for(queued):
                queued.state, queued.call_id, queued.calls = QUEUED, body.call_id, queued.calls + 1
                self.by_call[body.call_id] = cb_id
        elif isinstance(body, f.CallbackAttempted):
            tried = self.callbacks.get(body.callback_id)
            if tried is None or tried.state not in OPEN:
                return
            if body.outcome not in ("agent_no_answer", "cancelled"):
                tried.attempts += 1
            tried.last_outcome = body.outcome
            self.by_call.pop(body.call_id, None)
            tried.call_id = ""
            if body.retry_at is not None:
                tried.state, tried.due_at = PENDING, body.retry_at
        elif isinstance(body, f.CallbackClosed):
            over = self.callbacks.get(body.callback_id)
            if over is None or over.state not in OPEN:
                return
            over.state = {"done": DONE, "given_up": GIVEN_UP}.get(body.outcome, CANCELLED)
            self.by_call.pop(over.call_id, None)
            self.closed_recently.append(over.callback_id)
            self._forget_old()

    def _kept_place(self, x: d.CallStateChanged, number: str) -> None:
        """The ACD turned a waiting caller into a callback keeping its place (the key, the timeout)."""
        self.booked += 1
        cb = Callback(f"cb-{self.booked}", number, x.queue, "queue", booked_at=x.at, state=QUEUED,
                      call_id=x.call_id, calls=1)
        self.callbacks[cb.callback_id] = cb
        self.by_call[x.call_id] = cb.callback_id

    def _left_line(self, x: d.CallStateChanged) -> None:
        """A callback's call that left the queue without being dialled (moved, cancelled by a timeout
        action): back to pending, at once."""
        cb = self.of_call(x.call_id)
        if cb is not None and cb.state == QUEUED and x.old in ("callback", "waiting"):
            self.by_call.pop(x.call_id, None)
            cb.state, cb.call_id, cb.due_at = PENDING, "", x.at

    def _forget_old(self, keep: int = 1000) -> None:
        while len(self.closed_recently) > keep:
            self.callbacks.pop(self.closed_recently.pop(0), None)

    # ------------------------------------------------------------------ checkpoints

    def dump(self) -> dict[str, Any]:
        return {"booked": self.booked, "callbacks": [asdict(cb) for cb in self.callbacks.values()],
                "closed_recently": list(self.closed_recently)}

    @classmethod
    def load(cls, data: dict[str, Any]) -> CallbackBook:
        book = cls(booked=data.get("booked", 0), closed_recently=list(data.get("closed_recently", [])))
        for raw in data.get("callbacks", []):
            cb = Callback(**raw)
            book.callbacks[cb.callback_id] = cb
            if cb.state == QUEUED and cb.call_id:
                book.by_call[cb.call_id] = cb.callback_id
        return book
