"""Gives the C allocator's free pages back to the system, once a minute.

A server that runs for weeks allocates and frees large buffers all day (AMI frames, websocket messages,
database rows, from several threads). glibc keeps what is freed inside its heaps for reuse and returns only
the top of a heap, so freed pages in the middle stay part of the process: in the soak (20 calls/s) the
allocator's free space climbed from 3 MB to 17 MB in eleven minutes while the data in use grew by 4 MB. ``malloc_trim(0)`` hands
those pages back (madvise), so the resident size follows what the server really holds. On a C library
without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_EVERY_S = 60.0


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def give_back_free_memory(every_s: float = TRIM_EVERY_S) -> None:
    """Runs until cancelled. The trim holds the allocator's locks for a few milliseconds, so it runs in a
    worker thread: the event loop never waits on it."""
    trim = _malloc_trim()
    if trim is None:
        log.debug("no malloc_trim in this C library: the allocator keeps its free pages")
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every_s)
        await loop.run_in_executor(None, trim)
