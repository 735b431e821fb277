"""The KPI figures worked out again from generated calls (tests/support/journeys.py), straight from
their definitions (agi_app/analytics/kpi.py's docstring) in plain Python — never by calling the code
under test — and the comparison with what `hotline kpi --json` printed."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, tzinfo
from statistics import mean
from typing import Any

import pytest

from tests.support.journeys import OUTCOMES, SHANGHAI, Call


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    at = fraction * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def local_day(c: Call, zone: tzinfo = SHANGHAI) -> date:
    return c.started_at.astimezone(zone).date()


def chosen(calls: Iterable[Call], days: Iterable[date], *, line: str | None = None,
           segment: str | None = None, zone: tzinfo = SHANGHAI) -> list[Call]:
    """The calls that started on one of `days` (local to `zone`), on `line`, of `segment`
    (`unknown`: not identified)."""
    wanted = set(days)
    return [c for c in calls if local_day(c, zone) in wanted and (line is None or c.dnis == line)
            and (segment is None or (c.segment or "unknown") == segment)]


def expected(calls: list[Call], days: Iterable[date], *, line: str | None = None,
             segment: str | None = None, zone: tzinfo = SHANGHAI) -> dict[str, Any]:
    """The figures, from their definitions, over the generated calls."""
    period = chosen(calls, days, line=line, segment=segment, zone=zone)
    ended = [c for c in period if c.outcome is not None]
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
    legs = [leg for c in ended for leg in c.legs if leg.result not in ("waiting", None)]
    answered = [leg for leg in legs if leg.result in ("answered", "completed")]
    talked = [leg.talk_s for leg in legs if leg.talk_s is not None]
    agents: dict[str, dict[str, int]] = defaultdict(lambda: {"calls": 0, "talk_s": 0})
    for leg in answered:
        assert leg.agent is not None
        agents[leg.agent]["calls"] += 1
        agents[leg.agent]["talk_s"] += leg.talk_s or 0
    scores = survey_scores(ended)
    durations = [c.duration_ms for c in ended if c.duration_ms is not None]
    waits = [leg.wait_s for leg in answered if leg.wait_s is not None]
    firsts: dict[str, list[float]] = defaultdict(list)  # service: seconds to its first reach, per call
    for c in ended:
        first: dict[str, float] = {}
        for (service, _), offset in zip(c.services, c.service_at_s, strict=True):
            first[service] = min(first.get(service, offset), offset)
        for service, offset in first.items():
            firsts[service].append(offset)
    return {
        "calls": len(ended), "in_progress": len(period) - len(ended),
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "self_service_rate": rate(outcomes["self_service"], len(ended)),
        "transfer_rate": rate(outcomes["transferred"], len(ended)),
        "abandon_rate": rate(outcomes["abandoned"], len(ended)),
        "avg_duration_ms": mean(durations) if durations else None,
        "survey_avg": mean(scores) if scores else None, "survey_answers": len(scores),
        "services": dict(services), "nodes": dict(nodes),
        "queue_legs": len(legs),
        "answer_speed_s": mean(waits) if waits else None,
        "agent_connection_rate": rate(len(answered), len(legs)),
        "queue_abandon_rate": rate(sum(leg.result == "abandoned" for leg in legs), len(legs)),
        "avg_talk_s": mean(talked) if talked else None,
        "agents": dict(agents),
        "time_to_service_s": {service: {"calls": len(times), "mean": mean(times), "p50": percentile(times, 0.5),
                                        "p90": percentile(times, 0.9)} for service, times in firsts.items()},
    }


def survey_scores(calls: Iterable[Call]) -> list[int]:
    """Every score given (after self-service and after an agent); surveys not answered have none."""
    return [score for c in calls
            for score in [c.survey, *(a.score for a in c.agent_surveys)] if score is not None]


def per_day(calls: Iterable[Call]) -> dict[date, dict[str, int]]:
    """Ended calls per local day and outcome."""
    days: dict[date, Counter[str]] = defaultdict(Counter)
    for c in calls:
        if c.outcome is not None:
            days[local_day(c)][c.outcome] += 1
    return {d: dict(o) for d, o in days.items()}


def per_hour(calls: Iterable[Call]) -> dict[int, int]:
    """Ended calls per local hour of the day."""
    return dict(Counter(c.started_at.astimezone(SHANGHAI).hour for c in calls if c.outcome is not None))


#: How the command rounds: rates to 4 decimals, the survey mean to 2, seconds to 1, milliseconds to 1.
ROUNDING = {"avg_duration_ms": 0.5, "survey_avg": 0.005, "answer_speed_s": 0.05, "avg_talk_s": 0.05}


def assert_figures(got: dict[str, Any], want: dict[str, Any], where: str = "") -> None:
    for key, value in want.items():
        if key == "time_to_service_s":
            assert set(got[key]) == set(value), (where, key)
            for service, times in value.items():
                assert got[key][service]["calls"] == times["calls"], (where, service)
                for figure in ("mean", "p50", "p90"):
                    assert got[key][service][figure] == pytest.approx(times[figure], abs=0.05 + 1e-9), \
                        (where, service, figure)
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=ROUNDING.get(key, 0.00005) + 1e-9), (where, key)
        else:
            assert got[key] == value, (where, key)
