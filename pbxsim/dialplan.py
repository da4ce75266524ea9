"""extensions.conf: a pure parser, extension pattern matching and ${...}/$[...] substitution.

Only the subset the CTI's dialplans use, with Asterisk's semantics where they bite: in patterns the letters
N, X and Z are matched case-insensitively (README of the captures: ``_agent.`` reads the ``n`` as [2-9]),
``same => n`` continues the last extension, an exact extension beats a pattern, and variables expand
before the application sees its arguments. No asyncio, no sockets: the simulator's channels call into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


class DialplanError(ValueError):
    """A line of extensions.conf that cannot be loaded; carries file and line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class Step:
    """One priority of an extension: ``exten => 5551000,3(agi),AGI(${AGISERVER}/ivr)``."""

    priority: int
    app: str
    data: str  # unexpanded arguments
    label: str | None
    source: str  # "file:line", for error messages


@dataclass(slots=True)
class Extension:
    name: str
    steps: dict[int, Step] = field(default_factory=dict)

    @property
    def is_pattern(self) -> bool:
        return self.name.startswith("_")


@dataclass(slots=True)
class Context:
    name: str
    extensions: dict[str, Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Dialplan:
    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def find(self, context: str, exten: str, _seen: frozenset[str] = frozenset()) -> Extension | None:
        """The extension that ``exten`` dials in ``context`` (exact first, then the best pattern, then includes)."""
        ctx = self.contexts.get(context)
        if ctx is None or context in _seen:
            return None
        exact = ctx.extensions.get(exten)
        if exact is not None and not exact.is_pattern:
            return exact
        best: tuple[tuple[int, ...], Extension] | None = None
        for ext in ctx.extensions.values():
            if ext.is_pattern and pattern_matches(ext.name, exten):
                key = pattern_specificity(ext.name)
                if best is None or key < best[0]:
                    best = (key, ext)
        if best is not None:
            return best[1]
        for inc in ctx.includes:
            found = self.find(inc, exten, _seen | {context})
            if found is not None:
                return found
        return None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        ext = self.find(context, exten)
        return ext is not None and priority in ext.steps

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        ext = self.find(context, exten)
        return ext.steps.get(priority) if ext is not None else None

    def label_priority(self, context: str, exten: str, label: str) -> int | None:
        ext = self.find(context, exten)
        if ext is None:
            return None
        for step in ext.steps.values():
            if step.label == label:
                return step.priority
        return None

    def merge(self, other: Dialplan) -> None:
        """Add another file's contexts (same context names merge, as with #include)."""
        self.globals.update(other.globals)
        for name, ctx in other.contexts.items():
            mine = self.contexts.setdefault(name, Context(name))
            for ename, ext in ctx.extensions.items():
                mine.extensions.setdefault(ename, Extension(ename)).steps.update(ext.steps)
            mine.includes.extend(i for i in ctx.includes if i not in mine.includes)


# ------------------------------------------------------------------------------------------------ parsing

_SECTION = re.compile(r"^\[([^\]]+)\](\([^)]*\))?\s*$")
_ASSIGN = re.compile(r"^([A-Za-z_][\w-]*)\s*=>?\s*(.*)$")
_PRIO = re.compile(r"^(\d+|n|hint)(?:\(([\w-]+)\))?$", re.IGNORECASE)
_NON_DIALPLAN = {"general", "globals"}


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            break
        out.append(c)
        i += 1
    return "".join(out).strip()


def split_app(text: str) -> tuple[str, str]:
    """``Dial(Local/x@y,30,tT)`` -> ("Dial", "Local/x@y,30,tT"); ``Answer`` -> ("Answer", "")."""
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        return text, ""
    if not text.endswith(")"):
        raise ValueError(f"application call without closing parenthesis: {text!r}")
    return text[:paren].strip(), text[paren + 1 : -1]


def parse(text: str, path: str = "<extensions.conf>") -> Dialplan:
    plan = Dialplan()
    section: str | None = None
    last_ext: Extension | None = None
    last_prio = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip()
            last_ext, last_prio = None, 0
            if section not in _NON_DIALPLAN:
                plan.contexts.setdefault(section, Context(section))
            continue
        if line.startswith(("#include", "#exec")):
            continue  # the simulator loads each file explicitly
        if section is None:
            raise DialplanError(path, n, f"line outside any [context]: {line!r}")
        m = _ASSIGN.match(line)
        if not m:
            raise DialplanError(path, n, f"expected 'key => value': {line!r}")
        key, value = m.group(1).lower(), m.group(2).strip()
        if section == "general":
            continue
        if section == "globals":
            plan.globals[m.group(1)] = value
            continue
        ctx = plan.contexts[section]
        if key == "include":
            ctx.includes.append(value)
            continue
        if key == "switch" or key == "ignorepat":
            continue
        if key not in ("exten", "same"):
            raise DialplanError(path, n, f"unknown dialplan keyword {m.group(1)!r}")
        parts = value.split(",", 2) if key == "exten" else value.split(",", 1)
        if key == "exten":
            if len(parts) < 3:
                raise DialplanError(path, n, "exten needs 'pattern,priority,Application(args)'")
            ename, prio_text, app_text = parts[0].strip(), parts[1].strip(), parts[2]
            if "/" in ename:  # caller-ID matching (_X./5551234) is not supported by the simulator
                ename = ename.split("/", 1)[0]
            ext = ctx.extensions.setdefault(ename, Extension(ename))
            if ext is not last_ext:
                last_prio = max(ext.steps, default=0)
        else:
            if last_ext is None:
                raise DialplanError(path, n, "'same =>' with no extension before it")
            if len(parts) < 2:
                raise DialplanError(path, n, "same needs 'priority,Application(args)'")
            ext, prio_text, app_text = last_ext, parts[0].strip(), parts[1]
        pm = _PRIO.match(prio_text)
        if not pm:
            raise DialplanError(path, n, f"bad priority {prio_text!r}")
        if pm.group(1).lower() == "hint":
            last_ext = ext
            continue
        prio = last_prio + 1 if pm.group(1).lower() == "n" else int(pm.group(1))
        try:
            app, data = split_app(app_text)
        except ValueError as exc:
            raise DialplanError(path, n, str(exc)) from None
        if not app:
            raise DialplanError(path, n, "missing application")
        if prio in ext.steps:
            raise DialplanError(path, n, f"duplicate priority {prio} for extension {ext.name!r}")
        ext.steps[prio] = Step(prio, app, data, pm.group(2), f"{path}:{n}")
        last_ext, last_prio = ext, prio
    return plan


def load(paths: Iterable[str | Path]) -> Dialplan:
    plan = Dialplan()
    for p in paths:
        plan.merge(parse(Path(p).read_text(encoding="utf-8"), str(p)))
    return plan


# ------------------------------------------------------------------------------------------------ patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = pattern[1:]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        u = c.upper()
        if u == "X":
            out.append("[0-9]")
        elif u == "Z":
            out.append("[1-9]")
        elif u == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            end = body.find("]", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                out.append("[" + body[i + 1 : end].replace("\\", "\\\\").replace("^", "\\^") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def pattern_matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        rx = _REGEX_CACHE[pattern] = _pattern_regex(pattern)
    return rx.match(exten) is not None


def pattern_specificity(pattern: str) -> tuple[int, ...]:
    """Lower sorts first: a literal beats a class, N beats X, anything beats '.'/'!' (Asterisk's order)."""
    body = pattern[1:]
    costs: list[int] = []
    i = 0
    while i < len(body):
        c = body[i].upper()
        if c == "[":
            end = body.find("]", i)
            costs.append(min(9, max(2, end - i - 1)) if end > 0 else 1)
            i = end if end > 0 else i
        elif c in "NXZ":
            costs.append({"N": 8, "Z": 9, "X": 10}[c])
        elif c in ".!":
            costs.append(100)
        else:
            costs.append(1)
        i += 1
    return tuple(costs)


# ------------------------------------------------------------------------------------------------ expansion

Resolver = Callable[[str], str | None]  # variable or function expression ("CALLERID(num)") -> value


def expand(text: str, resolve: Resolver) -> str:
    """Expand ``${...}`` (nested, with :offset:length) and ``$[...]`` in ``text``."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if text.startswith("${", i) or text.startswith("$[", i):
            opener, closer = text[i + 1], "}" if text[i + 1] == "{" else "]"
            depth, j = 1, i + 2
            while j < n and depth:
                if text[j] == opener and text[j - 1] == "$":
                    depth += 1
                elif text[j] == closer:
                    depth -= 1
                j += 1
            inner = expand(text[i + 2 : j - 1], resolve)
            if opener == "{":
                out.append(_variable(inner, resolve))
            else:
                out.append(evaluate(inner))
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_SUBSTR = re.compile(r"^(.*?):(-?\d+)(?::(-?\d+))?$")


def _variable(expr: str, resolve: Resolver) -> str:
    m = _SUBSTR.match(expr)
    if m and "(" not in m.group(1)[-1:]:
        value = resolve(m.group(1)) or ""
        start = int(m.group(2))
        length = int(m.group(3)) if m.group(3) is not None else None
        value = value[start:]
        if length is not None:
            value = value[:length]
        return value
    return resolve(expr) or ""


# $[...]: Asterisk's expression language, the small part the dialplans use.
_TOKEN = re.compile(r'\s*(?:(".*?")|(\d+(?:\.\d+)?)|(!=|<=|>=|=~|[=<>&|!+\-*/%()?:])|([^\s=<>&|!+\-*/%()?:"]+))')


def evaluate(expr: str) -> str:
    tokens = [t for t in _tokenize(expr)]
    if not tokens:
        return ""
    parser = _ExprParser(tokens)
    try:
        value = parser.ternary()
    except (IndexError, ValueError, ZeroDivisionError):
        return "0"
    return _fmt(value)


def _tokenize(expr: str) -> Iterable[str]:
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            if expr[pos:].strip() == "":
                return
            yield expr[pos]
            pos += 1
            continue
        pos = m.end()
        tok = next(g for g in m.groups() if g is not None) if any(m.groups()) else ""
        if tok:
            yield tok


def _fmt(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


class _ExprParser:
    def __init__(self, tokens: list[str]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str:
        tok = self.t[self.i]
        self.i += 1
        return tok

    def ternary(self) -> str:
        cond = self.or_()
        if self.peek() == "?":
            self.take()
            a = self.or_()
            b = ""
            if self.peek() == ":":
                self.take()
                b = self.or_()
            return a if _truthy(cond) else b
        return cond

    def or_(self) -> str:
        left = self.and_()
        while self.peek() == "|":
            self.take()
            right = self.and_()
            left = left if _truthy(left) else right
        return left

    def and_(self) -> str:
        left = self.cmp()
        while self.peek() == "&":
            self.take()
            right = self.cmp()
            left = left if _truthy(left) and _truthy(right) else "0"
        return left

    def cmp(self) -> str:
        left = self.add()
        while self.peek() in ("=", "!=", "<", ">", "<=", ">="):
            op = self.take()
            right = self.add()
            a, b = _num(left), _num(right)
            pair: tuple[float, float] | tuple[str, str] = (a, b) if a is not None and b is not None else (left, right)
            x, y = pair
            res = {
                "=": x == y,
                "!=": x != y,
                "<": x < y,  # type: ignore[operator]
                ">": x > y,  # type: ignore[operator]
                "<=": x <= y,  # type: ignore[operator]
                ">=": x >= y,  # type: ignore[operator]
            }[op]
            left = "1" if res else "0"
        return left

    def add(self) -> str:
        left = self.mul()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.mul()
            a, b = _num(left) or 0.0, _num(right) or 0.0
            left = _fmt(a + b if op == "+" else a - b)
        return left

    def mul(self) -> str:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()
            right = self.unary()
            a, b = _num(left) or 0.0, _num(right) or 0.0
            if op == "*":
                left = _fmt(a * b)
            elif op == "/":
                left = _fmt(int(a / b))
            else:
                left = _fmt(a % b)
        return left

    def unary(self) -> str:
        tok = self.peek()
        if tok == "!":
            self.take()
            return "0" if _truthy(self.unary()) else "1"
        if tok == "-":
            self.take()
            return _fmt(-(_num(self.unary()) or 0.0))
        if tok == "(":
            self.take()
            v = self.ternary()
            if self.peek() == ")":
                self.take()
            return v
        tok = self.take()
        if tok.startswith('"') and tok.endswith('"') and len(tok) >= 2:
            return tok[1:-1]
        return tok


def _truthy(v: str) -> bool:
    return v not in ("", "0")


def split_args(data: str) -> list[str]:
    """Split application arguments on commas outside quotes and brackets, as pbx_config does."""
    args: list[str] = []
    cur: list[str] = []
    depth = 0
    quote = False
    for c in data:
        if c == '"':
            quote = not quote
        elif not quote and c in "([":
            depth += 1
        elif not quote and c in ")]" and depth:
            depth -= 1
        if c == "," and not quote and depth == 0:
            args.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    args.append("".join(cur))
    return args
