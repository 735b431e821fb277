"""Who is calling, as flows see them: generic attributes, flags and dated facts.

A leaf, so the flow engine never imports the bank's customer: the domain (`directory/facts.py`
today, banking later) decides what it knows about a caller and hands it over in this shape at
call start. A new flag or attribute is the domain's change alone; flows test `{flag: NAME}`,
`{segment: ...}` and `{NAME_within_days: N}` and templates read `customer.<attribute>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class CallerFacts:
    """What is known about the caller before authentication; `known` is False for a number the
    directory did not find (or could not look up), and then everything else is empty."""

    known: bool = False
    #: What prompt templates see as `customer` (name, salutation, segment, language, ...).
    attributes: Mapping[str, object] = field(default_factory=dict)
    #: Flags conditions test (`{flag: risk_hold}`), including those the domain derives from dates.
    flags: Mapping[str, bool] = field(default_factory=dict)
    #: Dated facts (`bill_due` → the bill's due date) for `{bill_due_within_days: N}`.
    dates: Mapping[str, date] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """An attribute as text (e.g. `segment`), None when absent."""
        value = self.attributes.get(name)
        return None if value is None else str(value)

    def flag(self, name: str) -> bool:
        return bool(self.flags.get(name))

    def within_days(self, name: str, days: int, today: date) -> bool:
        """The dated fact `name` falls between today and `days` days from now."""
        return within_days(self.dates.get(name), days, today)


def within_days(when: date | None, days: int, today: date) -> bool:
    """`when` falls between today and `days` days from now (a date already past does not)."""
    return when is not None and 0 <= (when - today).days <= days


UNKNOWN_CALLER = CallerFacts()
