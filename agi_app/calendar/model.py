"""The business calendar as pure data: is the agent service open at a given instant, and when next?

No I/O here, so the rules can be tested exhaustively and evaluated per call for free once loaded.

Rules, in order, for the local date of the instant (in the calendar's time zone):
1. A dated rule (`DayRule`) wins: `holiday` -> status "holiday"; `closed` -> "closed";
   `open` -> open only within that day's special hours.
2. Otherwise the weekly hours (`WeeklyHours`) of that weekday.
3. A weekday with no weekly rule is closed if any weekday has opening hours, and open all day when
   no opening hours are configured at all (a fresh install is 24x7, never accidentally closed).

Scopes: '*' is every line's calendar; a line's own rule (for a date, or for a weekday) replaces
the '*' rule for that same date or weekday. Other lines' rules are ignored.

Times are local wall-clock times, closing times are exclusive (open at 08:00:00, closed at
20:00:00 for 08:00-20:00). `time.max` means "until midnight" (shown as 24:00). Intervals never
cross midnight: an overnight shift is written as two intervals on consecutive days. Daylight saving
time is handled by zoneinfo: the wall-clock hours hold on both sides of a transition; an opening
time that falls into a spring-forward gap takes effect at the first instant after the gap.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Shanghai"
ALL_LINES = "*"
WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_KINDS: tuple[str, ...] = ("holiday", "closed", "open")
# How far `next_open` looks ahead: long enough for any run of holidays, bounded for a calendar
# that never opens again.
LOOKAHEAD_DAYS = 400
MAX_RANGE_DAYS = 366  # a date range longer than a year is a typo, not a holiday
MIDNIGHT = time.max  # "24:00": until the end of the day

Status = Literal["open", "closed", "holiday"]
DayKind = Literal["holiday", "closed", "open"]
Interval = tuple[time, time]

_LINE = re.compile(r"^[0-9A-Za-z_+-]{1,32}$")


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, with a ValueError that names the zone when it is unknown."""
    if not name or name != name.strip():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from exc


def check_scope(scope: str) -> str:
    """'*' or a line identifier; anything else is refused before it reaches the database."""
    if scope != ALL_LINES and not _LINE.match(scope):
        raise ValueError(f"bad line {scope!r} (expected a line number such as 95001)")
    return scope


def format_time(value: time) -> str:
    """HH:MM, with `time.max` as 24:00 (and seconds when they matter)."""
    if value == MIDNIGHT:
        return "24:00"
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def parse_time(text: str) -> time:
    """HH:MM (or HH:MM:SS); 24:00 means "until midnight"."""
    raw = text.strip()
    if raw in ("24:00", "24:00:00"):
        return MIDNIGHT
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", raw)
    if not match:
        raise ValueError(f"bad time {text!r} (expected HH:MM, e.g. 08:00)")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"bad time {text!r} (expected HH:MM between 00:00 and 24:00)")
    return time(hour, minute, second)


def parse_weekdays(text: str) -> tuple[int, ...]:
    """`mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (wraps), `all`, `weekdays`, `weekend`,
    full names (`monday`) -> sorted weekday numbers (0 = Monday)."""
    aliases = {"all": range(7), "daily": range(7), "weekdays": range(5), "weekend": range(5, 7)}
    days: set[int] = set()
    parts = [p.strip().lower() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ValueError(f"bad days {text!r} (expected e.g. mon-fri, sat,sun or all)")
    for part in parts:
        if part in aliases:
            days.update(aliases[part])
            continue
        first, sep, last = part.partition("-")
        start = _weekday(first, text)
        end = _weekday(last, text) if sep else start
        span = (end - start) % 7
        days.update((start + i) % 7 for i in range(span + 1))
    return tuple(sorted(days))


def parse_dates(text: str) -> list[date]:
    """DATE or FIRST..LAST (inclusive), ISO dates: 2026-10-01 or 2026-10-01..2026-10-07."""
    first_text, sep, last_text = text.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if sep else first
    except ValueError:
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)") from None
    if last < first:
        raise ValueError(f"bad date range {text!r}: ends before it starts")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"bad date range {text!r}: longer than {MAX_RANGE_DAYS} days")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _weekday(name: str, whole: str) -> int:
    key = name.strip()[:3]
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if key in WEEKDAY_NAMES and (len(name.strip()) == 3 or name.strip() in full):
        return WEEKDAY_NAMES.index(key)
    raise ValueError(f"bad day {name.strip()!r} in {whole!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _check_intervals(intervals: tuple[Interval, ...], what: str) -> None:
    previous: Interval | None = None
    for opens, closes in sorted(intervals):
        if not closes > opens:
            raise ValueError(f"{what}: closing time {format_time(closes)} is not after opening time "
                             f"{format_time(opens)} (overnight hours: split them over two days)")
        if previous is not None and opens < previous[1]:
            raise ValueError(f"{what}: {format_time(opens)}-{format_time(closes)} overlaps "
                             f"{format_time(previous[0])}-{format_time(previous[1])}")
        previous = (opens, closes)


@dataclass(frozen=True)
class WeeklyHours:
    """The opening hours of one weekday in one scope. No intervals = explicitly closed that day
    (needed so a line can be closed on a weekday that '*' opens)."""

    weekday: int
    intervals: tuple[Interval, ...] = ()
    scope: str = ALL_LINES

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday {self.weekday} is not 0 (Monday) .. 6 (Sunday)")
        check_scope(self.scope)
        _check_intervals(self.intervals, WEEKDAY_NAMES[self.weekday])
        object.__setattr__(self, "intervals", tuple(sorted(self.intervals)))


@dataclass(frozen=True)
class DayRule:
    """A dated rule: a holiday, a closed day, or special opening hours (`open`) on one date."""

    day: date
    kind: DayKind
    name: str = ""
    opens: time | None = None
    closes: time | None = None
    scope: str = ALL_LINES

    def __post_init__(self) -> None:
        if self.kind not in DAY_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(DAY_KINDS)}")
        check_scope(self.scope)
        if self.kind == "open":
            if self.opens is None or self.closes is None:
                raise ValueError(f"{self.day}: special opening hours need an opening and a closing time")
            _check_intervals(((self.opens, self.closes),), str(self.day))
        elif self.opens is not None or self.closes is not None:
            raise ValueError(f"{self.day}: a {self.kind} day has no opening hours")

    @property
    def intervals(self) -> tuple[Interval, ...]:
        if self.opens is not None and self.closes is not None:
            return ((self.opens, self.closes),)
        return ()


