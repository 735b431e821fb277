"""Today's totals on the live view (`hotline monitor`, the wallboard): the calls of the bank's day so
far, counted from the journeys in PostgreSQL — so they survive a restart and include every server's
calls — in one aggregate statement per refresh.

"Today" is the local day, in the business calendar's time zone for all lines (Asia/Shanghai unless
`hotline calendar timezone` says otherwise), that holds the database's clock: the readers (every
server, every `hotline monitor`) agree on it whatever their own clocks say. A call counts on the day
it started, as `hotline kpi --day` counts it: `calls` are those that have ended (by outcome; `errors`
is the `error` outcome), `to_agents` their hand-offs to agent queues, `service_failures` the
services that failed on them — in progress calls show in the live part, not here.

`DayTotalsKeeper` is what a reader shows: the last totals read, marked `stale` (with when they were
read) once a read fails, or `unknown` if none has succeeded — never numbers that look current.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from agi_app.calendar.model import ALL_LINES, DEFAULT_TIMEZONE
from agi_app.monitoring.live import Snapshot
from agi_app.monitoring.live_store import Executor

# The time zone as `load_calendar(conn, None)` settles it (the all-lines setting, else the default);
# the day's bounds are local midnights, so a day is 23 or 25 hours where the zone changes its clocks.
# The day's calls are found through calls_started_at, and each one's hand-offs and failed services
# through their tables' primary keys (call_id first): the work grows with the day's calls, never
# with the history kept (a join would have the planner, blind to the bounds, scan those tables whole).
_TOTALS = """
WITH bounds AS MATERIALIZED (
    SELECT name, local_day, local_day::timestamp AT TIME ZONE name AS day_start,
           (local_day + 1)::timestamp AT TIME ZONE name AS day_end
    FROM (SELECT name, (COALESCE($3::timestamptz, now()) AT TIME ZONE name)::date AS local_day
          FROM (SELECT COALESCE((SELECT timezone FROM calendar_settings WHERE scope = $1), $2) AS name) zone) z
), ended AS MATERIALIZED (
    SELECT c.outcome,
           (SELECT count(*) FROM queue_legs q WHERE q.call_id = c.call_id) AS to_agents,
           (SELECT count(*) FROM call_services s WHERE s.call_id = c.call_id AND s.result = 'failed') AS failures
    FROM calls c JOIN bounds b ON c.started_at >= b.day_start AND c.started_at < b.day_end
    WHERE c.outcome IS NOT NULL
)
SELECT b.name AS timezone, b.local_day AS day,
       (SELECT COALESCE(jsonb_object_agg(outcome, calls), '{}'::jsonb)::text
        FROM (SELECT outcome, count(*) AS calls FROM ended GROUP BY outcome) o) AS outcomes,
       (SELECT COALESCE(sum(to_agents), 0)::bigint FROM ended) AS to_agents,
       (SELECT COALESCE(sum(failures), 0)::bigint FROM ended) AS service_failures
FROM bounds b
"""


@dataclass(frozen=True)
class DayTotals:
    day: date
    timezone: str
    outcomes: dict[str, int]
    to_agents: int
    service_failures: int

    def as_json(self) -> Snapshot:
        return {"day": self.day.isoformat(), "timezone": self.timezone, "calls": sum(self.outcomes.values()),
                "to_agents": self.to_agents, "errors": self.outcomes.get("error", 0),
                "service_failures": self.service_failures, "outcomes": dict(sorted(self.outcomes.items()))}


async def read_day_totals(db: Executor, at: datetime | None = None) -> DayTotals:
    """The totals of the local day holding `at` (None: the database's now)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _read(conn, at)
    return await _read(db, at)


async def _read(conn: asyncpg.Connection, at: datetime | None) -> DayTotals:
    async with conn.transaction(readonly=True):
        # The plan's cost grows with the day's calls past the JIT threshold; compiling it would take
        # far longer (most of a second at a few thousand calls) than counting them does (milliseconds).
        await conn.execute("SET LOCAL jit = off")
        row = await conn.fetchrow(_TOTALS, ALL_LINES, DEFAULT_TIMEZONE, at)
    assert row is not None  # one row: `bounds` always has one
    outcomes: dict[str, int] = json.loads(row["outcomes"])
    return DayTotals(row["day"], row["timezone"], outcomes, row["to_agents"], row["service_failures"])


class DayTotalsKeeper:
    """What a reader shows of today's totals: the last read, and whether it still holds."""

    def __init__(self) -> None:
        self._last: DayTotals | None = None
        self._as_of: datetime | None = None

    def read(self, totals: DayTotals, at: datetime | None = None) -> Snapshot:
        """A read succeeded: these are the totals now."""
        self._last, self._as_of = totals, at or datetime.now(UTC)
        return self._shown(stale=False)

    def failed(self) -> Snapshot:
        """A read failed or ran past its budget: the last totals, marked stale (or unknown)."""
        return self._shown(stale=True)

    def _shown(self, *, stale: bool) -> Snapshot:
        if self._last is None or self._as_of is None:
            return {"known": False, "stale": True, "as_of": None}
        return {**self._last.as_json(), "known": True, "stale": stale, "as_of": self._as_of.isoformat()}
