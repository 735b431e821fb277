"""Everything a flow may branch on or speak about for one call, decided at call start.

Conditions read it (segment, flags, language, line, calendar, notices, percentage split); prompt
templates get `template_context()`. Only pre-authentication data is here: a calling number alone
never authorises access to accounts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agi_app.directory.models import Customer
from agi_app.flows.model import Line
from agi_app.secure import for_templates


def _pick(texts: Mapping[str, str | None], language: str) -> tuple[str, str] | None:
    """(text, its language): the caller's language if written, else any (spoken in its own voice)."""
    if texts.get(language):
        return texts[language], language  # type: ignore[return-value]
    return next(((t, lang) for lang, t in texts.items() if t), None)


@dataclass(frozen=True)
class Notice:
    kind: str
    texts: Mapping[str, str | None]
    sound: str | None

    def for_language(self, language: str) -> dict[str, Any]:
        text, text_language = _pick(self.texts, language) or (None, language)
        return {"kind": self.kind, "text": text, "language": text_language, "sound": self.sound}


@dataclass(frozen=True)
class Emergency:
    texts: Mapping[str, str | None]
    sound: str | None

    def text(self, language: str) -> tuple[str, str] | None:
        """(text, language to speak it in)."""
        return _pick(self.texts, language)


@dataclass(frozen=True)
class CalendarInfo:
    status: str = "open"  # open | closed | holiday
    holiday_name: str | None = None
    next_open: datetime | None = None


@dataclass
class CallContext:
    caller: str
    line: Line
    language: str
    now: datetime
    customer: Customer | None = None
    calendar: CalendarInfo = CalendarInfo()
    notices: Sequence[Notice] = ()
    emergency: Emergency | None = None
    bill_due_days: int = 7
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def time_of_day(self) -> str:
        hour = self.now.hour
        return "morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 18 else "evening"

    def bill_due_within(self, days: int) -> bool:
        due = self.customer.bill_due_date if self.customer else None
        return due is not None and 0 <= (due - self.now.date()).days <= days

    def has_flag(self, flag: str) -> bool:
        """A flag set on the customer; `bill_due` also holds when the bill date is near."""
        if flag == "bill_due" and self.bill_due_within(self.bill_due_days):
            return True
        return bool(self.customer and self.customer.flags.get(flag))

    def percent_bucket(self) -> float:
        """A stable 0–100 bucket per caller: the same caller always lands in the same split."""
        digest = hashlib.sha256(self.caller.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 * 100

    def template_context(self) -> dict[str, Any]:
        """What prompt templates see; collected secure input only as a mask (`for_templates`)."""
        return {
            "customer": asdict(self.customer) if self.customer else None,
            "line": {"number": self.line.number, "name": self.line.name},
            "time_of_day": self.time_of_day,
            "calendar": asdict(self.calendar),
            "notices": [n.for_language(self.language) for n in self.notices],
            "vars": {name: for_templates(value) for name, value in self.variables.items()},
        }


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def matches(test: Mapping[str, Any], ctx: CallContext) -> bool:
    """All conditions of one `if` mapping hold (AND)."""
    for key, value in test.items():
        customer = ctx.customer
        if key == "segment" and (customer is None or customer.segment not in _as_list(value)):
            return False
        if key == "language" and ctx.language not in _as_list(value):
            return False
        if key == "line" and ctx.line.number not in _as_list(value):
            return False
        if key == "known" and (customer is not None) != value:
            return False
        if key == "flag" and not ctx.has_flag(value):
            return False
        if key == "bill_due_within_days" and not ctx.bill_due_within(value):
            return False
        if key == "calendar" and ctx.calendar.status != value:
            return False
        if key == "percent" and not ctx.percent_bucket() < value:
            return False
        if key == "notices" and bool(ctx.notices) != value:
            return False
    return True
