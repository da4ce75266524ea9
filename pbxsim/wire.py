"""AMI frames exactly as Asterisk 22 writes them (header names and order from EVENT-CATALOG.md). Pure.

Events are lists of ``(name, value)`` pairs rendered with CRLF. Values pass ``escape_value``: Asterisk runs
caller-ID and connected-line names through ``ast_escape_c_alloc`` before building a channel snapshot, so a
name carrying CR/LF reaches AMI as the two characters ``\\r``/``\\n``, never as a raw line break. The
simulator applies that to every value so no frame it writes can be split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Pairs = list[tuple[str, str]]

PRIVILEGE = {
    "AGIExecEnd": "agi,all",
    "AGIExecStart": "agi,all",
    "AgentCalled": "agent,all",
    "AgentComplete": "agent,all",
    "AgentConnect": "agent,all",
    "Cdr": "cdr,all",
    "ContactStatus": "system,all",
    "DTMFBegin": "dtmf,all",
    "DTMFEnd": "dtmf,all",
    "FullyBooted": "system,all",
    "Shutdown": "system,all",
    "InvalidPassword": "security,all",
    "Newexten": "dialplan,all",
    "PeerStatus": "system,all",
    "QueueCallerAbandon": "agent,all",
    "QueueCallerJoin": "agent,all",
    "QueueCallerLeave": "agent,all",
    "QueueMemberAdded": "agent,all",
    "QueueMemberPause": "agent,all",
    "QueueMemberPenalty": "agent,all",
    "QueueMemberRemoved": "agent,all",
    "QueueMemberStatus": "agent,all",
    "RequestBadFormat": "security,all",
    "RequestNotAllowed": "security,all",
    "SuccessfulAuth": "security,all",
    "UserEvent": "user,all",
    "VarSet": "dialplan,all",
}
# List items answering an action carry no Privilege (README "Header and field-name differences").
NO_PRIVILEGE = {
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "ParkedCallsComplete",
    "QueueEntry",
    "QueueMember",
    "QueueParams",
    "QueueStatusComplete",
    "QueueSummary",
    "QueueSummaryComplete",
    "StatusComplete",
}

SNAPSHOT_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
BRIDGE_FIELDS = (
    "BridgeUniqueid",
    "BridgeType",
    "BridgeTechnology",
    "BridgeCreator",
    "BridgeName",
    "BridgeNumChannels",
    "BridgeVideoSourceMode",
)

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}

CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}

_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


class Verbatim(str):
    """A value Asterisk itself writes with a control character in it (the Park response's stray LF)."""


def escape_value(value: str) -> str:
    """C-escape control characters the way ast_escape_c_alloc does (see the module docstring)."""
    if isinstance(value, Verbatim) or value.isprintable() or not any(c < " " or c == "\x7f" for c in value):
        return value
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < " " or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def render(pairs: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {escape_value(v)}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


def event(name: str, *parts: Sequence[tuple[str, str]]) -> Pairs:
    head: Pairs = [("Event", name)]
    if name not in NO_PRIVILEGE:
        head.append(("Privilege", PRIVILEGE.get(name, "call,all")))
    for p in parts:
        head.extend(p)
    return head


def prefixed(prefix: str, pairs: Sequence[tuple[str, str]]) -> Pairs:
    return [(prefix + k, v) for k, v in pairs]


def response(action_id: str | None, status: str, message: str | None = None, *extra: tuple[str, str]) -> Pairs:
    out: Pairs = [("Response", status)]
    if action_id is not None:
        out.append(("ActionID", action_id))
    out.extend(extra)
    if message is not None:
        out.append(("Message", message))
    return out
