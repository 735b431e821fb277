"""`hotline kpi` and `hotline report` over a generated month (tests/support/journeys.py `generate_month`:
about 3,000 calls over November 2026 with lines, segments, outcomes, transfers, abandons in the
queue, callbacks, self-service, answered and unanswered surveys, office-hours and night calls, and
calls either side of every local midnight), bulk-loaded with COPY. Every day, every ISO week the
month touches and the month itself are compared with the figures worked out again from the
generated calls (tests/support/kpi_expected.py), never by the code under test.

`hotline kpi` runs in-process through click's CliRunner (the same command, options and JSON, without
a new Python per period: dozens of periods in seconds); the month's report is the real `hotline`
process. CliRunner runs `asyncio.run` inside, so these are plain functions on the session database.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agi_app.cli.kpi import kpi as kpi_command
from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.db.repositories.kpi import report_counts
from tests.support.cli import hotline_cli
from tests.support.journeys import MONTH_DAYS, MONTH_FIRST, SHANGHAI, Call, generate_month, store_bulk
from tests.support.kpi_expected import assert_figures, chosen, expected, per_day, per_hour, survey_scores

MONTH = [MONTH_FIRST + timedelta(days=i) for i in range(MONTH_DAYS)]
#: Every day with calls: the month and the day either side (in its first and last ISO weeks).
EVERY_DAY = [MONTH_FIRST - timedelta(days=1), *MONTH, MONTH_FIRST + timedelta(days=MONTH_DAYS)]


@pytest.fixture(scope="module")
def generated() -> list[Call]:
    return generate_month()


@pytest.fixture
def month(db: str, generated: list[Call]) -> Iterator[tuple[str, list[Call]]]:
    asyncio.run(store_bulk(db, generated))
    yield db, generated


def kpi(dsn: str, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(kpi_command, [*args, "--json"], obj={"settings": Settings(dsn=dsn)})
    assert result.exit_code == 0, (args, result.output)
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def iso_weeks(days: list[date]) -> list[str]:
    return sorted({f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in days})


def week_days(week: str) -> list[date]:
    year, number = (int(part) for part in week.split("-W"))
    monday = date.fromisocalendar(year, number, 1)
    return [monday + timedelta(days=i) for i in range(7)]


def test_the_generated_month_has_the_variety_the_figures_need(generated: list[Call]) -> None:
    """What the comparisons below rely on, so a change to the generator cannot quietly weaken them."""
    month = chosen(generated, MONTH)
    assert 2_000 <= len(month) <= 4_000
    assert {c.dnis for c in month} == {"95000", "95001", "95002"}
    assert {c.segment for c in month} == {"standard", "vip", "private", "elderly", None}
    assert {c.outcome for c in month} == {"self_service", "transferred", "abandoned", "hangup", "error", None}
    results = {leg.result for c in month for leg in c.legs}
    assert results == {"completed", "answered", "abandoned", "timeout", "callback", "failed", "waiting"}
    assert any(len(c.legs) == 2 for c in month), "overflow to a second queue"
    assert any(c.survey_no_answer for c in month) and any(a.score is None for c in month for a in c.agent_surveys)
    assert survey_scores(month) and any(c.agent_surveys for c in month)
    assert any(c.duration_ms is None and c.outcome for c in month), "an ended call without a duration"
    assert any(len(set(s for s, _ in c.services)) < len(c.services) for c in month), "a service reached twice"
    assert any(c.path.count("main") == 2 for c in month), "a node visited twice"
    hours = {c.started_at.astimezone(SHANGHAI).hour for c in month}
    assert hours == set(range(24)), "calls at every hour, the night included"
    for day in MONTH:
        edges = {c.started_at.astimezone(SHANGHAI).time() for c in chosen(generated, [day])}
        assert time(0) in edges and time(23, 59, 59, 999_000) in edges, day


def test_every_day_of_the_month_and_the_days_either_side(month: tuple[str, list[Call]]) -> None:
    dsn, calls = month
    for day in EVERY_DAY:
        got = kpi(dsn, "--day", day.isoformat())
        assert_figures(got, expected(calls, [day]), day.isoformat())
        assert got["from"] == datetime.combine(day, time(0), SHANGHAI).isoformat()


def test_every_week_the_month_touches(month: tuple[str, list[Call]]) -> None:
    dsn, calls = month
    weeks = iso_weeks(MONTH)
    assert weeks == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    for week in weeks:
        got = kpi(dsn, "--week", week)
        assert_figures(got, expected(calls, week_days(week)), week)
        assert got["period"] == week


def test_lines_and_segments_over_weeks_and_days(month: tuple[str, list[Call]]) -> None:
    dsn, calls = month
    for week, line, segment in [("2026-W45", "95002", None), ("2026-W46", None, "unknown"),
                                ("2026-W47", "95001", "vip"), ("2026-W48", None, "elderly")]:
        args = ["--week", week, *(["--line", line] if line else []), *(["--segment", segment] if segment else [])]
        assert_figures(kpi(dsn, *args), expected(calls, week_days(week), line=line, segment=segment), week)
    day = MONTH[10]
    assert_figures(kpi(dsn, "--day", day.isoformat(), "--line", "95000", "--segment", "standard"),
                   expected(calls, [day], line="95000", segment="standard"))


def shown_numbers(page: str) -> dict[str, float | None]:
    """The page's figures back as numbers ("-": none; "12.5 %" is 0.125)."""
    numbers: dict[str, float | None] = {}
    for key, text in re.findall(r'<td data-kpi="([a-z_]+)">([^<]*)</td>', page):
        if text == "-":
            numbers[key] = None
        elif text.endswith(" %"):
            numbers[key] = float(text.removesuffix(" %")) / 100
        else:
            numbers[key] = float(text.removesuffix(" s"))
    return numbers


