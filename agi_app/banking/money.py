"""Money as integer fen, never a float: one type that parses, adds, compares and prints exactly.

A bank must never read out or move a figure other than the one it holds, so parsing refuses
anything that is not a whole number of fen ("1.005", "1e3", "NaN", a float) instead of rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import total_ordering

_TEXT = re.compile(r"(-?)([0-9]{1,15})(?:\.([0-9]{1,2}))?")


class MoneyError(ValueError):
    """Text or a number that is not an exact amount of fen."""


@total_ordering
@dataclass(frozen=True)
class Money:
    """An amount in fen (1 yuan = 100 fen). Only CNY: the prompts have words for no other currency."""

    fen: int

    def __post_init__(self) -> None:
        if type(self.fen) is not int:  # noqa: E721 - bool and float are refused, not coerced
            raise MoneyError(f"fen must be an int, not {type(self.fen).__name__}")

    @classmethod
    def parse(cls, text: str) -> Money:
        """"1024.50", "1024.5", "1024" or "-3.00" → Money; anything else is a MoneyError."""
        match = _TEXT.fullmatch(text.strip())
        if match is None:
            raise MoneyError(f"{text!r} is not an amount like 1024.50")
        sign, yuan, fraction = match.groups()
        fen = int(yuan) * 100 + int((fraction or "0").ljust(2, "0"))
        return cls(-fen if sign else fen)

    @classmethod
    def of(cls, amount: Decimal) -> Money:
        """An exact Decimal amount in yuan (no rounding: 1.005 is a MoneyError)."""
        if not amount.is_finite() or amount * 100 != (amount * 100).to_integral_value():
            raise MoneyError(f"{amount!r} is not a whole number of fen")
        return cls(int(amount * 100))

    @property
    def yuan(self) -> Decimal:
        return Decimal(self.fen).scaleb(-2)

    def __str__(self) -> str:
        """Always two decimals: "1024.50", "-3.00"."""
        sign = "-" if self.fen < 0 else ""
        yuan, fen = divmod(abs(self.fen), 100)
        return f"{sign}{yuan}.{fen:02d}"

    def __add__(self, other: Money) -> Money:
        return Money(self.fen + other.fen)

    def __sub__(self, other: Money) -> Money:
        return Money(self.fen - other.fen)

    def __lt__(self, other: Money) -> bool:
        return self.fen < other.fen

    def __bool__(self) -> bool:
        return self.fen != 0


ZERO = Money(0)
