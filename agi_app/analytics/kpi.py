"""Key performance indicators of the hotline for a day or an ISO week, as managers read them.

Definitions (the same text is in `hotline kpi --help` and the README):

- The period is whole local days in the bank's time zone (the calendar zone of the line asked
  about, else the all-lines zone, Asia/Shanghai by default): a call belongs to the day it started.
- `calls`: calls that started in the period and have ended. A call still in progress has no outcome
  yet: it is counted in `in_progress` only, and in no other figure.
- `self_service_rate` (containment): calls whose outcome is `self_service` / `calls`; likewise
  `transfer_rate` (`transferred`) and `abandon_rate` (`abandoned`: the caller hung up in the IVR
  before any successful service). `outcomes` gives every outcome's count.
- `avg_duration_ms`: the mean IVR duration of those calls (arrival to hang-up or hand-off).
- `survey_avg`: the mean satisfaction score (1-5) of their survey answers; null without answers.
- `services`: per service id, `reached` = times a caller reached it, `ok` = of which it succeeded.
- `time_to_service_s`: per service id, over the calls that reached it: seconds from the call's start
  to the first time it reached the service (its result given), `calls`, `mean`, `p50`, `p90`
  (percentiles interpolated between closest ranks).
- `nodes`: per node id, `visits` = times calls entered it; `drop_offs` = calls whose last node it
  was and whose outcome is `abandoned` or `hangup` (the caller left, or the flow gave up on them).
- Queue figures, from the queue legs of those calls (one leg per queue a call was sent to), over
  legs no longer waiting: `answer_speed_s` = mean wait of legs an agent answered;
  `agent_connection_rate` = answered legs / legs; `queue_abandon_rate` = legs the caller abandoned
  in the queue / legs; `avg_talk_s` = mean talk time of legs with one; `agents`: per agent, calls
  answered and their total talk time.
- A rate or mean with nothing to divide by is null, never 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

OUTCOMES = ("self_service", "transferred", "abandoned", "hangup", "error")
#: Outcomes that make the call's last node a drop-off.
DROP_OFF_OUTCOMES = ("abandoned", "hangup")
#: Queue leg results: the leg is over (it counts in the queue figures) unless `waiting`.
ANSWERED_RESULTS = ("answered", "completed")
#: `--segment unknown`: calls from numbers not identified as a customer's.
UNKNOWN_SEGMENT = "unknown"

_WEEK = re.compile(r"(\d{4})-W(\d{2})")


@dataclass(frozen=True)
class Period:
    """Whole local days from `first_day`, named as the administrator asked (`2026-11-20`, `2026-W47`)."""

    label: str
    first_day: date
    days: int

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """`[start, end)`: local midnight of the first day to local midnight after the last, in `zone`."""
        return (datetime.combine(self.first_day, time(0), zone),
                datetime.combine(self.first_day + timedelta(days=self.days), time(0), zone))


def parse_period(day: str | None, week: str | None) -> Period:
    """Exactly one of `day` (YYYY-MM-DD) and `week` (an ISO week, YYYY-Www, or any date in it: Monday
    to Sunday); ValueError saying what is expected."""
    if (day is None) == (week is None):
        raise ValueError("give exactly one of --day YYYY-MM-DD and --week YYYY-Www (or a date in the week)")
    if day is not None:
        return Period(day.strip(), _date(day, "--day"), 1)
    assert week is not None
    match = _WEEK.fullmatch(week.strip())
    if match:
        try:
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            raise ValueError(f"--week {week!r}: no such ISO week") from None
    else:
        some_day = _date(week, "--week")
        monday = some_day - timedelta(days=some_day.weekday())
    year, number, _ = monday.isocalendar()
    return Period(f"{year}-W{number:02d}", monday, 7)


#: The longest `--from/--to` range: a year of days is what a management report reads.
MAX_RANGE_DAYS = 366


def parse_range(first: str, last: str) -> Period:
    """`--from D --to D`: whole local days, both included (at most MAX_RANGE_DAYS)."""
    start, end = _date(first, "--from"), _date(last, "--to")
    if end < start:
        raise ValueError(f"--to {last!r} is before --from {first!r}")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ValueError(f"--from/--to spans {days} days; at most {MAX_RANGE_DAYS}")
    return Period(f"{start.isoformat()}..{end.isoformat()}", start, days)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a date (expected YYYY-MM-DD)") from None


@dataclass(frozen=True)
class ServiceTimes:
    """Seconds from the start of the call to the first time it reached a service, over `calls` calls."""

    calls: int
    mean_s: float
    p50_s: float
    p90_s: float


@dataclass(frozen=True)
class KpiCounts:
    """What the database counted for a period (the figures' numerators and denominators)."""

    outcomes: Mapping[str, int] = field(default_factory=dict)  # ended calls by outcome
    in_progress: int = 0
    duration_ms_total: int = 0
    durations: int = 0  # ended calls with a duration
    survey_total: int = 0
    survey_answers: int = 0
    services: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # service: (reached, ok)
    node_visits: Mapping[str, int] = field(default_factory=dict)
    drop_offs: Mapping[str, int] = field(default_factory=dict)
    legs: int = 0  # queue legs no longer waiting
    legs_answered: int = 0
    answered_wait_s_total: int = 0
    answered_waits: int = 0  # answered legs with a wait
    legs_abandoned: int = 0
    talk_s_total: int = 0
    talks: int = 0  # legs with a talk time
    agents: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # agent: (calls, talk seconds)
    service_times: Mapping[str, ServiceTimes] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(self.outcomes.values())


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: int, count: int, digits: int) -> float | None:
    return round(total / count, digits) if count else None


