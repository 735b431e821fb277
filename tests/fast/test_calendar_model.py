"""The business calendar's rules, as pure data: no database, exact instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from agi_app.calendar.model import (
    LOOKAHEAD_DAYS,
    MIDNIGHT,
    Calendar,
    DayRule,
    WeeklyHours,
    parse_dates,
    parse_time,
    parse_weekdays,
)

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
EIGHT_TO_EIGHT = ((time(8), time(20)),)


def office(*, tz: str = "Asia/Shanghai", days: tuple[DayRule, ...] = (), extra: tuple[WeeklyHours, ...] = (),
           line: str | None = None) -> Calendar:
    """Mon-Fri 08:00-20:00 for all lines, plus whatever the test adds."""
    weekly = tuple(WeeklyHours(d, EIGHT_TO_EIGHT) for d in range(5)) + extra
    return Calendar(tz, weekly, days, line)


def at(text: str, tz: ZoneInfo = SH) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


# -- weekly hours ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("when", "status"), [
    ("2026-09-28 07:59:59", "closed"),   # Monday, a second before opening
    ("2026-09-28 08:00:00", "open"),     # exactly the opening minute
    ("2026-09-28 19:59:59", "open"),
    ("2026-09-28 20:00:00", "closed"),   # closing time is exclusive
    ("2026-10-03 10:00:00", "closed"),   # Saturday: no hours while other days have some
])
def test_weekly_hours_edges(when: str, status: str) -> None:
    assert office().state(at(when)).status == status


def test_open_state_says_when_it_closes_and_closed_state_when_it_opens() -> None:
    cal = office()
    open_ = cal.state(at("2026-09-28 12:00"))
    assert open_.is_open and open_.next_open is None and open_.closes_at == at("2026-09-28 20:00")
    closed = cal.state(at("2026-09-28 06:00"))
    assert closed.next_open == at("2026-09-28 08:00") and closed.closes_at is None


def test_several_intervals_a_day_lunch_break() -> None:
    cal = Calendar(weekly=(WeeklyHours(0, ((time(13), time(17)), (time(9), time(12)))),))
    assert cal.state(at("2026-09-28 11:59")).status == "open"
    lunch = cal.state(at("2026-09-28 12:30"))
    assert lunch.status == "closed" and lunch.next_open == at("2026-09-28 13:00")
    assert cal.state(at("2026-09-28 16:00")).closes_at == at("2026-09-28 17:00")


def test_the_instant_is_read_in_the_calendar_zone() -> None:
    # 00:30 UTC on Monday is 08:30 in Shanghai.
    state = office().state(datetime(2026, 9, 28, 0, 30, tzinfo=UTC))
    assert state.status == "open" and state.at.tzinfo == SH and state.at.hour == 8


def test_no_weekly_hours_at_all_is_always_open() -> None:
    cal = Calendar()
    state = cal.state(at("2026-10-04 03:00"))  # a Sunday night
    assert cal.always_open and state.status == "open" and state.source == "always"
    assert state.next_open is None and state.closes_at is None  # 24x7 never closes
    holiday = Calendar(days=(DayRule(date(2026, 10, 1), "holiday", "National Day"),))
    assert holiday.state(at("2026-10-01 10:00")).status == "holiday"  # dated rules still apply


def test_24x7_closes_at_the_first_dated_rule_within_the_lookahead() -> None:
    now = at("2026-10-04 03:00")

    def closes(*rules: DayRule) -> datetime | None:
        return Calendar(days=rules).state(now).closes_at

    assert closes(DayRule(date(2027, 5, 1), "holiday", "Labour Day")) == at("2027-05-01 00:00")
    assert closes(DayRule(date(2026, 12, 24), "open", "Eve", time(0), time(12))) == at("2026-12-24 12:00")
    assert closes(DayRule(date(2026, 10, 5), "open", "All day", time(0), MIDNIGHT),
                  DayRule(date(2026, 10, 6), "closed", "Works")) == at("2026-10-06 00:00")
    last = date(2026, 10, 4) + timedelta(days=LOOKAHEAD_DAYS)
    assert closes(DayRule(last, "closed", "Far")) == datetime.combine(last, time(0), tzinfo=SH)
    assert closes(DayRule(last + timedelta(days=1), "closed", "Too far")) is None
    assert closes(DayRule(date(2026, 10, 1), "holiday", "Past")) is None


def test_a_closed_weekday_alone_keeps_the_other_days_24x7() -> None:
    cal = Calendar(weekly=(WeeklyHours(6, ()),))  # only "closed on Sunday"
    assert cal.state(at("2026-10-04 10:00")).status == "closed"
    assert cal.state(at("2026-10-05 03:00")).status == "open"
    assert cal.state(at("2026-10-04 10:00")).next_open == at("2026-10-05 00:00")


def test_an_interval_until_midnight_continues_into_the_next_day() -> None:
    cal = Calendar(weekly=(WeeklyHours(0, ((time(8), MIDNIGHT),)), WeeklyHours(1, ((time(0), time(2)),))))
    assert cal.state(at("2026-09-28 23:59:59")).closes_at == at("2026-09-29 02:00")


# -- dated rules -----------------------------------------------------------------------------------

def test_holiday_beats_weekly_hours() -> None:
    cal = office(days=(DayRule(date(2026, 10, 1), "holiday", "National Day"),))
    state = cal.state(at("2026-10-01 10:00"))  # a Thursday, normally open
    assert state.status == "holiday" and state.holiday_name == "National Day"
    assert state.next_open == at("2026-10-02 08:00")


def test_special_opening_on_a_weekend() -> None:
    cal = office(days=(DayRule(date(2026, 10, 10), "open", "make-up working day", time(9), time(12)),))
    assert cal.state(at("2026-10-10 08:59")).next_open == at("2026-10-10 09:00")
    state = cal.state(at("2026-10-10 09:00"))
    assert state.status == "open" and state.name == "make-up working day" and state.source == "exception"
    after = cal.state(at("2026-10-10 12:00"))
    assert after.status == "closed" and after.next_open == at("2026-10-12 08:00")


def test_special_hours_replace_the_weekly_hours_that_day() -> None:
    cal = office(days=(DayRule(date(2026, 12, 31), "open", "New Year's Eve", time(9), time(12)),))
    assert cal.state(at("2026-12-31 08:30")).status == "closed"
    assert cal.state(at("2026-12-31 15:00")).status == "closed"


def test_closed_exception_on_a_weekday_is_closed_not_a_holiday() -> None:
    cal = office(days=(DayRule(date(2026, 9, 29), "closed", "system migration"),))
    state = cal.state(at("2026-09-29 10:00"))
    assert state.status == "closed" and state.holiday_name is None and state.name == "system migration"
    assert state.next_open == at("2026-09-30 08:00")


def test_next_open_across_a_weekend() -> None:
    assert office().state(at("2026-10-02 20:00")).next_open == at("2026-10-05 08:00")  # Fri -> Mon
    assert office().state(at("2026-10-03 23:00")).next_open == at("2026-10-05 08:00")  # Sat -> Mon


def test_next_open_across_a_golden_week_of_holidays() -> None:
    golden = tuple(DayRule(date(2026, 10, d), "holiday", "National Day") for d in range(1, 8))
    state = office(days=golden).state(at("2026-09-30 20:00"))
    assert state.status == "closed" and state.next_open == at("2026-10-08 08:00")


def test_a_calendar_that_never_opens_has_no_next_open() -> None:
    cal = Calendar(weekly=tuple(WeeklyHours(d, ()) for d in range(7)))
    assert cal.state(at("2026-10-01 10:00")).next_open is None


# -- scopes ----------------------------------------------------------------------------------------

def test_a_line_weekday_rule_overrides_all_lines() -> None:
    vip_week = tuple(WeeklyHours(d, ((time(0), MIDNIGHT),), "95001") for d in range(5, 7))
    rows = (*vip_week, WeeklyHours(4, (), "95001"), WeeklyHours(5, ((time(1), time(2)),), "95000"))
    assert office(extra=rows).state(at("2026-10-03 03:00")).status == "closed"  # '*' alone: Saturday
    vip = office(extra=rows, line="95001")
    assert vip.state(at("2026-10-03 03:00")).status == "open"     # the line's Saturday
    assert vip.state(at("2026-10-02 10:00")).status == "closed"   # the line closes Friday
    assert vip.state(at("2026-10-01 10:00")).status == "open"     # Thursday inherits '*'
    other = office(extra=rows, line="95002")                      # another line's rows are ignored
    assert other.state(at("2026-10-03 01:30")).status == "closed"


def test_a_line_dated_rule_overrides_all_lines_on_that_date() -> None:
    days = (DayRule(date(2026, 10, 1), "holiday", "National Day"),
            DayRule(date(2026, 10, 1), "open", "VIP desk", time(9), time(17), "95001"))
    assert office(days=days).state(at("2026-10-01 10:00")).status == "holiday"
    vip = office(days=days, line="95001")
    assert vip.state(at("2026-10-01 10:00")).status == "open"
    assert vip.hours_on(date(2026, 10, 1)).scope == "95001"


def test_an_all_lines_holiday_applies_to_a_line_with_its_own_weekly_hours() -> None:
    cal = office(extra=(WeeklyHours(3, ((time(0), MIDNIGHT),), "95001"),), line="95001",
                 days=(DayRule(date(2026, 10, 1), "holiday", "National Day"),))
    assert cal.state(at("2026-10-01 10:00")).status == "holiday"


def test_usual_hours_of_a_weekday_say_where_they_come_from_and_ignore_dated_rules() -> None:
    cal = office(extra=(WeeklyHours(5, ((time(9), time(12)),), "95001"),), line="95001",
                 days=(DayRule(date(2026, 9, 28), "holiday", "a Monday off"),))
    monday = cal.usual_hours(0)
    assert (monday.kind, monday.intervals, monday.source, monday.scope) == ("open", EIGHT_TO_EIGHT, "weekly", "*")
    saturday = cal.usual_hours(5)
    assert (saturday.kind, saturday.source, saturday.scope) == ("open", "weekly", "95001")
    sunday = cal.usual_hours(6)
    assert (sunday.kind, sunday.intervals, sunday.source, sunday.scope) == ("closed", (), "unset", None)
    fresh = Calendar().usual_hours(6)
    assert (fresh.kind, fresh.intervals, fresh.source) == ("open", ((time(0), MIDNIGHT),), "always")
    # hours_on applies the same weekly rule when no dated rule exists, and the dated rule when one does.
    assert cal.hours_on(date(2026, 10, 5)).intervals == monday.intervals
    assert cal.hours_on(date(2026, 9, 28)).kind == "holiday"


def test_dated_rules_are_this_calendars_own_and_say_which_is_in_effect() -> None:
    star = DayRule(date(2026, 10, 1), "holiday", "National Day")
    own = DayRule(date(2026, 10, 1), "open", "VIP desk", time(9), time(17), "95001")
    other = DayRule(date(2026, 10, 2), "closed", "", scope="95000")
    later = DayRule(date(2026, 10, 3), "closed")
    vip = office(days=(later, own, other, star), line="95001")
    assert vip.dated_rules() == (star, own, later)  # by date, '*' first; other lines' rules left out
    assert [vip.in_effect(r) for r in vip.dated_rules()] == [False, True, True]
    assert office(days=(own, star)).dated_rules() == (star,)


# -- time zones ------------------------------------------------------------------------------------

def test_a_dst_zone_keeps_wall_clock_hours_on_both_sides_of_the_change() -> None:
    cal = office(tz="Europe/Berlin")
    # Friday 27 March 2026 is CET (+01:00); Monday 30 March is CEST (+02:00).
    assert cal.state(datetime(2026, 3, 27, 7, 0, tzinfo=UTC)).status == "open"     # 08:00 CET
    assert cal.state(datetime(2026, 3, 30, 6, 0, tzinfo=UTC)).status == "open"     # 08:00 CEST
    assert cal.state(datetime(2026, 3, 30, 5, 59, tzinfo=UTC)).status == "closed"  # 07:59 CEST
    nxt = cal.state(datetime(2026, 3, 27, 19, 0, tzinfo=UTC)).next_open            # Fri 20:00 CET
    assert nxt == datetime(2026, 3, 30, 6, 0, tzinfo=UTC) and nxt.utcoffset() == timedelta(hours=2)


def test_an_opening_inside_the_spring_forward_gap_starts_after_the_gap() -> None:
    cal = Calendar("Europe/Berlin", (WeeklyHours(6, ((time(2, 30), time(5)),)),))
    nxt = cal.state(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)).next_open  # 01:30 CET, Sunday
    assert nxt is not None and nxt.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert (nxt.hour, nxt.utcoffset()) == (3, timedelta(hours=2))         # 03:30 CEST
    assert cal.state(nxt).status == "open"


def test_the_fall_back_repeat_hour_is_read_as_the_hour_the_caller_is_in() -> None:
    cal = Calendar("Europe/Berlin", (WeeklyHours(6, ((time(2, 30), time(5)),)),))
    # (Python never calls an ambiguous local time equal to a UTC one: compare in UTC.)
    first = cal.state(datetime(2026, 10, 25, 0, 10, tzinfo=UTC))   # 02:10 CEST
    assert first.status == "closed" and first.next_open is not None
    assert first.next_open.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert cal.state(datetime(2026, 10, 25, 0, 40, tzinfo=UTC)).status == "open"
    second = cal.state(datetime(2026, 10, 25, 1, 10, tzinfo=UTC))  # 02:10 CET, the repeat
    assert second.status == "closed" and second.next_open is not None
    assert second.next_open.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert cal.state(datetime(2026, 10, 25, 2, 0, tzinfo=UTC)).closes_at is not None


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        office().state(datetime(2026, 10, 1, 10, 0))


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Calendar("Mars/Olympus_Mons")


# -- validation and parsing ------------------------------------------------------------------------

def test_bad_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="not after opening"):
        WeeklyHours(0, ((time(20), time(8)),))
    with pytest.raises(ValueError, match="overlaps"):
        WeeklyHours(0, ((time(8), time(12)), (time(11), time(14))))
    with pytest.raises(ValueError, match="need an opening"):
        DayRule(date(2026, 10, 1), "open")
    with pytest.raises(ValueError, match="no opening hours"):
        DayRule(date(2026, 10, 1), "holiday", "x", time(8), time(9))
    with pytest.raises(ValueError, match="kind"):
        DayRule(date(2026, 10, 1), "party")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad line"):
        WeeklyHours(0, (), "95 001")


@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", (0, 1, 2, 3, 4)), ("sat,sun", (5, 6)), ("all", tuple(range(7))),
    ("mon,wed-fri", (0, 2, 3, 4)), ("fri-mon", (0, 4, 5, 6)), ("Monday", (0,)), ("weekend", (5, 6)),
])
def test_weekday_lists(text: str, days: tuple[int, ...]) -> None:
    assert parse_weekdays(text) == days


@pytest.mark.parametrize("text", ["", "funday", "mon-", "mon,,tue", "mo"])
def test_bad_weekday_lists(text: str) -> None:
    with pytest.raises(ValueError, match="bad day"):
        parse_weekdays(text)


def test_times() -> None:
    assert parse_time("08:00") == time(8) and parse_time("8:30") == time(8, 30)
    assert parse_time("24:00") == MIDNIGHT
    for bad in ("25:00", "8", "08:60", "noon"):
        with pytest.raises(ValueError, match="bad time"):
            parse_time(bad)


def test_a_date_or_an_inclusive_range_of_dates() -> None:
    assert parse_dates("2026-10-01") == [date(2026, 10, 1)]
    assert parse_dates(" 2026-12-30..2027-01-02 ") == [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1),
                                                       date(2027, 1, 2)]
    assert len(parse_dates("2026-01-01..2026-12-31")) == 365


@pytest.mark.parametrize(("text", "message"), [
    ("2026-02-30", "bad date '2026-02-30'"), ("October", "bad date 'October'"),
    ("2026-10-07..2026-10-01", "ends before it starts"), ("2026-01-01..2027-01-02", "longer than 366 days"),
])
def test_bad_dates_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dates(text)
