"""Scripted scenarios and random load at a given call rate, for benchmarks and the demo."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from pbxsim.people import CallerBehaviour
from pbxsim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """Poisson arrivals at ``calls_per_s`` (virtual time) for ``duration`` virtual seconds."""

    calls_per_s: float
    duration: float
    dids: tuple[str, ...] = ("5551000",)
    behaviours: tuple[CallerBehaviour, ...] = field(default_factory=lambda: (CallerBehaviour(patience=60.0),))
    seed: int | None = None
    max_calls: int = 10_000  # a bound, so a mistyped rate cannot flood the machine


async def random_load(sim: Simulator, profile: LoadProfile) -> int:
    """Place callers until the duration ends; returns how many calls were placed. Cancellable."""
    rng = random.Random(profile.seed)
    placed = 0
    elapsed = 0.0
    while placed < profile.max_calls:
        gap = rng.expovariate(profile.calls_per_s) if profile.calls_per_s > 0 else profile.duration
        elapsed += gap
        if elapsed > profile.duration:
            break
        await sim.world.sleep(gap)
        num = f"555{rng.randrange(10**7):07d}"
        sim.place_call(rng.choice(profile.dids), num, f"Caller {placed + 1}", rng.choice(profile.behaviours))
        placed += 1
    return placed


async def run_for(sim: Simulator, profile: LoadProfile) -> int:
    """``random_load`` inside a TaskGroup, then wait until every call has ended (bounded)."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(random_load(sim, profile))
    return task.result()
