"""`hotline db`: schema management."""

from __future__ import annotations

import click

from agi_app.cli.common import actor, dsn, echo_json, run
from agi_app.db.migrate import migrate
from agi_app.db.pool import connection
from agi_app.db.repositories import audit


@click.group()
def db() -> None:
    """Database schema."""


@db.command("init")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or upgrade the schema (applies pending migrations; safe to repeat)."""
    async def main() -> list[str]:
        async with connection(dsn(ctx)) as conn:
            applied = await migrate(conn)
            if applied:
                await audit.record(conn, actor(), "db.migrate", {"applied": applied})
            return applied

    applied = run(main())
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


db.add_command(init, "migrate")


@db.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_cmd(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The admin audit log, newest first: who did what, when."""
    async def main() -> list[dict[str, object]]:
        async with connection(dsn(ctx)) as conn:
            return await audit.recent(conn, limit)

    rows = run(main())
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['at']}  {row['actor']:<12} {row['action']:<20} {row['detail']}")
