"""Which of a step's product calls failed, judged from what the caller got, not only from SIP.

SIPp only sees that a call was answered and hung up. A caller of the hotline can be failed
silently: the start-of-call budget ran out and they got the general menu instead of theirs, or
the call left no journey. So each product call is checked against its journey in PostgreSQL: the
journey exists, names the caller's customer (the lookup made it in time) and passed through the
menu of the caller's segment (`bench/flows.yaml`); and the server logged no degraded start for it
(the calendar, emergency or notices past their budget: the caller silently got the defaults).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg

#: The bench menus: each segment's own menu node (any other segment gets menu_standard).
MENU_OF_SEGMENT = {"vip": "menu_vip", "elderly": "menu_elderly"}
DEFAULT_MENU = "menu_standard"
SEGMENTS = ("standard", "vip", "elderly")


@dataclass(frozen=True)
class BenchCustomer:
    customer_id: str
    phone: str
    segment: str

    @property
    def menu(self) -> str:
        return MENU_OF_SEGMENT.get(self.segment, DEFAULT_MENU)


def bench_customers(count: int) -> list[BenchCustomer]:
    """`count` known callers, the segments in turn, numbers no demo customer has (137 9xxx xxxx)."""
    return [BenchCustomer(f"BENCH{i:05d}", f"1379{i:07d}", SEGMENTS[i % len(SEGMENTS)]) for i in range(count)]


def customers_csv(path: Path, customers: Iterable[BenchCustomer]) -> Path:
    """The callers in `hotline customers import`'s format (config/demo/customers.csv)."""
    lines = ["customer_id,phone,name,salutation,segment,language,bill_due_date,flags,branch"]
    lines += [f"{c.customer_id},{c.phone},Bench {c.customer_id},Mr,{c.segment},zh,,,Bench" for c in customers]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Journey:
    """What PostgreSQL holds of one call."""

    call_id: str
    caller: str
    customer_id: str | None
    menu_version: int | None
    outcome: str | None
    started_at: datetime
    nodes: Sequence[str] = ()


@dataclass
class JourneyCheck:
    """A step's product calls judged by their journeys; `failed` counts each failed call once."""

    placed: int
    journeys: int = 0
    missing: int = 0  # calls placed that left no journey
    lost_personalisation: int = 0  # no customer, or another segment's menu (lookup/budget timeout, general menu)
    unfinished: int = 0  # no outcome, or outcome error
    degraded: int = 0  # served, but a start-of-call fact ran out of its budget (the server's log says so)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return self.missing + self.lost_personalisation + self.unfinished + self.degraded


def check_journeys(placed: int, journeys: Sequence[Journey], customers: Mapping[str, BenchCustomer],
                   degraded: Mapping[str, str] | None = None) -> JourneyCheck:
    """Judge a step's journeys: `placed` calls went in, `customers` are the callers by number,
    `degraded` the calls the server logged a degraded start for (call id → its first such event)."""
    degraded = degraded or {}
    check = JourneyCheck(placed=placed, journeys=len(journeys), missing=max(0, placed - len(journeys)))
    if check.missing:
        check.reasons["no_journey"] += check.missing
    for journey in journeys:
        customer = customers.get(journey.caller)
        if customer is None or journey.customer_id != customer.customer_id:
            check.lost_personalisation += 1
            check.reasons["no_customer"] += 1
        elif customer.menu not in journey.nodes:
            check.lost_personalisation += 1
            check.reasons["wrong_menu"] += 1
        elif journey.outcome in (None, "error"):
            check.unfinished += 1
            check.reasons[f"outcome_{journey.outcome or 'none'}"] += 1
        elif journey.call_id in degraded:  # e.g. no calendar in time: perhaps "open" to a caller on a holiday
            check.degraded += 1
            check.reasons[degraded[journey.call_id]] += 1
    return check


