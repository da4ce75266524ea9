"""The product's own prompts: asterisk-config/prompts.tsv names every prompt the server and the shipped flows
play, scripts/make-prompts.sh makes each one as Asterisk reads it, and `ctiserver run` says at start which of
them the PBX's sounds directory lacks (one line each, naming the flow and node), then serves all the same."""

from __future__ import annotations

import ast
import logging
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctiserver.ivr.prompts import check_prompts
from ctiserver.queueing.service import QUEUE_PROMPTS
from ivr_flows.validator import load_checked, static_prompts
from pbxsim.prompts import CORE_SOUNDS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "asterisk-config" / "prompts.tsv"
DEMO_FLOWS = sorted((ROOT / "ctiserver" / "demo" / "flows").glob("*.yaml"))
EXAMPLE_FLOWS = sorted((ROOT / "ivr_flows" / "examples").glob("*.yaml"))
# The values ctiserver.ivr.services gives order_status ("cs/<lang>/order-{order_status}" in the examples).
ORDER_STATUSES = ("processing", "shipped", "delivered")


def manifest() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            cols = line.split("\t")
            assert len(cols) == 4 and all(c.strip() for c in cols), line
            rows.append((cols[0], cols[1], cols[2], cols[3]))
    return rows


def flow_prompts(path: Path) -> set[str]:
    flow, errors = load_checked(path)
    assert flow is not None, errors
    names = {name for _, name in static_prompts(flow)}
    for g in (flow.main, *flow.subflows.values()):
        for node in g.nodes.values():
            for _, template in node.prompts():
                if "{order_status}" in template.text:
                    names |= {template.text.replace("{order_status}", s) for s in ORDER_STATUSES}
    return names


def test_the_manifest_names_every_prompt_the_product_plays() -> None:
    rows = manifest()
    by_dir: dict[str, set[str]] = {}
    for d, name, _, _ in rows:
        by_dir.setdefault(d, set()).add(name)
    assert len(rows) == sum(len(v) for v in by_dir.values()), "a prompt listed twice"
    own = {p for p in QUEUE_PROMPTS if p not in CORE_SOUNDS}
    assert own == {"cti/hold-music", "cti/callback-confirmed"}
    demo = set().union(*(flow_prompts(p) for p in DEMO_FLOWS))
    assert demo and all(p.startswith("demo/") for p in demo)
    for lang in ("en", "zh"):  # the server's and the demo's prompts, in each language directory
        assert own | demo <= by_dir[lang], lang
    examples = set().union(*(flow_prompts(p) for p in EXAMPLE_FLOWS))
    assert examples == by_dir["-"]  # the examples name their language: installed at the sounds root
    listed = set((ROOT / "ivr_flows" / "examples" / "prompts.txt").read_text(encoding="utf-8").split())
    assert listed <= examples


def test_queue_prompts_list_every_prompt_the_queue_plays() -> None:
    """QUEUE_PROMPTS is what the start check looks for: every prompt queueing/service.py plays is in it."""
    tree = ast.parse((ROOT / "ctiserver" / "queueing" / "service.py").read_text(encoding="utf-8"))
    consts = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    played = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_play":
            arg = node.args[1]
            played.add(arg.value if isinstance(arg, ast.Constant) else consts[arg.id])  # type: ignore[attr-defined]
    assert played and played == set(QUEUE_PROMPTS)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("sounds")
    subprocess.run([str(ROOT / "scripts" / "make-prompts.sh"), str(out)], check=True, capture_output=True)
    yield out


def test_make_prompts_writes_every_prompt_as_asterisk_reads_it(sounds: Path) -> None:
    for d, name, voice, _ in manifest():
        path = (sounds / name if d == "-" else sounds / d / name).with_suffix(".wav")
        with wave.open(str(path), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), path
            seconds = w.getnframes() / 8000
        assert (5.0 if voice == "tone" else 0.8) < seconds < 30.0, (path, seconds)


def pbx_sounds(sounds: Path, tmp: Path) -> Path:
    """A PBX's sounds directory: the product's prompts and Asterisk's core sounds (empty files will do)."""
    root = tmp / "sounds"
    shutil.copytree(sounds, root)
    for name in CORE_SOUNDS:
        (root / "en" / f"{name}.wav").parent.mkdir(parents=True, exist_ok=True)
        (root / "en" / f"{name}.wav").write_bytes(b"RIFF")
    return root


def test_start_check_names_each_missing_prompt(sounds: Path, tmp_path: Path) -> None:
    root = pbx_sounds(sounds, tmp_path)
    flows = [f for f in (load_checked(p)[0] for p in [*DEMO_FLOWS, *EXAMPLE_FLOWS]) if f is not None]
    for lang in ("en", "zh"):  # the centre's callers' language directory
        assert check_prompts(root / lang, flows, QUEUE_PROMPTS) == []
    # Asterisk plays a prompt missing in the caller's language from en: only a prompt in neither is missing.
    (root / "zh" / "demo" / "rate-1-to-5.wav").unlink()
    assert check_prompts(root / "zh", flows, QUEUE_PROMPTS) == []
    for lang in ("en", "zh"):
        (root / lang / "demo" / "welcome.wav").unlink()
        (root / lang / "cti" / "hold-music.wav").unlink()
    (root / "cs" / "zh" / "goodbye.wav").unlink()
    problems = check_prompts(root / "zh", flows, QUEUE_PROMPTS)
    assert len(problems) == 4, problems  # cs/zh/goodbye is played by two nodes
    assert problems[0].startswith("flow main: ") and "main.yaml:" in problems[0]
    assert "node 'greeting': prompt file 'demo/welcome' not found" in problems[0]
    assert problems[1].startswith("flow customer_service_zh: ") and "node 'after_hours'" in problems[1]
    assert "prompt file 'cs/zh/goodbye' not found" in problems[1]
    assert "node 'goodbye'" in problems[2] and "cs/zh/goodbye" in problems[2]
    assert problems[3] == f"queues: prompt file 'cti/hold-music' (hold music) not found in {root / 'zh'}"
    assert check_prompts(root / "en", flows, QUEUE_PROMPTS) == [*problems[:3], problems[3].replace("zh", "en")]
    assert check_prompts(tmp_path / "nowhere", flows, QUEUE_PROMPTS) == [
        f"prompts not checked: the sounds directory {tmp_path / 'nowhere'} (ivr.prompts_dir) is not reachable"]


async def test_the_server_starts_and_tells_each_missing_prompt(sounds: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from tests.gateway.gw_harness import app_site

    root = pbx_sounds(sounds, tmp_path)
    (root / "en" / "demo" / "main-menu.wav").unlink()
    caplog.set_level(logging.ERROR, "ctiserver.app")
    (tmp_path / "site").mkdir()
    async with app_site(tmp_path / "site", prompts_dir=root / "en") as site:
        assert site.server.flows.names() == ["main"]
        lines = [r.getMessage() for r in caplog.records if r.name == "ctiserver.app"]
        assert len(lines) == 1 and "node 'main_menu': prompt file 'demo/main-menu' not found" in lines[0], lines
        assert site.server.gateway.port > 0  # serving all the same
