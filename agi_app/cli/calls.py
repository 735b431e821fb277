"""`hotline calls`: calls and their journeys."""

from __future__ import annotations

import click

from agi_app.cli.common import dsn, echo_json, run
from agi_app.db.pool import connection
from agi_app.db.repositories.calls import list_calls


@click.group()
def calls() -> None:
    """Calls handled by the hotline."""


@calls.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON array, newest first (for scripts).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--caller", help="Only calls from this calling number (as received).")
@click.option("--call-id", help="Only this call.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, limit: int, caller: str | None, call_id: str | None) -> None:
    """List recent calls with their path through the menus and outcome."""
    async def main() -> list[dict[str, object]]:
        async with connection(dsn(ctx)) as conn:
            return await list_calls(conn, limit=limit, caller=caller, call_id=call_id)

    rows = run(main())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no calls")
    for row in rows:
        services = ",".join(f"{s['service']}:{s['result']}" for s in row["services"])  # type: ignore[attr-defined]
        click.echo(
            f"{row['started_at']}  {row['call_id']}  caller={row['caller']} dnis={row['dnis']} "
            f"customer={row['customer_id'] or '-'} segment={row['segment'] or '-'} v={row['menu_version'] or '-'}\n"
            f"    path: {' > '.join(row['path']) or '-'}\n"  # type: ignore[arg-type]
            f"    outcome: {row['outcome'] or 'in progress'}  transfer: {row['transfer_target'] or '-'}  "
            f"duration: {row['duration_ms'] if row['duration_ms'] is not None else '-'} ms"
            + (f"  services: {services}" if services else "")
            + (f"  survey: {row['survey']}/5" if row["survey"] is not None else "")
            + (f"\n    queue: {describe_leg(row['queue'])}" if row["queue"] else "")  # type: ignore[arg-type]
        )


def describe_leg(leg: dict[str, object]) -> str:
    """One queue leg for people: the group, the wait (told / actual), who answered, the talk, the end."""
    def seconds(value: object) -> str:
        return f"{value} s" if value is not None else "-"

    told = f" (told {seconds(leg['announced_wait_s'])}, position {leg['announced_position']})" if (
        leg["announced_position"] is not None) else ""
    return (f"{leg['group']}  waited {seconds(leg['wait_s'])}{told}  agent {leg['agent'] or '-'}  "
            f"talked {seconds(leg['talk_s'])}  {leg['result'] or 'waiting'}")
