"""`hotline alerts list`: the alerts the running servers raised and cleared (agi_app/analytics/alerts.py
has the rules, README the HOTLINE_ALERT_* thresholds)."""

from __future__ import annotations

import click

from agi_app.cli.common import dsn, echo_json, run
from agi_app.db.pool import connection
from agi_app.monitoring.alert_store import StoredAlert, list_events


@click.group()
def alerts() -> None:
    """Alerts: error rate, failures in a row on a line or node, lookups past their budget, ARI
    disconnected, journey backlog; each with a level (warning, critical)."""


@alerts.command("list")
@click.option("--active", is_flag=True, help="Only the alerts active now (raised and not cleared).")
@click.option("--limit", default=200, show_default=True, help="At most this many changes, newest first.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, active: bool, limit: int, as_json: bool) -> None:
    """Every change of every alert (raised, escalated, eased, cleared), newest first; * marks an
    alert still active."""
    async def main() -> list[StoredAlert]:
        async with connection(dsn(ctx)) as conn:
            return await list_events(conn, active_only=active, limit=limit)

    events = run(main())
    if as_json:
        echo_json([{"id": e.id, "at": e.at.isoformat(), "server": e.server_id, "alert": e.key, "rule": e.rule,
                    "subject": e.subject, "change": e.change, "level": e.level, "value": e.value,
                    "message": e.message, "active": e.active} for e in events])
        return
    if not events:
        click.echo("no active alerts" if active else "no alerts")
    for e in events:
        click.echo(f"{'*' if e.active else ' '} {e.at:%Y-%m-%d %H:%M:%S}  {e.change:<9} {e.level or '-':<8} "
                   f"{e.key}  {e.message}  ({e.server_id})")
