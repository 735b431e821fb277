"""What the queue legs say about the recent past, for the wait estimate (`centre.estimate`)."""

from __future__ import annotations

import asyncpg

_RECENT_TALK = """
SELECT talk_s FROM queue_legs
WHERE queue = $1 AND result = 'completed' AND talk_s IS NOT NULL
ORDER BY ended_at DESC NULLS LAST
LIMIT $2
"""


async def recent_talk_times(conn: asyncpg.Pool | asyncpg.Connection, group: str, limit: int) -> list[int]:
    """Talk times (seconds) of the last `limit` calls agents of `group` completed, newest first."""
    return [row["talk_s"] for row in await conn.fetch(_RECENT_TALK, group, limit)]
