"""What the hotline knows at the start of a call, fetched at once, each under its time budget: who
is calling (the directory's lookup budget), the business calendar, a live emergency and valid
service notices (the call-start budget).

Each piece degrades on its own: a slow or broken source means an unknown caller, a calendar that
is open, no emergency, no notices — the caller is always served, and the problem is logged. The
sources are functions handed in at wiring time (`serve/` gives the database's repositories), so
the engine knows no database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from agi_app.budget import within
from agi_app.calendar.info import CalendarInfo
from agi_app.calendar.model import DEFAULT_TIMEZONE, Calendar
from agi_app.directory.service import Directory, Identification
from agi_app.logs import log_event
from agi_app.operations.model import Emergency, Notice

log = logging.getLogger("hotline.state")
T = TypeVar("T")

CalendarSource = Callable[[str], Awaitable[Calendar]]  # a line's calendar
EmergencySource = Callable[[str, datetime], Awaitable[Emergency | None]]  # live on a line at an instant
NoticesSource = Callable[[str, date], Awaitable[list[Notice]]]  # valid on a line on a day


@dataclass(frozen=True)
class StartFacts:
    """The facts a call starts with (the flow's context is made of them)."""

    identity: Identification
    now: datetime  # in the calendar's time zone
    calendar: CalendarInfo
    emergency: Emergency | None
    notices: list[Notice]


class StartFactsLoader:
    def __init__(self, directory: Directory, *, budget_s: float, calendar: CalendarSource | None = None,
                 emergency: EmergencySource | None = None, notices: NoticesSource | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.directory = directory
        self.budget_s = budget_s
        self.calendar = calendar
        self.emergency = emergency
        self.notices = notices
        self.clock = clock or (lambda: datetime.now(ZoneInfo(DEFAULT_TIMEZONE)))

    async def load(self, *, caller: str, line: str, call_id: str, at: datetime | None = None) -> StartFacts:
        at = at or self.clock()
        identity, calendar, emergency, notices = await asyncio.gather(
            self.directory.identify(caller, call_id=call_id),
            self.guard("calendar", call_id, self._calendar(line), Calendar()),
            self.guard("emergency", call_id, self._emergency(line, at), None),
            self.guard("notices", call_id, self._notices(line, at), []),
        )
        state = calendar.state(at)
        info = CalendarInfo(state.status, state.holiday_name, state.next_open)
        return StartFacts(identity, state.at, info, emergency, notices)

    async def _calendar(self, line: str) -> Calendar:
        return Calendar() if self.calendar is None else await self.calendar(line)

    async def _emergency(self, line: str, at: datetime) -> Emergency | None:
        return None if self.emergency is None else await self.emergency(line, at)

    async def _notices(self, line: str, at: datetime) -> list[Notice]:
        return [] if self.notices is None else await self.notices(line, at.date())

    async def guard(self, what: str, call_id: str, source: Awaitable[T], fallback: T, **fields: object) -> T:
        """`source` within the call-start budget, else `fallback` at once (the safe default), logged
        as `<what>_unavailable` with `fields`."""
        try:
            return await within(self.budget_s, source, what=what, call_id=call_id)
        except Exception as exc:  # noqa: BLE001 - every failure degrades to the safe default
            log_event(log, f"{what}_unavailable", level=logging.WARNING, call=call_id, error=type(exc).__name__,
                      **fields)
            return fallback
