"""`hotline calendar`: the business calendar (agent service hours, holidays, exceptions, time zone).

Every change runs in one transaction with its audit record (`calendar.<action>`), so the log never
claims a change that did not happen. Input is validated before the database is touched; bad input
exits 1 with a message that says what was expected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import asyncpg
import click

from agi_app.calendar.model import (
    ALL_LINES,
    MIDNIGHT,
    WEEKDAY_NAMES,
    Calendar,
    CalendarState,
    DayRule,
    Interval,
    WeeklyHours,
    check_scope,
    format_time,
    parse_time,
    parse_weekdays,
    zone,
)
from agi_app.cli.common import actor, dsn, echo_json, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories import audit
from agi_app.db.repositories import calendar as repo

T = TypeVar("T")
MAX_RANGE_DAYS = 366  # a date range longer than a year is a typo, not a holiday

line_option = click.option("--line", metavar="LINE",
                           help="A line number (e.g. 95001) whose own calendar to use; default: all lines ('*').")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


# -- input parsing (fail -> exit 1 with a clear message) -----------------------------------------

def _scope(line: str | None) -> str:
    try:
        return check_scope(line) if line else ALL_LINES
    except ValueError as exc:
        fail(str(exc))


def _dates(text: str) -> list[date]:
    """DATE or FIRST..LAST (inclusive), ISO dates: 2026-10-01 or 2026-10-01..2026-10-07."""
    first_text, sep, last_text = text.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if sep else first
    except ValueError:
        fail(f"bad date {text!r} (expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)")
    if last < first:
        fail(f"bad date range {text!r}: ends before it starts")
    if (last - first).days >= MAX_RANGE_DAYS:
        fail(f"bad date range {text!r}: longer than {MAX_RANGE_DAYS} days")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _times(opens: tuple[str, ...], closes: tuple[str, ...]) -> list[Interval]:
    if len(opens) != len(closes):
        fail("give --open and --close in pairs (one --close for every --open)")
    try:
        return [(parse_time(o), parse_time(c)) for o, c in zip(opens, closes, strict=True)]
    except ValueError as exc:
        fail(str(exc))


def _hours_text(intervals: tuple[Interval, ...] | list[Interval]) -> str:
    return ", ".join(f"{format_time(o)}-{format_time(c)}" for o, c in intervals)


def _hours_json(intervals: tuple[Interval, ...] | list[Interval]) -> list[list[str]]:
    return [[format_time(o), format_time(c)] for o, c in intervals]


# -- database plumbing ---------------------------------------------------------------------------

def _change(ctx: click.Context, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` in one transaction (the change and its audit record commit together)."""
    async def main() -> T:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            return await work(conn)

    return run(main())


def _load(ctx: click.Context, line: str | None) -> Calendar:
    scope = _scope(line)

    async def main() -> Calendar:
        async with connection(dsn(ctx)) as conn:
            return await repo.load_calendar(conn, None if scope == ALL_LINES else scope)

    try:
        return run(main())
    except ValueError as exc:  # e.g. a stored zone this host's zoneinfo does not know
        fail(f"the stored calendar is not usable: {exc}")


def _report(as_json: bool, text: str, detail: dict[str, Any]) -> None:
    if as_json:
        echo_json(detail)
    else:
        click.echo(text)


# -- commands ------------------------------------------------------------------------------------

@click.group()
def calendar() -> None:
    """Business calendar: when agents are available (self-service is always open).

    \b
    Per call the hotline decides: emergency notice -> holiday -> closed hours -> open hours.
    Rules for a date, in order: a holiday or exception for that date; else the weekly hours of
    its weekday; no weekly hours configured at all = open 24x7. A line's own rules (--line)
    replace the all-lines rules for the same date or weekday. Times are local to the calendar's
    time zone (default Asia/Shanghai); closing times are exclusive; 24:00 = until midnight.
    Overnight hours are two intervals on two days.
    """


