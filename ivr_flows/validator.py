"""Graph-level checks of a parsed Flow. Pure: the catalog of prompts, queues and skills is passed in.

Every error carries file, line and column. ``check_files`` is what ``ctiserver flows check FILE...`` calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FlowError
from .loader import read_flow
from .model import (
    BUILTIN_VARIABLES,
    BranchNode,
    CallbackNode,
    CallNode,
    Flow,
    Graph,
    MenuNode,
    Node,
    Pos,
    QueueNode,
    ReturnNode,
)

# Prompt names go into STREAM FILE / GET DATA as file names: keep them to a charset that cannot escape the
# sounds directory or confuse the AGI parser.
SAFE_PROMPT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/.-]{0,127}$")
AUDIO_EXTENSIONS = ("wav", "WAV", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "g729", "wav16")


def safe_prompt_name(name: str) -> bool:
    return bool(SAFE_PROMPT.match(name)) and ".." not in name and not name.startswith("/")


@dataclass(frozen=True, slots=True)
class FlowCatalog:
    """What a flow may refer to. ``None`` means "not checked"."""

    prompt_dirs: tuple[Path, ...] = ()
    prompt_names: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    skills: frozenset[str] | None = None
    speech_languages: frozenset[str] | None = None
    # Whether the language's speech model knows a word (RecognizerPool.knows; None: no model, the menu
    # will go keypad-only): a menu word it lacks is dropped from the grammar by the decoder, never heard.
    speech_words: Callable[[str, str], bool | None] | None = None
    _cache: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @property
    def checks_prompts(self) -> bool:
        return bool(self.prompt_dirs) or self.prompt_names is not None

    def has_prompt(self, name: str) -> bool:
        if self.prompt_names is not None and name in self.prompt_names:
            return True
        if name not in self._cache:
            self._cache[name] = any(
                (d / f"{name}.{ext}").is_file() for d in self.prompt_dirs for ext in AUDIO_EXTENSIONS
            )
        return self._cache[name]


def _err(flow: Flow, pos: Pos, message: str, kind: str) -> FlowError:
    return FlowError(flow.file, pos[0], pos[1], message, kind)


def _where(g: Graph) -> str:
    return "flow" if g.name == "" else f"subflow {g.name!r}"


def check_flow(flow: Flow, catalog: FlowCatalog | None = None) -> list[FlowError]:
    catalog = catalog or FlowCatalog()
    errors: list[FlowError] = []
    graphs = [flow.main, *flow.subflows.values()]
    for g in graphs:
        errors.extend(_check_targets(flow, g))
    errors.extend(_check_calls(flow))
    for g in graphs:
        if g.broken:
            continue  # the graph is incomplete: reachability and loops would only repeat the parse errors
        errors.extend(_check_reachable(flow, g))
        errors.extend(_check_loops(flow, g))
    errors.extend(_check_catalog(flow, catalog))
    errors.extend(_check_variables(flow))
    errors.sort(key=lambda e: (e.line, e.column))
    return errors


def _check_targets(flow: Flow, g: Graph) -> Iterable[FlowError]:
    if g.start not in g.nodes and g.start not in g.broken:
        yield _err(flow, g.start_pos, f"{_where(g)}: start node {g.start!r} does not exist", "missing-target")
    for node in g.nodes.values():
        for fld, target in node.targets():
            if target not in g.nodes and target not in g.broken:
                yield _err(
                    flow, node.field_pos(fld),
                    f"node {node.name!r}: {fld} goes to {target!r}, which is not a node of this {_where(g)}",
                    "missing-target",
                )
        if isinstance(node, CallNode) and node.subflow not in flow.subflows:
            yield _err(flow, node.field_pos("subflow"), f"node {node.name!r}: no subflow {node.subflow!r}",
                       "missing-target")
        if isinstance(node, ReturnNode) and g.name == "":
            yield _err(flow, node.pos, f"node {node.name!r}: return is only allowed inside a subflow", "invalid")


def _check_calls(flow: Flow) -> Iterable[FlowError]:
    """Sub-flows may call sub-flows, but never recursively (a run's call stack must stay bounded)."""
    calls = {
        name: [n for n in g.nodes.values() if isinstance(n, CallNode) and n.subflow in flow.subflows]
        for name, g in flow.subflows.items()
    }
    for start in flow.subflows:
        stack, seen = [start], set()
        while stack:
            cur = stack.pop()
            for node in calls.get(cur, []):
                if node.subflow == start:
                    yield _err(flow, node.field_pos("subflow"),
                               f"node {node.name!r}: subflow {start!r} calls itself (recursion)", "loop")
                elif node.subflow not in seen:
                    seen.add(node.subflow)
                    stack.append(node.subflow)
    called = {n.subflow for g in (flow.main, *flow.subflows.values()) for n in g.nodes.values()
              if isinstance(n, CallNode)}
    for name, g in flow.subflows.items():
        if name not in called:
            yield _err(flow, g.pos, f"subflow {name!r} is never called", "unreachable")


def _successors(g: Graph, node: Node) -> list[str]:
    return [t for _, t in node.targets() if t in g.nodes]


def _check_reachable(flow: Flow, g: Graph) -> Iterable[FlowError]:
    if g.start not in g.nodes:
        return
    seen = {g.start}
    stack = [g.start]
    while stack:
        for t in _successors(g, g.nodes[stack.pop()]):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    for name, node in g.nodes.items():
        if name not in seen:
            yield _err(flow, node.pos, f"node {name!r} cannot be reached from {g.start!r}", "unreachable")


def _sccs(g: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: flows written by people can be long)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in g.nodes:
        if root in index:
            continue
        work = [(root, iter(_successors(g, g.nodes[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(_successors(g, g.nodes[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def _node_waits(flow: Flow, node: Node) -> bool:
    if isinstance(node, CallNode) and node.subflow in flow.subflows:
        return any(n.waits for n in flow.subflows[node.subflow].nodes.values())
    return node.waits


def _check_loops(flow: Flow, g: Graph) -> Iterable[FlowError]:
    order = list(g.nodes)
    # Nodes from which some terminal node (queue, transfer, hangup, voicemail, return) can be reached.
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    for name, node in g.nodes.items():
        for t in _successors(g, node):
            preds[t].append(name)
    can_exit = {n for n, node in g.nodes.items() if node.terminal}
    stack = list(can_exit)
    while stack:
        for p in preds[stack.pop()]:
            if p not in can_exit:
                can_exit.add(p)
                stack.append(p)
    for comp in _sccs(g):
        cyclic = len(comp) > 1 or comp[0] in _successors(g, g.nodes[comp[0]])
        if not cyclic:
            continue
        comp.sort(key=order.index)
        first = g.nodes[comp[0]]
        names = " -> ".join([*comp, comp[0]])
        if not any(n in can_exit for n in comp):
            yield _err(flow, first.pos, f"loop with no exit: {names} never reaches a queue, transfer, "
                                        "voicemail, hangup or return", "loop")
        elif not any(_node_waits(flow, g.nodes[n]) for n in comp):
            yield _err(flow, first.pos, f"loop {names} never plays a prompt or waits for the caller "
                                        "(it would spin forever)", "loop")


def _check_blacklist(flow: Flow, catalog: FlowCatalog) -> Iterable[FlowError]:
    policy = flow.blacklist
    if policy is None:
        return
    if policy.action == "route" and catalog.queues is not None and policy.queue not in catalog.queues:
        yield _err(flow, policy.pos, f"blacklist: unknown queue {policy.queue!r}", "queue")
    if policy.action == "refuse":
        if not safe_prompt_name(policy.message):
            yield _err(flow, policy.pos, f"blacklist: prompt name {policy.message!r} has characters outside "
                       "A-Z a-z 0-9 _ / . -", "prompt")
        elif catalog.checks_prompts and not catalog.has_prompt(policy.message):
            yield _err(flow, policy.pos, f"blacklist: prompt file {policy.message!r} not found", "prompt")


def _check_catalog(flow: Flow, catalog: FlowCatalog) -> Iterable[FlowError]:
    yield from _check_blacklist(flow, catalog)
    fb = flow.fallback
    if catalog.queues is not None and fb.queue not in catalog.queues:
        yield _err(flow, fb.pos, f"fallback: unknown queue {fb.queue!r}", "queue")
    if catalog.skills is not None:
        for s in fb.skills:
            if s not in catalog.skills:
                yield _err(flow, fb.pos, f"fallback: unknown skill {s!r}", "skill")
    for g in (flow.main, *flow.subflows.values()):
        for node in g.nodes.values():
            yield from _check_node_catalog(flow, node, catalog)


def static_prompts(flow: Flow) -> list[tuple[Node, str]]:
    """Every prompt a flow names as it is (node, prompt name): the sounds the PBX must have. Names built from
    variables are left out: their values are only known when a call runs."""
    return [(node, prompt.text) for g in (flow.main, *flow.subflows.values()) for node in g.nodes.values()
            for _fld, prompt in node.prompts() if prompt.is_static]


def _check_node_catalog(flow: Flow, node: Node, catalog: FlowCatalog) -> Iterable[FlowError]:
    for fld, prompt in node.prompts():
        if not prompt.is_static:
            continue  # checked at run time against SAFE_PROMPT (values come from variables)
        if not safe_prompt_name(prompt.text):
            yield _err(flow, node.field_pos(fld), f"node {node.name!r}: prompt name {prompt.text!r} has "
                       "characters outside A-Z a-z 0-9 _ / . -", "prompt")
        elif catalog.checks_prompts and not catalog.has_prompt(prompt.text):
            yield _err(flow, node.field_pos(fld), f"node {node.name!r}: prompt file {prompt.text!r} not found",
                       "prompt")
    queues: list[tuple[str, str]] = []
    if isinstance(node, QueueNode):
        queues.append(("queue", node.queue))
        if catalog.skills is not None:
            for s in node.skills:
                if s not in catalog.skills:
                    yield _err(flow, node.field_pos("skills"), f"node {node.name!r}: unknown skill {s!r}", "skill")
    elif isinstance(node, CallbackNode):
        queues.append(("queue", node.queue))
    elif isinstance(node, BranchNode):
        for case in node.cases:
            queues.extend(("cases", q) for q in case.when.queues())
            for cal, pos in case.when.calendars():
                if cal not in flow.calendars:
                    yield _err(flow, pos, f"node {node.name!r}: no calendar {cal!r}", "missing-target")
    if catalog.queues is not None:
        for fld, q in queues:
            if q not in catalog.queues:
                yield _err(flow, node.field_pos(fld), f"node {node.name!r}: unknown queue {q!r}", "queue")
    speech = getattr(node, "speech", None)
    if speech is not None and catalog.speech_languages is not None \
            and speech.language not in catalog.speech_languages:
        yield _err(flow, node.field_pos("speech"), f"node {node.name!r}: no speech model for language "
                   f"{speech.language!r}", "speech")
    elif speech is not None and catalog.speech_words is not None and isinstance(node, MenuNode):
        known = catalog.speech_words
        for option in node.options:
            unknown = [w for phrase in option.words for w in phrase.split() if known(speech.language, w) is False]
            if unknown:
                yield _err(flow, option.pos, f"node {node.name!r}: option {option.key or option.next!r}: "
                           f"{', '.join(map(repr, dict.fromkeys(unknown)))} not in the {speech.language} speech "
                           "model's vocabulary (it could never be heard; use words the model knows)", "speech")


def defined_variables(flow: Flow) -> set[str]:
    names = set(BUILTIN_VARIABLES) | set(flow.variables)
    for g in (flow.main, *flow.subflows.values()):
        for node in g.nodes.values():
            names.update(node.defines())
    return names


def _check_variables(flow: Flow) -> Iterable[FlowError]:
    # Flow-insensitive on purpose: a variable set anywhere counts as defined (an unset one renders as "").
    # What this catches is the typo ({acount}) that would otherwise be silently empty on every call.
    defined = defined_variables(flow)
    for g in (flow.main, *flow.subflows.values()):
        for node in g.nodes.values():
            for fld, name in node.references():
                if name not in defined:
                    yield _err(flow, node.field_pos(fld), f"node {node.name!r}: variable {name!r} is never set",
                               "variable")


def load_checked(path: str | Path, catalog: FlowCatalog | None = None) -> tuple[Flow | None, list[FlowError]]:
    """Parse and validate one file. The Flow is returned only when there is no error at all."""
    flow, errors = read_flow(path)
    if flow is not None:
        errors = errors + check_flow(flow, catalog)
    errors.sort(key=lambda e: (e.line, e.column))
    return (flow if not errors else None), errors


def check_files(paths: Sequence[str | Path], catalog: FlowCatalog | None = None) -> list[FlowError]:
    """Every error of every file; an empty list means all files would load."""
    out: list[FlowError] = []
    names: dict[str, str] = {}
    for p in paths:
        flow, errors = read_flow(p)
        if flow is not None:
            errors = errors + check_flow(flow, catalog)
            if flow.name in names:
                errors.append(FlowError(str(p), 1, 1, f"flow name {flow.name!r} is also used by {names[flow.name]}",
                                        "invalid"))
            names.setdefault(flow.name, str(p))
        out.extend(sorted(errors, key=lambda e: (e.line, e.column)))
    return out
