"""What the hotline knows at the start of a call, fetched at once under one time budget: who is
calling, the business calendar, a live emergency, valid service notices.

Each piece degrades on its own: a slow or broken database means an unknown caller, a calendar
that is open, no notices — the caller is always served, and the problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import asyncpg

from agi_app.calendar.model import DEFAULT_TIMEZONE, Calendar
from agi_app.db.repositories import calendar as calendar_repo
from agi_app.db.repositories import operations
from agi_app.directory.service import Directory, Identification
from agi_app.flows.context import CalendarInfo, Emergency, Notice
from agi_app.logs import log_event

log = logging.getLogger("hotline.state")
T = TypeVar("T")


@dataclass(frozen=True)
class CallState:
    identity: Identification
    now: datetime  # in the calendar's time zone
    calendar: CalendarInfo
    emergency: Emergency | None
    notices: list[Notice]


class CallStateLoader:
    def __init__(self, directory: Directory, pool: asyncpg.Pool | None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.directory = directory
        self.pool = pool
        self.clock = clock or (lambda: datetime.now(ZoneInfo(DEFAULT_TIMEZONE)))

    async def load(self, *, caller: str, line: str, call_id: str, at: datetime | None = None) -> CallState:
        budget = self.directory.budget_s
        at = at or self.clock()
        identity, calendar, emergency, notices = await asyncio.gather(
            self.directory.identify(caller, call_id=call_id),
            self._guard("calendar", call_id, budget, self._calendar(line), Calendar()),
            self._guard("emergency", call_id, budget, self._emergency(line, at), None),
            self._guard("notices", call_id, budget, self._notices(line, at), []),
        )
        state = calendar.state(at)
        info = CalendarInfo(state.status, state.holiday_name, state.next_open)
        return CallState(identity, state.at, info, emergency, notices)

    async def _calendar(self, line: str) -> Calendar:
        if self.pool is None:
            return Calendar()
        return await calendar_repo.load_calendar(self.pool, line)

    async def _emergency(self, line: str, at: datetime) -> Emergency | None:
        return None if self.pool is None else await operations.live_emergency(self.pool, line, at)

    async def _notices(self, line: str, at: datetime) -> list[Notice]:
        return [] if self.pool is None else await operations.valid_notices(self.pool, line, at.date())

    async def _guard(self, what: str, call_id: str, budget: float, coro: Awaitable[T], fallback: T) -> T:
        try:
            return await asyncio.wait_for(coro, budget)
        except Exception as exc:  # noqa: BLE001 - every failure degrades to the safe default
            log_event(log, f"{what}_unavailable", level=logging.WARNING, call=call_id, error=type(exc).__name__)
            return fallback
