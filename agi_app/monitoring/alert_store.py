"""Alert events (migration 013), as SQL: written by each server's alert monitor, read by `hotline alerts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from agi_app.analytics.alerts import AlertEvent

_INSERT = """
INSERT INTO alert_events (at, server_id, key, rule, subject, change, level, value, message)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

_LIST = """
SELECT e.id, e.at, e.server_id, e.key, e.rule, e.subject, e.change, e.level, e.value, e.message,
       e.id = latest.id AND e.change <> 'cleared' AS active
FROM alert_events e
JOIN LATERAL (SELECT max(id) AS id FROM alert_events l WHERE l.server_id = e.server_id AND l.key = e.key) latest
  ON true
WHERE NOT $1 OR (e.id = latest.id AND e.change <> 'cleared')
ORDER BY e.id DESC
LIMIT $2
"""


@dataclass(frozen=True)
class StoredAlert:
    id: int
    at: datetime
    server_id: str
    key: str
    rule: str
    subject: str
    change: str
    level: str | None
    value: float
    message: str
    active: bool  # the latest of its server and key, and not cleared


async def insert(conn: asyncpg.Connection | asyncpg.Pool, server_id: str, events: Sequence[AlertEvent]) -> None:
    """All of `events`, in one statement batch (a transaction: all or none)."""
    rows = [(e.at, server_id, e.key, e.rule, e.subject, e.change, e.level, e.value, e.message) for e in events]
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c, c.transaction():
            await c.executemany(_INSERT, rows)
    else:
        async with conn.transaction():
            await conn.executemany(_INSERT, rows)


async def list_events(conn: asyncpg.Connection, *, active_only: bool, limit: int = 200) -> list[StoredAlert]:
    """Newest first; with `active_only`, the alerts active now (their latest change, not cleared)."""
    return [StoredAlert(**dict(r)) for r in await conn.fetch(_LIST, active_only, limit)]
