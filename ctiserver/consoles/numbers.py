"""Callers' numbers as people read them: +86 134 5323 3942, not 8613453233942."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "CN"  # digits without a country code are read as numbers of this country


def format_number(raw: str, region: str = DEFAULT_REGION) -> str:
    """International format when the number parses (a leading 86 without "+" counts as the country code
    when the rest is a valid Chinese number); else the digits as they came."""
    text = (raw or "").strip()
    if not text:
        return ""
    candidates = [text] if text.startswith("+") else [f"+{text}", text]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return text
