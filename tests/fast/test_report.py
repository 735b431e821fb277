"""`hotline report --out DIR` on a generated week of journeys: the charts are real PNGs, the page names
them and uses nothing from outside, its numbers are `hotline kpi --json`'s for the same period, and
the charts' own series are counted again here from the generated calls."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agi_app.analytics.report import CHARTS, INDEX
from agi_app.db.pool import connection
from agi_app.db.repositories.kpi import report_counts
from tests.support.cli import hotline_cli
from tests.support.journeys import MONDAY, SHANGHAI, Call, generate, store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest_asyncio.fixture
async def week(dsn: str) -> AsyncIterator[tuple[str, list[Call]]]:
    calls = generate()
    await store(dsn, calls)
    yield dsn, calls


def report(dsn: str, out: Path, *args: str) -> Path:
    result = hotline_cli(dsn, "report", "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    assert "charts" in result.stderr, "the progress bar goes to stderr"
    index = Path(result.stdout.strip())
    assert index == out / INDEX, "stdout is the page's path, nothing else"
    return index


def kpi(dsn: str, *args: str) -> dict[str, Any]:
    result = hotline_cli(dsn, "kpi", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (signature, then the IHDR chunk)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def shown_figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'<td data-kpi="([a-z_]+)">([^<]*)</td>', page))


def as_shown(value: float | None, kind: str) -> str:
    """How a person reads a figure, written independently of the report's code."""
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value * 100:.1f} %"
    if kind == "seconds":
        return f"{value:g} s"
    return f"{value:g}"


def assert_page_matches(page: str, k: dict[str, Any]) -> None:
    shown = shown_figures(page)
    for key in ("calls", "in_progress", "queue_legs", "survey_answers"):
        assert shown[key] == str(k[key]), key
    for key in ("self_service_rate", "transfer_rate", "abandon_rate", "agent_connection_rate", "queue_abandon_rate"):
        assert shown[key] == as_shown(k[key], "rate"), key
    for key in ("answer_speed_s", "avg_talk_s"):
        assert shown[key] == as_shown(k[key], "seconds"), key
    assert shown["survey_avg"] == as_shown(k["survey_avg"], "plain")
    assert shown["avg_duration_ms"] == as_shown(None if k["avg_duration_ms"] is None else k["avg_duration_ms"] / 1000,
                                                "seconds")
    for name, s in k["services"].items():
        times = k["time_to_service_s"].get(name)
        cells = [name, s["reached"], s["ok"], *((times["mean"], times["p50"], times["p90"]) if times else ("-",) * 3)]
        assert "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" in page, name
    for name, n in k["nodes"].items():
        assert f"<tr><td>{name}</td><td>{n['visits']}</td><td>{n['drop_offs']}</td></tr>" in page, name
    for name, a in k["agents"].items():
        assert f"<tr><td>{name}</td><td>{a['calls']}</td><td>{a['talk_s']}</td></tr>" in page, name
    for outcome, n in k["outcomes"].items():
        assert f"<tr><td>{outcome}</td><td>{n}</td></tr>" in page, outcome


async def test_a_weeks_report_has_every_chart_and_the_numbers_of_hotline_kpi(
        week: tuple[str, list[Call]], tmp_path: Path) -> None:
    dsn, _ = week
    index = report(dsn, tmp_path / "w47", "--week", "2026-W47")
    page = index.read_text(encoding="utf-8")
    for chart in CHARTS:
        assert png_size(tmp_path / "w47" / chart.file) == (800, 450), chart.name
        assert f'<img src="{chart.file}"' in page and chart.title in page, chart.name
    assert sorted(p.name for p in (tmp_path / "w47").iterdir()) == sorted([INDEX, *(c.file for c in CHARTS)])
    assert not re.search(r"(src|href)=\"(https?:|//)", page), "no external assets"
    k = kpi(dsn, "--week", "2026-W47")
    assert k["calls"] > 100 and k["time_to_service_s"] and k["agents"], "the week exercises every table"
    assert_page_matches(page, k)
    assert "<h1>Hotline report 2026-W47</h1>" in page


async def test_line_segment_and_a_range_of_days(week: tuple[str, list[Call]], tmp_path: Path) -> None:
    dsn, _ = week
    day = (MONDAY + timedelta(days=2)).isoformat()
    page = report(dsn, tmp_path / "r", "--from", day, "--to", day, "--line", "95000", "--segment", "vip").read_text()
    assert_page_matches(page, kpi(dsn, "--day", day, "--line", "95000", "--segment", "vip"))
    assert f"Hotline report {day}..{day} · line 95000 · segment vip" in page


async def test_the_charts_series_are_the_calls_of_the_period(week: tuple[str, list[Call]]) -> None:
    dsn, calls = week
    days = [MONDAY + timedelta(days=i) for i in range(7)]
    ended = [c for c in calls if c.outcome is not None and c.started_at.astimezone(SHANGHAI).date() in days]
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    for c in ended:
        per_day[c.started_at.astimezone(SHANGHAI).date()][c.outcome or ""] += 1
    start = datetime.combine(days[0], time(0), SHANGHAI)
    end = datetime.combine(days[-1] + timedelta(days=1), time(0), SHANGHAI)
    async with connection(dsn) as conn:
        _, series = await report_counts(conn, start, end, SHANGHAI)
    assert {d: dict(o) for d, o in series.per_day.items()} == {d: dict(o) for d, o in per_day.items()}
    assert dict(series.per_hour) == dict(Counter(c.started_at.astimezone(SHANGHAI).hour for c in ended))
    assert dict(series.survey_scores) == dict(Counter(c.survey for c in ended if c.survey is not None))


def test_a_period_without_calls_still_gives_every_chart(db: str, tmp_path: Path) -> None:
    index = report(db, tmp_path, "--day", "2026-11-20")
    page = index.read_text()
    assert all(png_size(tmp_path / c.file) == (800, 450) for c in CHARTS)
    assert shown_figures(page)["calls"] == "0" and shown_figures(page)["self_service_rate"] == "-"
    assert page.count("none in this period") == 3  # services, nodes, agents


@pytest.mark.parametrize(("args", "message"), [
    (("--day", "2026-11-16", "--from", "2026-11-16", "--to", "2026-11-17"), "exactly one of --day, --week, or --from"),
    (("--from", "2026-11-16"), "exactly one of --day, --week, or --from"),
    (("--from", "2026-11-17", "--to", "2026-11-16"), "is before --from"),
    (("--from", "2025-01-01", "--to", "2026-11-16"), "at most 366"),
    ((), "exactly one of --day"),
])
def test_bad_periods_are_refused_with_exit_1(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = hotline_cli("postgresql://hotline@127.0.0.1:1/none", "report", "--out", str(tmp_path), *args)
    assert result.returncode == 1 and message in result.stderr
    assert not any(tmp_path.iterdir())


def test_the_call_server_never_loads_matplotlib() -> None:
    code = "import sys, agi_app.serve.app, agi_app.cli.main; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
