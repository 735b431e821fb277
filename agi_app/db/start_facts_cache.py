"""What every call reads at its start besides the caller — the business calendar, emergencies,
notices — kept in memory instead of three reads per call, and never staler than a change's
announcement.

Migration 014's triggers announce every change to those tables on `CHANNEL`, whoever makes it (a
`hotline` command, plain SQL), at commit. The server's change listener (`serve/reloader.py`, the
connection that follows menu publications) LISTENs on it too, and the cache is trusted only while
that LISTEN is in place: `listening()` once it is (a change made before is read again at the next
use), `invalidate()` at each announcement, `deaf()` when the connection is lost — from then on each
call reads the database again, as without a cache, until it listens again.

Time-dependent choices (an emergency's start and end, a notice's dates, opening hours) are made
per call from the rows held, by the same rules as an uncached read (`operations.model`,
`calendar.model`): a cache loaded yesterday still answers today. One read at a time fills it,
shared by the calls that need it meanwhile; a read overtaken by a change serves only the calls
that were waiting for it, never a later one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

from agi_app.budget import within
from agi_app.calendar.model import Calendar
from agi_app.db.repositories import calendar, operations
from agi_app.db.repositories.calendar import CalendarRules
from agi_app.logs import log_event
from agi_app.operations import model
from agi_app.operations.model import Emergency, Notice, ScheduledEmergency, ScheduledNotice

log = logging.getLogger("hotline.start_facts")

#: Where migration 014's triggers announce a change to the calendar, emergencies or notices.
CHANNEL = "hotline_start_facts"
#: Notices whose last day is this far behind today (UTC) are not kept: no caller's local date is
#: that far behind.
_NOTICE_LOOKBACK = timedelta(days=2)


@dataclass
class _Snapshot:
    rules: CalendarRules
    emergencies: list[ScheduledEmergency]
    notices: list[ScheduledNotice]
    calendars: dict[str, Calendar] = field(default_factory=dict)  # built per line on first use

    def calendar(self, line: str) -> Calendar:
        found = self.calendars.get(line)
        if found is None:
            found = self.calendars[line] = self.rules.calendar(line)
        return found


class StartFactsCache:
    """The sources `engine.start_facts.StartFactsLoader` takes, answered from memory while the
    server listens for changes, from the database otherwise."""

    def __init__(self, pool: asyncpg.Pool, *, budget_s: float) -> None:
        self.pool = pool
        self.budget_s = budget_s  # one read of everything the cache holds
        self.reads = 0  # how many reads filled it (one overtaken by a change does not count)
        self._listening = False
        self._snapshot: _Snapshot | None = None
        self._reading: asyncio.Task[_Snapshot] | None = None
        self._reads: set[asyncio.Task[_Snapshot]] = set()  # every read still running, for `close`
        self._generation = 0

    @property
    def trusted(self) -> bool:
        """Answering from memory (the announcements are heard), rather than reading per call."""
        return self._listening

    @property
    def filled(self) -> bool:
        """Holding a read not overtaken by any change since."""
        return self._snapshot is not None

    # --- the change listener's side ---------------------------------------------------------
    def listening(self) -> None:
        """LISTEN is in place: changes from now on are announced; what is held may predate it."""
        self._listening = True
        self.invalidate()

    def deaf(self) -> None:
        """The listening connection is lost: changes may go unannounced; read per call again."""
        self._listening = False
        self.invalidate()

    def invalidate(self, *_announcement: object) -> None:
        """A change was announced (asyncpg's listener arguments are ignored): the next call reads
        again, and a read under way is not kept, for it may have started before the change."""
        self._generation += 1
        self._snapshot = None
        self._reading = None

    # --- the sources ------------------------------------------------------------------------
    async def calendar(self, line: str) -> Calendar:
        if not self._listening:
            return await calendar.load_calendar(self.pool, line)
        return (await self._current()).calendar(line)

    async def emergency(self, line: str, at: datetime) -> Emergency | None:
        if not self._listening:
            return await operations.live_emergency(self.pool, line, at)
        return model.live_emergency((await self._current()).emergencies, line, at)

    async def notices(self, line: str, day: date) -> list[Notice]:
        if not self._listening:
            return await operations.valid_notices(self.pool, line, day)
        return model.valid_notices((await self._current()).notices, line, day)

    async def _current(self) -> _Snapshot:
        if self._snapshot is not None:
            return self._snapshot
        if self._reading is None:
            self._reading = asyncio.create_task(self._read(self._generation), name="start-facts-read")
            self._reads.add(self._reading)
            self._reading.add_done_callback(self._reads.discard)
        # Shielded: a call cut at its own budget leaves the read to the others waiting for it.
        return await asyncio.shield(self._reading)

    async def _read(self, generation: int) -> _Snapshot:
        try:
            snapshot = await within(self.budget_s, self._fetch(), what="start_facts_cache")
        except BaseException:
            if self._generation == generation:
                self._reading = None  # the next call tries again
            raise
        if self._generation == generation:
            self._snapshot, self._reading = snapshot, None
            self.reads += 1
            log_event(log, "start_facts_cached", emergencies=len(snapshot.emergencies),
                      notices=len(snapshot.notices))
        return snapshot

    async def _fetch(self) -> _Snapshot:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            rules = await calendar.load_rules(conn)
            emergencies = await operations.scheduled_emergencies(conn, now)
            notices = await operations.scheduled_notices(conn, (now - _NOTICE_LOOKBACK).date())
        return _Snapshot(rules, emergencies, notices)

    async def close(self) -> None:
        """Cancel the reads under way (the server is stopping)."""
        self.deaf()
        reads = set(self._reads)
        for task in reads:
            task.cancel()
        if reads:
            await asyncio.wait(reads)