#: Events of `hotline serve`'s log that mean a call was served degraded: a start-of-call fact past its
#: budget or failed (the caller silently got a default), or the call sent to the dialplan fallback.
DEGRADED_EVENTS = frozenset({"lookup_timeout", "lookup_failed", "calendar_unavailable", "emergency_unavailable",
                             "notices_unavailable", "call_to_fallback", "fallback_failed"})
_EVENT = re.compile(r"\bevent=(\S+)")
_CALL = re.compile(r"\bcall=(\S+)")


def degraded_calls(log_lines: Iterable[str]) -> dict[str, str]:
    """Call id → the first degraded-start event the server logged for it (`logs.log_event` lines)."""
    found: dict[str, str] = {}
    for line in log_lines:
        event, call = _EVENT.search(line), _CALL.search(line)
        if event and call and event.group(1) in DEGRADED_EVENTS:
            found.setdefault(call.group(1), event.group(1))
    return found


_STEP_JOURNEYS = """
SELECT c.call_id, c.caller, c.customer_id, c.menu_version, c.outcome, c.started_at,
       coalesce(array_agg(n.node_id ORDER BY n.seq) FILTER (WHERE n.node_id IS NOT NULL), '{}') AS nodes
FROM calls c LEFT JOIN call_nodes n USING (call_id)
WHERE c.dnis = $1 AND c.started_at >= $2 AND c.started_at < $3
GROUP BY c.call_id
"""


async def step_journeys(conn: asyncpg.Connection, line: str, since: datetime, until: datetime) -> list[Journey]:
    """The journeys of calls to `line` that started in [since, until)."""
    rows = await conn.fetch(_STEP_JOURNEYS, line, since, until)
    return [Journey(call_id=r["call_id"], caller=r["caller"], customer_id=r["customer_id"],
                    menu_version=r["menu_version"], outcome=r["outcome"], started_at=r["started_at"],
                    nodes=tuple(r["nodes"])) for r in rows]


async def ended_count(conn: asyncpg.Connection, line: str, since: datetime, until: datetime) -> int:
    """How many of those calls' journeys are complete (their end written)."""
    count = await conn.fetchval("SELECT count(*) FROM calls WHERE dnis = $1 AND started_at >= $2"
                                " AND started_at < $3 AND ended_at IS NOT NULL", line, since, until)
    return int(count or 0)


# The journey write lag, measured in the bench's own database only: a trigger notes when a call's end
# reached PostgreSQL (the statement's clock_timestamp(), i.e. before its transaction commits) beside
# the end the app recorded (same host, same clock). The product's schema and writer are untouched.
_WRITE_CLOCK = """
CREATE TABLE bench_journey_writes (call_id text PRIMARY KEY, written_at timestamptz NOT NULL);
CREATE FUNCTION bench_journey_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ended_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.ended_at IS NULL) THEN
        INSERT INTO bench_journey_writes VALUES (NEW.call_id, clock_timestamp()) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bench_journey_written AFTER INSERT OR UPDATE OF ended_at ON calls
    FOR EACH ROW EXECUTE FUNCTION bench_journey_written();
"""

_WRITE_LAG = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM w.written_at - c.ended_at)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM w.written_at - c.ended_at)) AS p99
FROM calls c JOIN bench_journey_writes w USING (call_id)
WHERE c.dnis = $1 AND c.started_at >= $2 AND c.started_at < $3
"""


async def install_write_clock(conn: asyncpg.Connection) -> None:
    """The trigger behind `write_lag`, in the bench's database (never the product's)."""
    await conn.execute(_WRITE_CLOCK)


async def write_lag(conn: asyncpg.Connection, line: str, since: datetime,
                    until: datetime) -> tuple[int, float | None, float | None]:
    """(journeys, p50 ms, p99 ms) of the time from a call's end to its end written in PostgreSQL."""
    row = await conn.fetchrow(_WRITE_LAG, line, since, until)
    if not row["n"]:
        return 0, None, None
    return int(row["n"]), round(float(row["p50"]) * 1000, 2), round(float(row["p99"]) * 1000, 2)
