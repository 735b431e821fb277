"""The `live_servers` table (migration 012): one row per running server, its snapshot as jsonb.

Freshness is judged by the database's clock (`updated_at` set by `now()`), so servers and readers
on hosts whose clocks differ agree on which rows are stale.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg

from agi_app.monitoring.live import Snapshot

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


async def publish(db: Executor, server_id: str, snapshot: Snapshot) -> None:
    await db.execute(
        "INSERT INTO live_servers (server_id, updated_at, snapshot) VALUES ($1, now(), $2::jsonb)"
        " ON CONFLICT (server_id) DO UPDATE SET updated_at = now(), snapshot = EXCLUDED.snapshot",
        server_id, json.dumps(snapshot, ensure_ascii=False))


async def withdraw(db: Executor, server_id: str) -> None:
    await db.execute("DELETE FROM live_servers WHERE server_id = $1", server_id)


async def fresh(db: Executor, stale_s: float) -> list[Snapshot]:
    """The snapshots of servers that wrote within `stale_s` seconds, oldest first."""
    rows = await db.fetch(
        "SELECT snapshot::text AS snapshot FROM live_servers"
        " WHERE updated_at > now() - make_interval(secs => $1) ORDER BY updated_at", stale_s)
    found: list[dict[str, Any]] = [json.loads(r["snapshot"]) for r in rows]
    return found
