"""Errors raised by the ACD's configuration loader.

Agent commands that make no sense are not errors: the router answers them with a
`decisions.Refusal` so the caller of `Router.handle` sees one uniform return type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a queue configuration file, precise enough to fix without searching."""

    file: str
    line: int  # 1-based, as editors count
    field: str
    message: str
    queue: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        scope = f" queue {self.queue!r}" if self.queue is not None else ""
        return f"{where}:{scope} field {self.field!r}: {self.message}"


class AcdConfigError(ValueError):
    """The configuration is refused as a whole; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{len(self.issues)} problem(s) in the ACD configuration:\n{lines}")
