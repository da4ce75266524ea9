"""YAML flow file -> typed, frozen Flow objects, with the line and column of every mistake.

The YAML is composed (not constructed) so every value keeps its position; the typed builders below read the
node tree directly. Structural mistakes (a wrong type, an unknown field, an unknown node type) are collected
here; graph-level checks (targets, reachability, loops, prompts, queues, variables) live in validator.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import FlowError
from .model import (
    BLACKLIST_ACTIONS,
    DEFAULT_LOOKUP_SETS,
    SAY_KINDS,
    SURVEY_ANSWERS,
    BranchCase,
    BranchNode,
    Calendar,
    CallbackNode,
    CallNode,
    CollectNode,
    Condition,
    Fallback,
    Flow,
    FlowBlacklist,
    GotoNode,
    Graph,
    HangupNode,
    LookupNode,
    MenuNode,
    MenuOption,
    Node,
    PlayNode,
    Pos,
    QueueNode,
    RecordNode,
    ReturnNode,
    SayNode,
    SetNode,
    SpeechSettings,
    SurveyNode,
    Template,
    TransferNode,
    VoicemailNode,
)

# A ten-minute recording is the longest anyone may configure; Asterisk enforces it with RECORD FILE's timeout.
MAX_RECORD_SECONDS = 600
READ_PIECE = 64 * 1024
MAX_FILE_BYTES = 2_000_000  # a security limit: a flow file is text written by people
# Also a security limit: the YAML composer and the condition builder below recurse once per level.
# A real flow nests about 10 levels (nodes > menu > options > condition > all > ...).
MAX_DEPTH = 64
# A security limit too: nodes reached through YAML aliases, counted as often as they are reached. A flow
# that shares a prompt list or a condition by alias stays far below it.
MAX_ALIASED_NODES = 10_000
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
KEYS = "0123456789*#"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

T = TypeVar("T")


class _Bad(Exception):
    def __init__(self, pos: Pos, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message
        self.kind = kind


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader refusing, with a position instead of a RecursionError or a hang: nesting deeper than
    MAX_DEPTH, an alias inside the node it names (a loop), and aliases that expand to more than
    MAX_ALIASED_NODES nodes (the "billion laughs": composing shares nodes, the builders walk them all)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.open_anchors: set[str] = set()  # anchors of the nodes being composed: an alias to one is a loop
        self.shapes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, levels), aliases expanded
        self.aliased = 0  # nodes reached through aliases so far

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if self.depth >= MAX_DEPTH:
            raise self._refuse(f"nested deeper than {MAX_DEPTH} levels", event)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise self._refuse(f"alias *{event.anchor} is inside the node it names (a loop)", event)
            node = super().compose_node(parent, index)
            assert node is not None
            nodes, levels = self.shapes[id(node)]
            self.aliased += nodes
            if self.aliased > MAX_ALIASED_NODES:
                raise self._refuse(f"aliases expand to more than {MAX_ALIASED_NODES} nodes", event)
            if self.depth + levels > MAX_DEPTH:
                raise self._refuse(f"nested deeper than {MAX_DEPTH} levels through alias *{event.anchor}", event)
            return node
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)
        assert node is not None
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        inner = [self.shapes[id(c)] for c in children]
        self.shapes[id(node)] = (1 + sum(n for n, _ in inner), 1 + max((lv for _, lv in inner), default=0))
        return node

    def _refuse(self, message: str, event: Any) -> yaml.composer.ComposerError:
        return yaml.composer.ComposerError(None, None, message, event.start_mark)


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Map:
    """A YAML mapping node with positions; tracks which keys were read so unknown ones can be reported."""

    def __init__(self, node: yaml.Node, what: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise _Bad(_pos(node), f"{what} must be a mapping")
        self.node = node
        self.pos = _pos(node)
        self.items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        self.dupes: list[_Bad] = []
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise _Bad(_pos(k), f"{what}: keys must be plain names")
            if k.value in self.items:
                self.dupes.append(_Bad(_pos(k), f"duplicate key {k.value!r} in {what}"))
            self.items[k.value] = (k, v)

    def has(self, key: str) -> bool:
        return key in self.items

    def get(self, key: str) -> yaml.Node | None:
        kv = self.items.get(key)
        return kv[1] if kv else None

    def need(self, key: str, what: str) -> yaml.Node:
        v = self.get(key)
        if v is None:
            raise _Bad(self.pos, f"{what}: missing field {key!r}")
        return v

    def key_pos(self, key: str) -> Pos:
        kv = self.items.get(key)
        return _pos(kv[0]) if kv else self.pos

    def positions(self) -> dict[str, Pos]:
        return {k: _pos(v) for k, (_, v) in self.items.items()}

    def unknown(self, allowed: Iterable[str], what: str) -> list[_Bad]:
        ok = set(allowed)
        return [
            _Bad(_pos(k), f"{what}: unknown field {name!r} (allowed: {', '.join(sorted(ok))})")
            for name, (k, _) in self.items.items()
            if name not in ok
        ]


def _scalar(node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise _Bad(_pos(node), f"{what} must be a single value")
    return str(node.value)


def _str(node: yaml.Node, what: str) -> str:
    value = _scalar(node, what)
    if value == "" and node.tag == "tag:yaml.org,2002:null":
        raise _Bad(_pos(node), f"{what} must not be empty")
    return value


def _name(node: yaml.Node, what: str) -> str:
    value = _str(node, what)
    if not NAME.match(value):
        raise _Bad(_pos(node), f"{what} {value!r} is not a valid name (letters, digits, _ and -)")
    return value


def _var(node: yaml.Node, what: str) -> str:
    value = _str(node, what)
    if not VAR_NAME.match(value):
        raise _Bad(_pos(node), f"{what} {value!r} is not a valid variable name")
    return value


def _int(node: yaml.Node, what: str, lo: int, hi: int) -> int:
    text = _scalar(node, what)
    try:
        value = int(text)
    except ValueError:
        raise _Bad(_pos(node), f"{what} must be a whole number, not {text!r}") from None
    if not lo <= value <= hi:
        raise _Bad(_pos(node), f"{what} must be between {lo} and {hi}, not {value}")
    return value


def _float(node: yaml.Node, what: str, lo: float, hi: float) -> float:
    text = _scalar(node, what)
    try:
        value = float(text)
    except ValueError:
        raise _Bad(_pos(node), f"{what} must be a number, not {text!r}") from None
    if not lo <= value <= hi:
        raise _Bad(_pos(node), f"{what} must be between {lo} and {hi}, not {value}")
    return value


def _bool(node: yaml.Node, what: str) -> bool:
    text = _scalar(node, what).lower()
    if text in ("true", "yes", "on"):
        return True
    if text in ("false", "no", "off"):
        return False
    raise _Bad(_pos(node), f"{what} must be true or false, not {text!r}")


def _list(node: yaml.Node, what: str, item: Callable[[yaml.Node, str], T]) -> tuple[T, ...]:
    """A sequence, or a single value standing for a one-element list."""
    if isinstance(node, yaml.SequenceNode):
        return tuple(item(n, what) for n in node.value)
    return (item(node, what),)


def _template(node: yaml.Node, what: str) -> Template:
    return Template(_str(node, what))


def _prompts(m: _Map, key: str, what: str) -> tuple[Template, ...]:
    node = m.get(key)
    return _list(node, f"{what}.{key}", _template) if node is not None else ()


def _opt(m: _Map, key: str, conv: Callable[[yaml.Node, str], T], what: str, default: T) -> T:
    node = m.get(key)
    return conv(node, f"{what}.{key}") if node is not None else default


@dataclass(frozen=True, slots=True)
class _Defaults:
    speech: SpeechSettings
    fallback_target: str | None


COMMON = ("type", "comment", "label")
_LANG = re.compile(r"[a-z]{2,3}([_-][A-Za-z]{2,4})?$")


def _label(m: _Map, what: str) -> dict[str, str]:
    """A node's `label`: a text for every language, or a mapping of language code to text."""
    node = m.get("label")
    if node is None:
        return {}
    if isinstance(node, yaml.MappingNode):
        lm = _Map(node, f"{what}.label")
        out: dict[str, str] = {}
        for lang, (knode, vnode) in lm.items.items():
            if not _LANG.match(lang):
                raise _Bad(_pos(knode), f"{what}.label: {lang!r} is not a language code (en, zh, zh-CN ...)")
            out[lang] = _str(vnode, f"{what}.label.{lang}")
        return out
    return {"": _str(node, f"{what}.label")}


