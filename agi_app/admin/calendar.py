"""Calendar administration: the verbs of `hotline calendar`, and the time zone local times mean.

Every change runs in one transaction with its audit record (`calendar.<action>`), so the log never
claims a change that did not happen. The rules (intervals, overlaps, zones, which rule is in
effect) are the calendar model's (agi_app/calendar/model.py); this module applies them to what is
stored and returns typed results, which `as_json()` turns into the CLI's `--json` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Literal

import asyncpg

from agi_app.admin import Refused
from agi_app.calendar.localtime import parse_local
from agi_app.calendar.model import (
    ALL_LINES,
    WEEKDAY_NAMES,
    Calendar,
    CalendarState,
    DayRule,
    Interval,
    WeekdayHours,
    WeeklyHours,
    check_scope,
    format_time,
    zone,
)
from agi_app.db.repositories import audit
from agi_app.db.repositories import calendar as repo


def hours_json(intervals: tuple[Interval, ...] | list[Interval]) -> list[list[str]]:
    return [[format_time(o), format_time(c)] for o, c in intervals]


def _span(scope: str, dates: list[date]) -> str:
    where = f" on line {scope}" if scope != ALL_LINES else ""
    return (dates[0].isoformat() if len(dates) == 1 else f"{dates[0]}..{dates[-1]}") + where


# -- reading ---------------------------------------------------------------------------------------

async def load(conn: asyncpg.Connection, line: str | None) -> Calendar:
    """The calendar `line` sees (None or '*': the all-lines calendar)."""
    try:
        scope = check_scope(line) if line else ALL_LINES
    except ValueError as exc:
        raise Refused(str(exc)) from None
    try:
        return await repo.load_calendar(conn, None if scope == ALL_LINES else scope)
    except ValueError as exc:  # e.g. a stored zone this host's zoneinfo does not know
        raise Refused(f"the stored calendar is not usable: {exc}") from None


async def local_time(conn: asyncpg.Connection, text: str | None, line: str | None) -> datetime:
    """`text` as the line's callers mean it (agi_app/calendar/localtime.py: the line's calendar
    zone); now, in that zone, when `text` is None."""
    return _read(text, (await load(conn, line)).tz)


def _read(text: str | None, tz: tzinfo) -> datetime:
    if text is None:
        return datetime.now(tz)
    try:
        return parse_local(text, tz)
    except ValueError as exc:
        raise Refused(str(exc)) from None


@dataclass(frozen=True)
class DatedRule:
    rule: DayRule
    in_effect: bool  # False: the line's own rule for that date hides this '*' one

    def as_json(self) -> dict[str, Any]:
        return {**repo.rule_dict(self.rule), "weekday": WEEKDAY_NAMES[self.rule.day.weekday()],
                "in_effect": self.in_effect}


@dataclass(frozen=True)
class CalendarView:
    """What `show` lists: the usual week and the dated rules (upcoming, or all)."""

    calendar: Calendar
    weekly: tuple[WeekdayHours, ...]
    days: tuple[DatedRule, ...]

    def as_json(self) -> dict[str, Any]:
        cal = self.calendar
        return {"line": cal.line or ALL_LINES, "timezone": cal.timezone, "always_open": cal.always_open,
                "weekly": [{"weekday": w.weekday, "day": WEEKDAY_NAMES[w.weekday], "status": w.kind,
                            "hours": hours_json(w.intervals), "scope": w.scope,
                            "source": w.source} for w in self.weekly],
                "days": [d.as_json() for d in self.days]}


async def show(conn: asyncpg.Connection, line: str | None, *, include_past: bool) -> CalendarView:
    cal = await load(conn, line)
    today = datetime.now(UTC).astimezone(cal.tz).date()
    days = tuple(DatedRule(r, cal.in_effect(r)) for r in cal.dated_rules() if include_past or r.day >= today)
    return CalendarView(cal, tuple(cal.usual_hours(d) for d in range(7)), days)


@dataclass(frozen=True)
class CalendarStatus:
    calendar: Calendar
    state: CalendarState

    def as_json(self) -> dict[str, Any]:
        state = self.state
        return {"status": state.status, "at": state.at.isoformat(), "timezone": self.calendar.timezone,
                "line": self.calendar.line or ALL_LINES, "holiday_name": state.holiday_name, "name": state.name,
                "source": state.source,
                "next_open": state.next_open.isoformat() if state.next_open else None,
                "closes_at": state.closes_at.isoformat() if state.closes_at else None}


async def status(conn: asyncpg.Connection, line: str | None, at: str | None) -> CalendarStatus:
    """Open, closed or holiday at `at` (a local time as typed, see `local_time`; None: now)."""
    cal = await load(conn, line)
    return CalendarStatus(cal, cal.state(_read(at, cal.tz)))


# -- weekly hours ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class HoursChange:
    scope: str
    weekdays: tuple[int, ...]
    intervals: tuple[Interval, ...] | None  # None: the scope's own rule was removed; (): closed
    previous: dict[int, list[Interval]]

    @property
    def days(self) -> list[str]:
        return [WEEKDAY_NAMES[d] for d in self.weekdays]

    def as_json(self) -> dict[str, Any]:
        """Also the audit record's detail."""
        detail: dict[str, Any] = {"scope": self.scope, "days": self.days}
        if self.intervals is None:
            detail["unset"] = True
        else:
            detail["hours"] = hours_json(self.intervals)
            detail["closed"] = not self.intervals
        detail["previous"] = {WEEKDAY_NAMES[d]: hours_json(iv) for d, iv in sorted(self.previous.items())}
        return detail


