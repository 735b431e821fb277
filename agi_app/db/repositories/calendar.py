"""The business calendar in PostgreSQL (parameterised SQL only).

Reads build a pure `Calendar` (agi_app/calendar/model.py) holding the '*' rows and the line's rows;
the model decides precedence, so the SQL stays simple. Writes are plain statements meant to run
inside the caller's transaction, together with the audit record of the change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

import asyncpg

from agi_app.calendar.model import (
    ALL_LINES,
    DEFAULT_TIMEZONE,
    Calendar,
    DayRule,
    Interval,
    WeeklyHours,
    check_scope,
    format_time,
    zone,
)


def _scopes(line: str | None) -> list[str]:
    return [ALL_LINES] if line is None or line == ALL_LINES else [ALL_LINES, check_scope(line)]


@dataclass(frozen=True)
class CalendarRules:
    """The stored rules of some scopes (time zones, weekly hours, dated rules), from which the
    calendar of any of their lines is built without reading again (the start-facts cache)."""

    zones: dict[str, str]
    weekly: tuple[WeeklyHours, ...]
    days: tuple[DayRule, ...]

    def calendar(self, line: str | None) -> Calendar:
        """The calendar `line` sees ('*' alone when line is None): its rules over the '*' ones."""
        scopes = _scopes(line)
        timezone = self.zones.get(scopes[-1]) or self.zones.get(ALL_LINES) or DEFAULT_TIMEZONE
        return Calendar(timezone, tuple(w for w in self.weekly if w.scope in scopes),
                        tuple(d for d in self.days if d.scope in scopes), None if line == ALL_LINES else line)


async def load_calendar(conn_or_pool: asyncpg.Connection | asyncpg.Pool, line: str | None) -> Calendar:
    """The calendar `line` sees ('*' alone when line is None), ready for `Calendar.state`.

    All dated rules are loaded, past ones too, so `status --at` and previews work for any date;
    the tables hold a few rows per year. Raises ValueError if the stored time zone is unknown to
    this host's zoneinfo (the caller decides how to degrade)."""
    return (await load_rules(conn_or_pool, _scopes(line))).calendar(line)


async def load_rules(conn_or_pool: asyncpg.Connection | asyncpg.Pool, scopes: list[str] | None = None) -> CalendarRules:
    """The rules of `scopes` (None: of every scope), read on one connection."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _load(conn, scopes)
    return await _load(conn_or_pool, scopes)


async def _load(conn: asyncpg.Connection, scopes: list[str] | None) -> CalendarRules:
    zones = {r["scope"]: r["timezone"] for r in await conn.fetch(
        "SELECT scope, timezone FROM calendar_settings WHERE $1::text[] IS NULL OR scope = ANY($1::text[])", scopes)}
    grouped: dict[tuple[str, int], list[Interval]] = defaultdict(list)
    for r in await conn.fetch(
            "SELECT scope, weekday, opens, closes FROM calendar_weekly_hours"
            " WHERE $1::text[] IS NULL OR scope = ANY($1::text[]) ORDER BY scope, weekday, opens", scopes):
        intervals = grouped[(r["scope"], r["weekday"])]
        if r["opens"] is not None:
            intervals.append((r["opens"], r["closes"]))
    weekly = tuple(WeeklyHours(weekday, tuple(iv), scope) for (scope, weekday), iv in grouped.items())
    days = tuple(
        DayRule(r["day"], r["kind"], r["name"], r["opens"], r["closes"], r["scope"])
        for r in await conn.fetch(
            "SELECT scope, day, kind, opens, closes, name FROM calendar_days"
            " WHERE $1::text[] IS NULL OR scope = ANY($1::text[]) ORDER BY day, scope", scopes))
    return CalendarRules(zones, weekly, days)


async def timezone_of(conn: asyncpg.Connection, scope: str) -> str | None:
    """The time zone set for exactly this scope (None: inherited or default)."""
    value: str | None = await conn.fetchval("SELECT timezone FROM calendar_settings WHERE scope = $1",
                                            check_scope(scope))
    return value


async def set_timezone(conn: asyncpg.Connection, scope: str, timezone: str) -> str | None:
    """Set a scope's time zone; returns the previous one (for the audit record)."""
    zone(timezone)
    previous = await timezone_of(conn, scope)
    await conn.execute(
        "INSERT INTO calendar_settings (scope, timezone) VALUES ($1, $2)"
        " ON CONFLICT (scope) DO UPDATE SET timezone = EXCLUDED.timezone, updated_at = now()",
        scope, timezone)
    return previous


