"""Published menu versions (immutable rows) and the active pointer; changes are announced on the
`hotline_menus` channel so every running server reloads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

CHANNEL = "hotline_menus"


def checksum(document: dict[str, Any]) -> str:
    """What a version is stored and cached with: equal documents, equal checksums (key order counts)."""
    return hashlib.sha256(json.dumps(document, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class MenuVersion:
    version: int
    document: dict[str, Any]
    checksum: str
    source_name: str
    comment: str
    published_at: datetime
    published_by: str
    active: bool = False


def _version(row: asyncpg.Record, active: int | None) -> MenuVersion:
    return MenuVersion(row["version"], json.loads(row["document"]), row["checksum"], row["source_name"],
                       row["comment"], row["published_at"], row["published_by"], row["version"] == active)


async def active_version(conn: asyncpg.Connection | asyncpg.Pool) -> int | None:
    value = await conn.fetchval("SELECT version FROM menu_active")
    return int(value) if value is not None else None


async def get(conn: asyncpg.Connection | asyncpg.Pool, version: int) -> MenuVersion | None:
    row = await conn.fetchrow("SELECT * FROM menu_versions WHERE version = $1", version)
    return _version(row, await active_version(conn)) if row else None


async def get_active(conn: asyncpg.Connection | asyncpg.Pool) -> MenuVersion | None:
    row = await conn.fetchrow("SELECT v.* FROM menu_versions v JOIN menu_active a USING (version)")
    return _version(row, row["version"]) if row else None


async def list_versions(conn: asyncpg.Connection) -> list[MenuVersion]:
    active = await active_version(conn)
    return [_version(r, active) for r in await conn.fetch("SELECT * FROM menu_versions ORDER BY version DESC")]


async def insert(conn: asyncpg.Connection, document: dict[str, Any], checksum: str, *, source_name: str,
                 comment: str, actor: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO menu_versions (document, checksum, source_name, comment, published_by)"
        " VALUES ($1::json, $2, $3, $4, $5) RETURNING version",
        json.dumps(document, ensure_ascii=False), checksum, source_name, comment, actor))


async def activate(conn: asyncpg.Connection, version: int, actor: str) -> None:
    await conn.execute(
        "INSERT INTO menu_active (singleton, version, activated_by) VALUES (true, $1, $2)"
        " ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, activated_at = now(),"
        " activated_by = EXCLUDED.activated_by", version, actor)


async def notify(conn: asyncpg.Connection, version: int | None) -> None:
    """Tell every listening server (delivered when the surrounding transaction commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(version or ""))
