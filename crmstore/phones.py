"""Phone numbers: everything stored or looked up is E.164, parsed with a configured default country."""

from __future__ import annotations

import phonenumbers

from .errors import InvalidPhone

# Strings a PBX puts in CallerID when there is no number: not an error, just nobody to identify.
_NO_NUMBER = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable", "<unknown>"})


def normalize_phone(raw: str, default_country: str, *, strict: bool = False) -> str:
    """Return the E.164 form of ``raw`` or raise InvalidPhone with the reason.

    By default we accept numbers whose length is *possible* for their country rather than requiring a
    currently allocated range: number-range metadata changes every few months and a caller must never
    become unknown because of a library update. ``strict`` (numbers entering the store from a file)
    also requires a number in an assigned range (``phonenumbers.is_valid_number``): "12345" is a typo
    there, not a customer's phone.
    """
    text = raw.strip()
    if text.lower() in _NO_NUMBER:
        raise InvalidPhone(raw, default_country, "no number")
    try:
        parsed = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(raw, default_country, str(exc).split(") ", 1)[-1]) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhone(raw, default_country, "wrong number of digits")
    if strict and not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(raw, default_country, f"no such number range in country code +{parsed.country_code}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_phone(raw: str | None, default_country: str) -> str | None:
    """E.164 or None: the lookup path, where a malformed caller number simply identifies nobody."""
    if raw is None:
        return None
    try:
        return normalize_phone(raw, default_country)
    except InvalidPhone:
        return None


def mask_phone(e164: str) -> str:
    """Keep the country code and the last 4 digits: enough to tell two numbers apart, not to dial."""
    if len(e164) <= 6:
        return "*" * len(e164)
    try:
        cc = str(phonenumbers.parse(e164).country_code)
    except phonenumbers.NumberParseException:
        cc = ""
    head = "+" + cc if cc else e164[:3]
    return head + "*" * (len(e164) - len(head) - 4) + e164[-4:]