async def weekly_rows(conn: asyncpg.Connection, scope: str, weekdays: Sequence[int]) -> dict[int, list[Interval]]:
    """The stored hours of exactly this scope for these weekdays ([] = explicitly closed)."""
    found: dict[int, list[Interval]] = {}
    for r in await conn.fetch(
            "SELECT weekday, opens, closes FROM calendar_weekly_hours"
            " WHERE scope = $1 AND weekday = ANY($2::smallint[]) ORDER BY weekday, opens",
            check_scope(scope), list(weekdays)):
        intervals = found.setdefault(r["weekday"], [])
        if r["opens"] is not None:
            intervals.append((r["opens"], r["closes"]))
    return found


async def set_weekly_hours(conn: asyncpg.Connection, scope: str, weekdays: Sequence[int],
                           intervals: Sequence[Interval]) -> dict[int, list[Interval]]:
    """Replace the scope's hours on these weekdays; no intervals = closed on those days.

    Validates through the model first (order, overlaps). Returns the previous rows."""
    for weekday in weekdays:
        WeeklyHours(weekday, tuple(intervals), scope)
    previous = await weekly_rows(conn, scope, weekdays)
    await conn.execute("DELETE FROM calendar_weekly_hours WHERE scope = $1 AND weekday = ANY($2::smallint[])",
                       scope, list(weekdays))
    rows: list[tuple[str, int, time | None, time | None]] = (
        [(scope, d, o, c) for d in weekdays for o, c in intervals] if intervals
        else [(scope, d, None, None) for d in weekdays])
    await conn.executemany(
        "INSERT INTO calendar_weekly_hours (scope, weekday, opens, closes) VALUES ($1, $2, $3, $4)", rows)
    return previous


async def clear_weekly_hours(conn: asyncpg.Connection, scope: str,
                             weekdays: Sequence[int]) -> dict[int, list[Interval]]:
    """Remove the scope's own rule for these weekdays (a line then inherits '*'); returns what was there."""
    previous = await weekly_rows(conn, scope, weekdays)
    await conn.execute("DELETE FROM calendar_weekly_hours WHERE scope = $1 AND weekday = ANY($2::smallint[])",
                       check_scope(scope), list(weekdays))
    return previous


async def get_day(conn: asyncpg.Connection, scope: str, day: date) -> DayRule | None:
    r = await conn.fetchrow("SELECT scope, day, kind, opens, closes, name FROM calendar_days"
                            " WHERE scope = $1 AND day = $2", check_scope(scope), day)
    return DayRule(r["day"], r["kind"], r["name"], r["opens"], r["closes"], r["scope"]) if r else None


async def put_day(conn: asyncpg.Connection, rule: DayRule) -> DayRule | None:
    """Add or replace the dated rule of (scope, date); returns the rule it replaced, if any."""
    previous = await get_day(conn, rule.scope, rule.day)
    await conn.execute(
        "INSERT INTO calendar_days (scope, day, kind, opens, closes, name) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (scope, day) DO UPDATE SET kind = EXCLUDED.kind, opens = EXCLUDED.opens,"
        " closes = EXCLUDED.closes, name = EXCLUDED.name, updated_at = now()",
        rule.scope, rule.day, rule.kind, rule.opens, rule.closes, rule.name)
    return previous


async def remove_day(conn: asyncpg.Connection, scope: str, day: date, kinds: Iterable[str]) -> DayRule | None:
    """Delete the dated rule of (scope, date) if its kind is one of `kinds` (so `holiday remove`
    never deletes an exception by accident); returns what was deleted, None if nothing matched."""
    r = await conn.fetchrow(
        "DELETE FROM calendar_days WHERE scope = $1 AND day = $2 AND kind = ANY($3::text[])"
        " RETURNING scope, day, kind, opens, closes, name", check_scope(scope), day, list(kinds))
    return DayRule(r["day"], r["kind"], r["name"], r["opens"], r["closes"], r["scope"]) if r else None


def rule_dict(rule: DayRule) -> dict[str, Any]:
    """A dated rule as JSON-ready data (CLI output and audit details)."""
    return {"date": rule.day.isoformat(), "kind": rule.kind, "name": rule.name, "scope": rule.scope,
            "opens": format_time(rule.opens) if rule.opens is not None else None,
            "closes": format_time(rule.closes) if rule.closes is not None else None}