@calendar.command("show")
@line_option
@click.option("--all", "show_all", is_flag=True, help="Include past holidays and exceptions.")
@json_option
@click.pass_context
def show(ctx: click.Context, line: str | None, show_all: bool, as_json: bool) -> None:
    """Weekly hours, upcoming holidays and exceptions, time zone."""
    cal = _load(ctx, line)
    today = datetime.now(UTC).astimezone(cal.tz).date()
    weekly: list[dict[str, Any]] = []
    for weekday, name in enumerate(WEEKDAY_NAMES):
        rule = cal.weekly_hours(weekday)
        intervals: tuple[Interval, ...]
        if rule is not None:
            intervals, source = rule.intervals, "weekly"
        elif cal.always_open:
            intervals, source = ((time.min, MIDNIGHT),), "always"
        else:
            intervals, source = (), "unset"
        weekly.append({"weekday": weekday, "day": name, "status": "open" if intervals else "closed",
                       "hours": _hours_json(intervals), "scope": rule.scope if rule else None,
                       "source": source})
    days = []
    for day_rule in sorted(cal.days, key=lambda r: (r.day, r.scope != ALL_LINES)):
        if day_rule.scope not in (ALL_LINES, cal.line) or (day_rule.day < today and not show_all):
            continue
        in_effect = cal.hours_on(day_rule.day).scope == day_rule.scope
        days.append({**repo.rule_dict(day_rule), "weekday": WEEKDAY_NAMES[day_rule.day.weekday()],
                     "in_effect": in_effect})
    data: dict[str, Any] = {"line": cal.line or ALL_LINES, "timezone": cal.timezone, "always_open": cal.always_open,
            "weekly": weekly, "days": days}
    if as_json:
        echo_json(data)
        return
    click.echo(f"calendar for {'line ' + cal.line if cal.line else 'all lines'}; time zone {cal.timezone}")
    if cal.always_open:
        click.echo("no weekly hours configured: agents available 24x7 (except holidays/exceptions)")
    for item in weekly:
        hours = ", ".join(f"{o}-{c}" for o, c in item["hours"]) if item["status"] == "open" else "closed"
        origin = f"  [line {item['scope']}]" if item["scope"] not in (None, ALL_LINES) else ""
        click.echo(f"  {item['day']}  {hours}{origin}")
    click.echo("holidays and exceptions:" if days else "no upcoming holidays or exceptions")
    for d in days:
        what = {"holiday": "holiday", "closed": "closed", "open": f"open {d['opens']}-{d['closes']}"}[d["kind"]]
        notes = [f"line {d['scope']}" if d["scope"] != ALL_LINES else "",
                 "" if d["in_effect"] else "overridden by the line's rule"]
        extra = "  [" + "; ".join(n for n in notes if n) + "]" if any(notes) else ""
        click.echo(f"  {d['date']} {d['weekday']}  {what}{'  ' + d['name'] if d['name'] else ''}{extra}")


def _state_json(cal: Calendar, state: CalendarState) -> dict[str, Any]:
    return {"status": state.status, "at": state.at.isoformat(), "timezone": cal.timezone,
            "line": cal.line or ALL_LINES, "holiday_name": state.holiday_name, "name": state.name,
            "source": state.source,
            "next_open": state.next_open.isoformat() if state.next_open else None,
            "closes_at": state.closes_at.isoformat() if state.closes_at else None}


@calendar.command("status")
@line_option
@click.option("--at", "at_text", metavar="TIME",
              help='When to evaluate, e.g. "2026-12-25 10:00" (calendar time zone) or with an offset; default now.')
@json_option
@click.pass_context
def status(ctx: click.Context, line: str | None, at_text: str | None, as_json: bool) -> None:
    """Open, closed or holiday now (or --at), and the next opening.

    A time without an offset is read in the calendar's time zone.
    """
    cal = _load(ctx, line)
    if at_text is None:
        at = datetime.now(UTC)
    else:
        try:
            at = datetime.fromisoformat(at_text.strip())
        except ValueError:
            fail(f'bad time {at_text!r} (expected e.g. "2026-12-25 10:00" or 2026-12-25T10:00+08:00)')
        if at.tzinfo is None:
            at = at.replace(tzinfo=cal.tz)
    state = cal.state(at)
    if as_json:
        echo_json(_state_json(cal, state))
        return
    when = state.at.strftime("%a %Y-%m-%d %H:%M %Z")
    if state.status == "open":
        until = f" until {state.closes_at.strftime('%a %Y-%m-%d %H:%M %Z')}" if state.closes_at else " (24x7)"
        click.echo(f"open at {when}{until}")
        return
    head = f"holiday ({state.name})" if state.status == "holiday" and state.name else state.status
    nxt = (f"; next open {state.next_open.strftime('%a %Y-%m-%d %H:%M %Z')}" if state.next_open
           else "; no opening within the next year")
    click.echo(f"{head} at {when}{nxt}")


