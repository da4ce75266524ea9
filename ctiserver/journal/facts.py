"""The contact centre's facts: what happened, each told once, in the order it happened.

A `Fact` is a body (one of the frozen dataclasses below, or an ACD input from `acd.events`) with the
journal's sequence number and the wall-clock epoch time it was recorded at. Bodies carry no time of their
own: the envelope's `at` is the time, and the ACD is fed that same time (`Router.handle(body, fact.at)`),
so replaying the journal reproduces every decision the router made.

Pure: no I/O. The codec below turns a body into (kind, JSON text) and back; a kind this version does not
know, or a field it does not know, is a `JournalTooNew` error, never a silent misread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Literal

from acd import events as acd

# The journal's own format, stored with it. A journal written with a higher number is refused.
FORMAT_VERSION = 1


class JournalTooNew(ValueError):
    """The journal was written by a newer ctiserver (format or fact kinds this version cannot read)."""


class JournalCorrupt(ValueError):
    """A stored fact does not decode (damaged bytes)."""


@dataclass(frozen=True, slots=True)
class Fact:
    seq: int
    at: float  # wall clock, epoch seconds
    body: Any


# ---------------------------------------------------------------------------------------------- system


@dataclass(frozen=True, slots=True)
class ServerStarted:
    """A server process started serving. `last_alive` is the time of the previous process's last fact:
    between the two the centre was not watched."""

    version: str
    last_alive: float | None = None


@dataclass(frozen=True, slots=True)
class ServerStopping:
    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Written when nothing else was for a while: bounds how long the server was alive after its last
    real fact, so an end inferred after a crash has a tight lower bound."""


@dataclass(frozen=True, slots=True)
class AcdConfigLoaded:
    """The queues configuration in force from here on (the router is rebuilt from its text on replay)."""

    source: str
    text: str


@dataclass(frozen=True, slots=True)
class PbxLinkChanged:
    pbx: str
    up: bool


@dataclass(frozen=True, slots=True)
class PbxRestarting:
    """Asterisk announced a shutdown or restart (AMI `Shutdown`), or hung every channel up for one."""

    pbx: str


@dataclass(frozen=True, slots=True)
class PromptMissing:
    """A prompt could not be played to a caller while the channel was up (not on the PBX: capture 14).
    The caller went on without it (the IVR as if it had played, the queue on Asterisk's music on hold).
    Told once per prompt and place: `where` is "queue" or "flow <name>, node <node>"."""

    prompt: str
    where: str
    call_id: str = ""


# ---------------------------------------------------------------------------------------------- calls


@dataclass(frozen=True, slots=True)
class CallArrived:
    call_id: str
    pbx: str
    channel: str
    caller_num: str
    caller_name: str
    dialed: str


@dataclass(frozen=True, slots=True)
class IvrStarted:
    call_id: str
    flow: str
    survey: bool  # the flow has a post-call survey


@dataclass(frozen=True, slots=True)
class IvrStep:
    """One entry of the caller's way through the IVR (node entered, key, speech, note), as it happens."""

    call_id: str
    node: str
    event: str
    value: str = ""
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class CallerIdentified:
    call_id: str
    customer_id: int
    name: str
    grade: str | None = None
    vip: bool = False


@dataclass(frozen=True, slots=True)
class CallConnected:
    """The caller is bridged with a party (an agent's leg, or anybody a transfer reached)."""

    call_id: str
    peer_channel: str
    peer_uniqueid: str