def _node(name: str, m: _Map, d: _Defaults, problems: list[_Bad]) -> Node:
    what = f"node {name!r}"
    type_node = m.need("type", what)
    kind = _str(type_node, f"{what}.type")
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise _Bad(
            _pos(type_node),
            f"{what}: unknown node type {kind!r} (known: {', '.join(sorted(_BUILDERS))})",
            "unknown-node-type",
        )
    fields, build = builder
    problems.extend(m.unknown((*COMMON, *fields), what))
    base: dict[str, Any] = {"name": name, "pos": m.pos, "fields": m.positions()}
    return build(m, what, base, d)


def _target(m: _Map, key: str, what: str) -> str:
    return _name(m.need(key, what), f"{what}.{key}")


def _fail_target(m: _Map, what: str, d: _Defaults) -> str:
    if m.has("on_fail") or d.fallback_target is None:
        return _target(m, "on_fail", what)
    return d.fallback_target


def _play(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return PlayNode(
        **base,
        items=_list(m.need("prompts", what), f"{what}.prompts", _template),
        barge_in=_opt(m, "barge_in", _bool, what, False),
        next=_target(m, "next", what),
    )


def _say(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    kind_node = m.need("say", what)
    kind = _str(kind_node, f"{what}.say")
    if kind not in SAY_KINDS:
        raise _Bad(_pos(kind_node), f"{what}.say must be one of {', '.join(SAY_KINDS)}, not {kind!r}")
    return SayNode(
        **base, kind=kind, value=_template(m.need("value", what), f"{what}.value"), next=_target(m, "next", what)
    )


def _speech(node: yaml.Node | None, what: str, d: _Defaults) -> SpeechSettings | None:
    if node is None:
        return None
    if isinstance(node, yaml.ScalarNode):
        return d.speech if _bool(node, what) else None
    m = _Map(node, what)
    bad = m.unknown(("language", "confidence", "listen_seconds", "silence_seconds", "attempts", "wait_seconds",
                     "barge_in"), what)
    if bad:
        raise bad[0]
    s = d.speech
    return SpeechSettings(
        language=_opt(m, "language", _str, what, s.language),
        confidence=_opt(m, "confidence", lambda n, w: _float(n, w, 0.0, 1.0), what, s.confidence),
        listen_seconds=_opt(m, "listen_seconds", lambda n, w: _float(n, w, 1.0, 30.0), what, s.listen_seconds),
        silence_seconds=_opt(m, "silence_seconds", lambda n, w: _int(n, w, 1, 10), what, s.silence_seconds),
        attempts=_opt(m, "attempts", lambda n, w: _int(n, w, 1, 10), what, s.attempts),
        wait_seconds=_opt(m, "wait_seconds", lambda n, w: _float(n, w, 0.5, 30.0), what, s.wait_seconds),
        barge_in=_opt(m, "barge_in", _bool, what, s.barge_in),
    )


def _option(node: yaml.Node, what: str) -> MenuOption:
    m = _Map(node, what)
    bad = m.unknown(("key", "keywords", "synonyms", "next", "comment"), what)
    if bad:
        raise bad[0]
    key = None
    if m.has("key"):
        key_node = m.need("key", what)
        key = _scalar(key_node, f"{what}.key")
        if len(key) != 1 or key not in KEYS:
            raise _Bad(_pos(key_node), f"{what}.key must be one of {KEYS}, not {key!r}")
    words: list[str] = []
    for fld in ("keywords", "synonyms"):
        node_ = m.get(fld)
        if node_ is not None:
            words.extend(w.strip().lower() for w in _list(node_, f"{what}.{fld}", _str))
    if key is None and not words:
        raise _Bad(m.pos, f"{what} needs a key or keywords")
    return MenuOption(key=key, words=tuple(words), next=_target(m, "next", what), pos=m.pos)


def _menu(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    opts_node = m.need("options", what)
    if not isinstance(opts_node, yaml.SequenceNode) or not opts_node.value:
        raise _Bad(_pos(opts_node), f"{what}.options must be a non-empty list")
    options = tuple(_option(n, f"{what}.options[{i}]") for i, n in enumerate(opts_node.value))
    seen: dict[str, MenuOption] = {}
    for o in options:
        if o.key is not None:
            if o.key in seen:
                raise _Bad(o.pos, f"{what}: key {o.key!r} is used by two options")
            seen[o.key] = o
    words = [w for o in options for w in o.words]
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes:
        raise _Bad(_pos(opts_node), f"{what}: keyword(s) {', '.join(dupes)} used by two options")
    speech = _speech(m.get("speech"), f"{what}.speech", d)
    if speech is not None and not words:
        raise _Bad(m.key_pos("speech"), f"{what}: speech needs keywords on the options")
    return MenuNode(
        **base,
        items=_list(m.need("prompts", what), f"{what}.prompts", _template),
        options=options,
        timeout=_opt(m, "timeout", lambda n, w: _float(n, w, 0.5, 60.0), what, 5.0),
        retries=_opt(m, "retries", lambda n, w: _int(n, w, 0, 20), what, 3),
        no_input=_prompts(m, "no_input", what),
        no_match=_prompts(m, "no_match", what),
        on_fail=_fail_target(m, what, d),
        speech=speech,
        var=_opt(m, "var", _var, what, None),
    )


def _collect(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    lo = _opt(m, "min", lambda n, w: _int(n, w, 1, 32), what, 1)
    hi = _opt(m, "max", lambda n, w: _int(n, w, 1, 32), what, 16)
    if lo > hi:
        raise _Bad(m.key_pos("min"), f"{what}: min ({lo}) is greater than max ({hi})")
    term = m.get("terminator")
    if term is not None and _scalar(term, f"{what}.terminator") != "#":
        # GET DATA always ends on '#', and only on '#': a different terminator cannot be honoured.
        raise _Bad(_pos(term), f"{what}.terminator must be '#' (Asterisk's GET DATA terminator)")
    pattern = _opt(m, "pattern", _str, what, None)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise _Bad(m.key_pos("pattern"), f"{what}.pattern is not a valid regular expression: {e}") from None
    check = _opt(m, "check", _str, what, None)
    if check not in (None, "luhn"):
        raise _Bad(m.key_pos("check"), f"{what}.check must be 'luhn', not {check!r}")
    return CollectNode(
        **base,
        var=_var(m.need("var", what), f"{what}.var"),
        prompt=_template(m.need("prompt", what), f"{what}.prompt"),
        min_digits=lo,
        max_digits=hi,
        timeout=_opt(m, "timeout", lambda n, w: _float(n, w, 0.5, 60.0), what, 5.0),
        pattern=pattern,
        check=check,
        retries=_opt(m, "retries", lambda n, w: _int(n, w, 0, 20), what, 3),
        no_input=_prompts(m, "no_input", what),
        invalid=_prompts(m, "invalid", what),
        next=_target(m, "next", what),
        on_fail=_fail_target(m, what, d),
    )


def _seconds(n: yaml.Node, w: str) -> int:
    return _int(n, w, 1, MAX_RECORD_SECONDS)


def _record(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return RecordNode(
        **base,
        var=_var(m.need("var", what), f"{what}.var"),
        prompt=_opt(m, "prompt", _template, what, None),
        max_seconds=_opt(m, "max_seconds", _seconds, what, 60),
        silence_seconds=_opt(m, "silence_seconds", lambda n, w: _int(n, w, 1, 60), what, 3),
        beep=_opt(m, "beep", _bool, what, True),
        next=_target(m, "next", what),
    )


def _lookup(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    by_node = m.need("by", what)
    by = _str(by_node, f"{what}.by")
    if by not in ("caller_number", "account"):
        raise _Bad(_pos(by_node), f"{what}.by must be caller_number or account, not {by!r}")
    if by == "account" and not m.has("key"):
        raise _Bad(m.pos, f"{what}: lookup by account needs key (for example '{{account}}')")
    return LookupNode(
        **base,
        by=by,
        key=_opt(m, "key", _template, what, Template("{caller_number}")),
        sets=_opt(m, "sets", lambda n, w: _list(n, w, _var), what, DEFAULT_LOOKUP_SETS),
        found=_target(m, "found", what),
        not_found=_target(m, "not_found", what),
    )


_COMPARE = ("eq", "ne", "in", "gt", "lt", "set")
_QUEUE_OPS = ("wait_above", "waiting_above", "agents_below")


def _condition(node: yaml.Node, what: str) -> Condition:
    m = _Map(node, what)
    pos = m.pos
    if m.has("all") or m.has("any"):
        op = "all" if m.has("all") else "any"
        parts_node = m.need(op, what)
        if not isinstance(parts_node, yaml.SequenceNode) or not parts_node.value:
            raise _Bad(_pos(parts_node), f"{what}.{op} must be a non-empty list of conditions")
        return Condition(op, pos, parts=tuple(_condition(n, f"{what}.{op}") for n in parts_node.value))
    if m.has("not"):
        return Condition("not", pos, parts=(_condition(m.need("not", what), f"{what}.not"),))
    for op in ("open", "holiday"):
        if m.has(op):
            bad = m.unknown((op,), what)
            if bad:
                raise bad[0]
            return Condition(op, m.key_pos(op), calendar=_name(m.need(op, what), f"{what}.{op}"))
    if m.has("queue"):
        queue = _name(m.need("queue", what), f"{what}.queue")
        ops = [o for o in _QUEUE_OPS if m.has(o)]
        if len(ops) != 1 or len(m.items) != 2:
            raise _Bad(pos, f"{what}: a queue condition needs exactly one of {', '.join(_QUEUE_OPS)}")
        limit = _float(m.need(ops[0], what), f"{what}.{ops[0]}", 0, 1e9)
        return Condition(ops[0], pos, queue=queue, value=limit)
    if m.has("var"):
        var = _var(m.need("var", what), f"{what}.var")
        ops = [o for o in _COMPARE if m.has(o)]
        if len(ops) != 1 or len(m.items) != 2:
            raise _Bad(pos, f"{what}: a variable condition needs exactly one of {', '.join(_COMPARE)}")
        op = ops[0]
        value_node = m.need(op, what)
        value: object
        if op == "in":
            value = tuple(_list(value_node, f"{what}.in", _scalar))
        elif op in ("gt", "lt"):
            value = _float(value_node, f"{what}.{op}", -1e18, 1e18)
        elif op == "set":
            value = _bool(value_node, f"{what}.set")
        else:
            value = _scalar(value_node, f"{what}.{op}")
        return Condition(op, pos, var=var, value=value)
    raise _Bad(pos, f"{what}: unknown condition (use var, open, holiday, queue, all, any or not)")


def _branch(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    cases_node = m.need("cases", what)
    if not isinstance(cases_node, yaml.SequenceNode) or not cases_node.value:
        raise _Bad(_pos(cases_node), f"{what}.cases must be a non-empty list")
    cases = []
    for i, n in enumerate(cases_node.value):
        cw = f"{what}.cases[{i}]"
        cm = _Map(n, cw)
        bad = cm.unknown(("when", "next", "comment"), cw)
        if bad:
            raise bad[0]
        cases.append(BranchCase(_condition(cm.need("when", cw), f"{cw}.when"), _target(cm, "next", cw), cm.pos))
    return BranchNode(**base, cases=tuple(cases), default=_target(m, "default", what))


def _set(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    vm = _Map(m.need("values", what), f"{what}.values")
    values = []
    for key, (knode, vnode) in vm.items.items():
        values.append((_var(knode, f"{what}.values key"), _template(vnode, f"{what}.values.{key}")))
    return SetNode(**base, values=tuple(values), next=_target(m, "next", what))


def _goto(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return GotoNode(**base, target=_target(m, "target", what))


def _call(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return CallNode(**base, subflow=_name(m.need("subflow", what), f"{what}.subflow"), next=_target(m, "next", what))


def _return(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return ReturnNode(**base)


def _queue(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return QueueNode(
        **base,
        queue=_name(m.need("queue", what), f"{what}.queue"),
        skills=_opt(m, "skills", lambda n, w: _list(n, w, _name), what, ()),
        priority=_opt(m, "priority", lambda n, w: _int(n, w, 0, 100), what, 0),
    )


def _transfer(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    to = _template(m.need("to", what), f"{what}.to")
    kind_node = m.get("kind")
    if kind_node is not None:
        kind = _str(kind_node, f"{what}.kind")
        if kind not in ("extension", "external"):
            raise _Bad(_pos(kind_node), f"{what}.kind must be extension or external, not {kind!r}")
        external = kind == "external"
    else:
        external = to.text.startswith(("+", "00"))
    if to.is_static and not re.fullmatch(r"\+?[0-9*#]{1,32}", to.text):
        raise _Bad(m.key_pos("to"), f"{what}.to must be an extension or a phone number, not {to.text!r}")
    return TransferNode(**base, to=to, external=external)


def _voicemail(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return VoicemailNode(
        **base,
        mailbox=_name(m.need("mailbox", what), f"{what}.mailbox"),
        prompt=_opt(m, "prompt", _template, what, None),
        goodbye=_opt(m, "goodbye", _template, what, None),
        max_seconds=_opt(m, "max_seconds", _seconds, what, 120),
        silence_seconds=_opt(m, "silence_seconds", lambda n, w: _int(n, w, 1, 60), what, 5),
    )


def _callback(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return CallbackNode(
        **base,
        number=_opt(m, "number", _template, what, Template("{caller_number}")),
        queue=_name(m.need("queue", what), f"{what}.queue"),
        next=_target(m, "next", what),
    )


def _survey(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return SurveyNode(
        **base,
        question=_name(m.need("question", what), f"{what}.question"),
        prompt=_template(m.need("prompt", what), f"{what}.prompt"),
        invalid=_prompts(m, "invalid", what),
        timeout=_opt(m, "timeout", lambda n, w: _float(n, w, 0.5, 60.0), what, 5.0),
        retries=_opt(m, "retries", lambda n, w: _int(n, w, 0, 20), what, 2),
        var=_opt(m, "var", _var, what, None),
        next=_target(m, "next", what),
        answers=_opt(m, "answers", _survey_answers, what, "score"),
    )


def _survey_answers(node: yaml.Node, what: str) -> str:
    value = _str(node, what)
    if value not in SURVEY_ANSWERS:
        raise _Bad(_pos(node), f"{what} must be one of {', '.join(SURVEY_ANSWERS)}, not {value!r}")
    return value


def _hangup(m: _Map, what: str, base: dict[str, Any], d: _Defaults) -> Node:
    return HangupNode(**base, prompt=_opt(m, "prompt", _template, what, None))


_BUILDERS: dict[str, tuple[tuple[str, ...], Callable[[_Map, str, dict[str, Any], _Defaults], Node]]] = {
    "play": (("prompts", "barge_in", "next"), _play),
    "say": (("say", "value", "next"), _say),
    "menu": (
        ("prompts", "options", "timeout", "retries", "no_input", "no_match", "on_fail", "speech", "var"),
        _menu,
    ),
    "collect": (
        ("var", "prompt", "min", "max", "terminator", "timeout", "pattern", "check", "retries", "no_input",
         "invalid", "next", "on_fail"),
        _collect,
    ),
    "record": (("var", "prompt", "max_seconds", "silence_seconds", "beep", "next"), _record),
    "lookup": (("by", "key", "sets", "found", "not_found"), _lookup),
    "branch": (("cases", "default"), _branch),
    "set": (("values", "next"), _set),
    "goto": (("target",), _goto),
    "call": (("subflow", "next"), _call),
    "return": ((), _return),
    "queue": (("queue", "skills", "priority"), _queue),
    "transfer": (("to", "kind"), _transfer),
    "voicemail": (("mailbox", "prompt", "goodbye", "max_seconds", "silence_seconds"), _voicemail),
    "callback": (("number", "queue", "next"), _callback),
    "survey": (("question", "prompt", "invalid", "timeout", "retries", "var", "next", "answers"), _survey),
    "hangup": (("prompt",), _hangup),
}
NODE_TYPES = frozenset(_BUILDERS)


def _clock(text: str, pos: Pos, what: str) -> time:
    try:
        hh, mm = text.split(":")
        return time(int(hh), int(mm)) if text != "24:00" else time(23, 59, 59, 999999)
    except (ValueError, OverflowError):  # OverflowError: an hour past what a C long holds
        raise _Bad(pos, f"{what}: {text!r} is not a time such as 09:30") from None


def _days(spec: str, pos: Pos, what: str) -> list[int]:
    days: list[int] = []
    for part in spec.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise _Bad(pos, f"{what}: {spec!r} is not a day or range such as mon-fri")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return days


def _calendar(name: str, node: yaml.Node) -> Calendar:
    what = f"calendar {name!r}"
    m = _Map(node, what)
    bad = m.unknown(("timezone", "hours", "holidays", "comment"), what)
    if bad:
        raise bad[0]
    tz = _str(m.need("timezone", what), f"{what}.timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Bad(m.key_pos("timezone"), f"{what}: unknown time zone {tz!r}") from None
    hours: dict[int, list[tuple[time, time]]] = {}
    hm = _Map(m.need("hours", what), f"{what}.hours")
    for spec, (knode, vnode) in hm.items.items():
        for interval in _list(vnode, f"{what}.hours", _str):
            start_s, sep, end_s = interval.partition("-")
            if not sep:
                raise _Bad(_pos(vnode), f"{what}.hours: {interval!r} is not a range such as 09:00-18:00")
            start, end = _clock(start_s.strip(), _pos(vnode), what), _clock(end_s.strip(), _pos(vnode), what)
            if end <= start:
                raise _Bad(_pos(vnode), f"{what}.hours: {interval!r} ends before it starts")
            for day in _days(spec, _pos(knode), what):
                hours.setdefault(day, []).append((start, end))
    holidays: set[date] = set()
    hol = m.get("holidays")
    if hol is not None:
        for item in (hol.value if isinstance(hol, yaml.SequenceNode) else [hol]):
            text = _scalar(item, f"{what}.holidays")
            try:
                holidays.add(date.fromisoformat(text))
            except ValueError:
                raise _Bad(_pos(item), f"{what}.holidays: {text!r} is not a date such as 2025-12-25") from None
    return Calendar(name, tz, {k: tuple(v) for k, v in hours.items()}, frozenset(holidays), m.pos)


def _graph(name: str, m: _Map, d: _Defaults, problems: list[_Bad]) -> Graph:
    what = "flow" if name == "" else f"subflow {name!r}"
    start_node = m.need("start", what)
    start = _name(start_node, f"{what}.start")
    nodes_node = m.need("nodes", what)
    nm = _Map(nodes_node, f"{what}.nodes")
    problems.extend(nm.dupes)
    nodes: dict[str, Node] = {}
    labels: dict[str, dict[str, str]] = {}
    broken: set[str] = set()
    for node_name, (knode, vnode) in nm.items.items():
        broken.add(node_name)
        try:
            _name(knode, "node name")
            body = _Map(vnode, f"node {node_name!r}")
            problems.extend(body.dupes)
            nodes[node_name] = _node(node_name, body, d, problems)
            label = _label(body, f"node {node_name!r}")
            if label:
                labels[node_name] = label
            broken.discard(node_name)
        except _Bad as e:
            problems.append(e)
    return Graph(name, start, nodes, m.pos, _pos(start_node), frozenset(broken), labels)


TOP_FIELDS = ("flow", "language", "start", "nodes", "subflows", "calendars", "variables", "fallback", "speech",
              "comment", "blacklist", "after_call")


def _blacklist(node: yaml.Node, what: str) -> FlowBlacklist:
    """`blacklist: {action: refuse, message: <prompt>}`, `{action: route, queue: <queue>}` or `{action: lowest}`."""
    m = _Map(node, what)
    bad = m.unknown(("action", "message", "queue"), what)
    if bad:
        raise bad[0]
    action = _str(m.need("action", what), f"{what}.action")
    if action not in BLACKLIST_ACTIONS:
        raise _Bad(_pos(m.need("action", what)),
                   f"{what}.action: unknown action {action!r}; expected one of {', '.join(BLACKLIST_ACTIONS)}")
    wants = {"refuse": "message", "route": "queue", "lowest": None}[action]
    for key in ("message", "queue"):
        if m.has(key) and key != wants:
            raise _Bad(_pos(m.need(key, what)), f"{what}.{key}: does not go with action {action}")
    if wants is None:
        return FlowBlacklist(action, pos=m.pos)
    value = _str(m.need(wants, what), f"{what}.{wants}") if m.has(wants) else ""
    if not value:
        raise _Bad(m.pos, f"{what}.{wants}: is required with action {action}")
    if wants == "queue":
        value = _name(m.need("queue", what), f"{what}.queue")
    return FlowBlacklist(action, message=value if wants == "message" else "",
                         queue=value if wants == "queue" else "", pos=m.pos)


def parse_flow(text: str, file: str) -> tuple[Flow | None, list[FlowError]]:
    """Parse one flow file's text. Returns the Flow (None if it could not be built) and the problems found."""
    problems: list[_Bad] = []
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [FlowError(file, line, col, f"broken YAML: {e.problem or e}", "yaml")]
    except yaml.reader.ReaderError as e:
        # A character YAML refuses (a control character) stops the reader before any token: no mark, only
        # an offset; and its text runs over two lines.
        line, col = _line_col(text, e.position)
        char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        return None, [FlowError(file, line, col, f"broken YAML: YAML does not allow the character {char}", "yaml")]
    except yaml.YAMLError as e:
        return None, [FlowError(file, 1, 1, f"broken YAML: {str(e).splitlines()[0]}", "yaml")]
    if root is None:
        return None, [FlowError(file, 1, 1, "empty flow file", "invalid")]
    try:
        m = _Map(root, "flow file")
        problems.extend(m.dupes)
        problems.extend(m.unknown(TOP_FIELDS, "flow file"))
        name = _name(m.need("flow", "flow file"), "flow")
        language = _opt(m, "language", _str, "flow", "en-US")
        fb = m.get("fallback")
        fallback = Fallback("general")
        if fb is not None:
            fm = _Map(fb, "fallback")
            problems.extend(fm.unknown(("queue", "skills", "priority"), "fallback"))
            fallback = Fallback(
                _name(fm.need("queue", "fallback"), "fallback.queue"),
                _opt(fm, "skills", lambda n, w: _list(n, w, _name), "fallback", ()),
                _opt(fm, "priority", lambda n, w: _int(n, w, 0, 100), "fallback", 0),
                fm.pos,
            )
        after_call = _opt(m, "after_call", _name, "flow", None)
        blacklist = None
        if m.get("blacklist") is not None:
            try:
                blacklist = _blacklist(m.need("blacklist", "flow file"), "blacklist")
            except _Bad as e:
                problems.append(e)
        base_speech = SpeechSettings(language, 0.6, 5.0, 1, 2)
        d = _Defaults(_speech(m.get("speech"), "flow.speech", _Defaults(base_speech, None)) or base_speech, None)
        variables: dict[str, str] = {}
        vnode = m.get("variables")
        if vnode is not None:
            vm = _Map(vnode, "variables")
            for key, (knode, valnode) in vm.items.items():
                variables[_var(knode, "variable name")] = (
                    "" if valnode.tag == "tag:yaml.org,2002:null" else _scalar(valnode, f"variables.{key}")
                )
        calendars: dict[str, Calendar] = {}
        cnode = m.get("calendars")
        if cnode is not None:
            for key, (knode, valnode) in _Map(cnode, "calendars").items.items():
                try:
                    calendars[_name(knode, "calendar name")] = _calendar(key, valnode)
                except _Bad as e:
                    problems.append(e)
        main = _graph("", m, d, problems)
        subflows: dict[str, Graph] = {}
        snode = m.get("subflows")
        if snode is not None:
            for key, (knode, valnode) in _Map(snode, "subflows").items.items():
                try:
                    sm = _Map(valnode, f"subflow {key!r}")
                    problems.extend(sm.unknown(("start", "nodes", "comment"), f"subflow {key!r}"))
                    subflows[_name(knode, "subflow name")] = _graph(key, sm, d, problems)
                except _Bad as e:
                    problems.append(e)
    except _Bad as e:
        problems.append(e)
        return None, _errors(file, problems)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    flow = Flow(name, file, version, language, main, subflows, calendars, variables, fallback, blacklist,
                after_call)
    return flow, _errors(file, problems)


_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_col(text: str, offset: int) -> Pos:
    """Line and column of a character offset, counting line breaks as YAML's marks count them."""
    line, start = 1, 0
    for m in _YAML_BREAK.finditer(text, 0, offset):
        line, start = line + 1, m.end()
    return line, offset - start + 1


def _errors(file: str, problems: list[_Bad]) -> list[FlowError]:
    return [FlowError(file, p.pos[0], p.pos[1], p.message, p.kind) for p in problems]


def _read_at_most(fh: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes, read in pieces: one read(limit) allocates the whole limit (2 MB) for a file of
    2 kB, and a buffer that size on every load fragments the heap (resident memory grows with each reload)."""
    pieces: list[bytes] = []
    total = 0
    while total < limit and (piece := fh.read(min(READ_PIECE, limit - total))):
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)


def read_flow(path: str | Path) -> tuple[Flow | None, list[FlowError]]:
    p = Path(path)
    too_large = [FlowError(str(p), 1, 1, f"flow file is larger than {MAX_FILE_BYTES} bytes", "io")]
    try:
        if p.stat().st_size > MAX_FILE_BYTES:  # refused unread
            return None, too_large
        with p.open("rb") as fh:
            raw = _read_at_most(fh, MAX_FILE_BYTES + 1)  # a pipe or a device has no size to check first
    except OSError as e:
        return None, [FlowError(str(p), 1, 1, f"cannot read flow file: {e.strerror or e}", "io")]
    if len(raw) > MAX_FILE_BYTES:
        return None, too_large
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return None, [FlowError(str(p), line, 1, f"flow file is not UTF-8 text (byte {e.start})", "yaml")]
    return parse_flow(text, str(p))
