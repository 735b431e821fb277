"""Everything a flow may branch on or speak about for one call, decided at call start.

Conditions read it (the caller's attributes and flags, language, line, calendar, notices,
percentage split, whether the caller has authenticated); prompt templates get
`template_context()`. The caller is generic `CallerFacts` the domain supplies (the engine builds
them at call start), so a new flag or attribute never touches the flows. Until a service
authenticates the caller (`authenticated`, set by the runner) the facts are pre-authentication
data: a calling number alone never authorises access to accounts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agi_app.calendar.info import CalendarInfo
from agi_app.caller_facts import UNKNOWN_CALLER, CallerFacts
from agi_app.flows.model import Condition, Line
from agi_app.operations.model import Emergency, Notice
from agi_app.secure import for_templates


@dataclass
class FlowContext:
    """What one call's flow decides on and speaks about."""

    caller: str  # the calling number
    line: Line
    language: str
    now: datetime
    facts: CallerFacts = UNKNOWN_CALLER
    calendar: CalendarInfo = CalendarInfo()
    notices: Sequence[Notice] = ()
    emergency: Emergency | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    #: Set by the runner when a service authenticated the caller (a PIN check); `facts` are then the
    #: authenticated customer's. The calling number alone never sets it.
    authenticated: bool = False

    @property
    def time_of_day(self) -> str:
        hour = self.now.hour
        return "morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 18 else "evening"

    def percent_bucket(self) -> float:
        """A stable 0–100 bucket per caller: the same caller always lands in the same split."""
        digest = hashlib.sha256(self.caller.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 * 100

    def template_context(self) -> dict[str, Any]:
        """What prompt templates see; collected secure input only as a mask (`for_templates`)."""
        return {
            "customer": dict(self.facts.attributes) if self.facts.known else None,
            "line": {"number": self.line.number, "name": self.line.name},
            "time_of_day": self.time_of_day,
            "calendar": asdict(self.calendar),
            "notices": [n.for_language(self.language) for n in self.notices],
            "vars": {name: for_templates(value) for name, value in self.variables.items()},
        }


def matches(test: Condition, ctx: FlowContext) -> bool:
    """All tests of one `if` hold (AND); a test the condition does not set holds."""
    facts = ctx.facts
    return (
        (test.segment is None or (facts.known and facts.text("segment") in test.segment))
        and (test.language is None or ctx.language in test.language)
        and (test.line is None or ctx.line.number in test.line)
        and (test.known is None or facts.known == test.known)
        and (test.flag is None or facts.flag(test.flag))
        and all(facts.within_days(name, days, ctx.now.date()) for name, days in test.within_days.items())
        and (test.calendar is None or ctx.calendar.status == test.calendar)
        and (test.percent is None or ctx.percent_bucket() < test.percent)
        and (test.notices is None or bool(ctx.notices) == test.notices)
        and (test.authenticated is None or ctx.authenticated == test.authenticated)
    )
