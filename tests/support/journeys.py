"""Generated journeys with known answers. `generate` makes a week of 300 calls, stored through the
real journey writer as `hotline serve` stores them (`store`: what the contact centre's tracker and
the clock add — queue legs, when each service was reached — by SQL); `generate_month` makes a month
of a few thousand calls with a contact centre's variety, bulk-loaded with COPY (`store_bulk`: the
rows the writer and the tracker would have written, in seconds). Shared by the KPI, report and
menu-adaptation tests, which compute their expected figures from these plain objects
(tests/support/kpi_expected.py), never from the code under test."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import connection, create_pool
from agi_app.engine.journey import JourneyRecord, SurveyContext

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
class AgentSurvey:
    """The survey after an agent's call: a score, or no answer (`no_answer` says why)."""

    queue: str
    agent: str
    score: int | None
    no_answer: str | None = None


@dataclass
class Call:
    call_id: str
    started_at: datetime
    dnis: str
    segment: str | None
    outcome: str | None  # None: still in progress
    duration_ms: int | None  # None: an ended call whose duration was not measured
    path: list[str]
    services: list[tuple[str, str]]
    survey: int | None  # the self-service survey's score
    legs: list[Leg] = field(default_factory=list)
    #: The self-service survey offered but not answered (why), when `survey` is None.
    survey_no_answer: str | None = None
    agent_surveys: list[AgentSurvey] = field(default_factory=list)
    #: Seconds after the start at which each of `services` was reached (none: the writer's clock).
    service_at_s: list[float] = field(default_factory=list)
    #: Keys pressed: (position in `path`, 1-based, of the node they were pressed at; key; result).
    inputs: list[tuple[int, str, str]] = field(default_factory=list)


def generate(seed: int = 20261116, count: int = 300) -> list[Call]:
    """`count` calls over the week before and the days around it, local times spread over whole days;
    a few exactly at local midnight and just before it."""
    rng = random.Random(seed)
    clock = random.Random(seed + 1)  # service times: their own stream, the rest stays as it was
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
        call.service_at_s = sorted(round(clock.uniform(5, 240), 3) for _ in services)
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
            for seq, (node_seq, key, result) in enumerate(c.inputs, start=1):
                sink.node_input(c.call_id, seq, node_seq, key, result)
            for seq, (service, result) in enumerate(c.services, start=1):
                sink.service_reached(c.call_id, seq, service, result)  # type: ignore[arg-type]
            if c.survey is not None or c.survey_no_answer is not None:
                sink.survey_answer(c.call_id, "survey", c.survey, no_answer=c.survey_no_answer)  # type: ignore[arg-type]
            for answer in c.agent_surveys:
                sink.survey_answer(c.call_id, "survey", answer.score, no_answer=answer.no_answer,  # type: ignore[arg-type]
                                   context=SurveyContext("after_agent", answer.queue, answer.agent))
            if c.outcome is not None:
                record.outcome, record.duration_ms = c.outcome, c.duration_ms  # type: ignore[assignment]
                sink.call_ended(record, c.started_at + timedelta(milliseconds=c.duration_ms or 0))
        await sink.flush()
    finally:
        await sink.close()
        await pool.close()
    async with connection(dsn) as conn:
        await conn.executemany(
            "INSERT INTO queue_legs (call_id, queue, result, agent, wait_s, talk_s) VALUES ($1, $2, $3, $4, $5, $6)",
            [(c.call_id, leg.queue, leg.result, leg.agent, leg.wait_s, leg.talk_s) for c in calls for leg in c.legs])
        await conn.executemany(
            "UPDATE call_services SET at = $3 WHERE call_id = $1 AND seq = $2",
            [(c.call_id, seq, c.started_at + timedelta(seconds=offset))
             for c in calls for seq, offset in enumerate(c.service_at_s, start=1)])


