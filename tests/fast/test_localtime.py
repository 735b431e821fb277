"""The one reader of local times typed by administrators (`--at`, `--until`): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agi_app.calendar.localtime import LocalTimeError, parse_local

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_naive_time_is_wall_clock_time_in_the_given_zone() -> None:
    value = parse_local("2026-12-25 10:00", SH)
    assert value == datetime(2026, 12, 25, 2, 0, tzinfo=UTC) and value.tzinfo is SH
    assert parse_local("  2026-12-25T10:00  ", SH) == value  # ISO 'T' and stray blanks alike


def test_shanghai_has_one_offset_all_year() -> None:
    for text in ("2026-01-15 10:00", "2026-07-15 10:00"):
        assert parse_local(text, SH).utcoffset() == timedelta(hours=8)


def test_a_dst_zone_gets_the_offset_of_that_date() -> None:
    assert parse_local("2026-01-15 10:00", BERLIN).utcoffset() == timedelta(hours=1)
    assert parse_local("2026-07-15 10:00", BERLIN).utcoffset() == timedelta(hours=2)


def test_a_date_alone_is_its_midnight() -> None:
    assert parse_local("2026-12-25", SH) == datetime(2026, 12, 25, tzinfo=SH)


def test_an_explicit_offset_is_kept_whatever_the_zone() -> None:
    value = parse_local("2026-03-30T08:00+08:00", BERLIN)
    assert value.utcoffset() == timedelta(hours=8) and value == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)
    assert parse_local("2026-03-30T08:00Z", SH).tzinfo == UTC


def test_a_time_the_spring_forward_gap_skips_is_refused() -> None:
    with pytest.raises(LocalTimeError, match=r"'2026-03-29 02:30' does not exist in Europe/Berlin"):
        parse_local("2026-03-29 02:30", BERLIN)


def test_a_fall_back_repeated_time_is_its_first_occurrence() -> None:
    value = parse_local("2026-10-25 02:30", BERLIN)
    assert value.utcoffset() == timedelta(hours=2)  # still summer time: the earlier of the two
    assert value.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["Christmas", "", "2026-13-01 10:00", "2026-12-25 25:00", "10:00", "tomorrow 8am"])
def test_bad_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(LocalTimeError, match=f"bad time {text!r}.*2026-12-25 10:00"):
        parse_local(text, SH)
    assert issubclass(LocalTimeError, ValueError)
