"""Typed, immutable flow objects. Built once by loader.py; the interpreter only ever sees these.

Every node keeps its position in the YAML file (``pos``) and the position of each field it was built from
(``fields``) so that the validator can point at the exact line and column of a mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time

Pos = tuple[int, int]  # (line, column), both 1-based

VARIABLE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Variables every run starts with (filled from the AGI environment by the driver).
BUILTIN_VARIABLES = frozenset(
    {"caller_number", "caller_name", "dnid", "extension", "language", "channel", "uniqueid", "flow"}
)


@dataclass(frozen=True, slots=True)
class Template:
    """A string with ``{variable}`` references; rendering is done by interpreter.render()."""

    text: str

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(VARIABLE_REF.findall(self.text))

    @property
    def is_static(self) -> bool:
        return not self.variables


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    pos: Pos
    fields: dict[str, Pos]

    def field_pos(self, key: str) -> Pos:
        return self.fields.get(key, self.pos)

    def targets(self) -> tuple[tuple[str, str], ...]:
        """(field, target node) pairs: the edges of the flow graph."""
        return ()

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        """(field, prompt) pairs, for the missing-prompt check."""
        return ()

    def references(self) -> tuple[tuple[str, str], ...]:
        """(field, variable name) pairs read by this node."""
        out: list[tuple[str, str]] = []
        for fld, prompt in self.prompts():
            out.extend((fld, v) for v in prompt.variables)
        return tuple(out)

    def defines(self) -> tuple[str, ...]:
        """Variables this node may set."""
        return ()

    # Nodes that take time on the line (play audio or wait for the caller): a loop through one of them is
    # not a busy loop.
    waits: bool = field(default=False, init=False)
    terminal: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class PlayNode(Node):
    items: tuple[Template, ...]
    barge_in: bool
    next: str
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return tuple(("prompts", p) for p in self.items)


SAY_KINDS = ("digits", "number", "date", "alpha")


@dataclass(frozen=True, slots=True)
class SayNode(Node):
    kind: str
    value: Template
    next: str
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("value", v) for v in self.value.variables)


@dataclass(frozen=True, slots=True)
class MenuOption:
    key: str | None
    words: tuple[str, ...]  # keywords then synonyms, lower-cased
    next: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class SpeechSettings:
    language: str
    confidence: float
    listen_seconds: float
    silence_seconds: int
    attempts: int  # failed speech attempts before the menu goes keypad-only
    wait_seconds: float = 3.0  # how long after the prompt the caller may start speaking
    barge_in: bool = False  # the caller may talk over the prompt (it stops, the words are heard)


@dataclass(frozen=True, slots=True)
class MenuNode(Node):
    items: tuple[Template, ...]
    options: tuple[MenuOption, ...]
    timeout: float
    retries: int
    no_input: tuple[Template, ...]
    no_match: tuple[Template, ...]
    on_fail: str
    speech: SpeechSettings | None
    var: str | None
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return tuple(("options", o.next) for o in self.options) + (("on_fail", self.on_fail),)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return (
            tuple(("prompts", p) for p in self.items)
            + tuple(("no_input", p) for p in self.no_input)
            + tuple(("no_match", p) for p in self.no_match)
        )

    def defines(self) -> tuple[str, ...]:
        return (self.var,) if self.var else ()


@dataclass(frozen=True, slots=True)
class CollectNode(Node):
    var: str
    prompt: Template
    min_digits: int
    max_digits: int
    timeout: float
    pattern: str | None
    check: str | None  # "luhn"
    retries: int
    no_input: tuple[Template, ...]
    invalid: tuple[Template, ...]
    next: str
    on_fail: str
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next), ("on_fail", self.on_fail))

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return (
            (("prompt", self.prompt),)
            + tuple(("no_input", p) for p in self.no_input)
            + tuple(("invalid", p) for p in self.invalid)
        )

    def defines(self) -> tuple[str, ...]:
        return (self.var,)


@dataclass(frozen=True, slots=True)
class RecordNode(Node):
    var: str
    prompt: Template | None
    max_seconds: int
    silence_seconds: int
    beep: bool
    next: str
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return (("prompt", self.prompt),) if self.prompt else ()

    def defines(self) -> tuple[str, ...]:
        return (self.var,)


DEFAULT_LOOKUP_SETS = ("customer_id", "name", "grade", "vip")


@dataclass(frozen=True, slots=True)
class LookupNode(Node):
    by: str  # "caller_number" | "account"
    key: Template
    sets: tuple[str, ...]
    found: str
    not_found: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("found", self.found), ("not_found", self.not_found))

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("key", v) for v in self.key.variables)

    def defines(self) -> tuple[str, ...]:
        return self.sets


@dataclass(frozen=True, slots=True)
class Condition:
    """One test of a branch case. ``op`` is one of: eq, ne, in, gt, lt, set, open, holiday, wait_above,
    waiting_above, agents_below, all, any, not."""

    op: str
    pos: Pos
    var: str | None = None
    value: object = None
    calendar: str | None = None
    queue: str | None = None
    parts: tuple[Condition, ...] = ()

    def queues(self) -> tuple[str, ...]:
        own = (self.queue,) if self.queue else ()
        return own + tuple(q for p in self.parts for q in p.queues())

    def variables(self) -> tuple[str, ...]:
        own = (self.var,) if self.var else ()
        return own + tuple(v for p in self.parts for v in p.variables())

    def calendars(self) -> tuple[tuple[str, Pos], ...]:
        own = ((self.calendar, self.pos),) if self.calendar else ()
        return own + tuple(c for p in self.parts for c in p.calendars())


@dataclass(frozen=True, slots=True)
class BranchCase:
    when: Condition
    next: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class BranchNode(Node):
    cases: tuple[BranchCase, ...]
    default: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return tuple(("cases", c.next) for c in self.cases) + (("default", self.default),)

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("cases", v) for c in self.cases for v in c.when.variables())


@dataclass(frozen=True, slots=True)
class SetNode(Node):
    values: tuple[tuple[str, Template], ...]
    next: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("values", v) for _, t in self.values for v in t.variables)

    def defines(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.values)


@dataclass(frozen=True, slots=True)
class GotoNode(Node):
    target: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("target", self.target),)


@dataclass(frozen=True, slots=True)
class CallNode(Node):
    subflow: str
    next: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class ReturnNode(Node):
    terminal: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class QueueNode(Node):
    queue: str
    skills: tuple[str, ...]
    priority: int
    terminal: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class TransferNode(Node):
    to: Template
    external: bool
    terminal: bool = field(default=True, init=False)

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("to", v) for v in self.to.variables)


@dataclass(frozen=True, slots=True)
class VoicemailNode(Node):
    mailbox: str
    prompt: Template | None
    goodbye: Template | None
    max_seconds: int
    silence_seconds: int
    terminal: bool = field(default=True, init=False)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        out: list[tuple[str, Template]] = []
        if self.prompt:
            out.append(("prompt", self.prompt))
        if self.goodbye:
            out.append(("goodbye", self.goodbye))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class CallbackNode(Node):
    number: Template
    queue: str
    next: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(("number", v) for v in self.number.variables)


SURVEY_ANSWERS = ("score", "yes_no")
SURVEY_KEYS: dict[str, dict[str, str]] = {  # key pressed -> the answer stored
    "score": {k: k for k in "12345"},
    "yes_no": {"1": "yes", "2": "no"},
}


@dataclass(frozen=True, slots=True)
class SurveyNode(Node):
    question: str
    prompt: Template
    invalid: tuple[Template, ...]
    timeout: float
    retries: int
    var: str | None
    next: str
    answers: str = "score"  # SURVEY_ANSWERS: "score" keys 1-5; "yes_no" key 1 yes, key 2 no
    waits: bool = field(default=True, init=False)

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return (("prompt", self.prompt),) + tuple(("invalid", p) for p in self.invalid)

    def defines(self) -> tuple[str, ...]:
        return (self.var,) if self.var else ()


@dataclass(frozen=True, slots=True)
class HangupNode(Node):
    prompt: Template | None
    terminal: bool = field(default=True, init=False)

    def prompts(self) -> tuple[tuple[str, Template], ...]:
        return (("prompt", self.prompt),) if self.prompt else ()


@dataclass(frozen=True, slots=True)
class Calendar:
    name: str
    timezone: str
    # weekday (0 = Monday) -> opening intervals
    hours: dict[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Graph:
    """A flow body or a sub-flow body: a start node and named nodes."""

    name: str
    start: str
    nodes: dict[str, Node]
    pos: Pos
    start_pos: Pos
    broken: frozenset[str] = frozenset()  # nodes that failed to parse (already reported by the loader)
    # What a node means to people, per language ("" = any): a node's `label` (a text, or {en: ..., zh: ...}).
    # The agent's screen pop tells the reason for the call with these; nodes without one fall back.
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fallback:
    queue: str
    skills: tuple[str, ...] = ()
    priority: int = 0
    pos: Pos = (1, 1)


BLACKLIST_ACTIONS = ("refuse", "route", "lowest")


@dataclass(frozen=True, slots=True)
class FlowBlacklist:
    """What this flow does with callers the CRM marks as blacklisted when it queues them: it overrides the
    queue's own policy (acd.blacklist; the server turns this into the ACD's policy)."""

    action: str  # refuse, route, lowest
    message: str = ""  # refuse: the prompt played before the line is dropped
    queue: str = ""  # route: where the caller waits instead
    pos: Pos = (1, 1)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    file: str
    version: str  # content hash: tells which version a call ran
    language: str
    main: Graph
    subflows: dict[str, Graph]
    calendars: dict[str, Calendar]
    variables: dict[str, str]  # declared variables and their initial values
    fallback: Fallback
    blacklist: FlowBlacklist | None = None
    # The flow a caller of this line answers after the agent hangs up (the post-call survey: they stay on
    # the line), when the survey is a flow of its own; None: this flow's own survey node, if it has one.
    after_call: str | None = None

    def graph(self, name: str | None) -> Graph:
        return self.main if name is None else self.subflows[name]

    def node_labels(self) -> dict[str, Mapping[str, str]]:
        """Every node's label (sub-flows' first, the main flow's over them)."""
        out: dict[str, Mapping[str, str]] = {}
        for graph in (*self.subflows.values(), self.main):
            out.update(graph.labels)
        return out