# A month of calls: November 2026 in Shanghai, Sunday the 1st to Monday the 30th (ISO weeks 44 to 49).
MONTH_FIRST = date(2026, 11, 1)
MONTH_DAYS = 30
MONTH_LINES = {"95000": 6, "95001": 3, "95002": 1}  # line: weight
MONTH_SEGMENTS = {"standard": 9, "vip": 3, "private": 2, "elderly": 2, None: 4}  # None: caller not identified
MONTH_OUTCOMES = {"self_service": 45, "transferred": 30, "abandoned": 12, "hangup": 10, "error": 3}
MONTH_AGENTS = ["alice", "bob", "chen", "dong", "erin", "fang"]
#: A queue leg's end as the tracker records it: (result, weight); `waiting` is still in the queue.
LEG_RESULTS = {"completed": 55, "answered": 5, "abandoned": 20, "timeout": 6, "callback": 8, "failed": 2, "waiting": 4}
NO_ANSWERS = ["hangup", "timeout", "invalid_key"]
SELF_SERVICE_PATHS = {"balance": ["accounts", "balance"], "transfer": ["accounts", "transfer"],
                      "card_loss": ["cards", "card_loss"], "bill_pay": ["accounts", "bills"]}


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _local_time(rng: random.Random, day: date) -> datetime:
    """Most calls in office hours (peaks mid-morning and mid-afternoon), some through the night."""
    if rng.random() < 0.85:
        hour = min(max(rng.gauss(rng.choice([10.5, 15.0]), 1.6), 0.0), 23.999)
        seconds = int(hour * 3600)
    else:
        seconds = rng.randrange(86_400)
    return datetime.combine(day, time(0), SHANGHAI) + timedelta(seconds=seconds, milliseconds=rng.randrange(1000))


def _month_call(rng: random.Random, call_id: str, local: datetime) -> Call:
    """One call: its line, segment and outcome drawn by weight, its journey made to fit the outcome."""
    outcome: str | None = _pick(rng, MONTH_OUTCOMES) if rng.random() > 0.01 else None
    path = ["entry", "greeting", "main"]
    if rng.random() < 0.15:  # a wrong key: the menu again
        path.append("main")
    services: list[tuple[str, str]] = []
    legs: list[Leg] = []
    if outcome == "self_service":
        for service in rng.sample(list(SELF_SERVICE_PATHS), rng.choice([1, 1, 1, 2])):
            path += SELF_SERVICE_PATHS[service]
            if rng.random() < 0.1:  # refused first (a wrong PIN, say), then done
                services.append((service, "refused"))
            services.append((service, "ok"))
        path.append("goodbye")
    elif outcome == "transferred":
        if rng.random() < 0.3:  # tried a service first
            service = rng.choice(list(SELF_SERVICE_PATHS))
            path += SELF_SERVICE_PATHS[service]
            services.append((service, rng.choice(["failed", "refused"])))
        queue = rng.choice(["general", "general", "cards", "vip"])
        path.append(f"agent_{queue}")
        legs.append(_leg(rng, queue))
        if legs[0].result == "timeout" and queue != "general" and rng.random() < 0.6:  # overflow to general
            legs.append(_leg(rng, "general"))
    elif outcome in ("abandoned", "hangup", "error"):
        if rng.random() < 0.4:
            service = rng.choice(list(SELF_SERVICE_PATHS))
            path += SELF_SERVICE_PATHS[service][:rng.randint(1, 2)]
            if len(path) > 4 and rng.random() < 0.5:
                services.append((service, "abandoned" if outcome == "abandoned" else "failed"))
    else:  # in progress: somewhere in the menus
        path += SELF_SERVICE_PATHS[rng.choice(list(SELF_SERVICE_PATHS))][:1]
    survey: int | None = None
    survey_no_answer: str | None = None
    if outcome == "self_service" and rng.random() < 0.45:
        if rng.random() < 0.8:
            survey = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
        else:
            survey_no_answer = rng.choice(NO_ANSWERS)
    agent_surveys = []
    for leg in legs:  # at most one completed: a leg overflows only after a timeout
        if leg.result == "completed" and leg.agent is not None and rng.random() < 0.4:
            score = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 5, 6])[0] if rng.random() < 0.8 else None
            agent_surveys.append(AgentSurvey(leg.queue, leg.agent, score,
                                             None if score is not None else rng.choice(NO_ANSWERS)))
    duration = rng.randint(3_000, 600_000) if rng.random() > 0.01 else None
    call = Call(call_id, local.astimezone(UTC), _pick(rng, MONTH_LINES), _pick(rng, MONTH_SEGMENTS), outcome,
                duration, path, services, survey, legs, survey_no_answer=survey_no_answer,
                agent_surveys=agent_surveys)
    call.service_at_s = sorted(round(rng.uniform(4, 300), 3) for _ in services)
    return call


