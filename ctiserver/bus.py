"""One in-process bus of typed domain events.

Dispatch is synchronous and in subscription order: the call model, the ACD and the gateway see every
event in the same order, which is what makes replays deterministic. Handlers must be quick; anything slow
(database writes, websocket sends) is handed to a queue or a task by the subscriber itself.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None]


class EventBus:
    __slots__ = ("_any", "_handlers", "errors")

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._any: list[Handler] = []
        self.errors = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[event_type].append(handler)

    def subscribe_all(self, handler: Handler) -> None:
        self._any.append(handler)

    def publish(self, event: object) -> None:
        for handler in (*self._handlers.get(type(event), ()), *self._any):
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not stop the others from seeing the event.
                self.errors += 1
                log.exception("bus handler %r failed on %r", handler, event)

    def publish_all(self, events: list[Any]) -> None:
        for event in events:
            self.publish(event)
