"""Emergency notices and service notices: what administrators switch on for the next caller."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from agi_app.operations import model
from agi_app.operations.model import Emergency, Notice, ScheduledEmergency, ScheduledNotice

_SCHEDULED_EMERGENCIES = """
SELECT id, line, text_zh, text_en, sound, starts_at, until FROM emergencies
WHERE ended_at IS NULL AND (until IS NULL OR until > $1)
"""
_SCHEDULED_NOTICES = """
SELECT id, kind, line, text_zh, text_en, sound, valid_from, valid_to, priority FROM notices
WHERE removed_at IS NULL AND valid_to >= $1
"""


def _texts(row: asyncpg.Record) -> dict[str, str | None]:
    return {"zh": row["text_zh"], "en": row["text_en"]}


async def scheduled_emergencies(conn: asyncpg.Connection | asyncpg.Pool, since: datetime) -> list[ScheduledEmergency]:
    """Every emergency not switched off and not over by `since`, on any line (a few rows): which
    one a call hears is `operations.model.live_emergency`'s rule."""
    return [ScheduledEmergency(r["id"], r["line"], r["starts_at"], r["until"], Emergency(_texts(r), r["sound"]))
            for r in await conn.fetch(_SCHEDULED_EMERGENCIES, since)]


async def scheduled_notices(conn: asyncpg.Connection | asyncpg.Pool, since: date) -> list[ScheduledNotice]:
    """Every notice not removed and valid on `since` or later, on any line."""
    return [ScheduledNotice(r["id"], r["line"], r["valid_from"], r["valid_to"], r["priority"],
                            Notice(r["kind"], _texts(r), r["sound"]))
            for r in await conn.fetch(_SCHEDULED_NOTICES, since)]


async def live_emergency(conn: asyncpg.Connection | asyncpg.Pool, line: str, at: datetime) -> Emergency | None:
    return model.live_emergency(await scheduled_emergencies(conn, at), line, at)


async def valid_notices(conn: asyncpg.Connection | asyncpg.Pool, line: str, day: date) -> list[Notice]:
    return model.valid_notices(await scheduled_notices(conn, day), line, day)


async def switch_on_emergency(conn: asyncpg.Connection, *, line: str | None, text_zh: str | None,
                              text_en: str | None, sound: str | None, until: datetime | None, actor: str) -> int:
    """A new emergency replaces any live one for the same line scope."""
    await conn.execute("UPDATE emergencies SET ended_at = now() WHERE ended_at IS NULL AND line IS NOT DISTINCT FROM $1",
                       line)
    return int(await conn.fetchval(
        "INSERT INTO emergencies (line, text_zh, text_en, sound, until, created_by) VALUES ($1, $2, $3, $4, $5, $6)"
        " RETURNING id", line, text_zh, text_en, sound, until, actor))


async def switch_off_emergency(conn: asyncpg.Connection, *, line: str | None, all_lines: bool) -> int:
    """End live emergencies (for one line scope, or all); returns how many were ended."""
    if all_lines:
        result = await conn.execute("UPDATE emergencies SET ended_at = now() WHERE ended_at IS NULL")
    else:
        result = await conn.execute(
            "UPDATE emergencies SET ended_at = now() WHERE ended_at IS NULL AND line IS NOT DISTINCT FROM $1", line)
    return int(result.split()[-1])


async def list_emergencies(conn: asyncpg.Connection, *, include_ended: bool = False) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, line, text_zh, text_en, sound, starts_at, until, ended_at, created_by FROM emergencies"
        " WHERE $1 OR (ended_at IS NULL AND (until IS NULL OR until > now())) ORDER BY id DESC LIMIT 50",
        include_ended)
    return [dict(r) for r in rows]


async def add_notice(conn: asyncpg.Connection, *, kind: str, line: str | None, text_zh: str | None,
                     text_en: str | None, sound: str | None, valid_from: date, valid_to: date, priority: int,
                     actor: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO notices (kind, line, text_zh, text_en, sound, valid_from, valid_to, priority, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        kind, line, text_zh, text_en, sound, valid_from, valid_to, priority, actor))


async def remove_notice(conn: asyncpg.Connection, notice_id: int) -> bool:
    result = await conn.execute("UPDATE notices SET removed_at = now() WHERE id = $1 AND removed_at IS NULL", notice_id)
    return result.endswith(" 1")


async def list_notices(conn: asyncpg.Connection, *, today: date, include_old: bool = False) -> list[dict[str, Any]]:
    """Notices not removed and not over before `today` (the caller's local date, not the session's)."""
    rows = await conn.fetch(
        "SELECT id, kind, line, text_zh, text_en, sound, valid_from, valid_to, priority, created_by FROM notices"
        " WHERE removed_at IS NULL AND ($1 OR valid_to >= $2) ORDER BY valid_from, id", include_old, today)
    return [dict(r) for r in rows]
