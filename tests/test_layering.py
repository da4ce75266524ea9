"""One-way imports: domain logic and protocol cores never touch asyncio, sockets or database drivers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"asyncio", "socket", "websockets", "aiosqlite", "asyncpg", "sqlite3", "panoramisk", "selectors"}
PURE = [
    "acd",
    "ctiserver/callmodel",
    "ctiserver/ami/protocol.py",
    "ctiserver/agi/protocol.py",
    "ivr_flows/interpreter.py",
    "ctiserver/gateway/schema.py",
    "ctiserver/gateway/auth.py",
    "ctiserver/gateway/streams.py",
    "ivr_flows/steps.py",
    "ivr_flows/validator.py",
]


def _files(rel: str) -> list[Path]:
    p = ROOT / rel
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pure_modules_import_no_io():
    offenders = []
    for rel in PURE:
        for f in _files(rel):
            if not f.exists():
                continue
            bad = _imports(f) & FORBIDDEN
            if bad:
                offenders.append(f"{f.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []
    assert (ROOT / "ctiserver/callmodel/model.py").exists()
