"""The console protocol, version 1: what a client may send, what the server sends back. Pure: no I/O.

Every client message is a JSON object ``{"v": 1, "type": ..., "id": ..., <fields>}``. The field
specs below are data: `decode_client` validates against them and the JSON schemas in
docs/protocol.md are generated from them (`json_schemas()`), so the documentation cannot drift.

Strings are refused when they hold control characters (only the free-text ``notes`` fields
may hold newlines and tabs), lone surrogates or line/paragraph separators: values such as
an extension, a pause reason or a transfer target end up in AMI actions, where CR/LF would
be header injection. `ami.protocol.encode_action` refuses them too; this is the first wall.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum as _PyEnum
from enum import StrEnum
from types import MappingProxyType

PROTOCOL_VERSION = 1
SOFT_MAX_BYTES = 16 * 1024  # larger: error reply `too_large`, the connection stays
HARD_MAX_BYTES = 64 * 1024  # larger: the websocket layer closes with 1009 (message too big)
MAX_SEQ = 2**53 - 1  # the largest integer a JavaScript client holds exactly


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"  # not an object, or no/invalid "type"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    RATE_LIMITED = "rate_limited"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_FAILED = "auth_failed"
    LOCKED_OUT = "locked_out"  # too many failed logins for this username or address: see retry_after_s
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"  # the role may not send this command
    NOT_YOUR_CALL = "not_your_call"  # an agent named a call that is not theirs
    REFUSED = "refused"  # the backend refused (see "reason")
    UNAVAILABLE = "unavailable"  # the backend timed out or failed, or too many logins at once
    INTERNAL = "internal"


# ---------------------------------------------------------------------------------------------
# Field kinds: a compact schema language, enough for this protocol.


@dataclass(frozen=True, slots=True)
class Str:
    max_len: int
    pattern: str | None = None
    min_len: int = 1
    multiline: bool = False  # newlines and tabs allowed (free text that never reaches AMI)
    doc: str = ""
    secret: bool = False  # a password or token: never written to a log (see `redact`)


@dataclass(frozen=True, slots=True)
class Int:
    lo: int
    hi: int
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Bool:
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    values: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Kind
    max_items: int
    min_items: int = 0
    unique: bool = True
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Obj:
    fields: Mapping[str, Field]
    doc: str = ""


@dataclass(frozen=True, slots=True)
class AnyObj:
    """Server side only: a nested payload documented in prose (a pop, a stats row)."""

    doc: str = ""


@dataclass(frozen=True, slots=True)
class AnyValue:
    doc: str = ""


Kind = Str | Int | Bool | Choice | ListOf | Obj | AnyObj | AnyValue


@dataclass(frozen=True, slots=True)
class Field:
    kind: Kind
    required: bool = True


def req(kind: Kind) -> Field:
    return Field(kind, True)


def opt(kind: Kind) -> Field:
    return Field(kind, False)


NAME = r"[\w.@+-]+"  # queue, agent, reason and disposition names: letters (any script), digits, ._@+-
EXTENSION = r"[0-9A-Za-z_*#+-]+"
NUMBER = r"\+?[0-9*#]+"
CALL_ID = r"[A-Za-z0-9._:@-]+"
TOKEN = r"[A-Za-z0-9_.=-]+"
ISO_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?"

_call_id = req(Str(64, CALL_ID, doc="a call id the server sent (offer, call_state)"))
_agent_id = req(Str(64, NAME))
_reason = Str(32, NAME, doc="a pause reason code, e.g. break, lunch, training")
_queue = Str(64, NAME)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    type: str
    fields: Mapping[str, Field]
    doc: str
    check: Callable[[Mapping[str, object]], tuple[str, str] | None] | None = None  # cross-field rule


def _exactly_one_target(args: Mapping[str, object]) -> tuple[str, str] | None:
    if ("customer_id" in args) == ("number" in args):
        return "customer_id", "give exactly one of customer_id or number"
    return None


def _transfer_target(args: Mapping[str, object]) -> tuple[str, str] | None:
    pattern = NUMBER if args["target_kind"] == "number" else NAME
    if not re.fullmatch(pattern, str(args["target"])):
        return "target", f"not a valid {args['target_kind']}"
    return None


def _move_somewhere(args: Mapping[str, object]) -> tuple[str, str] | None:
    if "queue" not in args and not args.get("head"):
        return "queue", "give a queue, or head: true, or both"
    return None


_SPECS: tuple[MessageSpec, ...] = (
    MessageSpec("auth", {"username": req(Str(64, NAME)), "password": req(Str(256, secret=True))},
                "Log in with a password. Reply: auth_ok then snapshot, or error auth_failed, locked_out "
                "(with retry_after_s) or unavailable."),
    MessageSpec("resume", {"token": req(Str(2048, TOKEN, secret=True)), "last_seq": req(Int(0, MAX_SEQ)),
                           "stream": opt(Str(32, r"[0-9a-f]+", doc="the stream id of the last snapshot"))},
                "Reconnect with a session token and the last seq seen. Reply: auth_ok, then the missed "
                "messages in order or a snapshot."),
    MessageSpec("ping", {}, "Application-level ping. Reply: pong."),
    MessageSpec("logout", {}, "End the session: the token stops working for resume."),
    MessageSpec("agent_login", {"extension": req(Str(32, EXTENSION, doc="the phone, e.g. 1001")),
                                "queues": req(ListOf(_queue, 50, 1))},
                "Agent: bind to a phone extension and join queues (state becomes paused or available as "
                "the ACD decides)."),
    MessageSpec("agent_logout", {}, "Agent: leave all queues and unbind the phone."),
    MessageSpec("phone_account", {"extension": req(Str(32, EXTENSION, doc="the phone, e.g. 1002"))},
                "Agent: the SIP account of the console's own phone (a browser phone, agents.softphone) for this "
                "extension, before agent_login. Reply: result with data {account: {ws_url, uri, username, "
                "password, register_expires_s, ice_servers, auto_answer}} or {account: null} for a desk phone. "
                "Refused with invalid_state while logged in on another phone."),
    MessageSpec("phone_state", {"extension": req(Str(32, EXTENSION)),
                                "state": req(Choice(("registered", "unregistered", "failed"))),
                                "detail": opt(Str(64, NAME, doc="why: no_microphone, permission_denied, "
                                                                "auth_failed, network, ..."))},
                "Agent: the browser phone's registration. Not registered: paused (phone_unregistered) and no "
                "offers until it is; supervisors see it as agents[].phone. Refused with not_yours for an "
                "extension that is not the agent's browser phone."),
    MessageSpec("ready", {}, "Agent: become available."),
    MessageSpec("pause", {"reason": req(_reason)}, "Agent: pause with a reason."),
    MessageSpec("answer", {"offer_id": req(Str(64, CALL_ID, doc="the offer's offer_id"))},
                "Agent: answer the ringing offer from the console. Only for a phone with answer: console (it "
                "is dialled now and picks up by itself; the console shows agent.answer_at_console). Refused "
                "with reason not_yours for another agent's offer, not_found when the offer is no longer "
                "ringing, invalid_state when it does not wait for a console answer."),
    MessageSpec("hold", {"call_id": _call_id}, "Agent: put the caller on hold."),
    MessageSpec("unhold", {"call_id": _call_id}, "Agent: take the caller back from hold."),
    MessageSpec("transfer", {"call_id": _call_id, "mode": req(Choice(("blind", "attended"))),
                             "target_kind": req(Choice(("agent", "queue", "number"))),
                             "target": req(Str(64))},
                "Agent: transfer a call. attended starts a consultation; finish with transfer_complete "
                "or transfer_cancel.", _transfer_target),
    MessageSpec("transfer_complete", {"call_id": _call_id}, "Agent: join caller and consulted party."),
    MessageSpec("transfer_cancel", {"call_id": _call_id}, "Agent: drop the consultation, back to the caller."),
    MessageSpec("hangup", {"call_id": _call_id}, "Agent: hang up a call."),
    MessageSpec("wrapup", {"call_id": _call_id, "disposition": req(Str(32, NAME)),
                           "notes": opt(Str(4000, min_len=0, multiline=True)),
                           "follow_up": opt(Obj({
                               "kind": req(Choice(("callback", "visit", "satisfaction_call"))),
                               "due_at": req(Str(40, ISO_DATETIME, doc="ISO 8601")),
                               "note": opt(Str(500, min_len=0, multiline=True))}))},
                "Agent: save the wrap-up. Reply: wrapup_saved once durable, or wrapup_failed."),
    MessageSpec("wrapup_draft", {"call_id": _call_id,
                                 "disposition": opt(Str(32, r"[\w.@+-]*", min_len=0, doc="empty: not chosen yet")),
                                 "notes": opt(Str(4000, min_len=0, multiline=True))},
                "Agent: what the open wrap-up form of this call holds, sent as it changes. The wrap-up then "
                "lasts until saved or the queue's wrap_up_max_s, and the notes are kept as a draft on the "
                "call if it ends unsaved. Reply: result with data.until (unix seconds)."),
    MessageSpec("my_day", {},
                "Agent: the idle screen: figures today (calls, AHT, occupancy), callers waiting in the "
                "agent's queues, due follow-ups and callbacks, wrap-ups kept as drafts. Reply: result."),
    MessageSpec("search", {"q": req(Str(100)), "limit": opt(Int(1, 50))},
                "Customer search by name, company, phone or account. Reply: search_results."),
    MessageSpec("dial", {"customer_id": opt(Int(1, MAX_SEQ)), "number": opt(Str(32, NUMBER))},
                "Agent: click-to-call a customer (their first phone) or a number.", _exactly_one_target),
    MessageSpec("preview_dial", {}, "Agent: dial the preview card on your console (preview_card). Reply: result "
                "with data.call_id, null when the contact may no longer be called (the next card follows)."),
    MessageSpec("preview_skip", {}, "Agent: pass on the preview card; the next one follows. Reply: result with "
                "data.skipped."),
    MessageSpec("spy", {"agent_id": _agent_id, "mode": req(Choice(("listen", "whisper", "barge"))),
                        "extension": opt(Str(32, EXTENSION, doc="the supervisor's phone; default from "
                                                                "the account"))},
                "Supervisor: listen to, whisper to or barge into an agent's call: your phone rings, and once "
                "answered you hear the call. One at a time: a second spy ends the first. It ends when you "
                "hang up, when the call ends, or with spy_stop."),
    MessageSpec("spy_stop", {}, "Supervisor: stop listening (your spy call is hung up). Reply: result with "
                "data.stopped, false when you were not listening."),
    MessageSpec("force_pause", {"agent_id": _agent_id, "reason": opt(_reason)}, "Supervisor: pause an agent."),
    MessageSpec("force_logout", {"agent_id": _agent_id}, "Supervisor: log an agent out."),
    MessageSpec("move_call", {"call_id": _call_id, "queue": opt(_queue), "head": opt(Bool())},
                "Supervisor: move a waiting call to another queue and/or to the head of its queue.",
                _move_somewhere),
)

# Administration (admin role): configuration changes, validated, written and applied by ctiserver.admin.
_DAYS = Str(16, r"(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?",
            doc="a weekday or a range, e.g. mon-fri")
_RANGE = Str(11, r"\d{2}:\d{2}-\d{2}:\d{2}", doc="opening hours, e.g. 09:00-18:00")
_DATE = Str(10, r"\d{4}-\d{2}-\d{2}", doc="a date, e.g. 2026-10-01")
_DATE_OR_TIME = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"
_ADMIN_SPECS: tuple[MessageSpec, ...] = (
    MessageSpec("admin_overview", {},
                "Admin: what the administration page shows. Reply: result with data {users (no password hashes), "
                "skills, queues, agents (skills, queues), pause_reasons, calendars, editable}."),
    MessageSpec("admin_user_set", {"username": req(Str(64, NAME)),
                                   "role": req(Choice(("agent", "supervisor", "admin"))),
                                   "password": opt(Str(256, secret=True, doc="required for a new user")),
                                   "display_name": opt(Str(64, min_len=0)),
                                   "agent_id": opt(Str(64, NAME, doc="agents: the ACD agent id")),
                                   "extension": opt(Str(32, EXTENSION, min_len=0,
                                                        doc="supervisors: the phone for listen/whisper/barge")),
                                   "language": opt(Choice(("zh", "en")))},
                "Admin: create or change a console account (cti.yaml). A changed password or role, of another "
                "user, ends that user's sessions. Reply: result with data.created."),
    MessageSpec("admin_user_delete", {"username": req(Str(64, NAME))},
                "Admin: remove a console account; its sessions end at once. Not your own."),
    MessageSpec("admin_agent_set", {"agent_id": _agent_id, "name": opt(Str(64)),
                                    "skills": req(ListOf(Obj({"skill": req(Str(64, NAME)),
                                                              "level": req(Int(1, 10))}), 50)),
                                    "queues": req(ListOf(_queue, 50))},
                "Admin: an agent's skills (levels 1-10) and queues in the queues file (a new id adds an agent). "
                "Refused when a queue would be left that nobody can serve. In force at once; a logged-in agent "
                "keeps the queues chosen at login until the next login."),
    MessageSpec("admin_pause_reasons_set", {"reasons": req(ListOf(Str(32, NAME), 30, 1))},
                "Admin: the pause reasons agents choose from (the queues file)."),
    MessageSpec("admin_calendar_set", {"flow": req(Str(64, NAME)), "calendar": req(Str(64, NAME)),
                                       "timezone": opt(Str(64, r"[A-Za-z0-9_+/-]+")),
                                       "hours": req(ListOf(Obj({"days": req(_DAYS),
                                                                "ranges": req(ListOf(_RANGE, 6, 1))}), 14)),
                                       "holidays": opt(ListOf(_DATE, 400))},
                "Admin: a flow's business hours and holidays (its calendars: section). In force for the next "
                "caller."),
    MessageSpec("admin_audit", {"actor": opt(Str(64, NAME)), "action": opt(Str(64, r"[\w:.-]+")),
                                "since": opt(Str(40, _DATE_OR_TIME, doc="ISO 8601 date or time")),
                                "until": opt(Str(40, _DATE_OR_TIME, doc="ISO 8601, excluded")),
                                "limit": opt(Int(1, 1000))},
                "Admin: the audit log, newest first, filtered. Reply: result with data.entries [{id, at, actor, "
                "role, action, customer_id, detail}]."),
)


# CRM work in the consoles (docs/protocol.md, CRM work). Ids of customers, tickets and follow-ups are the
# CRM's; a call_id, when given, must be the agent's own call (checked like every call_id).
_customer_id = req(Int(1, MAX_SEQ, doc="a customer id from search_results or customer_open"))
_text_field = Str(200, min_len=0)
_CRM_SPECS: tuple[MessageSpec, ...] = (
    MessageSpec("customer_open", {"customer_id": _customer_id},
                "The customer's card: grade, flags, tickets with their history, follow-ups, survey results. "
                "Reply: result with data {card, flags, grade_change, tickets, follow_ups, surveys}."),
    MessageSpec("customer_save", {
        "customer_id": opt(Int(1, MAX_SEQ, doc="absent: a new customer (a lead with is_lead)")),
        "name": opt(_text_field), "company": opt(_text_field), "email": opt(Str(254, min_len=0)),
        "phones": opt(ListOf(Str(40, min_len=0), 10, doc="numbers to add; each must be a valid number")),
        "notes": opt(Str(4000, min_len=0, multiline=True)), "preferred_language": opt(Str(16, min_len=0)),
        "contact_time": opt(Str(100, min_len=0)), "contact_channel": opt(Str(32, min_len=0)),
        "is_lead": opt(Bool())},
                "Create or edit a customer or lead. Checked as imports are (valid phone number, e-mail shape, "
                "no control characters); refused with reason invalid_value (and field) or conflict (a phone "
                "of another customer), and then nothing is written. Reply: result with data {customer_id}."),
    MessageSpec("ticket_open", {"customer_id": _customer_id, "subject": req(Str(500, multiline=True)),
                                "note": opt(Str(4000, min_len=0, multiline=True)),
                                "category": opt(Str(50, NAME, doc="default complaint")),
                                "call_id": opt(Str(64, CALL_ID, doc="the agent's call the ticket comes from"))},
                "Open a ticket (a complaint by default). Reply: result with data {ticket_id}."),
    MessageSpec("ticket_update", {"ticket_id": req(Int(1, MAX_SEQ)),
                                  "status": req(Choice(("open", "pending", "closed"))),
                                  "note": opt(Str(4000, min_len=0, multiline=True)),
                                  "follow_up_days": opt(Int(1, 30, doc="closing: schedule a post-service "
                                                                        "visit this many days on"))},
                "Move a ticket on; each move is kept in its history. A closed ticket is closed for good: "
                "refused with reason already_closed. Reply: result with data {ticket_id, follow_up_id}."),
    MessageSpec("follow_up_add", {"customer_id": _customer_id,
                                  "kind": req(Choice(("callback", "visit", "satisfaction_call"))),
                                  "due_at": req(Str(40, ISO_DATETIME, doc="ISO 8601")),
                                  "note": opt(Str(500, min_len=0, multiline=True))},
                "Agent: schedule a follow-up of this customer on your own worklist. Reply: result with data "
                "{follow_up_id}."),
    MessageSpec("worklist", {}, "Agent: your follow-ups, overdue, due today and done today. Reply: result "
                "with data {overdue, due_today, done}."),
    MessageSpec("follow_up_call", {"follow_up_id": req(Int(1, MAX_SEQ))},
                "Agent: call the customer of one of your open follow-ups (your phone rings first, as for dial); "
                "refused with reason not_yours for another agent's. Reply: result with data {call_id}."),
    MessageSpec("follow_up_save", {"follow_up_id": req(Int(1, MAX_SEQ)), "call_id": _call_id,
                                   "reached": req(Bool()), "done": req(Bool()),
                                   "notes": opt(Str(4000, min_len=0, multiline=True))},
                "Agent: what came of a follow-up call (call_id from follow_up_call): journaled, and the call's "
                "row and the follow-up (done, when done) written to the CRM once durable. Reply: result."),
    MessageSpec("follow_up_close", {"follow_up_id": req(Int(1, MAX_SEQ)),
                                    "status": req(Choice(("done", "cancelled"))),
                                    "notes": opt(Str(4000, min_len=0, multiline=True))},
                "Agent: settle one of your open follow-ups without calling (a visit made, a customer who "
                "called in). Refused with reason not_yours for another agent's, conflict when it is not open "
                "any more. Reply: result."),
    MessageSpec("churn_list", {"limit": opt(Int(1, 500))},
                "Supervisor: customers showing churn signals (the churn-candidates report). Reply: result with "
                "data {customers: [{customer_id, name, grade, signals}]}."),
    MessageSpec("grade_run", {}, "Supervisor: ABC grading of every customer now (it also runs daily). Reply: "
                "result with data {graded, counts, changed, fast_moves}."),
)
CRM_MESSAGES = frozenset(spec.type for spec in _CRM_SPECS)
_SPECS = _SPECS + _CRM_SPECS

# Callbacks as tasks (docs/callbacks.md): a supervisor books one, cancels one, or lists the open ones.
_CALLBACK_SPECS: tuple[MessageSpec, ...] = (
    MessageSpec("callback_book", {"number": req(Str(32, NUMBER)), "queue": opt(_queue),
                                  "name": opt(Str(80, min_len=0)), "topic": opt(Str(200, min_len=0)),
                                  "due_at": opt(Str(40, ISO_DATETIME, doc="ISO 8601; absent: at once"))},
                "Supervisor: book a callback to a number, at once or at a time; the ACD offers it to an agent "
                "of the queue like a call. Reply: result with data {callback_id}."),
    MessageSpec("callback_cancel", {"callback_id": req(Str(32, r"cb-\d+"))},
                "Supervisor: cancel an open callback (it leaves its queue). Reply: result with data.cancelled."),
    MessageSpec("callbacks", {}, "Supervisor: the open callbacks. Reply: result with data {callbacks: [...]}."),
)
CALLBACK_MESSAGES = frozenset(spec.type for spec in _CALLBACK_SPECS)
_SPECS = _SPECS + _CALLBACK_SPECS

# Outbound campaigns on the supervisors' page (ctiserver/supervision/campaigns.py).
_campaign = req(Str(100, r"[^\x00-\x1f\x7f]+", doc="a campaign's name"))
_CAMPAIGN_SPECS: tuple[MessageSpec, ...] = (
    MessageSpec("campaigns", {}, "Supervisor: every campaign's state and figures. Reply: result with data "
                "{campaigns: [{campaign, kind, mode, state, contacts, callable, tried, done, remaining, attempts, "
                "connects, right_party, penetration_pct, progress_pct, abandon_rate_pct, abandon_cap_pct, over_cap, "
                "occupancy_pct, agents_busy, agents_free, throttled, lines_out}]}."),
    MessageSpec("campaign_pause", {"campaign": _campaign},
                "Supervisor: pause a campaign (nothing more is dialled; calls under way go on). Reply: result with "
                "data {campaign, changed, state}."),
    MessageSpec("campaign_resume", {"campaign": _campaign},
                "Supervisor: resume a paused campaign. Reply: result with data {campaign, changed, state}."),
)
CAMPAIGN_MESSAGES = frozenset(spec.type for spec in _CAMPAIGN_SPECS)
_SPECS = _SPECS + _CAMPAIGN_SPECS


# Recordings and the voicemail inbox (ctiserver/recordings). Ids only: a recording is named by its call id,
# a voicemail by the call id of the call that left it; the server finds the file.
_recording_id = req(Str(64, CALL_ID, doc="the call id of a recorded call (recordings_list)"))
_voicemail_id = req(Str(64, CALL_ID, doc="the call id of the call that left it (voicemail_list)"))
_list_limit = opt(Int(1, 200, doc="at most this many, newest first (default 50)"))
_SPECS += (
    MessageSpec("recording_start", {"call_id": _call_id},
                "Agent: record your call (queues whose recording policy is on_demand; always queues record "
                "from the bridge; never queues refuse: reason not_recorded). Reply: result with data.state."),
    MessageSpec("recording_pause", {"call_id": _call_id},
                "Agent: pause the recording of your call (a card payment): the file keeps the time as "
                "silence. Reply: result with data.state paused."),
    MessageSpec("recording_resume", {"call_id": _call_id}, "Agent: resume a paused recording."),
    MessageSpec("recording_stop", {"call_id": _call_id}, "Agent: stop recording your call."),
    MessageSpec("recordings_list", {"limit": _list_limit},
                "Recorded calls, newest first: an agent's own (any part of the call), all for a supervisor. "
                "Reply: result with data.recordings."),
    MessageSpec("recording_play", {"recording_id": _recording_id},
                "Play a recorded call: the agent who took it, or a supervisor. Audited before the reply. "
                "Reply: result with data.url (GET it within data.expires_in_s; the session must still "
                "stand) and data.seconds. Refusals: not_your_call, no_recording."),
    MessageSpec("voicemail_list", {"limit": _list_limit},
                "Voicemails left in the IVR with the caller and the CRM match, newest first: all for a "
                "supervisor, those assigned to you for an agent. Reply: result with data.voicemails."),
    MessageSpec("voicemail_play", {"voicemail_id": _voicemail_id},
                "Play a voicemail (a supervisor, or the agent it is assigned to). Audited. Reply as "
                "recording_play."),
    MessageSpec("voicemail_assign", {"voicemail_id": _voicemail_id, "agent_id": _agent_id},
                "Supervisor: give a voicemail to an agent (pushed to them as voicemail_assigned)."),
    MessageSpec("voicemail_done", {"voicemail_id": _voicemail_id},
                "Mark a voicemail dealt with (a supervisor, or the agent it is assigned to). Twice: refused "
                "(already_done)."),
)

CLIENT_MESSAGES: Mapping[str, MessageSpec] = MappingProxyType({s.type: s for s in (*_SPECS, *_ADMIN_SPECS)})
ADMIN_MESSAGES = frozenset(s.type for s in _ADMIN_SPECS)
PRE_AUTH_TYPES = frozenset({"auth", "resume", "ping"})

# Server -> client messages. Only the top level is checked; nested payloads are described in prose.
_seq = req(Int(0, MAX_SEQ, doc="position in this session's stream; replayed on resume"))
_re = opt(AnyValue(doc="the id of the client message this answers"))
_SERVER: dict[str, tuple[str, Mapping[str, Field]]] = {
    "hello": ("Sent on connect.", {"server": req(Str(64)), "versions": req(AnyValue()),
                                   "max_message_bytes": req(Int(0, MAX_SEQ)), "rate": req(AnyObj()),
                                   "server_time": req(AnyValue(doc="unix seconds, to correct the clock"))}),
    "auth_ok": ("Authenticated.", {"re": _re, "token": req(Str(2048, secret=True)), "expires_at": req(Str(40)),
                                   "user": req(AnyObj(doc="username, role, agent_id, display_name"))
                                   , "config": req(AnyObj(doc="queues, pause_reasons, dispositions")),
                                   "resumed": req(Bool())}),
    "result": ("A command succeeded.", {"re": _re, "data": opt(AnyValue())}),
    "error": ("A message was refused; the connection stays unless said otherwise.",
              {"re": _re, "code": req(Str(40)), "message": req(Str(500)), "field": opt(Str(64)),
               "reason": opt(Str(64)),
               "retry_after_s": opt(Int(1, MAX_SEQ, doc="locked_out, unavailable: seconds to wait"))}),
    "pong": ("Answer to ping.", {"re": _re}),
    "snapshot": ("The whole current state; the stream continues after seq.",
                 {"seq": _seq, "stream": req(Str(32)), "agent": opt(AnyObj()), "calls": opt(AnyValue()), "offers": opt(AnyValue()),
                  "wallboard": opt(AnyObj()), "agents": opt(AnyObj()), "call_list": opt(AnyObj()),
                  "alerts": opt(AnyValue())}),
    "agent_state": ("An agent's state changed.", {"seq": _seq, "agent": req(AnyObj())}),
    "offer": ("A call is offered (the agent's phone rings) with its screen pop.",
              {"seq": _seq, "offer": req(AnyObj())}),
    "offer_cancelled": ("The offer ended without an answer.", {"seq": _seq, "offer_id": req(Str(64)),
                                                              "reason": req(Str(64))}),
    "call_state": ("A call of this agent changed.", {"seq": _seq, "call": req(AnyObj())}),
    "wrapup_saved": ("The wrap-up is durable in the CRM (on the agent's stream: every tab clears its form).",
                     {"seq": _seq, "re": _re,
                                                           "call_id": req(Str(64))}),
    "wrapup_failed": ("The wrap-up was not saved: nothing was written; the form keeps its content.",
                      {"re": _re, "call_id": req(Str(64)), "message": req(Str(500))}),
    "search_results": ("Customers matching a search.", {"re": _re, "customers": req(AnyValue())}),
    "wallboard_delta": ("Changed queue figures: {queue: {field: value}}.",
                        {"seq": _seq, "queues": req(AnyObj())}),
    "agent_grid_delta": ("Changed agents: {agent_id: {field: value} | null (gone)}.",
                         {"seq": _seq, "agents": req(AnyObj())}),
    "call_list_delta": ("Changed calls: {call_id: {field: value} | null (ended)}.",
                        {"seq": _seq, "calls": req(AnyObj())}),
    "recording_state": ("A recording of this agent's call changed: recording, paused, stopped or ended.", {"seq": _seq, "call_id": req(Str(64)), "state": req(Str(16))}),
    "voicemail_assigned": ("A supervisor gave this agent a voicemail.", {"seq": _seq, "call_id": req(Str(64))}),
    "preview_card": (("A preview campaign's next contact for this agent: dial it (preview_dial) or pass "
                      "(preview_skip)."),
                     {"seq": _seq, "campaign": req(Str(64)), "contact_id": req(Int(1, MAX_SEQ)),
                      "number": req(Str(32)), "name": req(Str(200, min_len=0)),
                      "script": req(Str(8000, min_len=0, multiline=True))}),
    "campaign_call": (("A campaign call given to this agent: state connecting (their phone rings) then talking "
                       "(bridged). With the customer's card (pop, as an offer's), the campaign's script and its "
                       "dispositions [{name, then: done|call_back|wrong_number|do_not_call, right_party}]: the "
                       "call's wrap-up offers exactly those (call_back needs follow_up {kind: callback, due_at})."),
                      {"seq": _seq, "call_id": req(Str(64)), "campaign": req(Str(100)), "queue": req(Str(64, min_len=0)),
                       "state": req(Choice(("connecting", "talking"))), "number": req(Str(32)),
                       "name": req(Str(200, min_len=0)), "script": req(Str(8000, min_len=0, multiline=True)),
                       "dispositions": req(AnyValue()), "pop": opt(AnyValue())}),
    "alert": (("A queue's figure or an agent's call, pause or wrap-up went past its target (or came back); a "
               "prompt cannot be played; a wrap-up was kept as a draft (or saved at last)."),
              {"seq": _seq, "alert": req(AnyObj())}),
}
SERVER_MESSAGES: Mapping[str, tuple[str, Mapping[str, Field]]] = MappingProxyType(_SERVER)


# ---------------------------------------------------------------------------------------------
# Secrets in logs: a debug log of the frames must not hold a password or a session token.


def _secret_names(fields: Mapping[str, Field]) -> set[str]:
    names = set()
    for name, field in fields.items():
        if isinstance(field.kind, Str) and field.kind.secret:
            names.add(name)
        elif isinstance(field.kind, Obj):
            names |= _secret_names(field.kind.fields)
    return names


SECRET_FIELDS = frozenset(set().union(*(_secret_names(spec.fields) for spec in (*_SPECS, *_ADMIN_SPECS)),
                                      *(_secret_names(fields) for _, fields in _SERVER.values())))
REDACTED = "***"
# Client messages nest 3 levels; the log shows deeper JSON as a size only, and the rewriting below never
# recurses past this.
MAX_LOGGED_DEPTH = 32
_SECRET_NAMES = "|".join(sorted(SECRET_FIELDS))
_SECRET_VALUE = re.compile(rf'("(?:{_SECRET_NAMES})"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)')
# auth.TokenSigner's shape. The look-behind starts a match only where a run of token characters starts:
# without it a long run (a 64 kB frame of letters) is tried from every position, in quadratic time.
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def redact(text: str) -> str:
    """`text` with the values of secret fields, and anything shaped like a session token, replaced by
    ***. A JSON message is parsed, so a key written with escapes is caught too; other text (a cut
    frame, a log line) goes through patterns."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict | list):
        if _deeper_than(data, MAX_LOGGED_DEPTH):
            return f"<JSON nested deeper than {MAX_LOGGED_DEPTH} levels, {len(text)} characters: not shown>"
        text = json.dumps(_redact_value(data), ensure_ascii=False, separators=(",", ":"))
    else:
        text = _SECRET_VALUE.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    return _TOKEN_SHAPE.sub(REDACTED, text)