@calendar.command("hours")
@click.option("--days", "days_text", metavar="DAYS", help="mon-fri, sat,sun, mon,wed-fri, weekdays, weekend or all.")
@click.option("--open", "opens", multiple=True, metavar="HH:MM", help="Opening time (repeat for several intervals).")
@click.option("--close", "closes", multiple=True, metavar="HH:MM", help="Closing time, exclusive; 24:00 = midnight.")
@click.option("--closed", is_flag=True, help="Closed all day on these days.")
@click.option("--unset", is_flag=True,
              help="Remove this scope's rule for these days (a line falls back to the all-lines hours).")
@line_option
@json_option
@click.pass_context
def hours(ctx: click.Context, days_text: str | None, opens: tuple[str, ...], closes: tuple[str, ...],
          closed: bool, unset: bool, line: str | None, as_json: bool) -> None:
    """Set weekly opening hours for some weekdays.

    The given days' hours in that scope (all lines, or --line) are replaced, not added to.

    \b
    hotline calendar hours --days mon-fri --open 08:00 --close 20:00
    hotline calendar hours --days sat --open 09:00 --close 12:00 --open 13:00 --close 17:00
    hotline calendar hours --days sun --closed
    hotline calendar hours --days sat,sun --unset --line 95001
    """
    if not days_text:
        fail("--days is required (e.g. --days mon-fri)")
    try:
        weekdays = parse_weekdays(days_text)
    except ValueError as exc:
        fail(str(exc))
    modes = sum([bool(opens or closes), closed, unset])
    if modes != 1:
        fail("give exactly one of: --open/--close hours, --closed, --unset")
    scope = _scope(line)
    intervals = _times(opens, closes)
    try:
        for weekday in weekdays:
            WeeklyHours(weekday, tuple(intervals), scope)
    except ValueError as exc:
        fail(str(exc))
    names = [WEEKDAY_NAMES[d] for d in weekdays]
    detail: dict[str, Any] = {"scope": scope, "days": names}
    if unset:
        detail["unset"] = True
    else:
        detail["hours"] = _hours_json(intervals)
        detail["closed"] = closed

    async def work(conn: asyncpg.Connection) -> None:
        if unset:
            previous = await repo.clear_weekly_hours(conn, scope, weekdays)
        else:
            previous = await repo.set_weekly_hours(conn, scope, weekdays, intervals)
        detail["previous"] = {WEEKDAY_NAMES[d]: _hours_json(iv) for d, iv in sorted(previous.items())}
        await audit.record(conn, actor(), "calendar.hours", detail)

    _change(ctx, work)
    where = f" on line {scope}" if scope != ALL_LINES else ""
    if unset:
        text = f"{','.join(names)}: own hours removed{where}"
    else:
        text = f"{','.join(names)}: {'closed' if closed else _hours_text(intervals)}{where}"
    _report(as_json, text, detail)


@calendar.group("holiday")
def holiday() -> None:
    """Holidays: agents unavailable all day; the holiday flow plays."""


@holiday.command("add")
@click.argument("when", metavar="DATE[..DATE]")
@click.option("--name", default="", help='What callers and reports call it, e.g. "National Day".')
@line_option
@json_option
@click.pass_context
def holiday_add(ctx: click.Context, when: str, name: str, line: str | None, as_json: bool) -> None:
    """Add a holiday (or a range, e.g. 2026-10-01..2026-10-07); replaces an exception on that date."""
    if not name.strip():
        fail('--name is required (e.g. --name "National Day")')
    _put_days(ctx, "calendar.holiday_add", [DayRule(d, "holiday", name.strip(), scope=_scope(line))
                                           for d in _dates(when)], as_json)


@holiday.command("remove")
@click.argument("when", metavar="DATE[..DATE]")
@line_option
@json_option
@click.pass_context
def holiday_remove(ctx: click.Context, when: str, line: str | None, as_json: bool) -> None:
    """Remove a holiday (or every holiday in a range)."""
    _remove_days(ctx, "calendar.holiday_remove", _scope(line), _dates(when), ("holiday",), as_json)


@calendar.group("exception")
def exception() -> None:
    """Dated exceptions: special hours, or closed, on a date.

    An exception replaces the weekly hours of its date. A closed exception is not a holiday:
    the closed-hours flow plays, not the holiday flow.
    """