def _leg(rng: random.Random, queue: str) -> Leg:
    result = _pick(rng, LEG_RESULTS)
    took = result in ("answered", "completed")
    wait = {"completed": rng.randint(0, 300), "answered": rng.randint(0, 300), "abandoned": rng.randint(3, 600),
            "timeout": 600, "callback": rng.randint(20, 240)}.get(result)
    return Leg(queue, result, rng.choice(MONTH_AGENTS) if took else None, wait,
               rng.randint(15, 1500) if result == "completed" else None)


def generate_month(seed: int = 202611, per_day: tuple[int, int] = (70, 130)) -> list[Call]:
    """About 3,000 calls over November 2026 and a few on the days either side (outside the month,
    inside its first and last ISO weeks); fewer at weekends; on every night, calls in the last
    second before local midnight and at midnight exactly."""
    rng = random.Random(seed)
    calls = []
    for offset in range(-1, MONTH_DAYS + 1):
        day = MONTH_FIRST + timedelta(days=offset)
        inside = 0 <= offset < MONTH_DAYS
        count = rng.randint(*per_day) // (2 if day.weekday() >= 5 else 1) if inside else 20
        stamps = [_local_time(rng, day) for _ in range(count)]
        midnight = datetime.combine(day, time(0), SHANGHAI)
        stamps += [midnight, midnight + timedelta(days=1) - timedelta(milliseconds=1)]
        calls += [_month_call(rng, f"m{day:%m%d}-{i:03d}", at) for i, at in enumerate(stamps)]
    return calls


async def store_bulk(dsn: str, calls: list[Call]) -> None:
    """The rows the journey writer and the queue tracker would have written for `calls`, with COPY."""
    calls_rows: list[tuple[Any, ...]] = []
    nodes: list[tuple[Any, ...]] = []
    services: list[tuple[Any, ...]] = []
    surveys: list[tuple[Any, ...]] = []
    legs: list[tuple[Any, ...]] = []
    for c in calls:
        ended_at = c.started_at + timedelta(milliseconds=c.duration_ms or 1000) if c.outcome else None
        calls_rows.append((c.call_id, c.started_at, ended_at, "13800138000", c.dnis, "C1" if c.segment else None,
                           c.segment, "zh", 1, c.outcome, None, c.duration_ms if c.outcome else None))
        nodes += [(c.call_id, seq, node, c.started_at + timedelta(seconds=seq)) for seq, node in enumerate(c.path, 1)]
        services += [(c.call_id, seq, service, result, c.started_at + timedelta(seconds=offset))
                     for seq, ((service, result), offset) in enumerate(zip(c.services, c.service_at_s, strict=True), 1)]
        if c.survey is not None or c.survey_no_answer is not None:
            surveys.append((c.call_id, "survey", c.survey, c.started_at, "ok" if c.survey else "no_answer",
                            c.survey_no_answer, "after_self_service", None, None))
        surveys += [(c.call_id, "survey", a.score, c.started_at, "ok" if a.score else "no_answer", a.no_answer,
                     "after_agent", a.queue, a.agent) for a in c.agent_surveys]
        legs += [(c.call_id, leg.queue, leg.result, leg.agent, leg.wait_s, leg.talk_s) for leg in c.legs]
    async with connection(dsn) as conn, conn.transaction():
        await conn.copy_records_to_table("calls", records=calls_rows, columns=[
            "call_id", "started_at", "ended_at", "caller", "dnis", "customer_id", "segment", "language",
            "menu_version", "outcome", "transfer_target", "duration_ms"])
        await conn.copy_records_to_table("call_nodes", records=nodes, columns=["call_id", "seq", "node_id", "entered_at"])
        await conn.copy_records_to_table("call_services", records=services,
                                         columns=["call_id", "seq", "service", "result", "at"])
        await conn.copy_records_to_table("survey_answers", records=surveys, columns=[
            "call_id", "node_id", "score", "at", "result", "no_answer", "kind", "queue", "agent"])
        await conn.copy_records_to_table("queue_legs", records=legs,
                                         columns=["call_id", "queue", "result", "agent", "wait_s", "talk_s"])
