"""The contact centre's rows: callbacks (booked, claimed, moved through their statuses) and queue
legs (completed from app_queue's events).

Every callback update after booking names the placement it is about (`placements`, carried by the
attempt's channel ids) and the statuses it may leave: an event from an earlier attempt, or one
seen twice, changes nothing. Claims lock with SKIP LOCKED, so two servers never place one callback
twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from agi_app.centre.callbacks import RetryPolicy, Status, after_failure
from agi_app.centre.queue_legs import LegEvent


@dataclass(frozen=True)
class CallbackRow:
    callback_id: int
    call_id: str
    customer_id: str | None
    number: str
    queue: str
    status: Status
    attempts: int
    placements: int
    agent: str | None
    requested_at: datetime
    due_at: datetime
    detail: str

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> CallbackRow:
        return cls(r["callback_id"], r["call_id"], r["customer_id"], r["number"], r["queue"], Status(r["status"]),
                   r["attempts"], r["placements"], r["agent"], r["requested_at"], r["due_at"], r["detail"])


_CLAIM = """
WITH due AS (
    SELECT callback_id FROM callbacks
    WHERE status = 'waiting' AND due_at <= now()
    ORDER BY due_at, callback_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
UPDATE callbacks c SET status = 'queued', placements = c.placements + 1, updated_at = now()
FROM due WHERE c.callback_id = due.callback_id
RETURNING c.callback_id, c.call_id, c.customer_id, c.number, c.queue, c.status, c.attempts, c.placements,
    c.agent, c.requested_at, c.due_at, c.detail
"""


async def book_callback(conn: asyncpg.Connection | asyncpg.Pool, *, call_id: str, customer_id: str | None,
                        number: str, queue: str) -> int:
    """A new callback, waiting and due now; its id."""
    return int(await conn.fetchval(
        "INSERT INTO callbacks (call_id, customer_id, number, queue) VALUES ($1, $2, $3, $4) RETURNING callback_id",
        call_id, customer_id, number, queue))


async def withdraw(conn: asyncpg.Connection | asyncpg.Pool, call_id: str, queue: str) -> int:
    """Cancel the call's callback for this queue that nobody placed yet (the caller was told the
    booking failed); how many were."""
    result = await conn.execute(
        "UPDATE callbacks SET status = 'cancelled', detail = 'booking timed out', updated_at = now()"
        " WHERE call_id = $1 AND queue = $2 AND status = 'waiting' AND placements = 0", call_id, queue)
    return int(result.split()[-1])


async def claim_due(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 10) -> list[CallbackRow]:
    """Waiting callbacks now due, oldest first, marked queued with a new placement: this caller
    places them. Rows another transaction holds are skipped, not waited for."""
    rows = [CallbackRow.from_record(r) for r in await conn.fetch(_CLAIM, limit)]
    return sorted(rows, key=lambda row: (row.due_at, row.callback_id))


async def get_callback(conn: asyncpg.Connection | asyncpg.Pool, callback_id: int) -> CallbackRow | None:
    row = await conn.fetchrow("SELECT callback_id, call_id, customer_id, number, queue, status, attempts, placements, agent,"
                              " requested_at, due_at, detail FROM callbacks WHERE callback_id = $1", callback_id)
    return CallbackRow.from_record(row) if row else None


async def move(conn: asyncpg.Connection | asyncpg.Pool, callback_id: int, placement: int,
               from_statuses: Collection[Status], to: Status, *, detail: str | None = None,
               agent: str | None = None) -> bool:
    """Move the callback of this placement from one of `from_statuses` to `to`; False when it was
    not in one of them (already moved, or a later placement)."""
    result = await conn.execute(
        "UPDATE callbacks SET status = $4, detail = COALESCE($5, detail), agent = COALESCE($6, agent),"
        " updated_at = now()"
        " WHERE callback_id = $1 AND placements = $2 AND status = ANY($3::text[])",
        callback_id, placement, [str(s) for s in from_statuses], str(to), detail, agent)
    return result.endswith(" 1")


async def set_agent(conn: asyncpg.Connection | asyncpg.Pool, callback_id: int, placement: int, agent: str) -> None:
    """The agent app_queue connected to this placement's placeholder."""
    await conn.execute("UPDATE callbacks SET agent = $3, updated_at = now()"
                       " WHERE callback_id = $1 AND placements = $2", callback_id, placement, agent)