HungUpBy = Literal["caller", "agent", "unknown"]


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over. `observed`: Asterisk told us (Hangup events); otherwise the end is inferred (the
    AMI link was down, the server was down, the PBX restarted) and the true end lies between
    `not_before` (last seen alive) and the fact's time (first seen gone). `cause` is Asterisk's Q.850
    cause, 0 when unknown."""

    call_id: str
    cause: int
    cause_txt: str
    hung_up_by: HungUpBy
    observed: bool = True
    not_before: float | None = None
    reason: str = ""  # "", "pbx_restart", "link_down", "server_down"


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    call_id: str
    file: str


@dataclass(frozen=True, slots=True)
class VoicemailLeft:
    call_id: str
    file: str


@dataclass(frozen=True, slots=True)
class CallbackPromised:
    """The IVR took a callback request (a follow-up in the CRM): the caller hangs up and is called back."""

    call_id: str
    number: str
    queue: str = ""


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    call_id: str
    score: int


@dataclass(frozen=True, slots=True)
class SurveyResponseGiven:
    """One answer of a survey flow (score "1".."5", "yes", "no"), from an outbound survey campaign's call
    (`campaign`) or a post-call survey after an inbound call (campaign ""). Journaled before the CRM row."""

    call_id: str
    flow: str
    question: str
    answer: str
    campaign: str = ""
    customer_id: int | None = None
    number: str = ""


@dataclass(frozen=True, slots=True)
class WrapUpSaved:
    """The agent's wrap-up of their part of a call. Durable before the console hears "saved"."""

    call_id: str
    agent_id: str
    disposition: str
    notes: str = ""
    follow_up_kind: str = ""
    follow_up_due: float | None = None
    follow_up_note: str = ""
    saved_by: str = ""


@dataclass(frozen=True, slots=True)
class CallerRefused:
    """The queue's blacklist policy turned the caller away (docs/acd.md, Blacklisted callers): they heard
    `message` and the line was dropped; they never entered the queue."""

    call_id: str
    queue: str
    reason: str  # blacklist
    message: str = ""


@dataclass(frozen=True, slots=True)
class FollowUpCalled:
    """An agent called a follow-up from their worklist: `call_id` names the agent's outbound leg."""

    follow_up_id: int
    call_id: str
    agent_id: str
    customer_id: int
    number: str


@dataclass(frozen=True, slots=True)
class FollowUpCallSaved:
    """What came of a follow-up call, as the agent saved it; the CRM's row and the follow-up's state are
    written in the same batch as this fact."""

    follow_up_id: int
    call_id: str
    agent_id: str
    reached: bool
    done: bool
    notes: str = ""
    answered_at: float | None = None
    ended_at: float | None = None
    started_at: float = 0.0
    number: str = ""


@dataclass(frozen=True, slots=True)
class OutboundDialling:
    """A tracked outbound call starts: the agent's phone rings first (`call_id` is its leg's ChannelId),
    then the customer's number. `purpose`: click_to_call or callback (`callback_id` names it). Its steps
    are `outbound.progress` facts; its end is `acd.outbound_ended` (the agent's wrap-up starts there)."""

    call_id: str
    agent_id: str
    number: str
    customer_id: int | None = None
    customer_name: str = ""
    purpose: str = "click_to_call"
    queue: str = ""
    callback_id: str = ""


@dataclass(frozen=True, slots=True)
class OutboundProgress:
    """A step of a tracked outbound call: agent_answered, dialling_customer, customer_ringing, connected."""

    call_id: str
    state: str
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class CallbackBooked:
    """A callback to make (docs/callbacks.md). `source`: ivr, queue (the caller's key or a queue's timeout:
    `call_id` is the caller's call, whose place in line the callback keeps), supervisor, web. `due_at`:
    the customer's preferred time (epoch s); None: at once, at the back of `queue`'s line."""

    callback_id: str
    number: str
    queue: str
    source: str
    name: str = ""
    topic: str = ""
    due_at: float | None = None
    call_id: str = ""
    requested_by: str = ""  # the supervisor, or the web client's address


@dataclass(frozen=True, slots=True)
class CallbackAttempted:
    """What came of dialling a callback (`call_id`: the ACD's call for this attempt): answered, busy,
    no_answer, failed, agent_no_answer, cancelled. `retry_at`: when it is tried again; None: it is over."""

    callback_id: str
    call_id: str
    outcome: str
    agent_id: str = ""
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackClosed:
    """The callback is over: done (answered), given_up (attempts spent), cancelled (by a supervisor)."""

    callback_id: str
    outcome: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WrapUpDraft:
    """What the agent's open wrap-up form for the call holds, sent as they type: kept as a draft on the
    call when the wrap-up ends unsaved (the queue's maximum, or the agent went on without saving)."""

    call_id: str
    agent_id: str
    disposition: str = ""
    notes: str = ""


