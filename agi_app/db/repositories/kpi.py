"""The counts behind `hotline kpi`: aggregated in PostgreSQL (a month of calls never travels to the
client), read in one repeatable-read snapshot so every figure describes the same calls.

What the counts mean is `agi_app.analytics.kpi`'s; this module only counts. The population: calls
that started in `[start, end)`, on `line` if given, of `segment` if given (`unknown`: callers not
identified as a customer).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg

from agi_app.analytics.kpi import (
    ANSWERED_RESULTS,
    DROP_OFF_OUTCOMES,
    UNKNOWN_SEGMENT,
    KpiCounts,
    ServiceTimes,
)
from agi_app.analytics.report import ReportSeries

_CALLS = """
WITH calls_in AS (
    SELECT c.call_id, c.started_at, c.outcome, c.duration_ms FROM calls c
    WHERE c.started_at >= $1 AND c.started_at < $2
      AND ($3::text IS NULL OR c.dnis = $3)
      AND ($4::text IS NULL OR COALESCE(c.segment, '""" + UNKNOWN_SEGMENT + """') = $4)
),
ended AS (SELECT * FROM calls_in WHERE outcome IS NOT NULL)
"""  # noqa: S608 - constant SQL only; values are parameters

_OUTCOMES = _CALLS + """
SELECT outcome, count(*) AS calls, COALESCE(sum(duration_ms), 0) AS duration_ms, count(duration_ms) AS durations
FROM ended GROUP BY outcome"""

_IN_PROGRESS = _CALLS + "SELECT count(*) FROM calls_in WHERE outcome IS NULL"  # noqa: S608 - constant SQL only; values are parameters

_SURVEY = _CALLS + """
SELECT COALESCE(sum(a.score), 0) AS total, count(a.score) AS answers FROM survey_answers a JOIN ended USING (call_id)"""

_SERVICES = _CALLS + """
SELECT s.service, count(*) AS reached, count(*) FILTER (WHERE s.result = 'ok') AS ok
FROM call_services s JOIN ended USING (call_id) GROUP BY s.service"""

# Per call and service, the first time it reached the service; rows without a time (written before
# the writer stamped them) are left out.
_SERVICE_TIMES = _CALLS + """,
firsts AS (
    SELECT s.service, extract(epoch FROM min(s.at) - e.started_at)::float8 AS seconds
    FROM call_services s JOIN ended e USING (call_id) WHERE s.at IS NOT NULL GROUP BY s.call_id, s.service, e.started_at
)
SELECT service, count(*) AS calls, avg(seconds) AS mean_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90_s
FROM firsts GROUP BY service"""  # noqa: S608 - constant SQL only; values are parameters

_NODE_VISITS = _CALLS + """
SELECT n.node_id, count(*) AS visits FROM call_nodes n JOIN ended USING (call_id) GROUP BY n.node_id"""

_DROP_OFFS = _CALLS + """,
last_nodes AS (
    SELECT DISTINCT ON (n.call_id) n.node_id FROM call_nodes n JOIN ended e USING (call_id)
    WHERE e.outcome = ANY($5::text[]) ORDER BY n.call_id, n.seq DESC
)
SELECT node_id, count(*) AS drop_offs FROM last_nodes GROUP BY node_id"""  # noqa: S608 - constant SQL only; values are parameters

# Legs no longer waiting; `answered` = an agent took the call ($5: the results that say so).
_LEGS = _CALLS + """,
legs AS (SELECT q.* FROM queue_legs q JOIN ended USING (call_id) WHERE q.result IS NOT NULL AND q.result <> 'waiting')
"""  # noqa: S608 - constant SQL only; values are parameters

_QUEUE = _LEGS + """
SELECT count(*) AS legs,
       count(*) FILTER (WHERE result = ANY($5::text[])) AS answered,
       COALESCE(sum(wait_s) FILTER (WHERE result = ANY($5::text[])), 0) AS answered_wait_s,
       count(wait_s) FILTER (WHERE result = ANY($5::text[])) AS answered_waits,
       count(*) FILTER (WHERE result = 'abandoned') AS abandoned,
       COALESCE(sum(talk_s), 0) AS talk_s, count(talk_s) AS talks
