"""The server gives the allocator's free pages back: memory freed in the middle of the heap leaves the
process's resident set after one trim round."""

from __future__ import annotations

import asyncio
import contextlib

from ctiserver.allocator import give_back_free_memory


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


async def _one_round() -> None:
    task = asyncio.create_task(give_back_free_memory(every_s=0.01))
    await asyncio.sleep(0.3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_freed_heap_pages_leave_the_resident_set() -> None:
    # 80 MB of 4 KiB buffers (below the allocator's mmap threshold: they live in the heap), then all freed
    # but the last, which pins the top of the heap so the allocator cannot give the space back by itself.
    buffers = [bytearray(4096) for _ in range(20_000)]
    for b in buffers:
        b[0] = 1  # touched: resident
    pin = buffers[-1]
    del buffers
    before = _rss_anon_kb()
    asyncio.run(_one_round())
    after = _rss_anon_kb()
    assert pin[0] == 1
    assert before - after > 40_000, (before, after)