@exception.command("add")
@click.argument("when", metavar="DATE[..DATE]")
@click.option("--open", "opens", metavar="HH:MM", help="Opening time on that date.")
@click.option("--close", "closes", metavar="HH:MM", help="Closing time (exclusive; 24:00 = midnight).")
@click.option("--closed", is_flag=True, help="Closed all day (not a holiday: the closed-hours flow plays).")
@click.option("--name", default="", help="Why, for the log and `show` (e.g. 'New Year's Eve').")
@line_option
@json_option
@click.pass_context
def exception_add(ctx: click.Context, when: str, opens: str | None, closes: str | None, closed: bool,
                  name: str, line: str | None, as_json: bool) -> None:
    """Add an exception: `--open 09:00 --close 12:00`, or `--closed`."""
    if closed == bool(opens or closes):
        fail("give either --open HH:MM --close HH:MM, or --closed")
    scope = _scope(line)
    dates = _dates(when)
    try:
        if closed:
            rules = [DayRule(d, "closed", name.strip(), scope=scope) for d in dates]
        else:
            if not (opens and closes):
                fail("special opening hours need both --open and --close")
            o, c = parse_time(opens), parse_time(closes)
            rules = [DayRule(d, "open", name.strip(), o, c, scope) for d in dates]
    except ValueError as exc:
        fail(str(exc))
    _put_days(ctx, "calendar.exception_add", rules, as_json)


@exception.command("remove")
@click.argument("when", metavar="DATE[..DATE]")
@line_option
@json_option
@click.pass_context
def exception_remove(ctx: click.Context, when: str, line: str | None, as_json: bool) -> None:
    """Remove an exception (or every exception in a range); holidays are left alone."""
    _remove_days(ctx, "calendar.exception_remove", _scope(line), _dates(when), ("open", "closed"), as_json)


def _put_days(ctx: click.Context, action: str, rules: list[DayRule], as_json: bool) -> None:
    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        done = []
        for rule in rules:
            previous = await repo.put_day(conn, rule)
            done.append({**repo.rule_dict(rule), "replaced": repo.rule_dict(previous) if previous else None})
        await audit.record(conn, actor(), action, {"scope": rules[0].scope, "days": done})
        return done

    done = _change(ctx, work)
    lines = []
    for item in done:
        what = {"holiday": "holiday", "closed": "closed", "open": f"open {item['opens']}-{item['closes']}"}[item["kind"]]
        where = f" on line {item['scope']}" if item["scope"] != ALL_LINES else ""
        note = f" (replaced {item['replaced']['kind']} {item['replaced']['name']!r})".replace(" ''", "") \
            if item["replaced"] else ""
        lines.append(f"{item['date']}: {what}{' ' + repr(item['name']) if item['name'] else ''}{where}{note}")
    _report(as_json, "\n".join(lines), {"days": done})


def _remove_days(ctx: click.Context, action: str, scope: str, dates: list[date], kinds: tuple[str, ...],
                 as_json: bool) -> None:
    what = "holiday" if kinds == ("holiday",) else "exception"

    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        removed = []
        for day in dates:
            rule = await repo.remove_day(conn, scope, day, kinds)
            if rule is not None:
                removed.append(repo.rule_dict(rule))
        if removed:
            await audit.record(conn, actor(), action, {"scope": scope, "days": removed})
        return removed

    removed = _change(ctx, work)
    if not removed:
        where = f" on line {scope}" if scope != ALL_LINES else ""
        span = dates[0].isoformat() if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
        fail(f"no {what} on {span}{where}")
    _report(as_json, "\n".join(f"{r['date']}: {what} removed" for r in removed), {"removed": removed})


@calendar.command("timezone")
@click.argument("name", required=False, metavar="ZONE")
@line_option
@json_option
@click.pass_context
def timezone(ctx: click.Context, name: str | None, line: str | None, as_json: bool) -> None:
    """Show or set the time zone (an IANA name: Asia/Shanghai).

    Hours are wall-clock times in this zone; zones with daylight saving time are handled.
    """
    scope = _scope(line)
    if name is None:
        cal = _load(ctx, line)
        _report(as_json, cal.timezone, {"line": scope, "timezone": cal.timezone})
        return
    try:
        zone(name)
    except ValueError as exc:
        fail(str(exc))

    async def work(conn: asyncpg.Connection) -> str | None:
        previous = await repo.set_timezone(conn, scope, name)
        await audit.record(conn, actor(), "calendar.timezone",
                           {"scope": scope, "timezone": name, "previous": previous})
        return previous

    previous = _change(ctx, work)
    where = f" for line {scope}" if scope != ALL_LINES else ""
    _report(as_json, f"time zone{where}: {name}" + (f" (was {previous})" if previous and previous != name else ""),
            {"line": scope, "timezone": name, "previous": previous})
