"""Calling-number normalisation: the one place that decides what "the same number" means.

Numbers arrive as typed by people (CSV imports) or as signalled by carriers (ANI), e.g.
`+86 138-0013-8000`, `0086 13800138000`, `013800138000`. Chinese numbers are reduced to their
national significant number (no country code, no trunk `0`); other international numbers keep a
leading `+` so they can never collide with a national one.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_VALID = re.compile(r"\+?\d{3,20}")


def normalize_phone(raw: str | None) -> str | None:
    """Return the canonical form of `raw`, or None if it is not a usable phone number."""
    if raw is None:
        return None
    number = _SEPARATORS.sub("", raw)
    if not _VALID.fullmatch(number):
        return None
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("0086"):
        number = number[4:]
    elif number.startswith("00"):
        number = "+" + number[2:]
    if number.startswith("+"):
        return number if len(number) > 4 else None
    number = number.lstrip("0")
    return number if len(number) >= 3 else None
