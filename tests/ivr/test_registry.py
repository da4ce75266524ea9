"""Reload during calls: a bad file keeps the old version, a good one applies to new calls only."""

from __future__ import annotations

import os
from pathlib import Path

from ivr_flows.driver import run_flow
from ivr_flows.interpreter import FlowRun
from ivr_flows.registry import FlowRegistry, FlowWatcher
from ivr_flows.steps import AgiCommand, QueueHandoff

from .agi_peer import Press, scripted
from .services import MemoryServices

V1 = """flow: hotline
start: menu
nodes:
  menu:
    type: menu
    prompts: [v1/menu]
    on_fail: q
    options: [{key: "1", next: q}]
  q: {type: queue, queue: support}
"""
V2 = V1.replace("v1/menu", "v2/menu").replace("queue: support", "queue: sales")
BROKEN = V1.replace("next: q}]", "next: nowhere}]")


async def test_reload_during_calls(tmp_path: Path) -> None:
    f = tmp_path / "hotline.yaml"
    f.write_text(V1)
    registry = FlowRegistry(tmp_path)
    assert registry.reload() == []
    old_call = FlowRun(registry.get("hotline"), {}, None)
    assert old_call.start() == AgiCommand(("STREAM FILE", "v1/menu", "1"))

    f.write_text(BROKEN)
    errors = registry.reload()
    assert [(e.kind, e.line) for e in errors] == [("missing-target", 8)]
    assert registry.get("hotline") is old_call.flow  # the previous version keeps running

    f.write_text(V2)
    os.utime(f, None)
    assert registry.reload() == []
    new_flow = registry.get("hotline")
    assert new_flow.version != old_call.flow.version

    # The call that started on v1 finishes on v1; a new call runs v2.
    old_result = await run_flow(scripted([Press("1")]), old_call, MemoryServices())
    assert old_result.outcome == QueueHandoff("support") and old_result.version == old_call.flow.version
    channel = scripted([Press("1")])
    new_result = await run_flow(channel, FlowRun(new_flow, {}, None), MemoryServices())
    assert new_result.outcome == QueueHandoff("sales")
    assert channel.sent[0] == "STREAM FILE v2/menu 1"


async def test_broken_file_is_never_loaded_and_watcher_picks_changes(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("flow: bad\nstart: a\nnodes:\n  a: {type: nope}\n")
    (tmp_path / "good.yaml").write_text(V1)
    registry = FlowRegistry(tmp_path)
    errors = registry.reload()
    assert [(Path(e.file).name, e.line, e.column) for e in errors] == [("bad.yaml", 4, 13)]
    assert registry.names() == ["hotline"]
    watcher = FlowWatcher(registry, interval=0.01)
    assert watcher.check() is None
    (tmp_path / "good.yaml").write_text(V2)
    os.utime(tmp_path / "good.yaml", ns=(1, 10**18))
    assert watcher.check() == [e for e in errors]  # bad.yaml still reported, good.yaml reloaded
    assert registry.get("hotline").main.nodes["q"].queue == "sales"  # type: ignore[attr-defined]
    (tmp_path / "good.yaml").unlink()
    watcher.check()
    assert "hotline" not in registry