def percent(rate: float | None) -> str:
    """A rate as people read it ("-" when there was nothing to divide by)."""
    return "-" if rate is None else f"{rate * 100:.1f} %"


def number(value: float | None, unit: str = "") -> str:
    """A mean as people read it ("-" when there was nothing to average)."""
    return "-" if value is None else f"{value:g}{unit}"


def figures(counts: KpiCounts, period: Period, zone: tzinfo, *, line: str | None = None,
            segment: str | None = None) -> dict[str, Any]:
    """The `hotline kpi --json` object (module docstring: what each figure means)."""
    calls = counts.calls
    start, end = period.bounds(zone)
    nodes = sorted(set(counts.node_visits) | set(counts.drop_offs))
    avg_duration = _mean(counts.duration_ms_total, counts.durations, 0)
    return {
        "period": period.label,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": str(zone),
        "line": line,
        "segment": segment,
        "calls": calls,
        "in_progress": counts.in_progress,
        "outcomes": {o: counts.outcomes.get(o, 0) for o in OUTCOMES},
        "self_service_rate": _ratio(counts.outcomes.get("self_service", 0), calls),
        "transfer_rate": _ratio(counts.outcomes.get("transferred", 0), calls),
        "abandon_rate": _ratio(counts.outcomes.get("abandoned", 0), calls),
        "avg_duration_ms": int(avg_duration) if avg_duration is not None else None,
        "survey_avg": _mean(counts.survey_total, counts.survey_answers, 2),
        "survey_answers": counts.survey_answers,
        "services": {s: {"reached": reached, "ok": ok} for s, (reached, ok) in sorted(counts.services.items())},
        "nodes": {n: {"visits": counts.node_visits.get(n, 0), "drop_offs": counts.drop_offs.get(n, 0)}
                  for n in nodes},
        "queue_legs": counts.legs,
        "answer_speed_s": _mean(counts.answered_wait_s_total, counts.answered_waits, 1),
        "agent_connection_rate": _ratio(counts.legs_answered, counts.legs),
        "queue_abandon_rate": _ratio(counts.legs_abandoned, counts.legs),
        "avg_talk_s": _mean(counts.talk_s_total, counts.talks, 1),
        "agents": {a: {"calls": n, "talk_s": talk} for a, (n, talk) in sorted(counts.agents.items())},
        "time_to_service_s": {s: {"calls": t.calls, "mean": round(t.mean_s, 1), "p50": round(t.p50_s, 1),
                                  "p90": round(t.p90_s, 1)} for s, t in sorted(counts.service_times.items())},
    }