FROM legs"""

_AGENTS = _LEGS + """
SELECT agent, count(*) AS calls, COALESCE(sum(talk_s), 0) AS talk_s
FROM legs WHERE result = ANY($5::text[]) AND agent IS NOT NULL GROUP BY agent"""


# The report's series: ended calls per local day and outcome, per local hour of the day ($5: the
# time zone's name), and survey answers per score.
_PER_DAY = _CALLS + """
SELECT (started_at AT TIME ZONE $5)::date AS day, outcome, count(*) AS calls FROM ended GROUP BY 1, 2"""

_PER_HOUR = _CALLS + """
SELECT extract(hour FROM started_at AT TIME ZONE $5)::integer AS hour, count(*) AS calls FROM ended GROUP BY 1"""

_SURVEY_SCORES = _CALLS + """
SELECT a.score, count(*) AS answers FROM survey_answers a JOIN ended USING (call_id)
WHERE a.score IS NOT NULL GROUP BY a.score"""


async def kpi_counts(conn: asyncpg.Connection, start: datetime, end: datetime, *, line: str | None = None,
                     segment: str | None = None) -> KpiCounts:
    """Everything `analytics.kpi.figures` needs for calls that started in `[start, end)`."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _counts(conn, (start, end, line, segment))


async def report_counts(conn: asyncpg.Connection, start: datetime, end: datetime, zone: ZoneInfo, *,
                        line: str | None = None, segment: str | None = None) -> tuple[KpiCounts, ReportSeries]:
    """`kpi_counts` and the report's series, from the same snapshot (the charts and the tables
    describe the same calls)."""
    scope = (start, end, line, segment)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        counts = await _counts(conn, scope)
        per_day: dict[date, dict[str, int]] = {}
        for r in await conn.fetch(_PER_DAY, *scope, zone.key):
            per_day.setdefault(r["day"], {})[r["outcome"]] = r["calls"]
        return counts, ReportSeries(
            per_day=per_day,
            per_hour={r["hour"]: r["calls"] for r in await conn.fetch(_PER_HOUR, *scope, zone.key)},
            survey_scores={r["score"]: r["answers"] for r in await conn.fetch(_SURVEY_SCORES, *scope)},
        )


async def _counts(conn: asyncpg.Connection, scope: tuple[datetime, datetime, str | None, str | None]) -> KpiCounts:
    outcomes = await conn.fetch(_OUTCOMES, *scope)
    survey = await conn.fetchrow(_SURVEY, *scope)
    queue = await conn.fetchrow(_QUEUE, *scope, list(ANSWERED_RESULTS))
    assert survey is not None and queue is not None  # aggregates without GROUP BY: one row
    return KpiCounts(
        outcomes={r["outcome"]: r["calls"] for r in outcomes},
        in_progress=await conn.fetchval(_IN_PROGRESS, *scope),
        duration_ms_total=sum(r["duration_ms"] for r in outcomes),
        durations=sum(r["durations"] for r in outcomes),
        survey_total=survey["total"],
        survey_answers=survey["answers"],
        services={r["service"]: (r["reached"], r["ok"]) for r in await conn.fetch(_SERVICES, *scope)},
        node_visits={r["node_id"]: r["visits"] for r in await conn.fetch(_NODE_VISITS, *scope)},
        drop_offs={r["node_id"]: r["drop_offs"]
                   for r in await conn.fetch(_DROP_OFFS, *scope, list(DROP_OFF_OUTCOMES))},
        legs=queue["legs"],
        legs_answered=queue["answered"],
        answered_wait_s_total=queue["answered_wait_s"],
        answered_waits=queue["answered_waits"],
        legs_abandoned=queue["abandoned"],
        talk_s_total=queue["talk_s"],
        talks=queue["talks"],
        agents={r["agent"]: (r["calls"], r["talk_s"]) for r in await conn.fetch(_AGENTS, *scope,
                                                                                list(ANSWERED_RESULTS))},
        service_times={r["service"]: ServiceTimes(r["calls"], r["mean_s"], r["p50_s"], r["p90_s"])
                       for r in await conn.fetch(_SERVICE_TIMES, *scope)},
    )
