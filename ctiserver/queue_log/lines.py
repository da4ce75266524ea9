"""The queue_log lines the router's decisions make, waiting to be written (pure: the writer does the file)."""

from __future__ import annotations

from acd import decisions as d


class QueueLogLines:
    """The queue_log as Asterisk tools read it: one line per router QueueLogEntry, in order. `offset` is
    the file's length once every line produced so far is written (a checkpoint keeps it)."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.pending: list[str] = []

    def apply(self, decisions: list[d.Decision]) -> None:
        for x in decisions:
            if isinstance(x, d.QueueLogEntry):
                line = x.line() + "\n"
                self.pending.append(line)
                self.offset += len(line.encode("utf-8"))

    def take(self) -> list[str]:
        out, self.pending = self.pending, []
        return out
