"""The one error type the flow loader and validator report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowError:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    kind: str = "invalid"  # yaml, invalid, unknown-node-type, missing-target, unreachable, loop, prompt,
    #                        queue, skill, variable

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class FlowLoadError(Exception):
    """Raised by FlowRegistry.load_file(): the flow had errors and was not loaded."""

    def __init__(self, errors: list[FlowError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
