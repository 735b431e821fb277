"""The one reader of local times typed by administrators (`--at`, `--until`, `calendar status --at`).

The rule: a time written without an offset is a wall-clock time in the calendar zone of the line
concerned — the line's own zone, else the all-lines zone, else `DEFAULT_TIMEZONE` (Asia/Shanghai),
i.e. `Calendar.tz` of the calendar that line sees. That is the clock its callers and its opening
hours live by, so "10:00" means the same instant to `calendar status`, `menus preview`, `menus
cost`, `simulate` and `emergency on`. Callers resolve the zone (agi_app/admin/calendar.py); this
module only reads text in a zone, so it stays a leaf with no I/O.

- A time with an offset (`2026-12-25T10:00+08:00`, `...Z`) is kept as written.
- A date alone means its midnight.
- A wall-clock time the spring-forward gap skips does not exist: refused, not guessed.
- A time the fall-back hour repeats is its first occurrence (zoneinfo's `fold=0`).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

EXAMPLE = '"2026-12-25 10:00" or 2026-12-25T10:00+08:00'


class LocalTimeError(ValueError):
    """Text that is not a time, or a local time that does not exist; the message says which."""


def parse_local(text: str, zone: tzinfo) -> datetime:
    """An aware datetime for `text`, read in `zone` unless it carries its own offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LocalTimeError(f"bad time {text!r} (expected e.g. {EXAMPLE})") from None
    if value.tzinfo is not None:
        return value
    local = value.replace(tzinfo=zone)
    # Through UTC and back: a time in a gap comes back as another wall-clock time.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        raise LocalTimeError(f"{text.strip()!r} does not exist in {zone} (the clocks jump over it); "
                             f"give the time after the change, or an offset")
    return local