async def fail_attempt(conn: asyncpg.Connection, callback_id: int, placement: int, result: Status,
                       policy: RetryPolicy, *, detail: str) -> Status | None:
    """The attempt of this placement failed (`result`): one more attempt counted, waiting again
    after the policy's delay or ended as `result`. The new status; None if the placement was
    already over."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT attempts FROM callbacks WHERE callback_id = $1 AND placements = $2"
            " AND status IN ('queued', 'dialling', 'connected') FOR UPDATE", callback_id, placement)
        if row is None:
            return None
        after = after_failure(row["attempts"], result, policy)
        await conn.execute(
            "UPDATE callbacks SET status = $2, attempts = $3, due_at = now() + $4::interval, detail = $5,"
            " agent = NULL, updated_at = now() WHERE callback_id = $1",
            callback_id, str(after.status), after.attempts, after.delay, detail)
        return after.status


async def requeue(conn: asyncpg.Connection | asyncpg.Pool, callback_id: int, placement: int, *, detail: str) -> bool:
    """The placement was lost through no fault of the customer's (its server died, Asterisk
    refused it): waiting again, no attempt counted, and still due when it was (its place kept)."""
    result = await conn.execute(
        "UPDATE callbacks SET status = 'waiting', detail = $3, agent = NULL, updated_at = now()"
        " WHERE callback_id = $1 AND placements = $2 AND status IN ('queued', 'dialling')",
        callback_id, placement, detail)
    return result.endswith(" 1")


async def open_callbacks(conn: asyncpg.Connection | asyncpg.Pool, *, older_than: timedelta) -> list[CallbackRow]:
    """Callbacks some server placed and has not finished (queued, dialling, connected), untouched
    for `older_than` at least."""
    rows = await conn.fetch(
        "SELECT callback_id, call_id, customer_id, number, queue, status, attempts, placements, agent, requested_at,"
        " due_at, detail FROM callbacks WHERE status IN ('queued', 'dialling', 'connected')"
        " AND updated_at <= now() - $1::interval ORDER BY callback_id", older_than)
    return [CallbackRow.from_record(r) for r in rows]


async def call_language(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> str | None:
    """The language the booking call was in (None if its journey is not written yet)."""
    value = await conn.fetchval("SELECT language FROM calls WHERE call_id = $1", call_id)
    return str(value) if value else None


async def list_callbacks(conn: asyncpg.Connection, *, limit: int = 50,
                         status: str | None = None) -> list[dict[str, Any]]:
    """Newest first, in the shape of `hotline callbacks list --json`."""
    rows = await conn.fetch(
        "SELECT callback_id, call_id, customer_id, number, queue, status, attempts, agent, requested_at,"
        " updated_at, due_at, detail FROM callbacks WHERE ($1::text IS NULL OR status = $1)"
        " ORDER BY callback_id DESC LIMIT $2", status, limit)
    return [{"callback_id": r["callback_id"], "call_id": r["call_id"], "customer_id": r["customer_id"],
             "number": r["number"], "queue": r["queue"], "status": r["status"], "attempts": r["attempts"],
             "agent": r["agent"], "requested_at": r["requested_at"].isoformat(),
             "updated_at": r["updated_at"].isoformat(), "due_at": r["due_at"].isoformat(), "detail": r["detail"]}
            for r in rows]


# --- queue legs ------------------------------------------------------------------------------
# One upsert per app_queue event. Results only move forward: waiting < timeout < answered <
# abandoned/completed — except that an agent's answer overrides a timeout, because app_queue says
# the caller left the queue (QueueCallerLeave) before it says who answered (AgentConnect).
_LEG_SQL = {
    "join": """
