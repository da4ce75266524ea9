"""Collect what Asterisk knows right now, for the call model to rebuild itself after a (re)connect.

Use as the link's resync hook: ``link.set_resync_hook(resync_hook(model_resync))`` where ``model_resync``
takes a ``PbxSnapshot``. CoreShowChannels gives every live channel with its ``BridgeId`` and application
(a call found in ``cti-fallback`` after a CTI restart, captures 13/13b); Status adds per-channel variables
the CTI set itself (``Variables:``), which is how a restarted CTI recognises its own calls. Events that
arrive while the snapshot is taken are published live as usual (the link never holds them back): the
model must treat the snapshot as a baseline and the live events as newer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .link import AmiLink, ResyncHook
from .protocol import Message


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    pbx: str
    channels: tuple[Message, ...]  # CoreShowChannel events (no Privilege; "BridgeId")
    status: tuple[Message, ...]  # Status events ("BridgeID", Variable: NAME=value lines)
    taken_at: float  # wall clock, seconds

    def variables(self, uniqueid: str) -> dict[str, str]:
        """The ``Variable:`` lines of one channel's Status event."""
        for msg in self.status:
            if msg.get("Uniqueid") == uniqueid:
                return dict(v.split("=", 1) for v in msg.all("Variable") if "=" in v)
        return {}


async def take_snapshot(
    link: AmiLink, *, variables: Sequence[str] = (), timeout: float | None = None
) -> PbxSnapshot:
    _, channels = await link.list_action("CoreShowChannels", timeout=timeout)
    headers = {"Variables": ",".join(variables)} if variables else None
    _, status = await link.list_action("Status", headers, timeout=timeout)
    return PbxSnapshot(link.name, tuple(channels), tuple(status), time.time())


def resync_hook(
    apply: Callable[[PbxSnapshot], object], *, variables: Sequence[str] = (), timeout: float | None = None
) -> ResyncHook:
    """A resync hook that takes a snapshot and hands it to ``apply`` (synchronous, e.g. the call model)."""

    async def hook(link: AmiLink) -> None:
        apply(await take_snapshot(link, variables=variables, timeout=timeout))

    return hook
