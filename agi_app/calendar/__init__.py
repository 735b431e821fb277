"""The business calendar: when the agent service is open (weekly hours, holidays, exceptions).

Pure domain in `model`; storage in `agi_app.db.repositories.calendar`; admin in `hotline calendar`.
"""

from agi_app.calendar.model import (
    ALL_LINES,
    DEFAULT_TIMEZONE,
    Calendar,
    CalendarState,
    DayHours,
    DayRule,
    WeeklyHours,
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
    "WeeklyHours",
    "parse_time",
    "parse_weekdays",
]
