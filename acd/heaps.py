"""A binary heap with lazy deletion.

Agents and calls leave the routable pool far more often than they reach the top of a
heap, so instead of removing entries we let them go stale (their version no longer
matches) and drop them when they surface. `compact` bounds the garbage: the heap is
rebuilt once it doubles past its last live size, which keeps pushes amortised O(log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

E = TypeVar("E", bound=tuple[Any, ...])


class LazyHeap(Generic[E]):
    __slots__ = ("_is_live", "_items", "_limit")

    def __init__(self, is_live: Callable[[E], bool]) -> None:
        self._items: list[E] = []
        self._is_live = is_live
        self._limit = 64

    def push(self, entry: E) -> None:
        heapq.heappush(self._items, entry)
        if len(self._items) > self._limit:
            self.compact()

    def peek(self) -> E | None:
        items, is_live = self._items, self._is_live
        while items:
            top = items[0]
            if is_live(top):
                return top
            heapq.heappop(items)
        return None

    def compact(self) -> None:
        self._items = [e for e in self._items if self._is_live(e)]
        heapq.heapify(self._items)
        self._limit = max(64, 2 * len(self._items))

    def live(self) -> Iterator[E]:
        """Live entries in no particular order (for logout/reset sweeps, not for routing)."""
        return (e for e in list(self._items) if self._is_live(e))

    def __len__(self) -> int:
        return len(self._items)
