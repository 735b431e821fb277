"""`hotline emergency` and `hotline notices`: what callers hear first, switched from the CLI and
effective for the next caller (every call reads them at its start; no restart, no reload).

Parsing and printing only: the verbs, their rules and audit records are agi_app/admin/operations.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from agi_app.admin import Refused
from agi_app.admin import operations as admin
from agi_app.cli.common import actor, admin_call, echo_json, fail, prompts_folder


def _texts(ctx: click.Context, text: str | None, text_zh: str | None, text_en: str | None,
           sound: str | None) -> admin.Texts:
    if not (text or text_zh or text_en or sound):
        fail("give --text (or --text-zh/--text-en) or --sound")
    try:
        return admin.texts(text, text_zh, text_en, sound, prompts_folder(ctx) if sound else None)
    except Refused as exc:
        fail(str(exc))


def _rows(rows: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo(empty)
    for row in [] if as_json else rows:
        click.echo("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "")))


@click.group()
def emergency() -> None:
    """Emergency announcement played first to every caller (of one line, or all)."""


@emergency.command("on")
@click.option("--text", help="Spoken with generated speech, in the language it is written in.")
@click.option("--text-zh")
@click.option("--text-en")
@click.option("--sound", help="A recorded prompt id instead of text, e.g. emergency_default.")
@click.option("--line", help="Only this hotline number (default: all lines).")
@click.option("--until", "until_text", help="Switch off automatically at this local time.")
@click.pass_context
def emergency_on(ctx: click.Context, text: str | None, text_zh: str | None, text_en: str | None,
                 sound: str | None, line: str | None, until_text: str | None) -> None:
    """Switch an emergency announcement on; the next caller hears it first."""
    said = _texts(ctx, text, text_zh, text_en, sound)
    on = admin_call(ctx, lambda conn: admin.emergency_on(conn, said, line=line, until=until_text or None, actor=actor()))
    click.echo(f"emergency {on.id} on for {'line ' + line if line else 'all lines'}"
               + (f" until {on.until:%Y-%m-%d %H:%M %Z}" if on.until else ""))


@emergency.command("off")
@click.option("--line", help="The line whose emergency ends (default: the all-lines one).")
@click.option("--all", "all_lines", is_flag=True, help="End every live emergency.")
@click.pass_context
def emergency_off(ctx: click.Context, line: str | None, all_lines: bool) -> None:
    """Switch the emergency announcement off."""
    ended = admin_call(ctx, lambda conn: admin.emergency_off(conn, line=line, all_lines=all_lines, actor=actor()))
    click.echo(f"{ended} emergency announcement(s) switched off" if ended else "no emergency was on")


@emergency.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.option("--history", is_flag=True, help="Include ended ones.")
@click.pass_context
def emergency_status(ctx: click.Context, as_json: bool, history: bool) -> None:
    """Live emergency announcements."""
    _rows(admin_call(ctx, lambda conn: admin.emergencies(conn, history=history)), as_json,
          "no emergency announcement is on")


@click.group()
def notices() -> None:
    """Service notices (products, fees, branches, hours) inserted into menus while valid."""


@notices.command("add")
@click.option("--kind", type=click.Choice(admin.NOTICE_KINDS), required=True)
@click.option("--text")
@click.option("--text-zh")
@click.option("--text-en")
@click.option("--sound")
@click.option("--from", "valid_from", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "valid_to", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--line")
@click.option("--priority", type=int, default=0, show_default=True)
@click.pass_context
def notices_add(ctx: click.Context, kind: str, text: str | None, text_zh: str | None, text_en: str | None,
                sound: str | None, valid_from: datetime, valid_to: datetime, line: str | None, priority: int) -> None:
    """Add a notice valid from --from to --to (inclusive)."""
    said = _texts(ctx, text, text_zh, text_en, sound)
    added = admin_call(ctx, lambda conn: admin.add_notice(conn, said, kind=kind, line=line, valid_from=valid_from.date(),
                                                     valid_to=valid_to.date(), priority=priority, actor=actor()))
    click.echo(f"notice {added.id} added ({added.valid_from} .. {added.valid_to})")


@notices.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "include_old", is_flag=True, help="Include expired notices.")
@click.pass_context
def notices_list(ctx: click.Context, as_json: bool, include_old: bool) -> None:
    """Current and future notices."""
    _rows(admin_call(ctx, lambda conn: admin.list_notices(conn, include_old=include_old)), as_json, "no notices")


@notices.command("remove")
@click.argument("notice_id", type=int)
@click.pass_context
def notices_remove(ctx: click.Context, notice_id: int) -> None:
    """Withdraw a notice."""
    admin_call(ctx, lambda conn: admin.remove_notice(conn, notice_id, actor=actor()))
    click.echo(f"notice {notice_id} removed")


