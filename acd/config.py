"""Queues, skills and agents from YAML into typed, frozen objects, validated once.

The loader walks the YAML *node* tree (`yaml.compose`) instead of plain dicts so that every
error can name the file and line it came from. All problems are collected and raised
together in one `AcdConfigError`: nothing starts half-configured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Literal, TypeVar

import yaml

from acd import devices
from acd.blacklist import BLACKLIST_ACTIONS, BlacklistPolicy
from acd.errors import AcdConfigError, ConfigIssue

POLICIES = ("longest_idle", "most_skilled", "round_robin", "fewest_calls", "least_occupied")
Policy = Literal["longest_idle", "most_skilled", "round_robin", "fewest_calls", "least_occupied"]
TIMEOUT_KINDS = ("callback", "voicemail", "queue")
RECORDING_POLICIES = ("always", "never", "on_demand")  # per queue; card payments pause any of them
RecordingPolicy = Literal["always", "never", "on_demand"]
CALLBACK_DIALS = ("agent_first", "customer_first")
CallbackDial = Literal["agent_first", "customer_first"]
# How a queue's service level counts (docs/acd.md): answered within the target over
#   abandons_count           answered + abandoned (short abandons too)
#   abandons_ignored         answered
#   short_abandons_excluded  answered + abandoned - short abandons
SL_FORMULAS = ("abandons_count", "abandons_ignored", "short_abandons_excluded")
SlFormula = Literal["abandons_count", "abandons_ignored", "short_abandons_excluded"]
MIN_LEVEL, MAX_LEVEL = 1, 10

_EMPTY: Mapping[str, int] = MappingProxyType({})
_NO_LIMITS: Mapping[str, float | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TimeoutActionSpec:
    """What happens to a waiting caller at a deadline: `callback`, `voicemail` or `queue:<name>`."""

    kind: Literal["callback", "voicemail", "queue"]
    target: str | None = None

    def __str__(self) -> str:
        return f"queue:{self.target}" if self.kind == "queue" else self.kind


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """After `after_s` seconds in the queue: relax levels, widen to other queues, or act."""

    after_s: float
    min_levels: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    also_offer_to: tuple[str, ...] = ()
    action: TimeoutActionSpec | None = None


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    percent: float = 80.0  # the target: this share of the calls answered within `within_s`
    within_s: float = 20.0
    formula: SlFormula = "short_abandons_excluded"

    def pct(self, in_target: int, answered: int, abandoned: int, short_abandoned: int) -> float | None:
        """The service level in %, by this queue's formula; None until a call counts. `abandoned`
        excludes the short abandons."""
        counted = self.counted(answered, abandoned, short_abandoned)
        return 100.0 * in_target / counted if counted else None

    def counted(self, answered: int, abandoned: int, short_abandoned: int) -> int:
        """How many calls the formula counts (the denominator)."""
        if self.formula == "abandons_ignored":
            return answered
        if self.formula == "abandons_count":
            return answered + abandoned + short_abandoned
        return answered + abandoned


@dataclass(frozen=True, slots=True)
class QueueTargets:
    """What a queue is held to besides its service level; None: no target, never an alert."""

    abandon_rate_pct: float | None = None  # abandoned / (answered + abandoned), short abandons apart
    longest_wait_s: float | None = None  # the caller waiting longest now
    asa_s: float | None = None  # mean wait of the answered calls
    min_calls: int = 10  # service level, abandon rate and ASA are judged once this many calls count


@dataclass(frozen=True, slots=True)
class AgentTargets:
    """How long an agent may stay on one call, in one pause, in one wrap-up; None: no alert."""

    long_call_s: float | None = None
    long_wrap_up_s: float | None = None
    long_pause_s: float | None = None
    long_pause_by_reason_s: Mapping[str, float | None] = field(default_factory=lambda: _NO_LIMITS)

    def pause_limit(self, reason: str | None) -> float | None:
        if reason is not None and reason in self.long_pause_by_reason_s:
            return self.long_pause_by_reason_s[reason]
        return self.long_pause_s



@dataclass(frozen=True, slots=True)
class AlertTiming:
    """So that a figure hovering at its target does not flap: a queue alert is raised once the figure has
    been past its target for `raise_after_s`, and cleared once it has been back on the good side of the
    warning line for `clear_after_s` (docs/acd.md, Targets and alerts)."""

    raise_after_s: float = 10.0
    clear_after_s: float = 30.0


@dataclass(frozen=True, slots=True)
class PriorityRules:
    """Base priority bonuses; aging is global (`AcdConfig.priority_aging_per_s`)."""

    vip: int = 0
    grades: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    def base(self, ivr_priority: int, vip: bool, grade: str | None) -> int:
        bonus = self.vip if vip else 0
        if grade is not None:
            bonus += self.grades.get(grade, 0)
        return ivr_priority + bonus


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    skills: Mapping[str, int]
    policy: Policy = "longest_idle"
    service_level: ServiceLevel = ServiceLevel()
    targets: QueueTargets = QueueTargets()
    max_wait_s: float | None = None
    on_max_wait: TimeoutActionSpec = TimeoutActionSpec("voicemail")
    escalation: tuple[EscalationStep, ...] = ()
    wrap_up_s: float = 30.0
    # While the agent's wrap-up form is open (a draft came in) the wrap-up outlasts wrap_up_s up to this;
    # None: 4 x wrap_up_s, at least 120 s.
    wrap_up_max_s: float | None = None
    announce_every_s: float = 30.0  # 0 disables position announcements
    short_abandon_s: float = 5.0
    ring_timeout_s: float = 15.0
    sticky_window_s: float = 0.0
    default_handle_s: float = 180.0  # used for estimated wait until real handle times exist
    priority: PriorityRules = PriorityRules()
    recording: RecordingPolicy = "never"  # always: from the bridge; on_demand: the agent starts it
    line: int = 0
    blacklist: BlacklistPolicy | None = None  # what happens to a blacklisted caller (acd/blacklist.py)
    # A callback's turn (docs/callbacks.md): ring the agent, then dial the customer; or the customer
    # first, the agent once they answer.
    callback_dial: CallbackDial = "agent_first"

    @property
    def wrap_up_limit_s(self) -> float:
        """The longest a wrap-up with its form open may last."""
        if self.wrap_up_max_s is not None:
            return max(self.wrap_up_max_s, self.wrap_up_s)
        return max(4 * self.wrap_up_s, 120.0)

    def level_stages(self) -> tuple[Mapping[str, int], ...]:
        """Distinct required-level sets over time: stage 0 is the queue's own requirement."""
        stages: list[Mapping[str, int]] = [self.skills]
        for step in self.escalation:
            if step.min_levels:
                merged = dict(stages[-1])
                merged.update(step.min_levels)
                stages.append(MappingProxyType(merged))
        return tuple(stages)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    name: str
    skills: Mapping[str, int]
    queues: tuple[str, ...]
    device: str | None = None  # the phone's dial string (Local ones with /n); None: the site's template
    line: int = 0
    auto_answer: bool | None = None  # None: the site's setting
    targets: AgentTargets = AgentTargets()  # the site's agent_targets with this agent's own on top
    # "console": an auto-answer phone is not rung until the agent clicks Answer in the console.
    answer: Literal["phone", "console"] = "phone"

    @property
    def endpoint(self) -> str | None:
        """The device, by its former name (queues files may still say ``endpoint:``)."""
        return self.device


