"""The flow interpreter: a pure state machine. No asyncio, no sockets, no clock of its own.

``FlowRun.start()`` returns the first Step; ``feed(result)`` returns the next one, until an Outcome. Each node
is a generator that yields Steps and receives results, which keeps node logic linear while the run stays a
plain object the driver can drive from any event loop (or a test from a list).

Any unexpected exception inside the interpreter ends the run with the flow's safe fallback (a QueueHandoff
with reason "ivr_error"): a bug in a flow or here never drops the caller.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .channel import AgiReply
from .model import (
    SURVEY_KEYS,
    VARIABLE_REF,
    BranchNode,
    Calendar,
    CallbackNode,
    CallNode,
    CollectNode,
    Condition,
    Flow,
    GotoNode,
    Graph,
    HangupNode,
    LookupNode,
    MenuNode,
    MenuOption,
    Node,
    PlayNode,
    QueueNode,
    RecordNode,
    ReturnNode,
    SayNode,
    SetNode,
    SurveyNode,
    Template,
    TransferNode,
    VoicemailNode,
)
from .steps import (
    AgiCommand,
    CallerHungUp,
    Hangup,
    Listen,
    LookupCustomer,
    Outcome,
    PathEntry,
    QueueFigures,
    QueueFiguresRequest,
    QueueHandoff,
    Recognition,
    Recognize,
    RequestCallback,
    SaveSurvey,
    SaveVoicemail,
    ServiceFailed,
    ServiceRequest,
    SpeechCapture,
    Step,
    Transfer,
    VoicemailDone,
    named_choice,
)
from .validator import safe_prompt_name

log = logging.getLogger(__name__)

# Values a variable may contribute to a prompt file name: no '/' or '.', so a variable can pick a prompt but
# never move it to another directory.
SAFE_PROMPT_PART = re.compile(r"^[A-Za-z0-9_-]*$")
PHONE = re.compile(r"^\+?[0-9*#]{1,32}$")
ALL_KEYS = "0123456789*#"
# Consecutive nodes that neither play nor wait before the run is declared stuck (validator catches most).
MAX_INSTANT_NODES = 200
# Extra seconds on top of a command's own time limit before the driver gives up on Asterisk's reply.
REPLY_MARGIN = 30.0
# Commands that play a prompt: their result=-1 on a live channel means the prompt could not be played.
PROMPT_VERBS = frozenset({"STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "GET OPTION"})
# Asked over when the question's prompt is missing, so the caller can still key an answer (a core sound).
FALLBACK_PROMPT = "beep"
# A speech menu's recordings are only heard by the recognizer: the server deletes them once decided and sweeps
# leftovers by this prefix, which voicemail and record nodes ("ivr-") never use.
SPEECH_RECORDING_PREFIX = "speech-"
# What a speech menu records: raw 48 kHz, the format whose 32 KiB write buffer fills fastest while still
# keeping real time (capture 23), so the server sees the caller's audio at most 0.34 s late.
LISTEN_FORMAT = "sln48"

Gen = Generator[Step, Any, Any]


def render(template: Template, variables: Mapping[str, str]) -> str:
    return VARIABLE_REF.sub(lambda m: variables.get(m.group(1), ""), template.text)


def render_prompt(template: Template, variables: Mapping[str, str]) -> str | None:
    """The prompt file name, or None if a variable would make it unsafe."""
    for name in template.variables:
        if not SAFE_PROMPT_PART.match(variables.get(name, "")):
            return None
    text = render(template, variables)
    return text if safe_prompt_name(text) else None


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_open(cal: Calendar, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(cal.timezone))
    if local.date() in cal.holidays:
        return False
    t = local.time().replace(tzinfo=None)
    return any(start <= t < end for start, end in cal.hours.get(local.weekday(), ()))


def is_holiday(cal: Calendar, now: datetime) -> bool:
    return now.astimezone(ZoneInfo(cal.timezone)).date() in cal.holidays


_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


def _same(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if b in _TRUE | _FALSE and a in _TRUE | _FALSE:
        return (a in _TRUE) == (b in _TRUE)
    return a == b


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _mask(digits: str) -> str:
    return "*" * max(0, len(digits) - 4) + digits[-4:]


def _safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:64]


class _Stuck(RuntimeError):
    pass


class FlowRun:
    """One caller's run through one Flow version. The Flow is immutable: a reload never touches it."""

    def __init__(
        self,
        flow: Flow,
        variables: Mapping[str, str] | None = None,
        now: datetime | Callable[[], datetime] | None = None,
        *,
        spool_dir: str = "/var/spool/asterisk/recording",
        call_id: str = "",
    ) -> None:
        self.flow = flow
        self.variables: dict[str, str] = {**flow.variables, **(variables or {}), "flow": flow.name}
        self.path: list[PathEntry] = []
        self.outcome: Outcome | None = None
        self.spool_dir = spool_dir.rstrip("/")
        self.call_id = _safe_part(call_id or self.variables.get("uniqueid", "") or "call")
        self._now = now
        self._node = ""
        self._gen: Gen | None = None
        self._recordings = 0
        # Work that must still be done if the caller hangs up now (a voicemail being recorded: callers
        # often hang up instead of pressing '#', and the message must not be lost).
        self.on_hangup: ServiceRequest | None = None

    # ------------------------------------------------------------------ driving
    @property
    def current_node(self) -> str:
        return self._node

    def now(self) -> datetime:
        now = self._now() if callable(self._now) else self._now
        if now is None:
            raise RuntimeError("FlowRun needs 'now' to evaluate business hours")
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def start(self) -> Step:
        self._gen = self._run()
        return self._advance(lambda g: next(g))

    def feed(self, result: object) -> Step:
        if self._gen is None:
            raise RuntimeError("feed() before start()")
        return self._advance(lambda g: g.send(result))

    def caller_hung_up(self) -> CallerHungUp:
        """The driver saw ChannelHungUp: end the run, keeping the path."""
        self.path.append(PathEntry(self._node, "hangup", "caller"))
        return self._finish(CallerHungUp(self._node))

    def fail_safe(self, error: str) -> QueueHandoff:
        """Something unexpected happened (here or in the driver): hand the caller to the safe fallback."""
        self.path.append(PathEntry(self._node, "error", error[:200]))
        fb = self.flow.fallback
        return self._finish(QueueHandoff(fb.queue, fb.skills, fb.priority, reason="ivr_error"))

    def _finish(self, outcome: Outcome) -> Any:
        if self.outcome is None:
            self.outcome = outcome
        if self._gen is not None:
            self._gen.close()
        return self.outcome

    def _advance(self, step_fn: Callable[[Gen], Step]) -> Step:
        if self.outcome is not None:
            return self.outcome
        assert self._gen is not None
        try:
            return step_fn(self._gen)
        except StopIteration as stop:
            outcome = stop.value
            self.outcome = outcome
            return outcome  # type: ignore[no-any-return]
        except Exception as e:
            log.exception("flow %s (version %s) failed in node %r; caller goes to the fallback queue",
                          self.flow.name, self.flow.version, self._node)
            return self.fail_safe(f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------ the walk
    def _run(self) -> Generator[Step, Any, Outcome]:
        stack: list[tuple[Graph, str]] = []
        graph = self.flow.main
        name = graph.start
        instant = 0
        while True:
            node = graph.nodes[name]
            self._node = name if graph.name == "" else f"{graph.name}.{name}"
            self.path.append(PathEntry(self._node, "node", type(node).__name__.removesuffix("Node").lower()))
            instant = 0 if node.waits else instant + 1
            if instant > MAX_INSTANT_NODES:
                raise _Stuck(f"{MAX_INSTANT_NODES} nodes in a row without waiting for the caller")
            if isinstance(node, CallNode):
                stack.append((graph, node.next))
                graph = self.flow.subflows[node.subflow]
                name = graph.start
                continue
            if isinstance(node, ReturnNode):
                graph, name = stack.pop()
                continue
            handler = _HANDLERS[type(node)]
            result = yield from handler(self, node)
            if isinstance(result, Outcome):
                return result
            name = result

    # ------------------------------------------------------------------ shared pieces
    def _command(self, *words: str | int, timeout: float | None = None) -> Generator[Step, Any, AgiReply]:
        reply = yield AgiCommand(tuple(words), timeout)
        assert isinstance(reply, AgiReply), f"expected an AgiReply, got {type(reply).__name__}"
        if reply.code == 200 and reply.result == "-1":
            yield from self._probe(words)
        return reply

    def _probe(self, words: tuple[str | int, ...] = ()) -> Gen:
        # result=-1 means the caller hung up (capture 03) or the file could not be played (capture 14: a
        # missing prompt, endpos=0 or none, channel up). CHANNEL STATUS tells them apart: on a dead channel
        # Asterisk answers HANGUP + 511 and the driver ends the run; alive, the flow goes on as if the
        # prompt had played, and the path says which prompt is missing (the server alerts supervisors).
        yield AgiCommand(("CHANNEL STATUS",), 10.0)
        if len(words) > 1 and words[0] in PROMPT_VERBS:
            self.path.append(PathEntry(self._node, "prompt_missing", str(words[1])))
        else:
            self.path.append(PathEntry(self._node, "note", "command failed (result=-1), channel still up"))

    def _get_data(self, prompt: str, timeout_ms: int, max_digits: int,
                  timeout: float) -> Generator[Step, Any, AgiReply]:
        """GET DATA; a missing prompt makes it return at once without keys (capture 14), so the question
        is asked again over a beep: the caller can still answer, as if the prompt had played."""
        reply = yield from self._command("GET DATA", prompt, timeout_ms, max_digits, timeout=timeout)
        if reply.code == 200 and reply.result == "-1" and prompt != FALLBACK_PROMPT:
            reply = yield from self._command("GET DATA", FALLBACK_PROMPT, timeout_ms, max_digits, timeout=timeout)
        return reply

    def _play(self, prompts: tuple[Template, ...], escape: str = "") -> Generator[Step, Any, str | None]:
        """STREAM FILE each prompt; returns the key that interrupted it (barge-in), if any."""
        for t in prompts:
            name = render_prompt(t, self.variables)
            if name is None:
                self.path.append(PathEntry(self._node, "note", f"unsafe prompt skipped: {t.text}"))
                continue
            reply = yield from self._command("STREAM FILE", name, escape)
            if escape and reply.digit and reply.digit in escape:
                return reply.digit
        return None

    def _prompt_names(self, prompts: tuple[Template, ...]) -> tuple[str, ...]:
        names = []
        for t in prompts:
            name = render_prompt(t, self.variables)
            if name is None:
                self.path.append(PathEntry(self._node, "note", f"unsafe prompt skipped: {t.text}"))
            else:
                names.append(name)
        return tuple(names)

    def _recording_name(self, prefix: str = "ivr-") -> str:
        self._recordings += 1
        return f"{self.spool_dir}/{prefix}{self.call_id}-{_safe_part(self._node)}-{self._recordings}"


# ---------------------------------------------------------------------- node handlers
def _play_node(run: FlowRun, node: PlayNode) -> Gen:
    key = yield from run._play(node.items, ALL_KEYS if node.barge_in else "")
    if key:
        run.path.append(PathEntry(run._node, "key", key))
    return node.next


def _say_node(run: FlowRun, node: SayNode) -> Gen:
    value = render(node.value, run.variables).strip()
    words: tuple[str | int, ...] | None = None
    if node.kind == "digits" and re.fullmatch(r"[0-9*#]{1,64}", value):
        words = ("SAY DIGITS", value, "")
    elif node.kind == "number" and re.fullmatch(r"-?[0-9]{1,15}", value):
        words = ("SAY NUMBER", value, "")
    elif node.kind == "alpha" and re.fullmatch(r"[A-Za-z0-9]{1,64}", value):
        words = ("SAY ALPHA", value, "")
    elif node.kind == "date":
        try:
            day = datetime.fromisoformat(value)
        except ValueError:
            day = None
        if day is not None:
            noon = day.replace(hour=12, minute=0, second=0, microsecond=0, tzinfo=day.tzinfo or UTC)
            words = ("SAY DATE", int(noon.timestamp()), "")
    if words is None:
        # A value the caller should not hear (empty, letters in a number...): skip, don't fail the call.
        run.path.append(PathEntry(run._node, "note", f"cannot say {node.kind} {value[:32]!r}"))
    else:
        yield from run._command(*words)
    return node.next


def _match(node: MenuNode, rec: Recognition) -> tuple[MenuOption, float] | None:
    named = named_choice(rec.text.lower().split(), [o.words for o in node.options])
    if named is None:
        return None
    index, words = named
    conf = dict(rec.words)
    return node.options[index], min((conf.get(w, rec.confidence) for w in words), default=0.0)


def _menu_node(run: FlowRun, node: MenuNode) -> Gen:
    keys = "".join(o.key for o in node.options if o.key)
    speech = node.speech
    speech_failures = 0
    failures = 0
    last = ""
    while failures <= node.retries:
        before = node.no_input if last == "no_input" else node.no_match if last == "no_match" else ()
        over: tuple[str, ...] = ()  # prompts played while listening (speech barge-in)
        if speech is not None and speech.barge_in:
            over = run._prompt_names(before + node.items)
            key = None
        else:
            key = yield from run._play(before + node.items, keys)
        if key is None and speech is not None:
            base = run._recording_name(SPEECH_RECORDING_PREFIX)
            listen = Recognize(f"{base}.{LISTEN_FORMAT}", speech.language,
                               tuple(w for o in node.options for w in o.words), speech.confidence,
                               tuple(o.words for o in node.options))
            capture = yield Listen(listen, keys, speech.wait_seconds, speech.listen_seconds, over)
            assert isinstance(capture, SpeechCapture)
            for name in capture.prompts_missing:
                run.path.append(PathEntry(run._node, "prompt_missing", name))
            if capture.barged_in:
                run.path.append(PathEntry(run._node, "note", "caller spoke over the prompt"))
            if capture.ended == "max_length":
                run.path.append(PathEntry(run._node, "note", f"caller kept talking: cut at {speech.listen_seconds:g} s"))
            if capture.key:
                key = capture.key
            elif capture.error is not None or capture.recognition is None:
                # The recognizer broke: this is our failure, not the caller's; go keypad-only, no retry used.
                run.path.append(PathEntry(run._node, "fallback_keypad", capture.error or "no recognition"))
                speech = None
                last = "no_match"
                continue
            else:
                rec = capture.recognition
                # Words, out-of-menu words or noise are an answer (a no-match when not the menu's); only
                # silence is no input.
                if rec.text.strip() or rec.heard:
                    m = _match(node, rec) if rec.text.strip() else None
                    if m is not None and m[1] >= speech.confidence:
                        option, confidence = m
                        run.path.append(PathEntry(run._node, "speech", rec.text, round(confidence, 3)))
                        return _choose(run, node, option)
                    run.path.append(PathEntry(run._node, "no_match", rec.text.strip() or rec.heard,
                                              round(rec.confidence, 3)))
                    speech_failures += 1
                    if speech_failures >= speech.attempts:
                        run.path.append(PathEntry(run._node, "fallback_keypad", "speech not understood"))
                        speech = None
                    failures += 1
                    last = "no_match"
                    continue
        elif key is None:
            reply = yield from run._command("WAIT FOR DIGIT", int(node.timeout * 1000))
            key = reply.digit if reply.result not in ("-1", "0") else None
        if key is not None:
            pressed = next((o for o in node.options if o.key == key), None)
            if pressed is not None:
                run.path.append(PathEntry(run._node, "key", key))
                return _choose(run, node, pressed)
            run.path.append(PathEntry(run._node, "no_match", key))
            last = "no_match"
        else:
            run.path.append(PathEntry(run._node, "no_input"))
            last = "no_input"
        failures += 1
    run.path.append(PathEntry(run._node, "retries_exhausted", str(node.retries)))
    return node.on_fail


def _choose(run: FlowRun, node: MenuNode, option: MenuOption) -> str:
    if node.var:
        run.variables[node.var] = option.words[0] if option.words else (option.key or "")
    return option.next


def _collect_node(run: FlowRun, node: CollectNode) -> Gen:
    last = ""
    for _attempt in range(node.retries + 1):
        if last:
            yield from run._play(node.no_input if last == "no_input" else node.invalid)
        prompt = render_prompt(node.prompt, run.variables) or FALLBACK_PROMPT
        reply = yield from run._get_data(prompt, int(node.timeout * 1000), node.max_digits,
                                         timeout=node.timeout * (node.max_digits + 1) + REPLY_MARGIN)
        digits = re.sub(r"[^0-9*#]", "", reply.result) if reply.result != "-1" else ""
        if not digits:
            run.path.append(PathEntry(run._node, "no_input"))
            last = "no_input"
            continue
        valid = node.min_digits <= len(digits) <= node.max_digits
        valid = valid and (node.pattern is None or re.fullmatch(node.pattern, digits) is not None)
        valid = valid and (node.check != "luhn" or luhn_ok(digits))
        shown = _mask(digits) if node.check == "luhn" else digits
        if valid:
            run.variables[node.var] = digits
            run.path.append(PathEntry(run._node, "collected", shown))
            return node.next
        run.path.append(PathEntry(run._node, "no_match", shown))
        last = "invalid"
    run.path.append(PathEntry(run._node, "retries_exhausted", str(node.retries)))
    return node.on_fail


def _record_words(base: str, max_seconds: int, silence: int, beep: bool) -> tuple[str | int, ...]:
    # Same shape as capture 02: RECORD FILE <file> wav "#" <ms> 0 BEEP s=<silence>
    return ("RECORD FILE", base, "wav", "#", max_seconds * 1000, 0, *(("BEEP",) if beep else ()), f"s={silence}")


def _record_node(run: FlowRun, node: RecordNode) -> Gen:
    if node.prompt:
        yield from run._play((node.prompt,))
    base = run._recording_name()
    reply = yield from run._command(*_record_words(base, node.max_seconds, node.silence_seconds, node.beep),
                                    timeout=node.max_seconds + REPLY_MARGIN)
    run.variables[node.var] = f"{base}.wav"
    seconds = (reply.endpos or 0) / 8000
    run.path.append(PathEntry(run._node, "recorded", f"{seconds:.1f}s"))
    return node.next


def _lookup_node(run: FlowRun, node: LookupNode) -> Gen:
    key = render(node.key, run.variables).strip()
    if not re.fullmatch(r"\+?[0-9A-Za-z_-]{1,64}", key):
        run.path.append(PathEntry(run._node, "lookup", "no key"))
        return node.not_found
    answer = yield LookupCustomer(node.by, key)
    if isinstance(answer, ServiceFailed) or not answer:
        run.path.append(PathEntry(run._node, "lookup", "not found" if not answer else "failed"))
        return node.not_found
    for name in node.sets:
        value = answer.get(name)
        run.variables[name] = "" if value is None else str(value)
    run.path.append(PathEntry(run._node, "lookup", f"found {run.variables.get('customer_id', '')}".strip()))
    return node.found


def _branch_node(run: FlowRun, node: BranchNode) -> Gen:
    figures: dict[str, QueueFigures | None] = {}
    for case in node.cases:
        for q in case.when.queues():
            if q not in figures:
                answer = yield QueueFiguresRequest(q)
                figures[q] = answer if isinstance(answer, QueueFigures) else None
    for i, case in enumerate(node.cases):
        if _holds(run, case.when, figures):
            run.path.append(PathEntry(run._node, "branch", f"case {i + 1} -> {case.next}"))
            return case.next
    run.path.append(PathEntry(run._node, "branch", f"default -> {node.default}"))
    return node.default


def _holds(run: FlowRun, c: Condition, figures: Mapping[str, QueueFigures | None]) -> bool:
    if c.op == "all":
        return all(_holds(run, p, figures) for p in c.parts)
    if c.op == "any":
        return any(_holds(run, p, figures) for p in c.parts)
    if c.op == "not":
        return not _holds(run, c.parts[0], figures)
    if c.op in ("open", "holiday"):
        cal = run.flow.calendars[c.calendar or ""]
        return is_open(cal, run.now()) if c.op == "open" else is_holiday(cal, run.now())
    if c.queue is not None:
        f = figures.get(c.queue)
        if f is None:
            return False  # no figures: conditions on them do not hold; the default path is taken
        limit = float(c.value)  # type: ignore[arg-type]
        if c.op == "wait_above":
            return f.estimated_wait > limit
        if c.op == "waiting_above":
            return f.waiting > limit
        return f.available_agents < limit
    value = run.variables.get(c.var or "", "")
    if c.op == "eq":
        return _same(value, str(c.value))
    if c.op == "ne":
        return not _same(value, str(c.value))
    if c.op == "in":
        return any(_same(value, str(v)) for v in c.value)  # type: ignore[attr-defined]
    if c.op == "set":
        return (value != "") == bool(c.value)
    n = _number(value)
    if n is None:
        return False
    return n > float(c.value) if c.op == "gt" else n < float(c.value)  # type: ignore[arg-type]


def _set_node(run: FlowRun, node: SetNode) -> Gen:
    for name, t in node.values:
        run.variables[name] = render(t, run.variables)
    return node.next
    yield  # a generator like every handler


def _goto_node(run: FlowRun, node: GotoNode) -> Gen:
    return node.target
    yield


def _queue_node(run: FlowRun, node: QueueNode) -> Gen:
    return QueueHandoff(node.queue, node.skills, node.priority)
    yield


def _transfer_node(run: FlowRun, node: TransferNode) -> Gen:
    dest = render(node.to, run.variables).strip()
    if not PHONE.match(dest):
        raise ValueError(f"transfer destination {dest[:40]!r} is not a number")
    return Transfer(dest, node.external or dest.startswith(("+", "00")))
    yield


def _voicemail_node(run: FlowRun, node: VoicemailNode) -> Gen:
    if node.prompt:
        yield from run._play((node.prompt,))
    base = run._recording_name()
    audio = f"{base}.wav"
    save = SaveVoicemail(node.mailbox, audio, run.variables.get("caller_number", ""))
    run.on_hangup = save
    yield from run._command(*_record_words(base, node.max_seconds, node.silence_seconds, True),
                            timeout=node.max_seconds + REPLY_MARGIN)
    run.on_hangup = None
    answer = yield save
    run.path.append(PathEntry(run._node, "recorded", "voicemail saved" if not isinstance(answer, ServiceFailed)
                              else f"voicemail not saved: {answer.error[:80]}"))
    if node.goodbye:
        yield from run._play((node.goodbye,))
    yield from run._command("HANGUP")
    return VoicemailDone(node.mailbox, audio)


def _callback_node(run: FlowRun, node: CallbackNode) -> Gen:
    number = render(node.number, run.variables).strip()
    if PHONE.match(number):
        answer = yield RequestCallback(number, node.queue, dict(run.variables))
        ok = answer is not None and not isinstance(answer, ServiceFailed) and answer is not False
        run.path.append(PathEntry(run._node, "note", "callback requested" if ok else "callback failed"))
    else:
        run.path.append(PathEntry(run._node, "note", "callback: no valid number"))
    return node.next


def _survey_node(run: FlowRun, node: SurveyNode) -> Gen:
    for attempt in range(node.retries + 1):
        if attempt:
            yield from run._play(node.invalid)
        prompt = render_prompt(node.prompt, run.variables) or FALLBACK_PROMPT
        reply = yield from run._get_data(prompt, int(node.timeout * 1000), 1, timeout=node.timeout + REPLY_MARGIN)
        said = SURVEY_KEYS[node.answers].get(reply.result)
        if said is not None:
            score = int(said) if node.answers == "score" else 0
            answer = yield SaveSurvey(run.flow.name, node.question, score, run.variables.get("caller_number", ""),
                                      said)
            if node.var:
                run.variables[node.var] = said
            saved = "" if not isinstance(answer, ServiceFailed) else " (not saved)"
            run.path.append(PathEntry(run._node, "survey", f"{node.question}={said}{saved}"))
            return node.next
        run.path.append(PathEntry(run._node, "no_input" if not reply.result else "no_match", reply.result))
    run.path.append(PathEntry(run._node, "retries_exhausted", str(node.retries)))
    return node.next


def _hangup_node(run: FlowRun, node: HangupNode) -> Gen:
    if node.prompt:
        yield from run._play((node.prompt,))
    yield from run._command("HANGUP")
    return Hangup("flow")


_HANDLERS: dict[type[Node], Callable[[FlowRun, Any], Gen]] = {
    PlayNode: _play_node,
    SayNode: _say_node,
    MenuNode: _menu_node,
    CollectNode: _collect_node,
    RecordNode: _record_node,
    LookupNode: _lookup_node,
    BranchNode: _branch_node,
    SetNode: _set_node,
    GotoNode: _goto_node,
    QueueNode: _queue_node,
    TransferNode: _transfer_node,
    VoicemailNode: _voicemail_node,
    CallbackNode: _callback_node,
    SurveyNode: _survey_node,
    HangupNode: _hangup_node,
}
