"""Secure input: digits that must never be logged, stored in clear, or shown.

A `SecretDigits` value prints as a mask everywhere (str, repr, f-strings, logging, JSON via
`masked`), so forgetting to mask is not possible by accident; code that truly needs the digits
(a PIN hash check) calls `reveal()`, which is easy to grep for.

This module is also the one place that decides what may be shown of any input
(`shown_input`, used for journeys and logs alike) and what prompt templates see of a secure value
(`for_templates`: a `MaskedValue`, which holds no digits at all).
"""

from __future__ import annotations

from typing import NoReturn

MASK_CHAR = "*"

#: Input results whose value may be recorded: what a prompt accepted (a menu choice, a universal
#: key, a survey score, a collect's entry). Any other result (invalid, timeout, no_answer, or one
#: added later) records no value: a key the prompt did not expect may be a PIN typed in the wrong place.
ACCEPTED_RESULTS = frozenset({"option", "agent", "repeat", "back", "score", "ok"})


class SecretDigits:
    """Digits entered in a secure collect; masked in every textual form."""

    __slots__ = ("_digits",)

    def __init__(self, digits: str) -> None:
        self._digits = digits

    def reveal(self) -> str:
        """The clear digits; only for verification code (hashing), never for output."""
        return self._digits

    @property
    def masked(self) -> str:
        return MASK_CHAR * len(self._digits)

    def __len__(self) -> int:
        return len(self._digits)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"SecretDigits({self.masked})"

    def __format__(self, spec: str) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretDigits) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(("SecretDigits", len(self._digits)))

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret digits cannot be serialised")


class MaskedValue:
    """What a prompt template sees of a secure value: its mask, and nothing that leads to the digits
    (it never held them)."""

    __slots__ = ("masked",)

    def __init__(self, length: int) -> None:
        self.masked = MASK_CHAR * length

    def __len__(self) -> int:
        return len(self.masked)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"MaskedValue({self.masked})"


def masked_phone(number: str | None) -> str:
    """A calling number as a screen or a log may show it: at most its last 4 digits and never more
    than half of it (an extension `1001` shows `**01`), the rest masked; nothing when absent."""
    if not number:
        return ""
    shown = min(4, len(number) // 2)
    return MASK_CHAR * (len(number) - shown) + number[len(number) - shown:]


def is_secure(value: object) -> bool:
    return isinstance(value, SecretDigits | MaskedValue)


def for_templates(value: object) -> object:
    """A value as prompt templates may see it: secure input only as a `MaskedValue`."""
    return MaskedValue(len(value)) if isinstance(value, SecretDigits) else value


def shown_input(value: str | SecretDigits, result: str) -> str:
    """The only text a journey or a log line may hold for an input: secure input as its mask, other
    input only when the prompt accepted it (`ACCEPTED_RESULTS`), else nothing."""
    if isinstance(value, SecretDigits):
        return value.masked
    return value if result in ACCEPTED_RESULTS else ""
