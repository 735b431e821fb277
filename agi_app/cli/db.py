"""`hotline db`: schema management."""

from __future__ import annotations

import click

from agi_app.cli.common import dsn, run
from agi_app.db.migrate import migrate
from agi_app.db.pool import connection


@click.group()
def db() -> None:
    """Database schema."""


@db.command("init")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or upgrade the schema (applies pending migrations; safe to repeat)."""
    async def main() -> list[str]:
        async with connection(dsn(ctx)) as conn:
            return await migrate(conn)

    applied = run(main())
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


db.add_command(init, "migrate")
