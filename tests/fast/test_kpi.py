"""`hotline kpi` against a generated week of journeys, written by the real journey writer (queue legs,
which the contact centre's tracker completes, by SQL), every figure computed again in plain Python
from the generated calls (tests/support/kpi_expected.py) — not by the code under test. A generated
month: tests/fast/test_kpi_month.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import pytest_asyncio

from agi_app.db.pool import connection
from tests.support.cli import hotline_cli
from tests.support.journeys import MONDAY, SHANGHAI, Call, generate, store
from tests.support.kpi_expected import assert_figures, expected


def kpi(dsn: str, *args: str) -> dict[str, Any]:
    result = hotline_cli(dsn, "kpi", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest_asyncio.fixture
async def week(dsn: str) -> AsyncIterator[tuple[str, list[Call]]]:
    calls = generate()
    await store(dsn, calls)
    yield dsn, calls


async def test_each_day_has_the_figures_of_the_calls_that_started_that_local_day(week: tuple[str, list[Call]]) -> None:
    dsn, calls = week
    for day in (MONDAY, MONDAY + timedelta(days=3), MONDAY + timedelta(days=6)):
        got = kpi(dsn, "--day", day.isoformat())
        want = expected(calls, [day])
        assert want["calls"] > 20 and want["queue_legs"] > 0 and want["time_to_service_s"], \
            "the generated day exercises every figure"
        assert_figures(got, want)
        assert got["period"] == day.isoformat() and got["timezone"] == "Asia/Shanghai"
        assert got["from"] == f"{day.isoformat()}T00:00:00+08:00"


async def test_a_week_by_line_and_segment(week: tuple[str, list[Call]]) -> None:
    dsn, calls = week
    days = [MONDAY + timedelta(days=i) for i in range(7)]
    whole = kpi(dsn, "--week", "2026-W47")
    assert_figures(whole, expected(calls, days))
    assert kpi(dsn, "--week", "2026-11-19") == whole, "a date names its ISO week"
    assert whole["period"] == "2026-W47" and whole["to"] == "2026-11-23T00:00:00+08:00"
    vip = kpi(dsn, "--week", "2026-W47", "--line", "95001", "--segment", "vip")
    assert_figures(vip, expected(calls, days, line="95001", segment="vip"))
    assert vip["line"] == "95001" and vip["segment"] == "vip"
    unknown = kpi(dsn, "--week", "2026-W47", "--segment", "unknown")
    assert_figures(unknown, expected(calls, days, segment="unknown"))
    assert 0 < unknown["calls"] < whole["calls"]


async def test_a_call_at_local_midnight_belongs_to_the_day_it_starts(dsn: str) -> None:
    late = datetime.combine(MONDAY, time(23, 59, 59), SHANGHAI)  # 15:59:59 UTC the same date
    early = datetime.combine(MONDAY + timedelta(days=1), time(0), SHANGHAI)  # 16:00 UTC, Monday in UTC
    calls = [Call("late", late.astimezone(UTC), "95000", None, "hangup", 1000, ["main"], [], None),
             Call("early", early.astimezone(UTC), "95000", None, "self_service", 3000, ["main"], [("balance", "ok")], 5)]
    await store(dsn, calls)
    monday, tuesday = kpi(dsn, "--day", MONDAY.isoformat()), kpi(dsn, "--day", "2026-11-17")
    assert (monday["calls"], monday["outcomes"]["hangup"], monday["nodes"]) == (1, 1, {"main": {"visits": 1, "drop_offs": 1}})
    assert (tuesday["calls"], tuesday["survey_avg"], tuesday["services"]) == (1, 5, {"balance": {"reached": 1, "ok": 1}})
    assert tuesday["self_service_rate"] == 1.0 and tuesday["avg_duration_ms"] == 3000


async def test_the_days_follow_the_calendars_time_zone(dsn: str) -> None:
    at = datetime(2026, 11, 16, 20, 0, tzinfo=UTC)  # Tuesday 04:00 in Shanghai, Monday 20:00 in London
    await store(dsn, [Call("c", at, "95000", None, "transferred", 1000, ["main"], [], None)])
    assert kpi(dsn, "--day", "2026-11-17")["calls"] == 1
    assert hotline_cli(dsn, "calendar", "timezone", "Europe/London").returncode == 0
    london = kpi(dsn, "--day", "2026-11-16")
    assert london["calls"] == 1 and london["timezone"] == "Europe/London"
    assert london["from"] == "2026-11-16T00:00:00+00:00"


async def test_the_journey_writer_stamps_when_each_service_was_reached(dsn: str) -> None:
    before = datetime.now(UTC)
    await store(dsn, [Call("now", before, "95000", None, "self_service", 1000, ["main"],
                           [("balance", "ok"), ("transfer", "refused")], None)])
    after = datetime.now(UTC)
    async with connection(dsn) as conn:
        stamps = [r["at"] for r in await conn.fetch("SELECT at FROM call_services WHERE call_id = 'now' ORDER BY seq")]
    assert len(stamps) == 2 and all(before <= at <= after for at in stamps) and stamps[0] <= stamps[1]


async def test_a_day_without_calls_has_no_rates_rather_than_zeros(dsn: str) -> None:
    got = kpi(dsn, "--day", "2026-11-20")
    assert got["calls"] == 0 and got["in_progress"] == 0
    for key in ("self_service_rate", "transfer_rate", "abandon_rate", "avg_duration_ms", "survey_avg",
                "answer_speed_s", "agent_connection_rate", "queue_abandon_rate", "avg_talk_s"):
        assert got[key] is None, key
    assert got["services"] == {} and got["nodes"] == {} and got["agents"] == {} and got["time_to_service_s"] == {}


async def test_text_output_for_people(week: tuple[str, list[Call]]) -> None:
    dsn, calls = week
    want = expected(calls, [MONDAY])
    result = hotline_cli(dsn, "kpi", "--day", MONDAY.isoformat())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("KPIs 2026-11-16 (Asia/Shanghai)")
    assert f"calls               {want['calls']}" in result.stdout
    assert f"self-service        {want['self_service_rate'] * 100:.1f} %" in result.stdout
    assert "agents" in result.stdout and "alice" in result.stdout
    balance = want["time_to_service_s"]["balance"]
    assert "time to service" in result.stdout and f"balance           {balance['calls']:>5}  " in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    ((), "exactly one of --day"),
    (("--day", "2026-11-16", "--week", "2026-W47"), "exactly one of --day"),
    (("--day", "16/11/2026"), "is not a date"),
    (("--week", "2026-W54"), "no such ISO week"),
    (("--day", "2026-11-16", "--line", "9500;1"), "bad line"),
])
def test_bad_periods_and_lines_are_refused_with_exit_1(args: tuple[str, ...], message: str) -> None:
    result = hotline_cli("postgresql://hotline@127.0.0.1:1/none", "kpi", *args)
    assert result.returncode == 1 and message in result.stderr


def test_without_a_database_configured_it_exits_2() -> None:
    result = hotline_cli("", "kpi", "--day", "2026-11-16")
    assert result.returncode == 2 and "HOTLINE_DSN" in result.stderr
