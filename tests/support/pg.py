"""A fresh PostgreSQL database per test session, on the throwaway cluster `scripts/sandbox` runs.

Real PostgreSQL, not a mock: the SQL the product runs is the SQL the tests run.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from pathlib import Path

import asyncpg

from agi_app.db.migrate import migrate

REPO = Path(__file__).resolve().parents[2]
PORT = os.environ.get("HOTLINE_PG_PORT", "55432")
ADMIN_DSN = f"postgresql://hotline@127.0.0.1:{PORT}/postgres"


def ensure_cluster() -> bool:
    """Start the repo's throwaway cluster if it is not running; True if this call started it.
    Parallel test workers (pytest -n) take turns, so that only one of them starts it."""
    sandbox = str(REPO / "scripts" / "sandbox")
    (REPO / ".run").mkdir(exist_ok=True)
    with open(REPO / ".run" / "pg-start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        running = subprocess.run([sandbox, "pg-status"], stdout=subprocess.DEVNULL).returncode == 0
        if not running:
            subprocess.run([sandbox, "pg-start"], check=True, stdout=subprocess.DEVNULL)
    return not running


def stop_cluster() -> None:
    subprocess.run([str(REPO / "scripts" / "sandbox"), "pg-stop"], check=False, stdout=subprocess.DEVNULL)


async def create_database() -> str:
    name = f"hotline_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = f"postgresql://hotline@127.0.0.1:{PORT}/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def truncate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]
        if tables:
            await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
