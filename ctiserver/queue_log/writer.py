"""The queue_log file: the projector's lines, written before each journal batch is committed.

The file is a projection like any other: a restart cuts it back to the length its checkpoint recorded,
then the replay of the facts after the checkpoint writes the same lines again, so a crash leaves neither
a line twice nor a line for a fact that was never committed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from .lines import QueueLogLines

log = logging.getLogger(__name__)


class QueueLogWriter:
    def __init__(self, path: Path, lines: QueueLogLines) -> None:
        self.path = path
        self.lines = lines
        self._file: BinaryIO | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        f = os.fdopen(fd, "r+b")
        size = f.seek(0, os.SEEK_END)
        if size > self.lines.offset:
            f.truncate(self.lines.offset)  # lines of facts the replay will write again
        elif size < self.lines.offset:
            log.warning("queue_log %s is shorter than the journal says (%d < %d bytes): was it rotated? "
                        "going on from its end", self.path, size, self.lines.offset)
            self.lines.offset = size
        f.seek(0, os.SEEK_END)
        self._file = f

    def flush(self) -> None:
        pending = self.lines.take()
        if pending and self._file is not None:
            self._file.write("".join(pending).encode("utf-8"))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
