"""What a call's flow sees of the business calendar at call start (`{calendar: holiday}`,
`calendar.holiday_name` in a prompt); `Calendar.state` in `model.py` decides it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CalendarInfo:
    status: str = "open"  # open | closed | holiday
    holiday_name: str | None = None
    next_open: datetime | None = None
