"""`hotline callbacks`: callers who chose to be called back, and what became of each callback."""

from __future__ import annotations

import click

from agi_app.centre.callbacks import Status
from agi_app.cli.common import dsn, echo_json, run
from agi_app.db.pool import connection
from agi_app.db.repositories.contact_centre import list_callbacks


@click.group()
def callbacks() -> None:
    """Callbacks booked by callers who would have waited too long."""


@callbacks.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON array, newest first (for scripts).")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only callbacks in this status.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
def list_(ctx: click.Context, as_json: bool, status: str | None, limit: int) -> None:
    """List callbacks: the call that booked it, the queue, status, attempts and the agent."""
    async def main() -> list[dict[str, object]]:
        async with connection(dsn(ctx)) as conn:
            return await list_callbacks(conn, limit=limit, status=status)

    rows = run(main())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no callbacks")
    for row in rows:
        click.echo(
            f"{row['requested_at']}  #{row['callback_id']}  call={row['call_id']} queue={row['queue']} "
            f"number={row['number']} customer={row['customer_id'] or '-'}\n"
            f"    {row['status']}  attempts={row['attempts']}  agent={row['agent'] or '-'}"
            + (f"  ({row['detail']})" if row["detail"] else "")
        )
