"""Secure input: digits that must never be logged, stored in clear, or shown.

A `SecretDigits` value prints as a mask everywhere (str, repr, f-strings, logging, JSON via
`masked`), so forgetting to mask is not possible by accident; code that truly needs the digits
(a PIN hash check) calls `reveal()`, which is easy to grep for.
"""

from __future__ import annotations

from typing import NoReturn

MASK_CHAR = "*"


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
