"""What the server's handlers need from a FastAGI session: the IVR's channel plus the AGI environment."""

from __future__ import annotations

from typing import Protocol

from ivr_flows.channel import AgiChannel as IvrChannel
from ivr_flows.channel import ChannelHungUp

from .protocol import AgiEnvironment

__all__ = ["AgiChannel", "ChannelHungUp"]


class AgiChannel(IvrChannel, Protocol):
    env: AgiEnvironment
