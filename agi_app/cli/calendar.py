"""`hotline calendar`: the business calendar (agent service hours, holidays, exceptions, time zone).

This module parses the options, calls one verb of agi_app/admin/calendar.py (which applies the
calendar model's rules and writes each change with its audit record in one transaction) and
prints the result. Bad input exits 1 with a message that says what was expected; typing mistakes
are caught before the database is touched.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from agi_app.admin import calendar as admin
from agi_app.calendar.model import (
    ALL_LINES,
    WEEKDAY_NAMES,
    DayRule,
    Interval,
    check_scope,
    format_time,
    parse_dates,
    parse_time,
    parse_weekdays,
)
from agi_app.cli.common import actor, admin_call, echo_json, fail

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
    try:
        return parse_dates(text)
    except ValueError as exc:
        fail(str(exc))


def _times(opens: tuple[str, ...], closes: tuple[str, ...]) -> tuple[Interval, ...]:
    if len(opens) != len(closes):
        fail("give --open and --close in pairs (one --close for every --open)")
    try:
        return tuple((parse_time(o), parse_time(c)) for o, c in zip(opens, closes, strict=True))
    except ValueError as exc:
        fail(str(exc))


# -- one service call, then printing --------------------------------------------------------------


def _report(as_json: bool, text: str, detail: Any) -> None:
    if as_json:
        echo_json(detail)
    else:
        click.echo(text)


def _hours_text(intervals: tuple[Interval, ...]) -> str:
    return ", ".join(f"{format_time(o)}-{format_time(c)}" for o, c in intervals)


def _what(rule: DayRule) -> str:
    return {"holiday": "holiday", "closed": "closed"}.get(rule.kind) or f"open {_hours_text(rule.intervals)}"


def _where(scope: str, word: str = "on") -> str:
    return f" {word} line {scope}" if scope != ALL_LINES else ""


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
    _scope(line)
    view = admin_call(ctx, lambda conn: admin.show(conn, line, include_past=show_all))
    if as_json:
        echo_json(view.as_json())
        return
    cal = view.calendar
    click.echo(f"calendar for {'line ' + cal.line if cal.line else 'all lines'}; time zone {cal.timezone}")
    if cal.always_open:
        click.echo("no weekly hours configured: agents available 24x7 (except holidays/exceptions)")
    for usual in view.weekly:
        hours = _hours_text(usual.intervals) if usual.intervals else "closed"
        origin = f"  [line {usual.scope}]" if usual.scope not in (None, ALL_LINES) else ""
        click.echo(f"  {WEEKDAY_NAMES[usual.weekday]}  {hours}{origin}")
    click.echo("holidays and exceptions:" if view.days else "no upcoming holidays or exceptions")
    for dated in view.days:
        rule = dated.rule
        notes = [f"line {rule.scope}" if rule.scope != ALL_LINES else "",
                 "" if dated.in_effect else "overridden by the line's rule"]
        extra = "  [" + "; ".join(n for n in notes if n) + "]" if any(notes) else ""
        click.echo(f"  {rule.day.isoformat()} {WEEKDAY_NAMES[rule.day.weekday()]}  {_what(rule)}"
                   f"{'  ' + rule.name if rule.name else ''}{extra}")


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
    _scope(line)
    result = admin_call(ctx, lambda conn: admin.status(conn, line, at_text))
    if as_json:
        echo_json(result.as_json())
        return
    state = result.state
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
    if sum([bool(opens or closes), closed, unset]) != 1:
        fail("give exactly one of: --open/--close hours, --closed, --unset")
    scope = _scope(line)
    intervals = None if unset else _times(opens, closes)
    change = admin_call(ctx, lambda conn: admin.set_hours(conn, scope, weekdays, intervals, actor=actor()))
    if change.intervals is None:
        text = f"{','.join(change.days)}: own hours removed{_where(scope)}"
    else:
        text = f"{','.join(change.days)}: {_hours_text(change.intervals) or 'closed'}{_where(scope)}"
    _report(as_json, text, change.as_json())


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
    scope, dates = _scope(line), _dates(when)
    _report_days(as_json, admin_call(ctx, lambda conn: admin.add_holidays(conn, dates, name, scope, actor=actor())))


@holiday.command("remove")
@click.argument("when", metavar="DATE[..DATE]")
@line_option
@json_option
@click.pass_context
def holiday_remove(ctx: click.Context, when: str, line: str | None, as_json: bool) -> None:
    """Remove a holiday (or every holiday in a range)."""
    scope, dates = _scope(line), _dates(when)
    _report_removed(as_json, admin_call(ctx, lambda conn: admin.remove_holidays(conn, dates, scope, actor=actor())))


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
    scope, dates = _scope(line), _dates(when)
    hours: Interval | None = None
    if not closed:
        if not (opens and closes):
            fail("special opening hours need both --open and --close")
        hours = _times((opens,), (closes,))[0]
    _report_days(as_json, admin_call(ctx, lambda conn: admin.add_exceptions(conn, dates, hours, name, scope,
                                                                       actor=actor())))


@exception.command("remove")
@click.argument("when", metavar="DATE[..DATE]")
@line_option
@json_option
@click.pass_context
def exception_remove(ctx: click.Context, when: str, line: str | None, as_json: bool) -> None:
    """Remove an exception (or every exception in a range); holidays are left alone."""
    scope, dates = _scope(line), _dates(when)
    _report_removed(as_json, admin_call(ctx, lambda conn: admin.remove_exceptions(conn, dates, scope, actor=actor())))


def _report_days(as_json: bool, added: admin.DaysAdded) -> None:
    lines = []
    for item in added.changes:
        rule, replaced = item.rule, item.replaced
        note = f" (replaced {replaced.kind} {replaced.name!r})".replace(" ''", "") if replaced else ""
        lines.append(f"{rule.day.isoformat()}: {_what(rule)}{' ' + repr(rule.name) if rule.name else ''}"
                     f"{_where(rule.scope)}{note}")
    _report(as_json, "\n".join(lines), added.as_json())


def _report_removed(as_json: bool, removed: admin.DaysRemoved) -> None:
    _report(as_json, "\n".join(f"{r.day.isoformat()}: {removed.what} removed" for r in removed.rules),
            removed.as_json())


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
        shown = admin_call(ctx, lambda conn: admin.timezone_of(conn, line))
        _report(as_json, shown.timezone, shown.as_json())
        return
    done = admin_call(ctx, lambda conn: admin.set_timezone(conn, scope, name, actor=actor()))
    was = f" (was {done.previous})" if done.previous and done.previous != name else ""
    _report(as_json, f"time zone{_where(scope, 'for')}: {name}{was}", done.as_json())
