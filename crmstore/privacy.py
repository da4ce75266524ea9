"""Who may see and do what. The matrix is data so docs/crm.md and the tests read the same table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import CrmPermissionError


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    ANALYST = "analyst"  # reporting staff: sees customers and history, not how to reach them


class Right(StrEnum):
    SEE_PHONES = "see_phones"  # full numbers; others get +86*******5678
    SEE_NOTES = "see_notes"  # customer notes and call notes; others get None
    WRITE_CONTACT = "write_contact"  # wrap-up, leads, tickets, follow-ups, purchases
    SET_FLAGS = "set_flags"  # VIP, key account, blacklist, difficult
    RUN_GRADING = "run_grading"
    READ_AUDIT = "read_audit"
    IMPORT_EXPORT = "import_export"


MATRIX: dict[Role, frozenset[Right]] = {
    Role.AGENT: frozenset({Right.SEE_PHONES, Right.SEE_NOTES, Right.WRITE_CONTACT}),
    Role.SUPERVISOR: frozenset(
        {
            Right.SEE_PHONES,
            Right.SEE_NOTES,
            Right.WRITE_CONTACT,
            Right.SET_FLAGS,
            Right.RUN_GRADING,
            Right.READ_AUDIT,
        }
    ),
    Role.ADMIN: frozenset(Right),
    Role.ANALYST: frozenset({Right.RUN_GRADING}),
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated person (or service) on whose behalf the store is called. Recorded in the audit log."""

    user: str
    role: Role

    def may(self, right: Right) -> bool:
        return right in MATRIX[self.role]

    def require(self, right: Right) -> None:
        if not self.may(right):
            raise CrmPermissionError(
                f"user {self.user!r} with role {self.role} may not {right.value.replace('_', ' ')}"
            )


SYSTEM = Viewer(
    "system", Role.ADMIN
)  # the server itself: call logging, grading schedule, imports from the CLI