# ------------------------------------------------------------------------------------- outbound dialer


@dataclass(frozen=True, slots=True)
class DialerLineDialled:
    """A campaign line went out: the attempt `attempt_id` of contact `contact_id` (crmstore campaigns).
    `agent_id`: the preview agent who dialled it."""

    call_id: str
    campaign: str
    contact_id: int
    attempt_id: int
    number: str
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class DialerStep:
    """One step of the dialer: `step` is preview (a card offered to `agent_id`), answered (AMD's verdict in
    `detail`), connect (the pacer gave the call to `agent_id`), connected (bridged), abandon (no agent
    within 2 s: `detail` is the message played), machine (`detail`: message or hang_up), not_dialled
    (`detail`: why), pacing (throttled or not, `detail`: the window's abandon rate)."""

    campaign: str
    step: str
    call_id: str = ""
    agent_id: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DialerLineEnded:
    """The attempt's outcome as recorded with the campaign (`outcome`: crmstore AttemptOutcome).
    `settled`: the line was left open by a crash and settled at the next start from the journal."""

    call_id: str
    campaign: str
    attempt_id: int
    outcome: str
    agent_id: str = ""
    amd: str = ""
    settled: bool = False


# ----------------------------------------------------------------------------------- people, consoles


@dataclass(frozen=True, slots=True)
class ConsoleSessionEnded:
    """A console session (token) was ended by logout: it must stay ended after a restart."""

    session: str
    username: str
    expires_at: int = 0


@dataclass(frozen=True, slots=True)
class ConsoleUserLoggedOut:
    """A supervisor logged an account out: every session of it issued before this fact ends."""

    username: str


@dataclass(frozen=True, slots=True)
class SupervisorAction:
    user: str
    action: str  # spy, force_pause, force_logout, move_call
    target: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AdminChanged:
    """An administrator changed the configuration: the file is written and the change is in force (a
    queues file change is also its own `system.acd_config`). Its audit row commits with it."""

    user: str
    action: str  # user_set, user_delete, agent_set, pause_reasons_set, calendar_set
    target: str
    detail: str = ""


