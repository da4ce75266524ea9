"""Collect what Asterisk knows right now, for the call model to rebuild itself after a (re)connect.

Use as the link's resync hook: ``link.set_resync_hook(resync_hook(model_resync))`` where ``model_resync``
takes a ``PbxSnapshot``. CoreShowChannels gives every live channel with its ``BridgeId`` and application
(a call found in ``cti-fallback`` after a CTI restart, captures 13/13b); Status adds per-channel variables
the CTI set itself (``Variables:``), which is how a restarted CTI recognises its own calls. PJSIPShowContacts
gives the phones' contacts (capture 33), which ContactStatus reports only as they change. Events that
arrive while the snapshot is taken are published live as usual (the link never holds them back): the
model must treat the snapshot as a baseline and the live events as newer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ActionTimeout, AmiActionError
from .link import AmiLink, ResyncHook
from .protocol import Message

log = logging.getLogger(__name__)

# PJSIPShowContacts with no contact is an error, not an empty list (res_pjsip/pjsip_options.c, capture 33)
NO_CONTACTS = "No Contacts found"


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    pbx: str
    channels: tuple[Message, ...]  # CoreShowChannel events (no Privilege; "BridgeId")
    status: tuple[Message, ...]  # Status events ("BridgeID", Variable: NAME=value lines)
    taken_at: float  # wall clock, seconds
    contacts: tuple[Message, ...] | None = None  # ContactList events; None: the PBX has no res_pjsip

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
    return PbxSnapshot(link.name, tuple(channels), tuple(status), time.time(),
                       await _contacts(link, timeout))


async def _contacts(link: AmiLink, timeout: float | None) -> tuple[Message, ...] | None:
    # The phones' list must not hold the calls' resync back: refused or unanswered, it is only unknown.
    try:
        _, contacts = await link.list_action("PJSIPShowContacts", timeout=timeout)
    except AmiActionError as e:
        if e.message.strip() == NO_CONTACTS:
            return ()
        log.warning("AMI %s: PJSIPShowContacts refused (%s): phones' contacts unknown until they change",
                    link.name, e.message.strip() or "no message")
        return None
    except ActionTimeout as e:
        log.warning("AMI %s: %s: phones' contacts unknown until they change", link.name, e)
        return None
    return tuple(contacts)


def resync_hook(
    apply: Callable[[PbxSnapshot], object], *, variables: Sequence[str] = (), timeout: float | None = None
) -> ResyncHook:
    """A resync hook that takes a snapshot and hands it to ``apply`` (synchronous, e.g. the call model)."""

    async def hook(link: AmiLink) -> None:
        apply(await take_snapshot(link, variables=variables, timeout=timeout))

    return hook
