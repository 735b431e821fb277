"""`hotline kpi` against a generated week of journeys, written by the real journey writer (queue legs,
which the contact centre's tracker completes, by SQL), every figure computed again here in plain
Python from the generated calls — not by the code under test."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import mean
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import connection, create_pool
from agi_app.engine.journey import JourneyRecord
from tests.support.cli import hotline_cli

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 11, 16)  # ISO week 2026-W47
NODES = ["entry", "greeting", "main", "accounts", "balance", "cards", "agent_general", "goodbye"]
SERVICES = ["balance", "transfer", "card_loss"]
AGENTS = ["alice", "bob", "chen"]
OUTCOMES = ["self_service", "transferred", "abandoned", "hangup", "error"]


@dataclass
class Leg:
    queue: str
    result: str
    agent: str | None
    wait_s: int | None
    talk_s: int | None


@dataclass
class Call:
    call_id: str
    started_at: datetime
    dnis: str
    segment: str | None
    outcome: str | None  # None: still in progress
    duration_ms: int
    path: list[str]
    services: list[tuple[str, str]]
    survey: int | None
    legs: list[Leg] = field(default_factory=list)


def generate(seed: int = 20261116, count: int = 300) -> list[Call]:
    """`count` calls over the week before and the days around it, local times spread over whole days;
    a few exactly at local midnight and just before it."""
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        day = MONDAY + timedelta(days=rng.randrange(-1, 8))
        local = datetime.combine(day, time(0), SHANGHAI) + timedelta(seconds=rng.randrange(86_400))
        if i % 50 == 0:
            local = datetime.combine(day, time(0), SHANGHAI)
        elif i % 50 == 1:
            local = datetime.combine(day, time(23, 59, 59), SHANGHAI)
        outcome = rng.choice(OUTCOMES) if rng.random() > 0.05 else None
        path = [rng.choice(NODES) for _ in range(rng.randint(1, 5))]
        services = [(rng.choice(SERVICES), rng.choice(["ok", "ok", "refused", "failed", "abandoned"]))
                    for _ in range(rng.choice([0, 0, 1, 2]))]
        call = Call(f"call-{i:03d}", local.astimezone(UTC), rng.choice(["95000", "95001"]),
                    rng.choice(["standard", "vip", "elderly", None]), outcome, rng.randint(2_000, 300_000), path,
                    services, rng.randint(1, 5) if rng.random() < 0.3 else None)
        if outcome == "transferred":
            for queue in rng.sample(["general", "cards"], rng.choice([1, 1, 2])):
                result = rng.choice(["answered", "completed", "completed", "abandoned", "timeout", "callback",
                                     "waiting"])
                took = result in ("answered", "completed")
                call.legs.append(Leg(queue, result, rng.choice(AGENTS) if took else None,
                                     rng.randint(0, 600) if result != "waiting" else None,
                                     rng.randint(10, 900) if result == "completed" else None))
        calls.append(call)
    return calls


async def store(dsn: str, calls: list[Call]) -> None:
    """Through the journey writer, as `hotline serve` stores them."""
    pool = await create_pool(dsn)
    sink = PgJourneySink(pool, budget_s=5)
    sink.start()
    try:
        for c in calls:
            record = JourneyRecord(c.call_id, "13800138000", c.dnis, c.started_at, segment=c.segment,
                                   customer_id="C1" if c.segment else None)
            sink.call_started(record)
            sink.call_identified(record)
            for seq, node in enumerate(c.path, start=1):
                sink.node_entered(c.call_id, seq, node, c.started_at + timedelta(seconds=seq))
            for seq, (service, result) in enumerate(c.services, start=1):
                sink.service_reached(c.call_id, seq, service, result)  # type: ignore[arg-type]
            if c.survey is not None:
                sink.survey_answer(c.call_id, "survey", c.survey)
            if c.outcome is not None:
                record.outcome, record.duration_ms = c.outcome, c.duration_ms  # type: ignore[assignment]
                sink.call_ended(record, c.started_at + timedelta(milliseconds=c.duration_ms))
        await sink.flush()
    finally:
        await sink.close()
        await pool.close()
    async with connection(dsn) as conn:
        await conn.executemany(
            "INSERT INTO queue_legs (call_id, queue, result, agent, wait_s, talk_s) VALUES ($1, $2, $3, $4, $5, $6)",
            [(c.call_id, leg.queue, leg.result, leg.agent, leg.wait_s, leg.talk_s) for c in calls for leg in c.legs])


def expected(calls: list[Call], days: list[date], *, line: str | None = None,
             segment: str | None = None) -> dict[str, Any]:
    """The figures, from their definitions, over the generated calls."""
    def belongs(c: Call) -> bool:
        return (c.started_at.astimezone(SHANGHAI).date() in days and (line is None or c.dnis == line)
                and (segment is None or (c.segment or "unknown") == segment))

    chosen = [c for c in calls if belongs(c)]
    ended = [c for c in chosen if c.outcome is not None]
    outcomes = Counter(c.outcome for c in ended)

    def rate(n: int, d: int) -> float | None:
        return n / d if d else None

    services: dict[str, dict[str, int]] = defaultdict(lambda: {"reached": 0, "ok": 0})
    nodes: dict[str, dict[str, int]] = defaultdict(lambda: {"visits": 0, "drop_offs": 0})
    for c in ended:
        for service, result in c.services:
            services[service]["reached"] += 1
            services[service]["ok"] += result == "ok"
        for node in c.path:
            nodes[node]["visits"] += 1
        if c.outcome in ("abandoned", "hangup"):
            nodes[c.path[-1]]["drop_offs"] += 1
    legs = [leg for c in ended for leg in c.legs if leg.result != "waiting"]
    answered = [leg for leg in legs if leg.result in ("answered", "completed")]
    talked = [leg.talk_s for leg in legs if leg.talk_s is not None]
    agents: dict[str, dict[str, int]] = defaultdict(lambda: {"calls": 0, "talk_s": 0})
    for leg in answered:
        assert leg.agent is not None
        agents[leg.agent]["calls"] += 1
        agents[leg.agent]["talk_s"] += leg.talk_s or 0
    surveys = [c.survey for c in ended if c.survey is not None]
    return {
        "calls": len(ended), "in_progress": len(chosen) - len(ended),
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "self_service_rate": rate(outcomes["self_service"], len(ended)),
        "transfer_rate": rate(outcomes["transferred"], len(ended)),
        "abandon_rate": rate(outcomes["abandoned"], len(ended)),
        "avg_duration_ms": mean(c.duration_ms for c in ended) if ended else None,
        "survey_avg": mean(surveys) if surveys else None, "survey_answers": len(surveys),
        "services": dict(services), "nodes": dict(nodes),
        "queue_legs": len(legs),
        "answer_speed_s": mean(leg.wait_s for leg in answered if leg.wait_s is not None) if answered else None,
        "agent_connection_rate": rate(len(answered), len(legs)),
        "queue_abandon_rate": rate(sum(leg.result == "abandoned" for leg in legs), len(legs)),
        "avg_talk_s": mean(talked) if talked else None,
        "agents": dict(agents),
    }


#: How the command rounds: rates to 4 decimals, the survey mean to 2, seconds to 1, milliseconds to 1.
ROUNDING = {"avg_duration_ms": 0.5, "survey_avg": 0.005, "answer_speed_s": 0.05, "avg_talk_s": 0.05}


def assert_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=ROUNDING.get(key, 0.00005) + 1e-9), key
        else:
            assert got[key] == value, key


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
        assert want["calls"] > 20 and want["queue_legs"] > 0, "the generated day exercises every figure"
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


async def test_a_day_without_calls_has_no_rates_rather_than_zeros(dsn: str) -> None:
    got = kpi(dsn, "--day", "2026-11-20")
    assert got["calls"] == 0 and got["in_progress"] == 0
    for key in ("self_service_rate", "transfer_rate", "abandon_rate", "avg_duration_ms", "survey_avg",
                "answer_speed_s", "agent_connection_rate", "queue_abandon_rate", "avg_talk_s"):
        assert got[key] is None, key
    assert got["services"] == {} and got["nodes"] == {} and got["agents"] == {}


async def test_text_output_for_people(week: tuple[str, list[Call]]) -> None:
    dsn, calls = week
    want = expected(calls, [MONDAY])
    result = hotline_cli(dsn, "kpi", "--day", MONDAY.isoformat())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("KPIs 2026-11-16 (Asia/Shanghai)")
    assert f"calls               {want['calls']}" in result.stdout
    assert f"self-service        {want['self_service_rate'] * 100:.1f} %" in result.stdout
    assert "agents" in result.stdout and "alice" in result.stdout


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
