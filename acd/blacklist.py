"""What a queue does with a caller the CRM marks as blacklisted (黑色客户): a routing input decided here,
purely, before the caller enters the queue. The edge that queues the caller plays the refusal or sends
the changed entry on; the router only ever sees an ordinary `CallEnqueued`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .events import CallEnqueued

BlacklistAction = Literal["refuse", "route", "lowest"]
BLACKLIST_ACTIONS: tuple[BlacklistAction, ...] = ("refuse", "route", "lowest")
# Below any priority a queues file gives (bonuses are small integers); aging lifts it by one a second,
# so a blacklisted caller is offered only when nobody else waits for the best part of a week.
LOWEST_PRIORITY = -1_000_000


@dataclass(frozen=True, slots=True)
class BlacklistPolicy:
    action: BlacklistAction
    message: str = ""  # refuse: the prompt played before the line is dropped
    queue: str = ""  # route: where the caller waits instead


@dataclass(frozen=True, slots=True)
class Refuse:
    """The caller does not enter any queue: `message` is played, then the call ends."""

    message: str
    queue: str  # the queue that refused


def admit(policy: BlacklistPolicy | None, entry: CallEnqueued, blacklisted: bool) -> CallEnqueued | Refuse:
    """The entry as it goes to the router, or the refusal. Only blacklisted callers are touched."""
    if policy is None or not blacklisted:
        return entry
    if policy.action == "refuse":
        return Refuse(policy.message, entry.queue)
    if policy.action == "route":
        return dataclasses.replace(entry, queue=policy.queue)
    # lowest: no VIP or grade bonus either, and no sticky agent jumping the line
    return dataclasses.replace(entry, priority=LOWEST_PRIORITY, vip=False, grade=None, sticky_agent_id=None)


def refusal_prompts(policies: Iterable[tuple[str, BlacklistPolicy | None]]) -> dict[str, str]:
    """The prompts refusing policies play, with what for: the sounds the PBX must have (checked at start)."""
    return {p.message: f"blacklist refusal of queue {name}" for name, p in policies
            if p is not None and p.action == "refuse"}
