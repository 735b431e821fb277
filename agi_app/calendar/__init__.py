"""The business calendar: when the agent service is open (weekly hours, holidays, exceptions).

Pure domain in `model`; the one reader of typed local times in `localtime`; storage in
`agi_app.db.repositories.calendar`; the admin verbs in `agi_app.admin.calendar` (`hotline calendar`).
"""

from agi_app.calendar.model import (
    ALL_LINES,
    DEFAULT_TIMEZONE,
    Calendar,
    CalendarState,
    DayHours,
    DayRule,
    WeekdayHours,
    WeeklyHours,
    parse_dates,
    parse_time,
    parse_weekdays,
)

__all__ = [
    "ALL_LINES",
    "DEFAULT_TIMEZONE",
    "Calendar",
    "CalendarState",
    "DayHours",
    "DayRule",
    "WeekdayHours",
    "WeeklyHours",
    "parse_dates",
    "parse_time",
    "parse_weekdays",
]
