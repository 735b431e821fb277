"""Shared CLI plumbing: settings from env/options, running coroutines, exit codes that mean something."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import click

from agi_app.admin import Refused
from agi_app.config import ConfigError, Settings
from agi_app.db.pool import DatabaseUnavailable, connection
from agi_app.db.repositories.calendar import load_calendar

T = TypeVar("T")

# Exit codes: 0 ok, 1 invalid input (file, menu, arguments), 2 configuration missing,
# 3 a dependency (PostgreSQL, Asterisk) unreachable.
EXIT_INVALID, EXIT_CONFIG, EXIT_UNAVAILABLE = 1, 2, 3


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def settings(ctx: click.Context) -> Settings:
    return ctx.ensure_object(dict)["settings"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning infrastructure failures into clear messages and exit codes."""
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except DatabaseUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except asyncpg.UndefinedTableError as exc:
        fail(f"the database schema is missing or old ({exc}): run `hotline db init`", EXIT_CONFIG)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        fail(f"database error: {type(exc).__name__}: {exc}", EXIT_UNAVAILABLE)


def dsn(ctx: click.Context) -> str:
    s = settings(ctx)
    try:
        s.require("dsn")
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return s.dsn


def prompts_folder(ctx: click.Context) -> Path:
    """The recorded prompts folder of the settings, or exit 2 naming HOTLINE_PROMPTS_DIR."""
    try:
        return settings(ctx).prompts_folder()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def admin_call(ctx: click.Context, verb: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run one admin verb on a connection; what it refuses exits 1 with its message."""
    async def main() -> T:
        async with connection(dsn(ctx)) as conn:
            return await verb(conn)

    try:
        return run(main())
    except Refused as exc:
        fail(str(exc))


async def calendar_zone(conn: asyncpg.Connection, line: str | None) -> ZoneInfo:
    """The time zone local days are counted in (the calendar's, of `line` if given); a zone this
    host does not know is a configuration error (exit 2), not a crash."""
    try:
        return (await load_calendar(conn, line)).tz
    except ValueError as exc:
        raise ConfigError(f"the calendar's time zone is not usable here: {exc}") from exc


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def actor() -> str:
    """Who is acting, for the audit log: $HOTLINE_ACTOR (e.g. set by a wrapper), else the OS user."""
    return os.environ.get("HOTLINE_ACTOR") or getpass.getuser()
