"""The admin audit log: who did what, when. Written in the same transaction as the change."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def record(conn: asyncpg.Connection, actor: str, action: str, detail: dict[str, Any] | None = None) -> None:
    await conn.execute("INSERT INTO audit_log (actor, action, detail) VALUES ($1, $2, $3::jsonb)",
                       actor, action, json.dumps(detail or {}, ensure_ascii=False, default=str))


async def recent(conn: asyncpg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT $1", limit)
    return [{"at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
             "detail": json.loads(r["detail"])} for r in rows]
