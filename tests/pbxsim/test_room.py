"""The simulator is a room of its own: it imports nothing of the product, and its own imports only go down.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions: a cycle hidden in
a function body is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pbxsim

PACKAGE = Path(pbxsim.__file__).resolve().parent
# The low core: the world (world.py) builds on these alone, and they never reach above themselves.
LOW_CORE = {"pbxsim.wire", "pbxsim.action_frames", "pbxsim.prompts", "pbxsim.dialplan", "pbxsim.channels",
            "pbxsim.mixmonitor"}
# Pure over bytes and text (house style): no event loop, no sockets.
PURE = {"pbxsim.wire", "pbxsim.action_frames", "pbxsim.dialplan", "pbxsim.prompts"}
IO = {"asyncio", "socket", "selectors"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(module: str | None, level: int, importer: str) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against the importer)."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if MODULES[importer].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_modules(name: str) -> set[str]:
    """Every module ``name`` imports, anywhere in its source (TYPE_CHECKING blocks and function bodies too)."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node.module, node.level, name)
            found.add(target)
            # ``from pbxsim import wire`` imports the module pbxsim.wire, not only the package.
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES)
    return found


def module_graph() -> dict[str, set[str]]:
    return {name: {m for m in imported_modules(name) if m in MODULES and m != name} for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def test_every_module_is_seen() -> None:
    assert {"pbxsim.world", "pbxsim.channels", "pbxsim.apps", "pbxsim.ami_server", "pbxsim.simulator"} <= set(MODULES)


def test_no_module_imports_the_product() -> None:
    offenders = sorted(f"{name} imports {m}" for name in MODULES for m in imported_modules(name)
                       if m == "ctiserver" or m.startswith("ctiserver."))
    assert offenders == [], "\n".join(offenders)


def test_module_graph_has_no_cycle() -> None:
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_reports_the_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": set()}
    assert find_cycle(graph) == ["b", "c", "b"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_low_core_and_world_import_nothing_above_the_low_core() -> None:
    graph = module_graph()
    assert LOW_CORE <= set(graph), sorted(LOW_CORE - set(graph))
    upward = sorted(f"{name} imports {m}" for name in LOW_CORE | {"pbxsim.world"}
                    for m in graph[name] - LOW_CORE - {"pbxsim"})
    assert upward == [], "\n".join(upward)


def test_parsers_and_renderers_are_pure() -> None:
    assert PURE <= set(MODULES), sorted(PURE - set(MODULES))
    offenders = sorted(f"{name} imports {m}" for name in PURE for m in imported_modules(name)
                       if m.split(".")[0] in IO)
    assert offenders == [], "\n".join(offenders)
