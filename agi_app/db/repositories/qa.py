"""Quality inspection's storage: the agent legs of a period (from `queue_legs`) and reviewers'
scores (`qa_scores`, migration 011). The rules live in agi_app/centre/qa.py."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from agi_app.centre.qa import AgentLeg, QaRefused, Score, check_score
from agi_app.db.repositories import audit

_LEGS = "SELECT call_id, queue, agent, answered_at, talk_s, recording FROM queue_legs WHERE agent IS NOT NULL"


def _leg(row: asyncpg.Record) -> AgentLeg:
    return AgentLeg(row["call_id"], row["queue"], row["agent"], row["answered_at"], row["talk_s"], row["recording"])


async def agent_legs(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[AgentLeg]:
    """Every leg an agent answered in `[start, end)`."""
    rows = await conn.fetch(
        _LEGS + " AND answered_at >= $1 AND answered_at < $2"
        " ORDER BY answered_at, call_id, queue", start, end)
    return [_leg(r) for r in rows]


async def recorded_legs(conn: asyncpg.Connection, call_id: str) -> list[AgentLeg]:
    """The call's legs that an agent answered and that were recorded."""
    rows = await conn.fetch(
        _LEGS + " AND call_id = $1"
        " AND answered_at IS NOT NULL AND recording IS NOT NULL ORDER BY answered_at, queue", call_id)
    return [_leg(r) for r in rows]


async def scores_between(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[Score]:
    """The scores of legs answered in `[start, end)` (a call belongs to the month it was taken)."""
    rows = await conn.fetch(
        "SELECT s.call_id, s.queue, s.agent, s.score, s.reviewer FROM qa_scores s"
        " JOIN queue_legs l USING (call_id, queue) WHERE l.answered_at >= $1 AND l.answered_at < $2"
        " ORDER BY s.call_id, s.queue, s.reviewer", start, end)
    return [Score(r["call_id"], r["queue"], r["agent"], r["score"], r["reviewer"]) for r in rows]


async def score_call(conn: asyncpg.Connection, call_id: str, *, score: int, comment: str, reviewer: str,
                     queue: str | None = None) -> Score:
    """Store `reviewer`'s score of the call's recorded agent leg (the one in `queue` when the call
    had several), replacing their earlier score of it; audited. QaRefused: no such leg, or a bad score."""
    check_score(score)
    if not reviewer.strip():
        raise QaRefused("a score needs a reviewer")
    legs = [leg for leg in await recorded_legs(conn, call_id) if queue is None or leg.queue == queue]
    if not legs:
        raise QaRefused(f"call {call_id!r} has no recorded agent leg" + (f" in queue {queue!r}" if queue else ""))
    if len(legs) > 1:
        raise QaRefused(f"call {call_id!r} reached agents in several queues "
                        f"({', '.join(leg.queue for leg in legs)}): say which with --queue")
    leg = legs[0]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO qa_scores (call_id, queue, reviewer, agent, score, comment) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (call_id, queue, reviewer) DO UPDATE SET agent = EXCLUDED.agent, score = EXCLUDED.score,"
            " comment = EXCLUDED.comment, scored_at = now()",
            leg.call_id, leg.queue, reviewer, leg.agent, score, comment)
        await audit.record(conn, reviewer, "qa.score", {"call_id": leg.call_id, "queue": leg.queue,
                                                        "agent": leg.agent, "score": score, "comment": comment})
    return Score(leg.call_id, leg.queue, leg.agent, score, reviewer)
