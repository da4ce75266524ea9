"""Configuration files replaced whole, never half-written: a temporary file beside the target, fsynced, checked,
then renamed over it (rename is atomic within a directory), and the directory fsynced so the rename survives a
power cut."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def replace_checked(path: Path, text: str, check: Callable[[Path], T]) -> T:
    """Write `text` to a temporary file beside `path`, run `check` on it (the loader the server uses at start;
    it raises on a bad file), then put it in place. On any failure `path` is left as it was."""
    tmp = path.with_name(f".{path.name}.admin-{os.getpid()}.tmp")  # not *.yaml: the flow watcher ignores it
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):  # keep the file's permissions (cti.yaml holds secrets)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        result = check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return result


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