# ---------------------------------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """A figure went past its target (docs/acd.md, Targets and alerts) and stays raised until an
    `AlertCleared` of the same metric, queue and agent. A queue's alert names the queue; an agent's the
    agent (`agent_id`, so the journal finds an agent's alerts like their other facts)."""

    metric: str  # service_level, abandon_rate, longest_wait, asa, long_call, long_pause, long_wrap_up
    queue: str = ""
    agent_id: str = ""
    value: float = 0.0  # the figure when it was raised (% or seconds)
    threshold: float = 0.0  # its target
    level: str = "warning"  # warning (an agent's) or critical (a queue's)
    text: str = ""


@dataclass(frozen=True, slots=True)
class AlertCleared:
    """The figure is back within its target (or nothing is left to judge: the call ended, the queue is
    gone)."""

    metric: str
    queue: str = ""
    agent_id: str = ""
    value: float = 0.0


def alert_key(alert: AlertRaised | AlertCleared) -> str:
    """One alert per metric, queue and agent at a time."""
    return f"{alert.metric}|{alert.queue}|{alert.agent_id}"


# ------------------------------------------------------------------------------------------- the codec

OWN_KINDS: dict[str, type] = {
    "system.started": ServerStarted,
    "system.stopping": ServerStopping,
    "system.heartbeat": Heartbeat,
    "system.acd_config": AcdConfigLoaded,
    "pbx.link": PbxLinkChanged,
    "pbx.restarting": PbxRestarting,
    "pbx.prompt_missing": PromptMissing,
    "call.arrived": CallArrived,
    "call.ivr_started": IvrStarted,
    "call.ivr_step": IvrStep,
    "call.identified": CallerIdentified,
    "call.connected": CallConnected,
    "call.ended": CallEnded,
    "call.recording": RecordingStarted,
    "call.voicemail": VoicemailLeft,
    "call.survey": SurveyAnswered,
    "call.survey_response": SurveyResponseGiven,
    "call.callback_promised": CallbackPromised,
    "call.wrapup": WrapUpSaved,
    "call.refused": CallerRefused,
    "crm.follow_up_called": FollowUpCalled,
    "crm.follow_up_saved": FollowUpCallSaved,
    "call.wrapup_draft": WrapUpDraft,
    "outbound.dialling": OutboundDialling,
    "outbound.progress": OutboundProgress,
    "callback.booked": CallbackBooked,
    "callback.attempted": CallbackAttempted,
    "callback.closed": CallbackClosed,
    "console.session_ended": ConsoleSessionEnded,
    "console.user_logged_out": ConsoleUserLoggedOut,
    "supervisor.action": SupervisorAction,
    "admin.changed": AdminChanged,
    "alert.raised": AlertRaised,
    "alert.cleared": AlertCleared,
    "dialer.line_dialled": DialerLineDialled,
    "dialer.step": DialerStep,
    "dialer.line_ended": DialerLineEnded,
}
# The ACD's inputs are facts as they are: replaying them through a router rebuilds its every decision.
ACD_KINDS: dict[str, type] = {
    "acd.call_enqueued": acd.CallEnqueued,
    "acd.call_left_queue": acd.CallLeftQueue,
    "acd.callback_requested": acd.CallbackRequested,
    "acd.caller_hung_up": acd.CallerHungUp,
    "acd.offer_ringing": acd.OfferRinging,
    "acd.offer_answered": acd.OfferAnswered,
    "acd.offer_failed": acd.OfferFailed,
    "acd.hold_started": acd.HoldStarted,
    "acd.hold_ended": acd.HoldEnded,
    "acd.agent_call_ended": acd.AgentCallEnded,
    "acd.transfer_to_queue": acd.TransferToQueue,
    "acd.transfer_to_agent": acd.TransferToAgent,
    "acd.transfer_out": acd.TransferOut,
    "acd.consult_started": acd.ConsultStarted,
    "acd.consult_ended": acd.ConsultEnded,
    "acd.call_moved": acd.CallMoved,
    "acd.agent_logged_in": acd.AgentLoggedIn,
    "acd.agent_logged_out": acd.AgentLoggedOut,
    "acd.agent_ready": acd.AgentReady,
    "acd.agent_paused": acd.AgentPaused,
    "acd.wrap_up_done": acd.WrapUpDone,
    "acd.wrap_up_held": acd.WrapUpHeld,
    "acd.outbound_started": acd.OutboundStarted,
    "acd.outbound_ended": acd.OutboundEnded,
}
KINDS: dict[str, type] = {**OWN_KINDS, **ACD_KINDS}
_KIND_OF: dict[type, str] = {cls: kind for kind, cls in KINDS.items()}
ACD_INPUTS: tuple[type, ...] = tuple(ACD_KINDS.values())
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in KINDS.values()}


def kind_of(body: object) -> str:
    try:
        return _KIND_OF[type(body)]
    except KeyError:
        raise TypeError(f"not a journal fact: {body!r}") from None


def encode(body: object) -> tuple[str, str]:
    """(kind, JSON object text). Tuples become lists; nothing else but JSON scalars is allowed."""
    kind = kind_of(body)
    data = {name: getattr(body, name) for name in _FIELDS[type(body)]}
    return kind, json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode(kind: str, text: str) -> Any:
    cls = KINDS.get(kind)
    if cls is None:
        raise JournalTooNew(f"fact kind {kind!r} is unknown to this ctiserver: written by a newer version?")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise JournalCorrupt(f"fact of kind {kind} does not decode: {e}") from None
    if not isinstance(data, dict):
        raise JournalCorrupt(f"fact of kind {kind} is not a JSON object")
    unknown = set(data) - set(_FIELDS[cls])
    if unknown:
        raise JournalTooNew(f"fact kind {kind} has fields {sorted(unknown)} this ctiserver does not know")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except TypeError as e:
        raise JournalCorrupt(f"fact of kind {kind} is incomplete: {e}") from None


def subject(body: object) -> tuple[str, str]:
    """(call id, agent id) a fact is about, for the journal's columns (look-ups and drill-down)."""
    return getattr(body, "call_id", "") or "", getattr(body, "agent_id", "") or ""