# Pause reasons the server gives itself, accepted besides the configured ones (agents never choose them):
# "console_lost" pauses an agent none of whose consoles has been connected for a while; "phone_unregistered" an
# agent whose browser phone is not registered to the PBX.
CONSOLE_LOST = "console_lost"
PHONE_UNREGISTERED = "phone_unregistered"
SYSTEM_PAUSE_REASONS = (CONSOLE_LOST, PHONE_UNREGISTERED)


@dataclass(frozen=True, slots=True)
class AcdConfig:
    skills: tuple[str, ...]
    pause_reasons: tuple[str, ...]
    queues: tuple[QueueConfig, ...]
    agents: tuple[AgentConfig, ...]
    priority_aging_per_s: float = 1.0
    source: str = "<string>"
    agent_targets: AgentTargets = AgentTargets()  # the site's defaults (each agent's are in AgentConfig)
    alerts: AlertTiming = AlertTiming()
    _queues_by_name: Mapping[str, QueueConfig] = field(default_factory=lambda: MappingProxyType({}), repr=False,
                                                     compare=False)
    _agents_by_id: Mapping[str, AgentConfig] = field(default_factory=lambda: MappingProxyType({}), repr=False,
                                                     compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_queues_by_name", MappingProxyType({q.name: q for q in self.queues}))
        object.__setattr__(self, "_agents_by_id", MappingProxyType({a.id: a for a in self.agents}))

    def queue(self, name: str) -> QueueConfig:
        return self._queues_by_name[name]

    def agent(self, agent_id: str) -> AgentConfig:
        return self._agents_by_id[agent_id]

    def has_queue(self, name: str) -> bool:
        return name in self._queues_by_name

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents_by_id


def meets(levels: Mapping[str, int], required: Mapping[str, int]) -> bool:
    return all(levels.get(skill, 0) >= level for skill, level in required.items())


READ_PIECE = 64 * 1024
MAX_FILE_BYTES = 2_000_000  # a security limit: a queues file is text written by people
MAX_DEPTH = 64  # nesting levels; a queues file needs 5


def load_config(path: str | Path) -> AcdConfig:
    """Load and validate one YAML file; raises `AcdConfigError` listing every problem."""
    path = Path(path)
    return parse_config(_read_text(path), source=str(path))


def _read_text(path: Path) -> str:
    """The file as text, refused (before it is read) when too large, and when not UTF-8."""
    def refuse(line: int, message: str) -> AcdConfigError:
        return AcdConfigError([ConfigIssue(str(path), line, "<file>", message)])

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise refuse(1, f"larger than {MAX_FILE_BYTES} bytes: not a queues file")
        with path.open("rb") as fh:
            raw = _read_at_most(fh, MAX_FILE_BYTES + 1)  # a pipe or a device has no size to check first
    except OSError as exc:
        raise refuse(1, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise refuse(1, f"larger than {MAX_FILE_BYTES} bytes: not a queues file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(raw.count(b"\n", 0, exc.start) + 1, f"not UTF-8 text (byte {exc.start})") from None


def _read_at_most(fh: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes, read in pieces: one read(limit) allocates the whole limit (2 MB) for a file of
    2 kB, and a buffer that size on every load fragments the heap (resident memory grows with each reload)."""
    pieces: list[bytes] = []
    total = 0
    while total < limit and (piece := fh.read(min(READ_PIECE, limit - total))):
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)


def parse_config(text: str, source: str = "<string>") -> AcdConfig:
    return _Loader(source).load(text)


# --------------------------------------------------------------------------- node walking

T = TypeVar("T")
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"



class _BoundedSafeLoader(yaml.SafeLoader):
    """The pure-Python composer recurses once per nesting level: refuse deep nesting with a position
    instead of a RecursionError. (libyaml stops at 1000 levels with a ScannerError of its own.)"""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# libyaml when present: same nodes and marks, faster
_LOADER: type = getattr(yaml, "CSafeLoader", _BoundedSafeLoader)
_TOP_FIELDS = {"skills", "pause_reasons", "queues", "agents", "priority_aging_per_s", "agent_targets", "alerts"}
_QUEUE_FIELDS = {
    "name", "skills", "policy", "service_level", "max_wait_s", "on_max_wait", "escalation", "wrap_up_s",
    "wrap_up_max_s",
    "announce_every_s", "short_abandon_s", "ring_timeout_s", "sticky_window_s", "default_handle_s", "priority",
    "blacklist", "callback_dial",
    "targets", "recording",
}
_STEP_FIELDS = {"after_s", "min_levels", "also_offer_to", "action"}
_AGENT_FIELDS = {"id", "name", "skills", "queues", "device", "endpoint", "auto_answer", "answer", "targets"}
_QUEUE_TARGET_FIELDS = {"abandon_rate_pct", "longest_wait_s", "asa_s", "min_calls"}
_AGENT_TARGET_FIELDS = {"long_call_s", "long_wrap_up_s", "long_pause_s", "long_pause_by_reason_s"}
_BOOL_TAG = "tag:yaml.org,2002:bool"


# YAML 1.1 numbers as yaml.safe_load reads them: 0x1F, 0b101, 1_000, 1:30 (base 60), .inf, .nan.
_NUMBERS = yaml.constructor.SafeConstructor()
_OCTAL = re.compile(r"[-+]?0[0-7_]+")


def _yaml_int(node: yaml.ScalarNode, what: str = "a whole number") -> int:
    """The value of an int-tagged scalar; ValueError with the reason for text that only claims to be one
    (``!!int x``), for more digits than Python converts (4300), and for a leading zero."""
    if _OCTAL.fullmatch(node.value) and node.value.strip("+-_0"):
        # YAML 1.1 reads 030 as octal 24: a person who wrote it almost always meant 30.
        raise ValueError(f"{_shown(node.value)} starts with 0, which YAML reads as an octal number "
                         f"({_NUMBERS.construct_yaml_int(node)}): write it without the leading zero")
    if node.value.replace("_", "").lstrip("+-"):
        try:
            return int(_NUMBERS.construct_yaml_int(node))
        except ValueError:
            pass
    raise ValueError(f"expected {what}, got {_shown(node.value)}")


def _yaml_number(node: yaml.ScalarNode) -> float:
    """The value of an int- or float-tagged scalar, as a finite float; ValueError with the reason."""
    if node.tag == _INT_TAG:
        whole = _yaml_int(node, "a finite number")
        try:
            return float(whole)
        except OverflowError:
            raise ValueError(f"{_shown(node.value)} is too large") from None
    value = None
    if node.value.replace("_", "").lstrip("+-"):
        try:
            value = float(_NUMBERS.construct_yaml_float(node))
        except ValueError:
            pass
    if value is None or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {_shown(node.value)}")
    return value


def _shown(value: str) -> str:
    """A value from the file inside a one-line message: as written when short and printable, else
    quoted, escaped and cut."""
    if 0 < len(value) <= 40 and value.isprintable():
        return value
    return repr(value[:40]) + ("..." if len(value) > 40 else "")


class _Invalid(Exception):
    """Internal: a field could not be read; the issue is already recorded."""


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[ConfigIssue] = []
        self.queue: str | None = None  # queue being read, for error scoping
        self.flawed: set[str] = set()  # queues and agents with their own issues: no cascade checks

    # ---- issue recording
    def issue(self, node: yaml.Node | None, fld: str, message: str, queue: str | None = None) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.issues.append(ConfigIssue(self.source, line, fld, message, queue or self.queue))

    def fail(self, node: yaml.Node | None, fld: str, message: str) -> _Invalid:
        self.issue(node, fld, message)
        return _Invalid()

    # ---- typed readers
    def mapping(self, node: yaml.Node, fld: str, allowed: set[str] | None = None) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, fld, "expected a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.issue(key_node, fld, "keys must be plain names")
                continue
            name = f"{fld}.{key}" if fld else key
            if key in out:
                self.issue(key_node, name, "appears twice")
                continue
            if allowed is not None and key not in allowed:
                self.issue(key_node, name, f"unknown field; expected one of {sorted(allowed)}")
                continue
            out[key] = value_node
        return out

    def sequence(self, node: yaml.Node, fld: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, fld, "expected a list")
        return list(node.value)

    def text(self, node: yaml.Node, fld: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG or not node.value.strip():
            raise self.fail(node, fld, "expected a non-empty text value")
        return str(node.value)

    def number(self, node: yaml.Node, fld: str, *, minimum: float = 0.0, strict: bool = False) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT_TAG, _FLOAT_TAG):
            raise self.fail(node, fld, "expected a number")
        try:
            value = _yaml_number(node)
        except ValueError as exc:
            raise self.fail(node, fld, str(exc)) from None
        if value < minimum or (strict and value == minimum):
            bound = ">" if strict else ">="
            raise self.fail(node, fld, f"must be {bound} {minimum:g}, got {_shown(node.value)}")
        return value

    def integer(self, node: yaml.Node, fld: str, low: int | None = None, high: int | None = None) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT_TAG:
            raise self.fail(node, fld, "expected a whole number")
        try:
            value = _yaml_int(node)
        except ValueError as exc:
            raise self.fail(node, fld, str(exc)) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(node, fld, f"must be between {low} and {high}, got {value}")
        return value

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG

    def optional(self, fields: dict[str, yaml.Node], key: str, fld: str, read: Callable[[yaml.Node, str], T],
                 default: T) -> T:
        node = fields.get(key)
        if node is None:
            return default
        try:
            return read(node, fld)
        except _Invalid:
            return default

    # ---- document
    def load(self, text: str) -> AcdConfig:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            where = f" (column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]  # the mark is ours to print
            raise AcdConfigError([ConfigIssue(self.source, line, "<document>",
                                              f"not valid YAML: {problem}{where}")]) from None
        if root is None:
            raise AcdConfigError([ConfigIssue(self.source, 1, "<document>", "the file is empty")])
        try:
            top = self.mapping(root, "", _TOP_FIELDS)
        except _Invalid:
            raise AcdConfigError(self.issues) from None

        skills = self.names(top, "skills", root)
        pause_reasons = self.names(top, "pause_reasons", root)
        aging = self.optional(top, "priority_aging_per_s", "priority_aging_per_s", self.number, 1.0)
        reasons = {*pause_reasons, *SYSTEM_PAUSE_REASONS}
        site_targets = self.optional(top, "agent_targets", "agent_targets",
                                     lambda n, f: self.agent_targets(n, f, AgentTargets(), reasons), AgentTargets())
        timing = self.optional(top, "alerts", "alerts", self.alert_timing, AlertTiming())
        queue_nodes = self.list_field(top, "queues", root)
        agent_nodes = self.list_field(top, "agents", root)

        skill_set = set(skills)
        queue_names = self.collect_queue_names(queue_nodes)
        queues = [q for q in (self.read_queue(n, skill_set, queue_names) for n in queue_nodes) if q is not None]
        agents = self.read_agents(agent_nodes, skill_set, queue_names, site_targets, reasons)
        self.check_overflow_cycles(queues)
        self.check_servable(queues, agents)
        if self.issues:
            raise AcdConfigError(sorted(self.issues, key=lambda i: i.line))
        return AcdConfig(tuple(skills), tuple(pause_reasons), tuple(queues), tuple(agents), aging, self.source,
                         site_targets, timing)

    def names(self, top: dict[str, yaml.Node], key: str, root: yaml.Node) -> list[str]:
        node = top.get(key)
        if node is None:
            self.issue(root, key, "is required")
            return []
        out: list[str] = []
        try:
            for i, item in enumerate(self.sequence(node, key)):
                try:
                    name = self.text(item, f"{key}[{i}]")
                except _Invalid:
                    continue
                if name in out:
                    self.issue(item, f"{key}[{i}]", f"{name!r} is listed twice")
                out.append(name)
        except _Invalid:
            return []
        if not out:
            self.issue(node, key, "must list at least one name")
        return out

    def list_field(self, top: dict[str, yaml.Node], key: str, root: yaml.Node) -> list[yaml.Node]:
        node = top.get(key)
        if node is None:
            self.issue(root, key, "is required")
            return []
        try:
            return self.sequence(node, key)
        except _Invalid:
            return []

    def collect_queue_names(self, nodes: list[yaml.Node]) -> set[str]:
        names: set[str] = set()
        for i, node in enumerate(nodes):
            if not isinstance(node, yaml.MappingNode):
                continue
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == "name" and isinstance(value_node, yaml.ScalarNode):
                    if value_node.value in names:
                        self.issue(value_node, f"queues[{i}].name", f"queue {value_node.value!r} is defined twice",
                                   queue=value_node.value)
                    names.add(value_node.value)
        return names

    def levels(self, node: yaml.Node, fld: str, skills: set[str]) -> Mapping[str, int]:
        out: dict[str, int] = {}
        for skill, level_node in self.mapping(node, fld).items():
            if skill not in skills:
                key_node = next(k for k, v in node.value if v is level_node)
                self.issue(key_node, f"{fld}.{skill}", f"unknown skill {skill!r}; declare it under 'skills'")
                continue
            try:
                out[skill] = self.integer(level_node, f"{fld}.{skill}", MIN_LEVEL, MAX_LEVEL)
            except _Invalid:
                continue
        return MappingProxyType(out)

    def action(self, node: yaml.Node, fld: str, queue_names: set[str]) -> TimeoutActionSpec:
        raw = self.text(node, fld)
        kind, _, target = raw.partition(":")
        if kind == "queue":
            if not target:
                raise self.fail(node, fld, "queue action needs a target: 'queue:<name>'")
            if target not in queue_names:
                raise self.fail(node, fld, f"unknown queue {target!r}")
            if target == self.queue:
                raise self.fail(node, fld, "a queue cannot time out into itself")
            return TimeoutActionSpec("queue", target)
        if kind in ("callback", "voicemail") and not target:
            return TimeoutActionSpec(kind)  # type: ignore[arg-type]
        raise self.fail(node, fld, f"bad action {raw!r}; expected callback, voicemail or queue:<name>")

    def recording_policy(self, node: yaml.Node, fld: str) -> RecordingPolicy:
        raw = self.text(node, fld)
        if raw not in RECORDING_POLICIES:
            raise self.fail(node, fld, f"unknown recording policy {raw!r}; expected one of {RECORDING_POLICIES}")
        return raw  # type: ignore[return-value]

    # ---- queues
    def read_queue(self, node: yaml.Node, skills: set[str], queue_names: set[str]) -> QueueConfig | None:
        self.queue = None
        if isinstance(node, yaml.MappingNode):  # name first, so every issue below names its queue
            self.queue = next((v.value for k, v in node.value
                               if getattr(k, "value", None) == "name" and isinstance(v, yaml.ScalarNode)), None)
        try:
            fields = self.mapping(node, "", _QUEUE_FIELDS)
            if "name" not in fields:
                raise self.fail(node, "name", "every queue needs a name")
            name = self.text(fields["name"], "name")
        except _Invalid:
            return None
        self.queue = name
        before = len(self.issues)
        required: Mapping[str, int] = _EMPTY
        if "skills" not in fields:
            self.issue(node, "skills", "is required (skill: minimum level)")
        else:
            required = self.optional(fields, "skills", "skills", lambda n, f: self.levels(n, f, skills), _EMPTY)
            if not required and len(self.issues) == before:
                self.issue(fields["skills"], "skills", "must require at least one skill")
        policy: str = "longest_idle"
        if "policy" in fields:
            policy = self.optional(fields, "policy", "policy", self.text, "longest_idle")
            if policy not in POLICIES:
                self.issue(fields["policy"], "policy", f"unknown routing policy {policy!r}; expected one of {POLICIES}")
        sl = self.optional(fields, "service_level", "service_level", self.service_level, ServiceLevel())
        targets = self.optional(fields, "targets", "targets", self.queue_targets, QueueTargets())
        max_wait = self.optional(fields, "max_wait_s", "max_wait_s", self.max_wait, None)
        on_max_wait = self.optional(fields, "on_max_wait", "on_max_wait",
                                    lambda n, f: self.action(n, f, queue_names), TimeoutActionSpec("voicemail"))
        no_steps: tuple[EscalationStep, ...] = ()
        skills_node = fields.get("skills")
        # Only plain keys: a list or mapping as a key (`? [a]`) is reported by levels() and names nothing.
        declared = {k.value for k, _ in skills_node.value if isinstance(k, yaml.ScalarNode)} if isinstance(
            skills_node, yaml.MappingNode) else set()
        steps = self.optional(fields, "escalation", "escalation",
                              lambda n, f: self.escalation(n, f, required, declared, skills, queue_names, max_wait),
                              no_steps)
        priority = self.optional(fields, "priority", "priority", self.priority_rules, PriorityRules())
        blacklist = self.optional(fields, "blacklist", "blacklist",
                                  lambda n, f: self.blacklist_policy(n, f, name, queue_names), None)
        recording: RecordingPolicy = self.optional(fields, "recording", "recording", self.recording_policy, "never")

        def seconds(key: str, default: float) -> float:
            return self.optional(fields, key, key, self.number, default)

        queue = QueueConfig(
            name=name, skills=required, policy=policy,  # type: ignore[arg-type]
            service_level=sl, targets=targets, max_wait_s=max_wait, on_max_wait=on_max_wait, escalation=steps,
            wrap_up_s=seconds("wrap_up_s", 30.0),
            wrap_up_max_s=self.optional(fields, "wrap_up_max_s", "wrap_up_max_s",
                                        lambda n, f: self.number(n, f, strict=True), None),
            announce_every_s=seconds("announce_every_s", 30.0),
            short_abandon_s=seconds("short_abandon_s", 5.0),
            ring_timeout_s=self.optional(fields, "ring_timeout_s", "ring_timeout_s",
                                         lambda n, f: self.number(n, f, strict=True), 15.0),
            sticky_window_s=seconds("sticky_window_s", 0.0),
            default_handle_s=self.optional(fields, "default_handle_s", "default_handle_s",
                                           lambda n, f: self.number(n, f, strict=True), 180.0),
            priority=priority, recording=recording, line=node.start_mark.line + 1, blacklist=blacklist,
            callback_dial=self.optional(fields, "callback_dial", "callback_dial", self.callback_dial, "agent_first"),
        )
        if queue.wrap_up_max_s is not None and queue.wrap_up_max_s < queue.wrap_up_s:
            self.issue(fields["wrap_up_max_s"], "wrap_up_max_s",
                       f"must be at least wrap_up_s ({queue.wrap_up_s:g}), got {queue.wrap_up_max_s:g}")
        if len(self.issues) > before:
            self.flawed.add(name)
        self.queue = None
        return queue

    def callback_dial(self, node: yaml.Node, fld: str) -> CallbackDial:
        value = self.text(node, fld)
        if value not in CALLBACK_DIALS:
            raise self.fail(node, fld, f"unknown callback dial order {value!r}; expected one of {CALLBACK_DIALS}")
        return value  # type: ignore[return-value]

    def service_level(self, node: yaml.Node, fld: str) -> ServiceLevel:
        fields = self.mapping(node, fld, {"percent", "within_s", "formula"})
        percent = self.optional(fields, "percent", f"{fld}.percent", self.number, 80.0)
        if percent <= 0 or percent > 100:
            raise self.fail(fields["percent"], f"{fld}.percent", "must be in (0, 100]")
        within = self.optional(fields, "within_s", f"{fld}.within_s",
                               lambda n, f: self.number(n, f, strict=True), 20.0)
        formula = self.optional(fields, "formula", f"{fld}.formula", self.text, "short_abandons_excluded")
        if formula not in SL_FORMULAS:
            raise self.fail(fields["formula"], f"{fld}.formula",
                            f"unknown service level formula {formula!r}; expected one of {SL_FORMULAS}")
        return ServiceLevel(percent, within, formula)  # type: ignore[arg-type]

    def queue_targets(self, node: yaml.Node, fld: str) -> QueueTargets:
        fields = self.mapping(node, fld, _QUEUE_TARGET_FIELDS)
        rate = self.optional(fields, "abandon_rate_pct", f"{fld}.abandon_rate_pct", self.limit, None)
        if rate is not None and rate > 100:
            self.issue(fields["abandon_rate_pct"], f"{fld}.abandon_rate_pct", f"must be in (0, 100], got {rate:g}")
            rate = None
        return QueueTargets(
            abandon_rate_pct=rate,
            longest_wait_s=self.optional(fields, "longest_wait_s", f"{fld}.longest_wait_s", self.limit, None),
            asa_s=self.optional(fields, "asa_s", f"{fld}.asa_s", self.limit, None),
            min_calls=self.optional(fields, "min_calls", f"{fld}.min_calls",
                                    lambda n, f: self.integer(n, f, 1, 1_000_000), 10),
        )

    def limit(self, node: yaml.Node, fld: str) -> float | None:
        """A target: a number above 0, or null (no target; in an agent's own targets, none of the site's)."""
        if self.is_null(node):
            return None
        return self.number(node, fld, strict=True)

    def agent_targets(self, node: yaml.Node, fld: str, base: AgentTargets, reasons: set[str]) -> AgentTargets:
        """`base` with what this mapping sets on top (a key given as null drops the base's target)."""
        fields = self.mapping(node, fld, _AGENT_TARGET_FIELDS)

        def pick(key: str, inherited: float | None) -> float | None:
            node = fields.get(key)
            if node is None:
                return inherited
            try:
                return self.limit(node, f"{fld}.{key}")
            except _Invalid:
                return inherited

        by_reason = dict(base.long_pause_by_reason_s)
        if "long_pause_by_reason_s" in fields:
            here = f"{fld}.long_pause_by_reason_s"
            try:
                for reason, value in self.mapping(fields["long_pause_by_reason_s"], here).items():
                    if reason not in reasons:
                        self.issue(value, f"{here}.{reason}",
                                   f"unknown pause reason {reason!r}; declare it under 'pause_reasons'")
                        continue
                    try:
                        by_reason[reason] = self.limit(value, f"{here}.{reason}")
                    except _Invalid:
                        continue
            except _Invalid:
                pass
        return AgentTargets(pick("long_call_s", base.long_call_s), pick("long_wrap_up_s", base.long_wrap_up_s),
                            pick("long_pause_s", base.long_pause_s), MappingProxyType(by_reason))

    def alert_timing(self, node: yaml.Node, fld: str) -> AlertTiming:
        fields = self.mapping(node, fld, {"raise_after_s", "clear_after_s"})
        return AlertTiming(
            self.optional(fields, "raise_after_s", f"{fld}.raise_after_s", self.number, 10.0),
            self.optional(fields, "clear_after_s", f"{fld}.clear_after_s", self.number, 30.0),
        )

    def max_wait(self, node: yaml.Node, fld: str) -> float | None:
        if self.is_null(node):
            return None
        return self.number(node, fld, strict=True)

    def blacklist_policy(self, node: yaml.Node, fld: str, queue: str, queue_names: set[str]) -> BlacklistPolicy:
        fields = self.mapping(node, fld, {"action", "message", "queue"})
        if "action" not in fields:
            raise self.fail(node, f"{fld}.action", f"is required: one of {', '.join(BLACKLIST_ACTIONS)}")
        action = self.text(fields["action"], f"{fld}.action")
        if action not in BLACKLIST_ACTIONS:
            raise self.fail(fields["action"], f"{fld}.action",
                            f"unknown action {action!r}; expected one of {', '.join(BLACKLIST_ACTIONS)}")
        wants = {"refuse": "message", "route": "queue", "lowest": None}[action]
        for key in fields.keys() - {"action"}:
            if key != wants:
                raise self.fail(fields[key], f"{fld}.{key}", f"does not go with action {action}")
        if wants is not None and wants not in fields:
            what = "the prompt played to the caller" if wants == "message" else "the queue the caller goes to"
            raise self.fail(node, f"{fld}.{wants}", f"is required with action {action}: {what}")
        value = self.text(fields[wants], f"{fld}.{wants}") if wants is not None else ""
        if action == "refuse" and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_/.-]{0,99}", value):
            raise self.fail(fields["message"], f"{fld}.message", f"{_shown(value)} is not a prompt name")
        if action == "route" and value not in queue_names:
            raise self.fail(fields["queue"], f"{fld}.queue", f"unknown queue {_shown(value)}")
        if action == "route" and value == queue:
            raise self.fail(fields["queue"], f"{fld}.queue", "routes the caller to the same queue")
        return BlacklistPolicy(action, message=value if action == "refuse" else "",  # type: ignore[arg-type]
                               queue=value if action == "route" else "")

    def priority_rules(self, node: yaml.Node, fld: str) -> PriorityRules:
        fields = self.mapping(node, fld, {"vip", "grades"})
        vip = self.optional(fields, "vip", f"{fld}.vip", self.integer, 0)
        grades: dict[str, int] = {}
        if "grades" in fields:
            try:
                for grade, bonus in self.mapping(fields["grades"], f"{fld}.grades").items():
                    try:
                        grades[grade] = self.integer(bonus, f"{fld}.grades.{grade}")
                    except _Invalid:
                        pass
            except _Invalid:
                pass
        return PriorityRules(vip, MappingProxyType(grades))

    def escalation(self, node: yaml.Node, fld: str, required: Mapping[str, int], declared: set[str],
                   skills: set[str],
                   queue_names: set[str], max_wait: float | None) -> tuple[EscalationStep, ...]:
        steps: list[EscalationStep] = []
        previous_at = 0.0
        current = dict(required)
        items = self.sequence(node, fld)
        for i, item in enumerate(items):
            here = f"{fld}[{i}]"
            try:
                fields = self.mapping(item, here, _STEP_FIELDS)
                if "after_s" not in fields:
                    raise self.fail(item, f"{here}.after_s", "is required")
                after = self.number(fields["after_s"], f"{here}.after_s", strict=True)
            except _Invalid:
                continue
            if after <= previous_at:
                self.issue(fields["after_s"], f"{here}.after_s",
                           f"escalation steps must increase in time: {after:g} s comes after {previous_at:g} s")
            if max_wait is not None and after >= max_wait:
                self.issue(fields["after_s"], f"{here}.after_s",
                           f"step at {after:g} s is never reached: max_wait_s is {max_wait:g} s")
            previous_at = max(previous_at, after)
            min_levels: Mapping[str, int] = _EMPTY
            if "min_levels" in fields:
                min_levels = self.optional(fields, "min_levels", f"{here}.min_levels",
                                           lambda n, f: self.levels(n, f, skills), _EMPTY)
                for skill, level in min_levels.items():
                    if skill not in declared:
                        self.issue(fields["min_levels"], f"{here}.min_levels.{skill}",
                                   f"{skill!r} is not a required skill of this queue")
                    elif skill not in required:
                        continue  # its level in 'skills' is wrong, already reported
                    elif level > current[skill]:
                        self.issue(fields["min_levels"], f"{here}.min_levels.{skill}",
                                   f"escalation may only lower a level: {level} > {current[skill]}")
                    else:
                        current[skill] = level
            also: tuple[str, ...] = ()
            if "also_offer_to" in fields:
                also = self.optional(fields, "also_offer_to", f"{here}.also_offer_to",
                                     lambda n, f: self.queue_refs(n, f, queue_names), ())
            action = None
            if "action" in fields:
                action = self.optional(fields, "action", f"{here}.action",
                                       lambda n, f: self.action(n, f, queue_names), None)
                if i != len(items) - 1:
                    self.issue(fields["action"], f"{here}.action",
                               "an action ends the wait: it must be the last escalation step")
            if not {"min_levels", "also_offer_to", "action"} & fields.keys():
                self.issue(item, here, "a step needs min_levels, also_offer_to or action")
            steps.append(EscalationStep(after, min_levels, also, action))
        return tuple(steps)

    def queue_refs(self, node: yaml.Node, fld: str, queue_names: set[str]) -> tuple[str, ...]:
        nodes = [node] if isinstance(node, yaml.ScalarNode) else self.sequence(node, fld)
        out: list[str] = []
        for item in nodes:
            try:
                name = self.text(item, fld)
            except _Invalid:
                continue
            if name not in queue_names:
                self.issue(item, fld, f"unknown queue {name!r}")
            elif name == self.queue:
                self.issue(item, fld, "a queue cannot overflow into itself")
            else:
                out.append(name)
        return tuple(out)

    # ---- agents
    def read_agents(self, nodes: list[yaml.Node], skills: set[str], queue_names: set[str],
                    site_targets: AgentTargets, reasons: set[str]) -> list[AgentConfig]:
        agents: list[AgentConfig] = []
        seen: set[str] = set()
        self.queue = None
        for i, node in enumerate(nodes):
            here = f"agents[{i}]"
            before = len(self.issues)
            try:
                fields = self.mapping(node, here, _AGENT_FIELDS)
                if "id" not in fields:
                    raise self.fail(node, f"{here}.id", "every agent needs an id")
                id_node = fields["id"]
                if not isinstance(id_node, yaml.ScalarNode) or not id_node.value.strip():
                    raise self.fail(id_node, f"{here}.id", "expected a non-empty id")
                agent_id = str(id_node.value)
            except _Invalid:
                continue
            here = f"agents[{agent_id}]"
            if agent_id in seen:
                self.issue(id_node, f"{here}.id", f"agent {agent_id!r} is defined twice")
            seen.add(agent_id)
            name = self.optional(fields, "name", f"{here}.name", self.text, agent_id)
            levels: Mapping[str, int] = _EMPTY
            if "skills" in fields:
                levels = self.optional(fields, "skills", f"{here}.skills",
                                       lambda n, f: self.levels(n, f, skills), _EMPTY)
            queues: tuple[str, ...] = ()
            if "queues" in fields:
                self.queue = None
                queues = self.optional(fields, "queues", f"{here}.queues",
                                       lambda n, f: self.queue_refs(n, f, queue_names), ())
            device = self.device(fields, here)
            auto_answer = self.optional(fields, "auto_answer", f"{here}.auto_answer", self.boolean, None)
            if auto_answer and device is not None and devices.desk_phone(device) is None:
                self.issue(fields["auto_answer"], f"{here}.auto_answer",
                           f"auto-answer is a SIP header for a desk phone: the device must be PJSIP/<endpoint>, "
                           f"not {device!r}")
            answer = self.answer(fields, here, auto_answer)
            targets = self.optional(fields, "targets", f"{here}.targets",
                                    lambda n, f: self.agent_targets(n, f, site_targets, reasons), site_targets)
            agents.append(AgentConfig(agent_id, name, levels, queues, device, node.start_mark.line + 1,
                                      auto_answer, targets, answer))
            if len(self.issues) > before:
                self.flawed.add(f"agent:{agent_id}")
        return agents

    def device(self, fields: dict[str, yaml.Node], here: str) -> str | None:
        """``device:`` (or its older name ``endpoint:``): a dial string, checked strictly here so a bad one
        is a line in this file, not a refused Originate when the first call rings. The agent's own phone,
        so no ``{extension}`` (that is for cti.yaml's site-wide template)."""
        if "device" in fields and "endpoint" in fields:
            self.issue(fields["endpoint"], f"{here}.endpoint", "give device or endpoint (its older name), not both")
            return None
        key = "device" if "device" in fields else "endpoint"
        node = fields.get(key)
        if node is None or self.is_null(node):
            return None
        try:
            text = self.text(node, f"{here}.{key}")
        except _Invalid:
            return None
        problem = devices.device_problem(text)
        if problem is None and devices.uses_extension(text):
            problem = (f"{text!r}: {devices.PLACEHOLDER} belongs in cti.yaml's agents.device (the site's template); "
                       "here give the agent's own phone")
        if problem is not None:
            self.issue(node, f"{here}.{key}", problem)
            return None
        return devices.without_optimization(text)

    def answer(self, fields: dict[str, yaml.Node], here: str, auto_answer: bool | None) -> Literal["phone", "console"]:
        """``answer: console``: the offer rings in the console, and the phone only once the agent clicks
        Answer; it then picks up at once, which only an auto-answer phone does."""
        node = fields.get("answer")
        if node is None:
            return "phone"
        if not isinstance(node, yaml.ScalarNode) or node.value not in ("phone", "console"):
            self.issue(node, f"{here}.answer", "expected phone or console")
            return "phone"
        if node.value == "console" and not auto_answer:
            self.issue(node, f"{here}.answer", "answer: console needs auto_answer: true (the phone must pick "
                       "up by itself when the agent clicks Answer)")
            return "phone"
        return "console" if node.value == "console" else "phone"

    def boolean(self, node: yaml.Node, fld: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL_TAG:
            raise self.fail(node, fld, "expected true or false")
        return node.value.lower() in ("true", "yes", "on", "y")

    # ---- cross checks
    def check_overflow_cycles(self, queues: list[QueueConfig]) -> None:
        edges: dict[str, list[str]] = {}
        for q in queues:
            targets: list[str] = []
            for step in q.escalation:
                targets.extend(step.also_offer_to)
                if step.action is not None and step.action.target is not None:
                    targets.append(step.action.target)
            if q.on_max_wait.target is not None:
                targets.append(q.on_max_wait.target)
            edges[q.name] = targets
        lines = {q.name: q.line for q in queues}
        reported: set[frozenset[str]] = set()
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        # Depth-first with an explicit stack: a chain of thousands of overflow queues is a valid file and
        # must not hit Python's recursion limit.
        for q in queues:
            if q.name in state:
                continue
            state[q.name] = 1
            path = [q.name]
            todo = [iter(edges[q.name])]
            while todo:
                target = next(todo[-1], None)
                if target is None:
                    todo.pop()
                    state[path.pop()] = 2
                elif state.get(target) == 1:
                    cycle = path[path.index(target):] + [target]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        shown = cycle if len(cycle) <= 12 else [*cycle[:10], f"... {len(cycle) - 12} more", *cycle[-2:]]
                        self.issues.append(ConfigIssue(
                            self.source, lines[target], "escalation",
                            "queue overflow forms a loop: " + " -> ".join(shown), target))
                elif state.get(target) is None and target in edges:
                    state[target] = 1
                    path.append(target)
                    todo.append(iter(edges[target]))

    def check_servable(self, queues: list[QueueConfig], agents: list[AgentConfig]) -> None:
        if any(f.startswith("agent:") for f in self.flawed):
            return  # a broken agent entry may be the one meant to serve: fix it first
        for q in queues:
            if not q.skills or q.name in self.flawed:
                continue  # already reported
            loosest = q.level_stages()[-1]
            if not any(q.name in a.queues and meets(a.skills, loosest) for a in agents):
                self.issues.append(ConfigIssue(
                    self.source, q.line, "skills",
                    "no configured agent can ever serve this queue (member of it and skilled "
                    f"{dict(loosest)} even after escalation)", q.name))
