"""The house's layers, checked on the source:

* arrows point one way: the domain packages (acd, ivr_flows, crmstore) never import the server
  (ctiserver) nor the simulator; the simulator never imports the server; the server imports the simulator
  only for `ctiserver demo`;
* pure modules (protocol cores, domain state machines, projections) import no asyncio, sockets, threads,
  processes or database drivers, not even through a module of ours;
* no import cycle, inside a package or between packages;
* app.py only wires the slices together.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ctiserver", "acd", "ivr_flows", "crmstore", "pbxsim")
DOMAIN = ("acd", "ivr_flows", "crmstore")
# Module names (or prefixes) that mean I/O. urllib.parse and json are pure; urllib.request is not.
IO = ("asyncio", "socket", "selectors", "ssl", "threading", "subprocess", "multiprocessing", "concurrent",
      "websockets", "aiosqlite", "asyncpg", "sqlite3", "urllib.request", "http", "vosk", "playwright")
PURE = (
    "acd",
    "ctiserver.callmodel",
    "ctiserver.calls.legs",
    "ctiserver.ami.protocol",
    "ctiserver.ami.errors",
    "ctiserver.agi.protocol",
    "ctiserver.audiosocket.protocol",
    "ctiserver.agi.peers",
    "ctiserver.control",
    "ctiserver.journal.facts",
    "ctiserver.projections.projector",
    "ctiserver.crm_history.records",
    "ctiserver.consoles.views",
    "ctiserver.alerts.targets",
    "ctiserver.alerts.evaluator",
    "ctiserver.gateway.schema",
    "ctiserver.gateway.auth",
    "ctiserver.gateway.streams",
    "ivr_flows.channel",
    "ivr_flows.interpreter",
    "ivr_flows.loader",
    "ivr_flows.model",
    "ivr_flows.steps",
    "ivr_flows.validator",
    "crmstore.plan",
    "crmstore.queries",
    "crmstore.journal",
    "crmstore.rows",
    "crmstore.grading",
    "crmstore.signals",
    "crmstore.privacy",
    "crmstore.phones",
    "crmstore.campaigns",
    "crmstore.campaign_plans",
    "pbxsim.action_frames",
    "pbxsim.wire",
    "pbxsim.dialplan",
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _ours(name: str) -> str | None:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> tuple[set[str], set[str]]:
    """(our modules, other modules' full names) that one import statement loads."""
    ours: set[str] = set()
    other: set[str] = set()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
        # `from pkg import submodule` loads the submodule; `from pkg import name` loads pkg itself.
        names = subs if len(subs) == len(node.names) else [source, *subs]
    for name in names:
        mine = _ours(name)
        if mine is not None:
            ours.add(mine)
        elif name.split(".")[0] not in PACKAGES:
            other.add(name)
    return ours, other


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(our modules imported at load time, ours imported inside functions, other modules imported)."""
    path = MODULES[module]
    eager: set[str] = set()
    lazy: set[str] = set()
    other: set[str] = set()

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                ours, theirs = _targets(module, path, child)
                (eager if at_load else lazy).update(ours - {module})
                other.update(theirs)
            visit(child, at_load and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return frozenset(eager), frozenset(lazy), frozenset(other)


def _reach(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            eager, lazy, _ = _imports(m)
            todo.extend(eager | lazy)
    return seen


def _io_of(module: str) -> set[str]:
    return {name for name in _imports(module)[2] if any(name == p or name.startswith(p + ".") for p in IO)}


def _package_modules(prefix: str) -> list[str]:
    return [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]


def test_domain_packages_never_import_the_server_or_the_simulator():
    offenders = []
    for module in MODULES:
        top = module.split(".")[0]
        eager, lazy, _ = _imports(module)
        for target in eager | lazy:
            to = target.split(".")[0]
            if top in DOMAIN and to in ("ctiserver", "pbxsim"):
                offenders.append(f"{module} -> {target}")
            if top == "pbxsim" and to == "ctiserver":
                offenders.append(f"{module} -> {target}")
            if top == "ctiserver" and to == "pbxsim" and not module.startswith("ctiserver.demo"):
                offenders.append(f"{module} -> {target} (only `ctiserver demo` runs the simulator)")
    assert offenders == []


def test_pure_modules_import_no_io_even_through_our_own_modules():
    offenders = []
    for prefix in PURE:
        modules = _package_modules(prefix)
        assert modules, f"{prefix} is listed as pure but does not exist"
        for module in modules:
            for reached in sorted(_reach(module)):
                io = _io_of(reached)
                if io:
                    via = "" if reached == module else f" (through {reached})"
                    offenders.append(f"{module}: {sorted(io)}{via}")
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root, targets in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules():
    graph = {m: set(_imports(m)[0] | _imports(m)[1]) for m in MODULES}
    assert _cycles(graph) == []


def test_no_import_cycle_between_packages_or_slices():
    """Packages, and the slices of ctiserver (ctiserver.calls, ctiserver.queueing ...), form a DAG."""

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "ctiserver" and len(parts) > 1 else parts[0]

    graph: dict[str, set[str]] = {}
    for module in MODULES:
        eager, lazy, _ = _imports(module)
        graph.setdefault(unit(module), set()).update(unit(t) for t in eager | lazy if unit(t) != unit(module))
    for targets in list(graph.values()):
        for t in targets:
            graph.setdefault(t, set())
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_app_only_wires_the_slices():
    """app.py builds the slices, connects their listeners and runs them in one TaskGroup; it decides nothing:
    it reads no wire protocol, keeps no call or agent state, handles no event and looks at no event's type."""
    path = ROOT / "ctiserver" / "app.py"
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    eager, lazy, _ = _imports("ctiserver.app")
    domain = {m for m in eager | lazy if m.endswith((".protocol", ".model", ".router", ".records", ".events",
                                                    ".decisions", ".states"))}
    assert domain == set()
    assert "TaskGroup" in text
    handlers = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name.startswith(("_on_", "on_", "handle"))]
    assert handlers == []
    type_tests = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Name) and n.func.id in ("isinstance", "type")]
    assert type_tests == [], "app.py looks at what things are: that decision belongs in a slice"
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Match)]