async def set_hours(conn: asyncpg.Connection, scope: str, weekdays: tuple[int, ...],
                    intervals: tuple[Interval, ...] | None, *, actor: str) -> HoursChange:
    """Replace the scope's hours on these weekdays (no intervals: closed those days); None removes
    the scope's own rule (a line then inherits the all-lines hours)."""
    try:
        for weekday in weekdays:
            WeeklyHours(weekday, intervals or (), check_scope(scope))
    except ValueError as exc:
        raise Refused(str(exc)) from None
    async with conn.transaction():
        if intervals is None:
            previous = await repo.clear_weekly_hours(conn, scope, weekdays)
        else:
            previous = await repo.set_weekly_hours(conn, scope, weekdays, intervals)
        change = HoursChange(scope, weekdays, intervals, previous)
        await audit.record(conn, actor, "calendar.hours", change.as_json())
    return change


# -- holidays and exceptions -----------------------------------------------------------------------

@dataclass(frozen=True)
class DayChange:
    rule: DayRule
    replaced: DayRule | None

    def as_json(self) -> dict[str, Any]:
        return {**repo.rule_dict(self.rule), "replaced": repo.rule_dict(self.replaced) if self.replaced else None}


@dataclass(frozen=True)
class DaysAdded:
    changes: tuple[DayChange, ...]

    def as_json(self) -> dict[str, Any]:
        return {"days": [c.as_json() for c in self.changes]}


@dataclass(frozen=True)
class DaysRemoved:
    what: Literal["holiday", "exception"]
    rules: tuple[DayRule, ...]

    def as_json(self) -> dict[str, Any]:
        return {"removed": [repo.rule_dict(r) for r in self.rules]}


async def _put_days(conn: asyncpg.Connection, action: str, rules: list[DayRule], actor: str) -> DaysAdded:
    async with conn.transaction():
        done = DaysAdded(tuple([DayChange(rule, await repo.put_day(conn, rule)) for rule in rules]))
        await audit.record(conn, actor, action, {"scope": rules[0].scope, **done.as_json()})
    return done


def _rules(dates: list[date], kind: Literal["holiday", "closed", "open"], name: str, scope: str,
           hours: Interval | None = None) -> list[DayRule]:
    opens, closes = hours if hours else (None, None)
    try:
        return [DayRule(d, kind, name.strip(), opens, closes, check_scope(scope)) for d in dates]
    except ValueError as exc:
        raise Refused(str(exc)) from None


async def add_holidays(conn: asyncpg.Connection, dates: list[date], name: str, scope: str, *,
                       actor: str) -> DaysAdded:
    """A holiday on each date; it replaces an exception on that date (the result says so)."""
    return await _put_days(conn, "calendar.holiday_add", _rules(dates, "holiday", name, scope), actor)


async def add_exceptions(conn: asyncpg.Connection, dates: list[date], hours: Interval | None, name: str,
                         scope: str, *, actor: str) -> DaysAdded:
    """Special opening hours on each date, or closed (hours None) — closed is not a holiday."""
    rules = _rules(dates, "open", name, scope, hours) if hours else _rules(dates, "closed", name, scope)
    return await _put_days(conn, "calendar.exception_add", rules, actor)


async def _remove_days(conn: asyncpg.Connection, action: str, what: Literal["holiday", "exception"],
                       kinds: tuple[str, ...], scope: str, dates: list[date], actor: str) -> DaysRemoved:
    async with conn.transaction():
        removed = DaysRemoved(what, tuple([rule for day in dates
                                           if (rule := await repo.remove_day(conn, scope, day, kinds)) is not None]))
        if not removed.rules:
            raise Refused(f"no {what} on {_span(scope, dates)}")
        await audit.record(conn, actor, action, {"scope": scope, "days": removed.as_json()["removed"]})
    return removed


async def remove_holidays(conn: asyncpg.Connection, dates: list[date], scope: str, *, actor: str) -> DaysRemoved:
    """Remove the holidays on these dates (exceptions stay); refused when there is none."""
    return await _remove_days(conn, "calendar.holiday_remove", "holiday", ("holiday",), scope, dates, actor)


async def remove_exceptions(conn: asyncpg.Connection, dates: list[date], scope: str, *,
                            actor: str) -> DaysRemoved:
    """Remove the exceptions on these dates (holidays stay); refused when there is none."""
    return await _remove_days(conn, "calendar.exception_remove", "exception", ("open", "closed"), scope, dates,
                              actor)


# -- time zone -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZoneSetting:
    scope: str
    timezone: str
    previous: str | None = None
    changed: bool = False  # False: only read

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"line": self.scope, "timezone": self.timezone}
        return {**shown, "previous": self.previous} if self.changed else shown


async def timezone_of(conn: asyncpg.Connection, line: str | None) -> ZoneSetting:
    """The zone the line's calendar uses (its own, else the all-lines one, else the default)."""
    cal = await load(conn, line)
    return ZoneSetting(line or ALL_LINES, cal.timezone)


async def set_timezone(conn: asyncpg.Connection, scope: str, name: str, *, actor: str) -> ZoneSetting:
    """Set the IANA zone of a scope's hours (wall-clock times; daylight saving time handled)."""
    try:
        zone(name)
        check_scope(scope)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    async with conn.transaction():
        previous = await repo.set_timezone(conn, scope, name)
        await audit.record(conn, actor, "calendar.timezone", {"scope": scope, "timezone": name, "previous": previous})
    return ZoneSetting(scope, name, previous, changed=True)
