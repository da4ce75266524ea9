"""A registry reload while calls are in progress, over the simulator: calls already inside the flow finish on
the version they started with, new calls get the new version, and a broken file keeps the previous one."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_flows.registry import FlowWatcher
from ivr_flows.steps import QueueHandoff
from pbxsim.people import CallerBehaviour

from .conftest import KNOWN_NUMBER, make_rig
from .rig import IvrRig

HOTLINE = "8200"
# custom/long-prompt plays 11.6 virtual seconds: the call is inside the flow while the file changes.
V1 = """flow: hotline
start: intro
nodes:
  intro: {type: play, prompts: [custom/long-prompt], next: menu}
  menu:
    type: menu
    prompts: [v1/menu]
    on_fail: q
    options: [{key: "1", next: q}]
  q: {type: queue, queue: support}
"""
V2 = V1.replace("v1/menu", "v2/menu").replace("queue: support", "queue: sales")
BROKEN = V2.replace("next: q}]", "next: nowhere}]")


@pytest.fixture
async def hotline(tmp_path: Path) -> AsyncIterator[tuple[IvrRig, Path]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hotline.yaml").write_text(V1)
    rig = await make_rig(tmp_path, flows_dir=flows)
    rig.flow_by_did[HOTLINE] = "hotline"
    yield rig, flows / "hotline.yaml"
    await rig.close()


def edit(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # a distinct mtime even within one clock tick


async def test_reload_during_calls(hotline: tuple[IvrRig, Path]) -> None:
    rig, path = hotline
    watcher = FlowWatcher(rig.registry)
    v1 = rig.registry.get("hotline").version

    first = rig.call(HOTLINE, KNOWN_NUMBER, CallerBehaviour(keys=("1",)))
    async with asyncio.timeout(5):
        await first.started.wait()

    edit(path, V2, 10**18)
    assert watcher.check() == []
    v2 = rig.registry.get("hotline").version
    assert v2 != v1
    second = rig.call(HOTLINE, KNOWN_NUMBER, CallerBehaviour(keys=("1",)))
    async with asyncio.timeout(5):
        await second.started.wait()

    edit(path, BROKEN, 2 * 10**18)
    errors = watcher.check()
    assert errors is not None and [(e.kind, e.line) for e in errors] == [("missing-target", 9)]
    assert rig.registry.get("hotline").version == v2  # the broken file is never loaded
    third = rig.call(HOTLINE, KNOWN_NUMBER, CallerBehaviour(keys=("1",)))

    # Both reloads happened while the first call was still playing its intro.
    assert not first.done.done() and not second.done.done()
    results = await asyncio.gather(first.result(), second.result(), third.result())
    assert [(r.outcome, r.version) for r in results] == [
        (QueueHandoff("support"), v1), (QueueHandoff("sales"), v2), (QueueHandoff("sales"), v2)]
    assert first.sent[1] == "STREAM FILE v1/menu 1"
    assert second.sent[1] == third.sent[1] == "STREAM FILE v2/menu 1"
    for call in (first, second, third):
        await call.ended()
