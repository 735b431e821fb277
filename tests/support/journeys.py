"""Generated journeys with known answers, stored through the real journey writer as `hotline serve`
stores them (what the contact centre's tracker and the clock add — queue legs, when each service
was reached — by SQL). Shared by the KPI, report and menu-adaptation tests, which compute their
expected figures from these plain objects, never from the code under test."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import connection, create_pool
from agi_app.engine.journey import JourneyRecord

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
        await conn.executemany(
            "UPDATE call_services SET at = $3 WHERE call_id = $1 AND seq = $2",
            [(c.call_id, seq, c.started_at + timedelta(seconds=offset))
             for c in calls for seq, offset in enumerate(c.service_at_s, start=1)])
