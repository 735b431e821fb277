"""`hotline emergency` and `hotline notices`: what callers hear first, switched from the CLI and
effective for the next caller (every call reads them at its start; no restart, no reload)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from agi_app.calendar.model import DEFAULT_TIMEZONE
from agi_app.cli.common import actor, dsn, echo_json, fail, prompts_folder, run
from agi_app.db.pool import connection
from agi_app.db.repositories import audit, operations

LOCAL = ZoneInfo(DEFAULT_TIMEZONE)


def _local_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a time like '2026-12-25 10:00'")
    return value if value.tzinfo else value.replace(tzinfo=LOCAL)


def _check_sound(ctx: click.Context, sound: str | None) -> None:
    if not sound:
        return
    directory = prompts_folder(ctx)
    if not any((directory / lang / f"{sound}.wav").is_file() for lang in ("zh", "en")):
        fail(f"no recorded prompt {sound!r} under {directory}")


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def _texts(text: str | None, text_zh: str | None, text_en: str | None, sound: str | None) -> tuple[str | None, str | None]:
    """--text goes to the language it is written in (a Chinese text read by the English voice is noise)."""
    zh = text_zh or (text if text and _is_chinese(text) else None)
    en = text_en or (text if text and not _is_chinese(text) else None)
    if not (zh or en or sound):
        fail("give --text (or --text-zh/--text-en) or --sound")
    return zh, en


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
    zh, en = _texts(text, text_zh, text_en, sound)
    _check_sound(ctx, sound)
    until = _local_time(until_text)
    if until is not None and until <= datetime.now(LOCAL):
        fail("--until is in the past")

    async def main() -> int:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            new_id = await operations.switch_on_emergency(conn, line=line, text_zh=zh, text_en=en, sound=sound,
                                                          until=until, actor=actor())
            await audit.record(conn, actor(), "emergency.on", {"id": new_id, "line": line, "sound": sound,
                                                                "text_zh": zh, "text_en": en, "until": until})
            return new_id

    new_id = run(main())
    click.echo(f"emergency {new_id} on for {'line ' + line if line else 'all lines'}"
               + (f" until {until:%Y-%m-%d %H:%M %Z}" if until else ""))


@emergency.command("off")
@click.option("--line", help="The line whose emergency ends (default: the all-lines one).")
@click.option("--all", "all_lines", is_flag=True, help="End every live emergency.")
@click.pass_context
def emergency_off(ctx: click.Context, line: str | None, all_lines: bool) -> None:
    """Switch the emergency announcement off."""
    async def main() -> int:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            ended = await operations.switch_off_emergency(conn, line=line, all_lines=all_lines)
            await audit.record(conn, actor(), "emergency.off", {"line": line, "all": all_lines, "ended": ended})
            return ended

    ended = run(main())
    click.echo(f"{ended} emergency announcement(s) switched off" if ended else "no emergency was on")


@emergency.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.option("--history", is_flag=True, help="Include ended ones.")
@click.pass_context
def emergency_status(ctx: click.Context, as_json: bool, history: bool) -> None:
    """Live emergency announcements."""
    async def main() -> list[dict[str, Any]]:
        async with connection(dsn(ctx)) as conn:
            return await operations.list_emergencies(conn, include_ended=history)

    _rows(run(main()), as_json, "no emergency announcement is on")


@click.group()
def notices() -> None:
    """Service notices (products, fees, branches, hours) inserted into menus while valid."""


@notices.command("add")
@click.option("--kind", type=click.Choice(["product", "fee", "branch", "hours", "other"]), required=True)
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
    zh, en = _texts(text, text_zh, text_en, sound)
    _check_sound(ctx, sound)
    start, end = valid_from.date(), valid_to.date()
    if end < start:
        fail("--to is before --from")

    async def main() -> int:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            new_id = await operations.add_notice(conn, kind=kind, line=line, text_zh=zh, text_en=en, sound=sound,
                                                 valid_from=start, valid_to=end, priority=priority, actor=actor())
            await audit.record(conn, actor(), "notices.add", {"id": new_id, "kind": kind, "line": line,
                                                               "from": start, "to": end})
            return new_id

    click.echo(f"notice {run(main())} added ({start} .. {end})")


@notices.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "include_old", is_flag=True, help="Include expired notices.")
@click.pass_context
def notices_list(ctx: click.Context, as_json: bool, include_old: bool) -> None:
    """Current and future notices."""
    async def main() -> list[dict[str, Any]]:
        async with connection(dsn(ctx)) as conn:
            return await operations.list_notices(conn, include_old=include_old)

    _rows(run(main()), as_json, "no notices")


@notices.command("remove")
@click.argument("notice_id", type=int)
@click.pass_context
def notices_remove(ctx: click.Context, notice_id: int) -> None:
    """Withdraw a notice."""
    async def main() -> bool:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            removed = await operations.remove_notice(conn, notice_id)
            if removed:
                await audit.record(conn, actor(), "notices.remove", {"id": notice_id})
            return removed

    if not run(main()):
        fail(f"no current notice {notice_id}")
    click.echo(f"notice {notice_id} removed")