def _deeper_than(value: object, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels (without recursion: json.loads takes
    about a thousand levels, more than a recursive walk has stack for)."""
    todo: list[tuple[object, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in children)
    return False


def _redact_value(value: object) -> object:
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_FIELDS else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True, slots=True)
class Command:
    """A valid client message."""

    type: str
    id: str | int | None
    args: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A refused client message; `reply()` is what the server sends back."""

    code: ErrorCode
    message: str
    re: str | int | None = None
    field: str | None = None

    def reply(self) -> dict[str, object]:
        return error_reply(self.code, self.message, self.re, self.field)


def error_reply(code: ErrorCode | str, message: str, re_: str | int | None = None,
                field: str | None = None, reason: str | None = None,
                retry_after_s: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {"v": PROTOCOL_VERSION, "type": "error", "code": str(code), "message": message}
    if re_ is not None:
        out["re"] = re_
    if field is not None:
        out["field"] = field
    if reason is not None:
        out["reason"] = reason
    if retry_after_s is not None:
        out["retry_after_s"] = retry_after_s
    return out


_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def decode_client(raw: str | bytes, max_bytes: int = SOFT_MAX_BYTES) -> Command | ProtocolError:
    """Parse and validate one websocket message from a client."""
    if isinstance(raw, bytes):
        return ProtocolError(ErrorCode.BINARY_NOT_SUPPORTED, "send JSON in text frames")
    if len(raw) > max_bytes // 4 and len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        return ProtocolError(ErrorCode.TOO_LARGE, f"message larger than {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return ProtocolError(ErrorCode.BAD_JSON, "not valid JSON")
    if not isinstance(data, dict):
        return ProtocolError(ErrorCode.BAD_MESSAGE, "a message is a JSON object")
    msg_id = data.get("id")
    if msg_id is not None and not _valid_id(msg_id):
        return ProtocolError(ErrorCode.BAD_FIELD, "id: a string of up to 64 [A-Za-z0-9._:-] or an integer",
                             field="id")
    version = data.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        return ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"this server speaks v{PROTOCOL_VERSION}", msg_id)
    kind = data.get("type")
    if not isinstance(kind, str):
        return ProtocolError(ErrorCode.BAD_MESSAGE, 'missing "type"', msg_id, "type")
    spec = CLIENT_MESSAGES.get(kind)
    if spec is None:
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", msg_id, "type")
    args = {k: v for k, v in data.items() if k not in ("v", "type", "id")}
    problem = _check_fields(spec.fields, args, "")
    if problem is None and spec.check is not None:
        problem = spec.check(args)
    if problem is not None:
        field, why = problem
        return ProtocolError(ErrorCode.BAD_FIELD, f"{field}: {why}", msg_id, field)
    return Command(kind, msg_id, MappingProxyType(args))


def _valid_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_SEQ
    return isinstance(value, str) and _ID.fullmatch(value) is not None


_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


def _check_fields(fields: Mapping[str, Field], args: Mapping[str, object], prefix: str) -> tuple[str, str] | None:
    for name in args:
        if name not in fields:
            return prefix + _shown_name(name), "unknown field"
    for name, field in fields.items():
        if name not in args:
            if field.required:
                return prefix + name, "required"
            continue
        why = check_value(field.kind, args[name], prefix + name)
        if why is not None:
            return why
    return None


def _shown_name(name: str) -> str:
    """A field name the client made up, fit for the error reply's `field` (at most 64 characters, no
    control characters): as is when it looks like a name, else quoted, escaped and cut."""
    if _FIELD_NAME.fullmatch(name):
        return name
    shown = repr(name[:40])
    return shown if len(shown) <= 44 else shown[:40] + "...'"


def check_value(kind: Kind, value: object, path: str) -> tuple[str, str] | None:
    """None if `value` fits `kind`, else (field path, reason)."""
    if isinstance(kind, Str):
        if not isinstance(value, str):
            return path, "must be a string"
        if not kind.min_len <= len(value) <= kind.max_len:
            return path, f"length must be {kind.min_len}..{kind.max_len}"
        bad = unsafe_char(value, kind.multiline)
        if bad is not None:
            return path, f"control character U+{ord(bad):04X} not allowed"
        if kind.pattern is not None and not re.fullmatch(kind.pattern, value):
            return path, "bad format"
        return None
    if isinstance(kind, Bool):
        return None if isinstance(value, bool) else (path, "must be true or false")
    if isinstance(kind, Int):
        if isinstance(value, bool) or not isinstance(value, int):
            return path, "must be an integer"
        return None if kind.lo <= value <= kind.hi else (path, f"must be {kind.lo}..{kind.hi}")
    if isinstance(kind, Choice):
        return None if value in kind.values else (path, "must be one of " + ", ".join(kind.values))
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            return path, "must be a list"
        if not kind.min_items <= len(value) <= kind.max_items:
            return path, f"must hold {kind.min_items}..{kind.max_items} items"
        for i, item in enumerate(value):
            why = check_value(kind.item, item, f"{path}[{i}]")
            if why is not None:
                return why
        if kind.unique and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            return path, "duplicate items"
        return None
    if isinstance(kind, Obj):
        if not isinstance(value, dict):
            return path, "must be an object"
        return _check_fields(kind.fields, value, path + ".")
    if isinstance(kind, AnyObj):
        return None if isinstance(value, dict) else (path, "must be an object")
    return None


_ALLOWED_IN_TEXT = frozenset("\n\t")


def unsafe_char(text: str, multiline: bool = False) -> str | None:
    """The first character that must not pass (control, surrogate, line separator), or None."""
    for ch in text:
        if ch.isprintable() or ch == " ":
            continue
        if multiline and ch in _ALLOWED_IN_TEXT:
            continue
        category = unicodedata.category(ch)
        # Not printable but harmless: spaces other than U+0020 (Zs), format marks used in
        # Chinese/Arabic text (Cf, e.g. ZWJ) are allowed. Cc, Cs, Zl, Zp, Co, Cn are not.
        if category in ("Zs", "Cf"):
            continue
        return ch
    return None


def validate_server(msg: Mapping[str, object]) -> str | None:
    """None if a server message matches its documented shape (used by tests), else why not."""
    kind = msg.get("type")
    if msg.get("v") != PROTOCOL_VERSION:
        return "missing v"
    if not isinstance(kind, str) or kind not in SERVER_MESSAGES:
        return f"unknown server type {kind!r}"
    fields = SERVER_MESSAGES[kind][1]
    for name in msg:
        if name not in ("v", "type") and name not in fields:
            return f"{kind}: undocumented field {name}"
    for name, field in fields.items():
        if name not in msg:
            if field.required:
                return f"{kind}: missing {name}"
            continue
        if isinstance(field.kind, (Str, Int, Bool, AnyObj)):
            why = _loose_check(field.kind, msg[name])
            if why:
                return f"{kind}.{name}: {why}"
    return None


def _loose_check(kind: Kind, value: object) -> str | None:
    if isinstance(kind, Str):
        return None if isinstance(value, str) else "must be a string"
    if isinstance(kind, Int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if isinstance(kind, Bool):
        return None if isinstance(value, bool) else "must be a boolean"
    return None if isinstance(value, dict) else "must be an object"


# ---------------------------------------------------------------------------------------------
# Encoding


def to_wire(obj: object) -> object:
    """Dataclasses (e.g. crmstore's ScreenPop), enums, datetimes, Decimals, tuples -> JSON values."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, _PyEnum):
        return to_wire(obj.value)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_wire(v) for v in obj]
    raise TypeError(f"cannot put {type(obj).__name__} on the wire")


def server_message(kind: str, **fields: object) -> dict[str, object]:
    out: dict[str, object] = {"v": PROTOCOL_VERSION, "type": kind}
    out.update({k: to_wire(v) for k, v in fields.items() if v is not None or k == "data"})
    return out


def encode(msg: Mapping[str, object]) -> bytes:
    """One UTF-8 JSON text frame. ensure_ascii=False keeps Chinese names short on the wire."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------
# JSON Schema export (docs/protocol.md is generated from it)


def _kind_schema(kind: Kind) -> dict[str, object]:
    out: dict[str, object]
    if isinstance(kind, Str):
        out = {"type": "string", "minLength": kind.min_len, "maxLength": kind.max_len}
        if kind.pattern:
            out["pattern"] = f"^{kind.pattern}$"
    elif isinstance(kind, Int):
        out = {"type": "integer", "minimum": kind.lo, "maximum": kind.hi}
    elif isinstance(kind, Bool):
        out = {"type": "boolean"}
    elif isinstance(kind, Choice):
        out = {"enum": list(kind.values)}
    elif isinstance(kind, ListOf):
        out = {"type": "array", "items": _kind_schema(kind.item), "minItems": kind.min_items,
               "maxItems": kind.max_items, "uniqueItems": kind.unique}
    elif isinstance(kind, Obj):
        out = _object_schema(kind.fields)
    elif isinstance(kind, AnyObj):
        out = {"type": "object"}
    else:
        out = {}
    if kind.doc:
        out["description"] = kind.doc
    return out


def _object_schema(fields: Mapping[str, Field], head: Mapping[str, object] | None = None) -> dict[str, object]:
    props: dict[str, object] = dict(head or {})
    props.update({name: _kind_schema(f.kind) for name, f in fields.items()})
    required = [*(head or {})] + [name for name, f in fields.items() if f.required]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def json_schemas() -> dict[str, dict[str, object]]:
    """One JSON Schema (draft 2020-12) per client message type."""
    out = {}
    for spec in (*_SPECS, *_ADMIN_SPECS):
        head = {"type": {"const": spec.type}}
        schema = _object_schema(spec.fields, head)
        props = schema["properties"]
        assert isinstance(props, dict)
        props["v"] = {"const": PROTOCOL_VERSION}
        props["id"] = {"type": ["string", "integer"], "description": "echoed as re in the reply"}
        schema["description"] = spec.doc
        out[spec.type] = schema
    return out


def _compact(schema_doc: Mapping[str, object]) -> str:
    """One property per line: readable, and short enough to scan."""
    props = schema_doc["properties"]
    assert isinstance(props, dict)
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in props.items())
    return (f'{{"type": "object", "additionalProperties": false,\n "required": '
            f'{json.dumps(schema_doc["required"])},\n "properties": {{\n{body}\n }}}}')


def schema_markdown() -> str:
    """The generated reference part of docs/protocol.md (a test keeps the two identical)."""
    lines = ["<!-- generated by ctiserver.gateway.schema.schema_markdown(): do not edit by hand -->", ""]
    lines += ["### Client → server", ""]
    for kind, schema_doc in json_schemas().items():
        lines += [f"#### `{kind}`", "", str(schema_doc["description"]), "", "```json", _compact(schema_doc),
                  "```", ""]
    lines += ["### Server → client", "", "| type | fields (* required) | meaning |", "|---|---|---|"]
    for kind, (doc, fields) in SERVER_MESSAGES.items():
        names = ", ".join(f"`{n}`{'*' if f.required else ''}" for n, f in fields.items())
        lines.append(f"| `{kind}` | {names} | {doc} |")
    lines.append("")
    lines.append("<!-- end of generated part -->")
    return "\n".join(lines)
