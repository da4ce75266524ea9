"""The caller's channel as the IVR sees it: one AGI command at a time, and the hang-up that ends the flow.

These types sit in the IVR's room because the flow interpreter speaks AGI replies; the FastAGI server
(ctiserver.agi) produces them and implements ``AgiChannel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ChannelHungUp(Exception):
    """The caller's channel is gone (a HANGUP line, a 511 reply, or the socket closed).

    Raised out of ``AgiChannel.command`` so the call's IVR task unwinds cleanly: callers of ``command``
    never have to test every reply for a hangup.
    """


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: str = ""  # raw text after result= ("53", "", "-1")
    data: str | None = None  # text in parentheses ("timeout")
    endpos: int | None = None
    message: str = ""  # text of a non-200 reply
    hungup: bool = False  # a HANGUP line came before this reply

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def dead_channel(self) -> bool:
        return self.code == 511

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def value(self) -> int | None:
        """The integer result, or None when result= is empty (GET DATA timeout) or holds keys like '*'."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def digit(self) -> str | None:
        """For STREAM FILE / WAIT FOR DIGIT: the key pressed, from its ASCII code (53 -> "5")."""
        v = self.value
        if v is None or v <= 0 or v > 127:
            return None
        key = chr(v)
        return key if key in "0123456789*#ABCD" else None


class AgiChannel(Protocol):
    async def command(self, *words: str | int, timeout: float | None = None) -> AgiReply:
        """Send one AGI command (verb first, arguments quoted as needed) and wait for its reply.

        Raises ChannelHungUp when the channel is gone, TimeoutError when no reply comes in time.
        """
        ...
