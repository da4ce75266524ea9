"""The administration messages in the protocol's schema: decoded, refused when malformed, and a password
never reaches a log."""

from __future__ import annotations

import json

from ctiserver.gateway.auth import PERMISSIONS, Role
from ctiserver.gateway.schema import ADMIN_MESSAGES, Command, ProtocolError, decode_client, redact


def test_only_the_admin_role_may_send_them() -> None:
    assert ADMIN_MESSAGES <= PERMISSIONS[Role.ADMIN]
    assert not ADMIN_MESSAGES & (PERMISSIONS[Role.SUPERVISOR] | PERMISSIONS[Role.AGENT])


def test_a_password_set_by_an_admin_is_kept_out_of_logs() -> None:
    raw = json.dumps({"type": "admin_user_set", "username": "u1", "role": "agent", "password": "hunter2-secret"})
    assert isinstance(decode_client(raw), Command)
    assert "hunter2-secret" not in redact(raw)


def test_malformed_admin_messages_name_their_field() -> None:
    cases = {
        '{"type": "admin_calendar_set", "flow": "f", "calendar": "c", "hours": [{"days": "monday", "ranges": []}]}':
            "hours[0].days",
        '{"type": "admin_calendar_set", "flow": "f", "calendar": "c", "hours": [], "holidays": ["10/01/2026"]}':
            "holidays[0]",
        '{"type": "admin_pause_reasons_set", "reasons": []}': "reasons",
        '{"type": "admin_pause_reasons_set", "reasons": ["a\\r\\nAction: Originate"]}': "reasons[0]",
        '{"type": "admin_user_set", "username": "u", "role": "root"}': "role",
        '{"type": "admin_agent_set", "agent_id": "1", "skills": [{"skill": "s"}], "queues": []}': "skills[0].level",
    }
    for raw, field in cases.items():
        got = decode_client(raw)
        assert isinstance(got, ProtocolError) and got.field == field, (raw, got)
