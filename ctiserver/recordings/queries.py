"""The CRM reads and writes of recordings and the voicemail inbox, as plans (crmstore.plan): no I/O here.

A recorded call is its interaction rows (one per agent part, `recording_ref` set); a voicemail is the row
of a call whose outcome is `voicemail`. The inbox table holds only what people did with a voicemail.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmstore.plan import Execute, Fetch, Plan
from crmstore.queries import AUDIT_INSERT, AuditRow


@dataclass(frozen=True, slots=True)
class RecordedCall:
    call_id: str  # the root call id: what a console sends back to play it
    started_at: float
    caller: str
    customer_id: int | None
    customer_name: str
    agents: tuple[str, ...]
    queue: str
    talk_s: float
    file: str


@dataclass(frozen=True, slots=True)
class Voicemail:
    call_id: str
    left_at: float
    caller: str
    customer_id: int | None
    customer_name: str
    file: str
    assigned_to: str
    assigned_by: str
    done_by: str
    done_at: float | None

    @property
    def status(self) -> str:
        return "done" if self.done_at is not None else "assigned" if self.assigned_to else "new"


_RECORDED = (
    "SELECT i.root_call_id, MIN(i.started_at), MAX(i.caller), MAX(i.customer_id), MAX(COALESCE(c.name, '')), "
    "MAX(i.queue), SUM(i.talk_s), MAX(i.recording_ref) "
    "FROM interactions i LEFT JOIN customers c ON c.id = i.customer_id "
    "WHERE i.recording_ref != '' AND i.outcome = 'answered' {where} "
    "GROUP BY i.root_call_id ORDER BY MIN(i.started_at) DESC LIMIT ?"
)


def recorded_calls(agent: str | None, limit: int) -> Plan[list[RecordedCall]]:
    """Newest first: an agent's own recorded calls (any part of theirs), or everybody's (agent None)."""
    if agent is None:
        rows = yield Fetch(_RECORDED.format(where=""), (limit,))
    else:
        rows = yield Fetch(_RECORDED.format(
            where="AND i.root_call_id IN (SELECT root_call_id FROM interactions WHERE agent = ?)"),
            (agent, limit))
    out = []
    for r in rows:
        agents = yield Fetch("SELECT agent FROM interactions WHERE root_call_id = ? ORDER BY segment", (r[0],))
        out.append(RecordedCall(r[0], float(r[1]), r[2], r[3], r[4], tuple(a[0] for a in agents if a[0]),
                                r[5], float(r[6] or 0.0), r[7]))
    return out


def recorded_call(call_id: str) -> Plan[RecordedCall | None]:
    rows = yield Fetch(
        "SELECT i.started_at, i.caller, i.customer_id, COALESCE(c.name, ''), i.queue, i.talk_s, i.recording_ref, "
        "i.agent FROM interactions i LEFT JOIN customers c ON c.id = i.customer_id "
        "WHERE i.root_call_id = ? AND i.outcome = 'answered' ORDER BY i.segment", (call_id,))
    if not rows:
        return None
    file = next((r[6] for r in rows if r[6]), "")
    return RecordedCall(call_id, float(rows[0][0]), rows[0][1], rows[0][2], rows[0][3],
                        tuple(r[7] for r in rows if r[7]), rows[0][4], sum(float(r[5] or 0.0) for r in rows), file)


_VOICEMAILS = (
    "SELECT i.call_id, i.started_at, i.caller, i.customer_id, COALESCE(c.name, ''), i.recording_ref, "
    "COALESCE(v.assigned_to, ''), COALESCE(v.assigned_by, ''), COALESCE(v.done_by, ''), v.done_at "
    "FROM interactions i LEFT JOIN customers c ON c.id = i.customer_id "
    "LEFT JOIN voicemail_inbox v ON v.call_id = i.call_id "
    "WHERE i.outcome = 'voicemail' AND i.recording_ref != '' {where} ORDER BY i.started_at DESC LIMIT ?"
)


def _voicemail(r: tuple[object, ...]) -> Voicemail:
    return Voicemail(str(r[0]), float(r[1]), str(r[2]), r[3], str(r[4]), str(r[5]),  # type: ignore[arg-type]
                     str(r[6]), str(r[7]), str(r[8]), None if r[9] is None else float(r[9]))  # type: ignore[arg-type]


def voicemails(assigned_to: str | None, limit: int) -> Plan[list[Voicemail]]:
    """Newest first: those given to one agent, or all (assigned_to None)."""
    if assigned_to is None:
        rows = yield Fetch(_VOICEMAILS.format(where=""), (limit,))
    else:
        rows = yield Fetch(_VOICEMAILS.format(where="AND v.assigned_to = ?"), (assigned_to, limit))
    return [_voicemail(r) for r in rows]


def voicemail(call_id: str) -> Plan[Voicemail | None]:
    rows = yield Fetch(_VOICEMAILS.format(where="AND i.call_id = ?"), (call_id, 1))
    return _voicemail(rows[0]) if rows else None


class InboxConflict(Exception):
    """The voicemail changed under the request (already done): nothing was written."""


def assign_voicemail(call_id: str, agent_id: str, by: str, now: float, audit: AuditRow) -> Plan[None]:
    got = yield Fetch("SELECT done_at FROM voicemail_inbox WHERE call_id = ?", (call_id,))
    if got and got[0][0] is not None:
        raise InboxConflict("this voicemail is done already")
    yield Execute(
        "INSERT INTO voicemail_inbox (call_id, assigned_to, assigned_by, assigned_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (call_id) DO UPDATE SET assigned_to = excluded.assigned_to, "
        "assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at", (call_id, agent_id, by, now))
    yield Execute(AUDIT_INSERT, audit)


def finish_voicemail(call_id: str, by: str, now: float, audit: AuditRow) -> Plan[None]:
    got = yield Fetch("SELECT done_at FROM voicemail_inbox WHERE call_id = ?", (call_id,))
    if got and got[0][0] is not None:
        raise InboxConflict("this voicemail is done already")
    yield Execute(
        "INSERT INTO voicemail_inbox (call_id, done_by, done_at) VALUES (?, ?, ?) "
        "ON CONFLICT (call_id) DO UPDATE SET done_by = excluded.done_by, done_at = excluded.done_at",
        (call_id, by, now))
    yield Execute(AUDIT_INSERT, audit)


def audit(row: AuditRow) -> Plan[None]:
    yield Execute(AUDIT_INSERT, row)
