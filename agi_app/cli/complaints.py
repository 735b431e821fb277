"""`hotline complaints list|show|dispatch|resolve`: the tickets callers filed by recording a complaint.

The recording is printed as the file an administrator plays (`HOTLINE_RECORDINGS_DIR`/<name>.wav,
Asterisk's recording spool as this host sees it), or as `recording:<name>` (ARI's stored recording)
when that directory is not configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import click

from agi_app.admin import Refused
from agi_app.centre.complaints import STATUSES, ComplaintRefused, Status
from agi_app.cli.common import actor, admin_call, echo_json, fail, settings
from agi_app.db.repositories import complaints as store

#: The format the engine records in (`CallSession.record`), hence the file's extension.
RECORDING_FORMAT = "wav"


def recording_location(recordings_dir: str, name: str) -> str:
    """Where an administrator finds a recording: a file path, or ARI's `recording:` URI."""
    if not recordings_dir:
        return f"recording:{name}"
    return str(Path(recordings_dir).resolve() / f"{name}.{RECORDING_FORMAT}")


def _shown(ctx: click.Context, ticket: dict[str, Any]) -> dict[str, Any]:
    return {**ticket, "recording": recording_location(settings(ctx).recordings_dir, ticket["recording"])}


@click.group()
def complaints() -> None:
    """Complaint tickets: the caller's recorded message, its category and department, its status."""


@complaints.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only tickets with this status.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON array, newest first (for scripts).")
@click.pass_context
def list_(ctx: click.Context, status: Status | None, limit: int, as_json: bool) -> None:
    """List tickets, newest first."""
    rows = [_shown(ctx, t) for t in admin_call(ctx, lambda conn: store.list_tickets(conn, status=status, limit=limit))]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no complaints")
    for t in rows:
        click.echo(f"{t['ticket_id']}  {t['created_at']}  {t['status']:<11}  {t['category']:<7} → {t['department']}"
                   f"  customer={t['customer_id'] or '-'}  callback={t['callback_number'] or '-'}  call={t['call_id']}"
                   f"\n    recording: {t['recording']}")


@complaints.command("show")
@click.argument("ticket_id")
@click.option("--json", "as_json", is_flag=True, help="The ticket and its dispatches as a JSON object.")
@click.pass_context
def show(ctx: click.Context, ticket_id: str, as_json: bool) -> None:
    """One ticket: the recording to play, the resolution, and every dispatch."""
    found = admin_call(ctx, lambda conn: store.get_ticket(conn, ticket_id))
    if found is None:
        fail(f"no complaint {ticket_id!r}")
    ticket = _shown(ctx, found)
    if as_json:
        echo_json(ticket)
        return
    for key, value in ticket.items():
        if key != "dispatches":
            click.echo(f"{key}: {'-' if value is None else value}")
    click.echo("dispatches:")
    for d in ticket["dispatches"]:
        click.echo(f"  {d['dispatched_at']}  to {d['department']}  by {d['dispatched_by']}"
                   + (f"  ({d['note']})" if d["note"] else ""))


@complaints.command("dispatch")
@click.argument("ticket_id")
@click.option("--to", "department", required=True, help="The department that answers for it from now on.")
@click.option("--note", default="", help="Why (kept in the dispatch history and the audit log).")
@click.option("--actor", "who", help="Who passed it on (default $HOTLINE_ACTOR, else the login user).")
@click.pass_context
def dispatch(ctx: click.Context, ticket_id: str, department: str, note: str, who: str | None) -> None:
    """Pass an unresolved ticket on to another department (a new dispatch record)."""
    async def verb(conn: asyncpg.Connection) -> dict[str, Any]:
        try:
            return await store.pass_on(conn, ticket_id, department=department, note=note.strip(), actor=who or actor())
        except ComplaintRefused as exc:
            raise Refused(str(exc)) from exc

    ticket = admin_call(ctx, verb)
    click.echo(f"{ticket['ticket_id']} dispatched to {ticket['department']}")


@complaints.command("resolve")
@click.argument("ticket_id")
@click.option("--note", required=True, help="What was done: kept on the ticket and in the audit log.")
@click.option("--actor", "who", help="Who resolved it (default $HOTLINE_ACTOR, else the login user).")
@click.pass_context
def resolve(ctx: click.Context, ticket_id: str, note: str, who: str | None) -> None:
    """Resolve a ticket; the caller is then called back with the outcome."""
    if not note.strip():
        fail("--note must say what was done")

    async def verb(conn: asyncpg.Connection) -> dict[str, Any]:
        try:
            return await store.resolve(conn, ticket_id, note=note.strip(), actor=who or actor())
        except ComplaintRefused as exc:
            raise Refused(str(exc)) from exc

    ticket = admin_call(ctx, verb)
    click.echo(f"{ticket['ticket_id']} resolved by {ticket['resolved_by']}; "
               + (f"callback {ticket['callback_id']} booked to {ticket['callback_number']}" if ticket["callback_id"]
                  else "no number to call back"))