INSERT INTO queue_legs (call_id, queue, joined_at, result) VALUES ($1, $2, $3, 'waiting')
ON CONFLICT (call_id, queue) DO UPDATE SET joined_at = COALESCE(queue_legs.joined_at, EXCLUDED.joined_at),
    result = COALESCE(queue_legs.result, 'waiting')
""",
    "connect": """
INSERT INTO queue_legs (call_id, queue, answered_at, agent, wait_s, recording, result)
VALUES ($1, $2, $3, $4, $5, $6, 'answered')
ON CONFLICT (call_id, queue) DO UPDATE SET answered_at = EXCLUDED.answered_at, agent = EXCLUDED.agent,
    wait_s = EXCLUDED.wait_s, recording = COALESCE(EXCLUDED.recording, queue_legs.recording),
    ended_at = CASE WHEN queue_legs.result = 'timeout' THEN NULL ELSE queue_legs.ended_at END,
    result = CASE WHEN queue_legs.result IN ('completed', 'abandoned') THEN queue_legs.result ELSE 'answered' END
""",
    "complete": """
INSERT INTO queue_legs (call_id, queue, ended_at, agent, wait_s, talk_s, answered_at, result)
VALUES ($1, $2, $3, $4, $5, $6, $3::timestamptz - make_interval(secs => $6::integer), 'completed')
ON CONFLICT (call_id, queue) DO UPDATE SET ended_at = EXCLUDED.ended_at, talk_s = EXCLUDED.talk_s,
    agent = COALESCE(queue_legs.agent, EXCLUDED.agent), wait_s = COALESCE(queue_legs.wait_s, EXCLUDED.wait_s),
    answered_at = COALESCE(queue_legs.answered_at, EXCLUDED.answered_at), result = 'completed'
""",
    "abandon": """
INSERT INTO queue_legs (call_id, queue, ended_at, wait_s, result) VALUES ($1, $2, $3, $4, 'abandoned')
ON CONFLICT (call_id, queue) DO UPDATE SET ended_at = EXCLUDED.ended_at, wait_s = EXCLUDED.wait_s,
    result = CASE WHEN queue_legs.result = 'completed' THEN queue_legs.result ELSE 'abandoned' END
""",
    "leave": """
INSERT INTO queue_legs (call_id, queue, ended_at, result) VALUES ($1, $2, $3, 'timeout')
ON CONFLICT (call_id, queue) DO UPDATE SET
    ended_at = CASE WHEN queue_legs.result IS NULL OR queue_legs.result = 'waiting' THEN EXCLUDED.ended_at
                    ELSE queue_legs.ended_at END,
    wait_s = CASE WHEN (queue_legs.result IS NULL OR queue_legs.result = 'waiting') AND queue_legs.joined_at IS NOT NULL
                  THEN GREATEST(0, round(extract(epoch FROM EXCLUDED.ended_at - queue_legs.joined_at)))::integer
                  ELSE queue_legs.wait_s END,
    result = CASE WHEN queue_legs.result IS NULL OR queue_legs.result = 'waiting' THEN 'timeout'
                  ELSE queue_legs.result END
""",
}


async def apply_leg_event(conn: asyncpg.Connection | asyncpg.Pool, event: LegEvent) -> None:
    """Record one app_queue event on the caller's queue leg (creating the row if the transfer's
    own write has not been made)."""
    sql = _LEG_SQL[event.kind]
    args: list[Any] = [event.call_id, event.group, event.at]
    if event.kind == "connect":
        args += [event.agent, event.wait_s, event.recording]
    elif event.kind == "complete":
        args += [event.agent, event.wait_s, event.talk_s or 0]
    elif event.kind == "abandon":
        args += [event.wait_s]
    await conn.execute(sql, *args)
