"""Errors raised by the CRM side-store. Every one carries a message an agent or an operator can read."""

from __future__ import annotations


class CrmError(Exception):
    """Base class of every error the store raises on purpose."""


class InvalidPhone(CrmError, ValueError):
    """A caller number or a customer phone that cannot be read as a phone number."""

    def __init__(self, raw: str, default_country: str, why: str) -> None:
        super().__init__(f"phone number {raw!r} is not valid (default country {default_country}): {why}")
        self.raw = raw
        self.default_country = default_country


class CrmWriteError(CrmError):
    """A write did not happen. The transaction was rolled back: nothing of it is stored.

    The agent console shows this as "not saved" (locked database, full disk, broken constraint, server gone).
    """


class CrmConflict(CrmWriteError):
    """The write would break a uniqueness rule, e.g. a phone number already owned by another customer."""


class CrmNotFound(CrmError, LookupError):
    """The customer, call, ticket or follow-up named does not exist."""


class CrmPermissionError(CrmError, PermissionError):
    """The viewer's role does not allow this operation (see docs/crm.md, privacy matrix)."""


class SchemaTooNew(CrmError):
    """The database was migrated by a newer version of this code; we refuse to touch it."""


class ImportFormatError(CrmError, ValueError):
    """The import file cannot be read at all (wrong columns, unknown encoding, not JSON...)."""
