"""What an IVR needs from a FastAGI session: the contract between agi/server.py and ivr_flows."""

from __future__ import annotations

from typing import Protocol

from .protocol import AgiEnvironment, AgiReply


class ChannelHungUp(Exception):
    """The caller's channel is gone (a HANGUP line, a 511 reply, or the socket closed).

    Raised out of ``AgiChannel.command`` so the call's IVR task unwinds cleanly: callers of ``command``
    never have to test every reply for a hangup.
    """


class AgiChannel(Protocol):
    env: AgiEnvironment

    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        """Send one AGI command (verb first, arguments quoted as needed) and wait for its reply.

        Raises ChannelHungUp when the channel is gone, TimeoutError when no reply comes in time.
        """
        ...
