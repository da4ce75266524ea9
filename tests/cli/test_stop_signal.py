"""A SIGTERM is never lost between the phases of `ctiserver run` (start-up, then the run): the bench's
restart found a server that took a SIGTERM just as its start-up finished and ran on."""

from __future__ import annotations

import asyncio
import os
import signal

from ctiserver.cli import _stop_on_signals, _until_signal


async def test_a_sigterm_between_start_up_and_run_stops_the_run() -> None:
    loop = asyncio.get_running_loop()
    stop = _stop_on_signals()
    try:
        start_up = asyncio.ensure_future(asyncio.sleep(0))
        await _until_signal(start_up, stop)  # start-up finished on its own
        os.kill(os.getpid(), signal.SIGTERM)  # lands before the run is awaited
        await asyncio.sleep(0.05)
        running = asyncio.ensure_future(asyncio.Event().wait())  # would run forever
        await asyncio.wait_for(_until_signal(running, stop), 10)
        assert running.cancelled()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
