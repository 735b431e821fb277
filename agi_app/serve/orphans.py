"""Journeys a dead predecessor left open. A server killed (SIGKILL, a crash, the machine) wrote its
calls' starts but never their ends; the server that takes its place on the same Asterisk closes
them, once, as soon as the database lets it — every journey ends eventually, and the KPIs do not
count callers who are long gone as calls in progress."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

from agi_app.budget import backoff_s
from agi_app.db.failures import DB_FAILURES
from agi_app.db.repositories import calls
from agi_app.logs import log_event

log = logging.getLogger("hotline.journey")


async def close_orphaned_journeys(pool: asyncpg.Pool, asterisk: str, before: datetime, *, budget_s: float) -> None:
    """Close the journeys open on `asterisk` that started before `before` (this server's start),
    trying again with backoff while PostgreSQL does not answer; done after one success."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(budget_s):  # in the background: no caller waits on it
                closed = await calls.close_orphans(pool, asterisk, before)
        except DB_FAILURES as exc:
            attempt += 1
            log_event(log, "orphans_close_failed", level=logging.WARNING, error=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(backoff_s(attempt, first_s=1.0, cap_s=30.0))
            continue
        if closed:
            log_event(log, "orphans_closed", level=logging.WARNING, count=len(closed), asterisk=asterisk,
                      outcome="error", first=closed[0])
        return