@dataclass(frozen=True)
class WeekdayHours:
    """A weekday's usual hours, before dated rules: what `show` lists and what `hours_on` falls
    back to. Source: "weekly" (a rule of `scope`), "unset" (no rule, closed because other days
    have hours) or "always" (no hours configured at all: 24x7)."""

    weekday: int
    kind: Literal["open", "closed"]
    intervals: tuple[Interval, ...]
    source: Literal["weekly", "unset", "always"]
    scope: str | None


@dataclass(frozen=True)
class DayHours:
    """What one local date looks like after applying the rules: for `show`, previews and `state`."""

    day: date
    kind: Literal["holiday", "closed", "open"]
    intervals: tuple[Interval, ...]
    name: str
    # Where it came from: "holiday"/"exception" (a DayRule), "weekly", "unset" (no rule, closed
    # because other days have hours) or "always" (no hours configured: 24x7).
    source: Literal["holiday", "exception", "weekly", "unset", "always"]
    scope: str | None


@dataclass(frozen=True)
class CalendarState:
    """The calendar at one instant. `next_open` is None while open (agents available now) or when
    the calendar never opens within the lookahead; `closes_at` is the end of the current opening."""

    status: Status
    at: datetime  # the instant, in the calendar's time zone
    name: str = ""  # the name of the dated rule in effect, if any
    next_open: datetime | None = None
    closes_at: datetime | None = None
    source: str = "weekly"

    @property
    def holiday_name(self) -> str | None:
        return self.name if self.status == "holiday" else None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Calendar:
    """The calendar one line sees: its own rules (scope == line) over the '*' rules.

    `weekly` and `days` may hold rows of '*' and of `line`; rows of other scopes are ignored, so a
    loader may pass everything it has.
    """

    timezone: str = DEFAULT_TIMEZONE
    weekly: tuple[WeeklyHours, ...] = ()
    days: tuple[DayRule, ...] = ()
    line: str | None = None
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", zone(self.timezone))
        if self.line is not None:
            check_scope(self.line)
        object.__setattr__(self, "weekly", tuple(self.weekly))
        object.__setattr__(self, "days", tuple(self.days))

    # -- resolution ------------------------------------------------------------------------------

    def _rank(self, scope: str) -> int | None:
        """Higher wins: the line's own rule (2) over '*' (1); other scopes do not apply (None)."""
        if self.line is not None and scope == self.line and scope != ALL_LINES:
            return 2
        return 1 if scope == ALL_LINES else None

    @cached_property
    def _weekly_by_day(self) -> dict[int, WeeklyHours]:
        best: dict[int, tuple[int, WeeklyHours]] = {}
        for hours in self.weekly:
            rank = self._rank(hours.scope)
            if rank is None:
                continue
            current = best.get(hours.weekday)
            if current is None or rank > current[0]:
                best[hours.weekday] = (rank, hours)
            elif rank == current[0]:  # several rows of one scope: merge their intervals
                merged = WeeklyHours(hours.weekday, current[1].intervals + hours.intervals, hours.scope)
                best[hours.weekday] = (rank, merged)
        return {day: hours for day, (_, hours) in best.items()}

    @cached_property
    def _days_by_date(self) -> dict[date, DayRule]:
        best: dict[date, tuple[int, DayRule]] = {}
        for rule in self.days:
            rank = self._rank(rule.scope)
            if rank is None:
                continue
            current = best.get(rule.day)
            if current is None or rank > current[0]:
                best[rule.day] = (rank, rule)
        return {day: rule for day, (_, rule) in best.items()}

    @cached_property
    def always_open(self) -> bool:
        """No opening hours configured for this line at all: 24x7 (dated rules still apply)."""
        return not any(h.intervals for h in self._weekly_by_day.values())

    @cached_property
    def _dated_days(self) -> list[date]:
        return sorted(self._days_by_date)

    def _next_dated_day(self, after: date) -> date | None:
        """The first date after `after` that has a dated rule here."""
        days = self._dated_days
        index = bisect_right(days, after)
        return days[index] if index < len(days) else None

    def usual_hours(self, weekday: int) -> WeekdayHours:
        """A weekday's hours from the weekly rules alone (rule 2 and 3 of the module docstring)."""
        weekly = self._weekly_by_day.get(weekday)
        if weekly is not None:
            return WeekdayHours(weekday, "open" if weekly.intervals else "closed", weekly.intervals,
                                "weekly", weekly.scope)
        if self.always_open:
            return WeekdayHours(weekday, "open", ((time.min, MIDNIGHT),), "always", None)
        return WeekdayHours(weekday, "closed", (), "unset", None)

    def dated_rules(self) -> tuple[DayRule, ...]:
        """The dated rules this calendar sees ('*' and its line's), by date, '*' first on a date."""
        mine = (r for r in self.days if self._rank(r.scope) is not None)
        return tuple(sorted(mine, key=lambda r: (r.day, r.scope != ALL_LINES)))

    def in_effect(self, rule: DayRule) -> bool:
        """Whether `rule` decides its date here (a line's own rule hides the '*' one)."""
        return self._days_by_date.get(rule.day) == rule

    def hours_on(self, day: date) -> DayHours:
        """The opening hours of one local date, all rules applied."""
        rule = self._days_by_date.get(day)
        if rule is not None:
            source: Literal["holiday", "exception"] = "holiday" if rule.kind == "holiday" else "exception"
            return DayHours(day, rule.kind, rule.intervals, rule.name, source, rule.scope)
        usual = self.usual_hours(day.weekday())
        return DayHours(day, usual.kind, usual.intervals, "", usual.source, usual.scope)

    # -- evaluation ------------------------------------------------------------------------------

    def state(self, at: datetime) -> CalendarState:
        """Open, closed or holiday at the instant `at` (which must be timezone-aware)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("Calendar.state needs a timezone-aware datetime (naive times are ambiguous)")
        local = at.astimezone(self.tz)
        today = self.hours_on(local.date())
        wall = local.time().replace(tzinfo=None, fold=0)
        for opens, closes in today.intervals:
            if opens <= wall < closes:
                return CalendarState("open", local, today.name, None,
                                     self._closes_at(local.date(), closes, local.fold), today.source)
        status: Status = "holiday" if today.kind == "holiday" else "closed"
        return CalendarState(status, local, today.name, self.next_open(local), None, today.source)

    def next_open(self, at: datetime) -> datetime | None:
        """The first opening strictly after `at` (in the calendar's zone), or None within the lookahead."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("Calendar.next_open needs a timezone-aware datetime")
        local = at.astimezone(self.tz)
        wall = local.time().replace(tzinfo=None, fold=0)
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            for opens, _closes in self.hours_on(day).intervals:
                if offset == 0 and opens <= wall:
                    continue
                # Same-day candidates take the current fold, so a fall-back repeat hour is read as
                # the repeat the caller is in; later days take the first occurrence.
                candidate = datetime.combine(day, opens, tzinfo=self.tz).replace(fold=local.fold if offset == 0 else 0)
                candidate = self._real(candidate)
                if candidate.astimezone(UTC) > at.astimezone(UTC):
                    return candidate
        return None

    def _real(self, wall: datetime) -> datetime:
        """A wall-clock datetime as a real instant in the zone. Goes through UTC on purpose:
        `astimezone` to the same zone is a no-op, and Python compares same-zone datetimes by wall
        time, ignoring `fold`; so a time in a spring-forward gap (which does not exist) must be
        moved to the instant it denotes (the first after the gap)."""
        return wall.astimezone(UTC).astimezone(self.tz)

    def _closes_at(self, day: date, closes: time, fold: int) -> datetime | None:
        """When the current opening ends: an interval that runs to midnight continues into one
        that opens at 00:00 the next day (None: it does not end within the lookahead, e.g. 24x7).

        24x7, every day without a dated rule is open all day: those are skipped at once, not one
        by one (each call of a 24x7 line asks: 400 days were 5 ms of a call's CPU)."""
        remaining = LOOKAHEAD_DAYS  # days still to look at, after `day`
        while remaining > 0:
            if closes != MIDNIGHT:
                return self._real(datetime.combine(day, closes, tzinfo=self.tz).replace(fold=fold))
            if self.always_open:
                dated = self._next_dated_day(day)
                if dated is None or (dated - day).days > remaining:
                    return None
                remaining -= (dated - day).days - 1
                day = dated - timedelta(days=1)
            remaining -= 1
            day += timedelta(days=1)
            fold = 0
            following = [c for o, c in self.hours_on(day).intervals if o == time.min]
            if not following:
                return self._real(datetime.combine(day, time.min, tzinfo=self.tz))
            closes = following[0]
        return None
