"""What the interpreter asks for (Steps) and what it is fed back. Frozen, slotted, no I/O.

A Step is one of:
* AgiCommand: send these words on the caller's FastAGI channel; feed back the AgiReply (or, when ``listen``
  is set, a SpeechCapture: the RECORD FILE reply plus the recognition of that recording).
* Listen: listen to the caller (a recording beside the channel, keys still win, the server finds the end of
  the speech); feed back a SpeechCapture.
* a ServiceRequest (LookupCustomer, QueueFiguresRequest, SaveSurvey, RequestCallback, SaveVoicemail): the driver
  asks FlowServices and feeds back the answer, or ServiceFailed.
* an Outcome (QueueHandoff, Transfer, Hangup, VoicemailDone, CallerHungUp): the run is over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .channel import AgiReply


@dataclass(frozen=True, slots=True)
class Recognize:
    """Recognize the caller's answer in ``audio_path`` against a grammar of ``phrases``. ``choices``: the
    menu's options, each as its phrases (empty: every phrase is an option of its own); the listening decides
    on an option, so it need not wait for the rest of a phrase when the longer phrases are the same option."""

    audio_path: str
    language: str
    phrases: tuple[str, ...]
    threshold: float
    choices: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Recognition:
    """``text``: the menu's words the caller said (empty when none). ``heard``: what was said that is none
    of them ("[unk]" when it was not even a word), so "none of these" is an answer, not silence.
    ``voiced_ms``: how much of the recording carried a voice or noise, which tells noise from silence."""

    text: str
    confidence: float  # the lowest word confidence (0.0 when nothing was heard)
    words: tuple[tuple[str, float], ...] = ()
    decision_ms: float | None = None  # from the end of the recording to the result
    heard: str = ""
    voiced_ms: int = 0


@dataclass(frozen=True, slots=True)
class SpeechCapture:
    """Fed back for an AgiCommand with ``listen`` or a Listen: exactly one of recognition / error is set
    unless the caller pressed a key (then both may be None).

    For a Listen, ``reply`` is the reply that ended it (the key's, or the last WAIT FOR DIGIT's), ``ended``
    says why the server stopped listening ("speech_end", "no_input", "max_length", "key", "error"),
    ``barged_in`` that the caller talked over the prompt, and ``prompts_missing`` the prompts that could not
    be played."""

    reply: AgiReply
    recognition: Recognition | None = None
    error: str | None = None
    ended: str = ""
    barged_in: bool = False
    prompts_missing: tuple[str, ...] = ()

    @property
    def key(self) -> str | None:
        if self.ended == "key" or self.reply.data == "dtmf":
            return self.reply.digit
        return None


@dataclass(frozen=True, slots=True)
class Listen:
    """Listen to the caller: the channel's incoming audio is recorded beside the call (MixMonitor, caller's
    direction only) into ``recognize.audio_path`` while the server decodes it and finds the end of speech.

    ``prompts`` are played first with the recording already running (speech barge-in: talking stops them);
    empty, the recording starts after the prompt. The caller may start speaking up to ``wait_seconds`` after
    the prompts end and may speak for ``max_seconds``. ``keys`` end the listening (keys win over speech)."""

    recognize: Recognize
    keys: str
    wait_seconds: float
    max_seconds: float
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgiCommand:
    words: tuple[str | int, ...]
    timeout: float | None = None
    listen: Recognize | None = None


class ServiceRequest:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LookupCustomer(ServiceRequest):
    by: str  # "caller_number" | "account"
    key: str


@dataclass(frozen=True, slots=True)
class QueueFiguresRequest(ServiceRequest):
    queue: str


@dataclass(frozen=True, slots=True)
class QueueFigures:
    waiting: int
    available_agents: int
    estimated_wait: float  # seconds


@dataclass(frozen=True, slots=True)
class SaveSurvey(ServiceRequest):
    flow: str
    question: str
    score: int  # 1..5; 0 for a yes/no question
    caller_number: str
    answer: str = ""  # what is stored: "1".."5", "yes" or "no"


@dataclass(frozen=True, slots=True)
class RequestCallback(ServiceRequest):
    number: str
    queue: str
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SaveVoicemail(ServiceRequest):
    mailbox: str
    audio_path: str
    caller_number: str


@dataclass(frozen=True, slots=True)
class ServiceFailed:
    """Fed back instead of a service answer when the service raised or timed out."""

    error: str


class Outcome:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class QueueHandoff(Outcome):
    queue: str
    skills: tuple[str, ...] = ()
    priority: int = 0
    reason: str = "flow"  # "flow", or "ivr_error" when the safe fallback was taken


@dataclass(frozen=True, slots=True)
class Transfer(Outcome):
    destination: str
    external: bool


@dataclass(frozen=True, slots=True)
class Hangup(Outcome):
    reason: str = "flow"


@dataclass(frozen=True, slots=True)
class VoicemailDone(Outcome):
    mailbox: str
    audio_path: str


@dataclass(frozen=True, slots=True)
class CallerHungUp(Outcome):
    node: str


Step = AgiCommand | Listen | ServiceRequest | Outcome


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One thing that happened on the caller's way through the flow (for the screen pop and CRM history).

    event: "node", "key", "speech", "no_input", "no_match", "collected", "recorded", "lookup", "branch",
    "fallback_keypad", "retries_exhausted", "survey", "note", "error", "hangup", "prompt_missing" (value: the
    prompt that could not be played; the flow went on as if it had)."""

    node: str
    event: str
    value: str = ""
    confidence: float | None = None


def named_choice(tokens: Sequence[str], choices: Sequence[Sequence[str]]) -> tuple[int, tuple[str, ...]] | None:
    """The one choice an answer names, as (index into ``choices``, the words that named it); ``choices[i]``
    holds choice i's phrases. The answer is read as phrases, longest first; words of no phrase are passed
    over. An answer that names two different choices names none: a caller's "영업 예약" is not one answer,
    and a decoder forcing out-of-menu speech onto the menu's grammar often strings two options together.
    One choice named twice ("예약 예약") is that choice."""
    phrases = sorted(((tuple(p.split()), i) for i, c in enumerate(choices) for p in c), key=lambda x: -len(x[0]))
    named: dict[int, tuple[str, ...]] = {}
    at = 0
    while at < len(tokens):
        for words, i in phrases:
            if words and tuple(tokens[at : at + len(words)]) == words:
                named.setdefault(i, words)
                at += len(words)
                break
        else:
            at += 1
    if len(named) != 1:
        return None
    return next(iter(named.items()))