#: How far a shown figure may be from the exact one: rates to 0.1 %, seconds and the survey's mean
#: to their last digit.
SHOWN_WITHIN = {"self_service_rate": 0.0005, "transfer_rate": 0.0005, "abandon_rate": 0.0005,
                "agent_connection_rate": 0.0005, "queue_abandon_rate": 0.0005, "answer_speed_s": 0.05,
                "avg_talk_s": 0.05, "survey_avg": 0.005, "avg_duration_ms": 0.0005}


def test_the_months_report_shows_the_months_figures_and_its_charts_count_its_calls(
        month: tuple[str, list[Call]], tmp_path: Path) -> None:
    dsn, calls = month
    result = hotline_cli(dsn, "report", "--out", str(tmp_path), "--from", MONTH[0].isoformat(),
                         "--to", MONTH[-1].isoformat())
    assert result.returncode == 0, result.stderr
    page = Path(result.stdout.strip()).read_text(encoding="utf-8")
    want = expected(calls, MONTH)
    shown = shown_numbers(page)
    for key in ("calls", "in_progress", "queue_legs", "survey_answers"):
        assert shown[key] == want[key], key
    for key, within in SHOWN_WITHIN.items():
        exact = want[key] / 1000 if key == "avg_duration_ms" else want[key]
        assert shown[key] == pytest.approx(exact, abs=within + 1e-9), key
    for outcome, n in want["outcomes"].items():
        assert f"<tr><td>{outcome}</td><td>{n}</td></tr>" in page, outcome
    for name, a in want["agents"].items():
        assert f"<tr><td>{name}</td><td>{a['calls']}</td><td>{a['talk_s']}</td></tr>" in page, name
    for name, n in want["nodes"].items():
        assert f"<tr><td>{name}</td><td>{n['visits']}</td><td>{n['drop_offs']}</td></tr>" in page, name

    async def series() -> Any:
        start = datetime.combine(MONTH[0], time(0), SHANGHAI)
        async with connection(dsn) as conn:
            return (await report_counts(conn, start, start + timedelta(days=MONTH_DAYS), SHANGHAI))[1]

    drawn = asyncio.run(series())
    ended = chosen(calls, MONTH)
    assert {d: dict(o) for d, o in drawn.per_day.items()} == per_day(ended)
    assert dict(drawn.per_hour) == per_hour(ended)
    scores = survey_scores(c for c in ended if c.outcome is not None)
    assert dict(drawn.survey_scores) == {s: scores.count(s) for s in set(scores)}


def test_days_in_a_calendar_zone_whose_clocks_go_back_in_the_month(month: tuple[str, list[Call]]) -> None:
    """New York leaves summer time on Sunday 1 November 2026: that local day has 25 hours, and every
    day and week is counted in the zone the calendar says."""
    dsn, calls = month
    new_york = ZoneInfo("America/New_York")
    assert hotline_cli(dsn, "calendar", "timezone", "America/New_York").returncode == 0
    days = sorted({c.started_at.astimezone(new_york).date() for c in calls})
    assert days[0] < MONTH_FIRST and MONTH_FIRST in days
    for day in days:
        got = kpi(dsn, "--day", day.isoformat())
        assert_figures(got, expected(calls, [day], zone=new_york), f"{day} New York")
        assert got["timezone"] == "America/New_York"
    sunday = kpi(dsn, "--day", "2026-11-01")
    assert (sunday["from"], sunday["to"]) == ("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00")
    for week in iso_weeks(days):
        assert_figures(kpi(dsn, "--week", week), expected(calls, week_days(week), zone=new_york), week)
