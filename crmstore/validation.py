"""The checks every value entering the CRM from a person goes through: an import file's rows and an agent's
edits in the console read the same rules, so a customer refused in one is refused in the other. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import CrmError, InvalidPhone
from .phones import normalize_phone

# Control characters are refused, not stored: PostgreSQL refuses NUL in text outright (one NUL would fail
# its whole transaction) and the rest break consoles and exports. Notes may hold tabs and line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_NOTES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_EMAIL_NAME = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")

# What one field may hold, in characters: a name, not a letter.
MAX_FIELD = {"name": 200, "company": 200, "email": 254, "notes": 4000, "preferred_language": 16,
             "contact_time": 100, "contact_channel": 32, "tag": 50, "subject": 500, "category": 50}
MAX_PHONES = 10
MAX_TAGS = 20


class InvalidField(CrmError, ValueError):
    """A value a person typed that the CRM does not take; the message names the field and why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def clean_text(value: str, what: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or ValueError naming the first control character and where it is."""
    bad = (_CONTROL_IN_NOTES if multiline else _CONTROL).search(value)
    if bad:
        raise ValueError(f"{what} contains a control character (U+{ord(bad.group()):04X}) at position {bad.start()}")
    return value


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an address (None: it is one). Deliberately simple: one @, a name part
    without spaces or quotes, a domain of dotted labels (Unicode letters allowed)."""
    if len(email) > 254:
        return "longer than 254 characters"
    name, at, domain = email.rpartition("@")
    if not at or not name:
        return "no name@domain"
    if "@" in name:
        return "more than one @"
    if not _EMAIL_NAME.fullmatch(name) or name.startswith(".") or name.endswith(".") or ".." in name:
        return f"{name!r} is not a mailbox name"
    labels = domain.split(".")
    if len(labels) < 2:
        return f"domain {domain!r} has no dot"
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return f"domain {domain!r} is not a domain name"
        if not all(ch.isalnum() or ch == "-" for ch in label):
            return f"domain {domain!r} is not a domain name"
    if labels[-1].isdigit():
        return f"domain {domain!r} is not a domain name"
    return None


def text_field(field: str, value: object, *, multiline: bool = False, limit: str | None = None) -> str:
    """A person's text for ``field``: trimmed, no control characters, not too long."""
    if not isinstance(value, str):
        raise InvalidField(field, "must be text")
    text = value.strip()
    try:
        clean_text(text, field, multiline=multiline)
    except ValueError as e:
        raise InvalidField(field, str(e).split(" ", 1)[1]) from None
    most = MAX_FIELD.get(limit or field, 200)
    if len(text) > most:
        raise InvalidField(field, f"longer than {most} characters")
    return text


def strict_phone(raw: str, default_country: str, field: str = "phones") -> str:
    """E.164 of a number a person typed: it must be in an assigned range (phonenumbers' is_valid_number),
    as for an import file; a caller's number on the wire is read more leniently (phones.normalize_phone)."""
    try:
        return normalize_phone(raw.lstrip("'"), default_country, strict=True)
    except InvalidPhone as e:
        raise InvalidField(field, str(e)) from None


@dataclass(frozen=True, slots=True)
class CustomerEdit:
    """A customer's card as an agent saves it from the console: checked, phones in E.164."""

    fields: Mapping[str, object]  # the columns store.update_customer takes, only those given
    phones: tuple[str, ...]  # phones to add (E.164); existing ones are kept


_TEXT_FIELDS = ("name", "company", "preferred_language", "contact_time", "contact_channel")


def customer_edit(raw: Mapping[str, object], default_country: str, *, creating: bool) -> CustomerEdit:
    """Check what a person typed for a customer; InvalidField (one line) on the first bad value."""
    fields: dict[str, object] = {}
    for key in _TEXT_FIELDS:
        if key in raw:
            fields[key] = text_field(key, raw[key])
    if "notes" in raw:
        fields["notes"] = text_field("notes", raw["notes"], multiline=True)
    if "email" in raw:
        email = text_field("email", raw["email"])
        if email and (why := email_problem(email)):
            raise InvalidField("email", f"{email!r} is not an address ({why})")
        fields["email"] = email
    if "tags" in raw:
        tags = raw["tags"]
        if not isinstance(tags, Sequence) or isinstance(tags, str) or len(tags) > MAX_TAGS:
            raise InvalidField("tags", f"a list of at most {MAX_TAGS} words")
        fields["tags"] = [t for t in (text_field("tags", t, limit="tag") for t in tags) if t]
    if "is_lead" in raw:
        if not isinstance(raw["is_lead"], bool):
            raise InvalidField("is_lead", "must be true or false")
        fields["is_lead"] = raw["is_lead"]
    phones: list[str] = []
    given = raw.get("phones", ())
    if not isinstance(given, Sequence) or isinstance(given, str) or len(given) > MAX_PHONES:
        raise InvalidField("phones", f"a list of at most {MAX_PHONES} numbers")
    for p in given:
        if not isinstance(p, str):
            raise InvalidField("phones", "numbers are text")
        if p.strip():
            e164 = strict_phone(p, default_country)
            if e164 not in phones:
                phones.append(e164)
    if creating and not fields.get("name") and not phones:
        raise InvalidField("name", "a new customer needs a name or a phone number")
    return CustomerEdit(fields, tuple(phones))
