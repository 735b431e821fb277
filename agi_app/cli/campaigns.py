"""`hotline campaigns`: outbound campaigns, created by a department, approved by another actor,
started and paused; `hotline serve` dials running ones within their hours (serve/campaigns.py)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import asyncpg
import click

from agi_app.centre.campaigns import (
    CampaignError,
    Hours,
    check_concurrency,
    check_name,
)
from agi_app.cli.common import actor, dsn, echo_json, fail, prompts_folder, run
from agi_app.db.pool import connection
from agi_app.db.repositories import campaigns as store
from agi_app.db.repositories.campaigns import NewCampaign
from agi_app.directory.phone import normalize_phone
from agi_app.media.items import Sound, missing_sounds

_SEGMENTS = ("standard", "vip", "private", "elderly")
_SOUND_ID = re.compile(r"[a-z0-9_]{1,64}")
_ACTOR_HELP = "Who does it, for the audit log [default: $HOTLINE_ACTOR, else the OS user]."


@click.group()
def campaigns() -> None:
    """Outbound campaigns: a message played to a customer list within allowed hours.

    \b
    A campaign is created (draft), approved by an administrator other than its creator, then
    started; `hotline serve` dials it only within its hours (the bank's time zone, the calendar's
    `*` time zone) on days the calendar opens, at most 3 attempts per customer
    (HOTLINE_CAMPAIGN_RETRY_DELAY_S apart), never more calls at once than its concurrency.
    Exit codes: 1 refused (bad input, or a move the campaign's state or the approval rule forbids:
    a creator approving their own campaign), 2 configuration missing, 3 PostgreSQL unreachable.
    """


def read_customer_list(text: str) -> tuple[list[str], list[str], list[str]]:
    """A CSV with a header naming `phone` and/or `customer_id`: (numbers, customer ids, errors).
    A row's phone wins; a row with only a customer id is called on their number on file."""
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    if not columns & {"phone", "customer_id"}:
        return [], [], ["the header names neither phone nor customer_id"]
    numbers: list[str] = []
    ids: list[str] = []
    errors: list[str] = []
    for line, row in enumerate(reader, start=2):
        phone, customer = (row.get("phone") or "").strip(), (row.get("customer_id") or "").strip()
        if phone:
            number = normalize_phone(phone)
            if number is None or not number.isdigit():
                errors.append(f"line {line}: not a dialable national number")
            else:
                numbers.append(number)
        elif customer:
            ids.append(customer)
        else:
            errors.append(f"line {line}: neither phone nor customer_id")
    return numbers, ids, errors


async def _targets(conn: asyncpg.Connection, customer_list: tuple[Path, str] | None,
                   segment: str | None) -> list[tuple[str | None, str]]:
    """Who to call: the segment's customers, or the list's numbers (customer ids resolved)."""
    if segment is not None:  # international numbers (+...) are not dialled through the national trunk
        return [(c, n) for c, n in await store.segment_numbers(conn, segment) if n.isdigit()]
    assert customer_list is not None
    path, text = customer_list
    numbers, ids, errors = read_customer_list(text)
    found = await store.customer_numbers(conn, ids)
    errors += [f"customer {c}: unknown or without a number on file" for c in ids if c not in found]
    if errors:
        raise CampaignError(f"{path}: " + "; ".join(errors[:10]))
    return [(None, n) for n in numbers] + [(c, found[c]) for c in ids]


@campaigns.command()
@click.argument("name")
@click.option("--department", required=True, help="The department the campaign is for.")
@click.option("--message-sound", help="A recorded prompt id (sounds/<language>/<id>.wav) to play.")
@click.option("--message-text", help="A text to speak (generated speech).")
@click.option("--language", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--customers", "customers_file", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with a phone and/or customer_id column.")
@click.option("--segment", type=click.Choice(_SEGMENTS), help="Every customer of this segment instead.")
@click.option("--hours", required=True, help="Daily window in bank time, HH:MM-HH:MM (end exclusive).")
@click.option("--concurrency", default=2, show_default=True, type=int, help="Calls at once, at most.")
@click.option("--actor", "who", help=_ACTOR_HELP)
@click.pass_context
def create(ctx: click.Context, name: str, department: str, message_sound: str | None, message_text: str | None,
           language: str, customers_file: Path | None, segment: str | None, hours: str, concurrency: int,
           who: str | None) -> None:
    """Create campaign NAME (a draft, until approved)."""
    if (message_sound is None) == (message_text is None):
        fail("give one message: --message-sound ID or --message-text TEXT")
    if (customers_file is None) == (segment is None):
        fail("give one customer list: --customers FILE.csv or --segment S")
    try:
        spec = NewCampaign(check_name(name), department.strip(), message_sound,
                           message_text.strip() if message_text is not None else None, language, Hours.parse(hours),
                           check_concurrency(concurrency))
    except CampaignError as exc:
        fail(str(exc))
    if not spec.department or spec.message_text == "":
        fail("the department and the message text may not be empty")
    if message_sound is not None:
        if not _SOUND_ID.fullmatch(message_sound):
            fail(f"bad prompt id {message_sound!r} (lower-case letters, digits and _)")
        if missing_sounds([Sound(message_sound, language)], prompts_folder(ctx)):
            fail(f"no recorded prompt {language}/{message_sound} in {prompts_folder(ctx)}")

    customer_list = None
    if customers_file is not None:
        try:
            customer_list = (customers_file, customers_file.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {customers_file}: {exc}")

    async def main() -> int:
        async with connection(dsn(ctx)) as conn:
            targets = await _targets(conn, customer_list, segment)
            await store.create(conn, spec, targets, who or actor())
            return len(targets)

    try:
        count = run(main())
    except CampaignError as exc:
        fail(str(exc))
    click.echo(f"campaign {name} created (draft): {count} customers, hours {spec.hours}, "
               f"concurrency {spec.concurrency}; it needs another administrator's approval")


def _move(ctx: click.Context, verb: str, name: str, who: str | None) -> None:
    async def main() -> store.CampaignRow:
        async with connection(dsn(ctx)) as conn:
            return await store.change_state(conn, name, verb, who or actor())

    try:
        campaign = run(main())
    except CampaignError as exc:
        fail(str(exc))
    click.echo(f"campaign {name}: {campaign.state}"
               + (f" (created by {campaign.created_by}, approved by {campaign.approved_by})" if verb == "approve" else ""))


@campaigns.command()
@click.argument("name")
@click.option("--actor", "who", help=_ACTOR_HELP)
@click.pass_context
def approve(ctx: click.Context, name: str, who: str | None) -> None:
    """Approve draft campaign NAME; refused (exit 1) when the actor is its creator."""
    _move(ctx, "approve", name, who)


@campaigns.command()
@click.argument("name")
@click.option("--actor", "who", help=_ACTOR_HELP)
@click.pass_context
def start(ctx: click.Context, name: str, who: str | None) -> None:
    """Start (or resume) approved campaign NAME: `hotline serve` dials it within its hours."""
    _move(ctx, "start", name, who)


@campaigns.command()
@click.argument("name")
@click.option("--actor", "who", help=_ACTOR_HELP)
@click.pass_context
def pause(ctx: click.Context, name: str, who: str | None) -> None:
    """Pause running campaign NAME: no new calls (calls in progress finish)."""
    _move(ctx, "pause", name, who)


@campaigns.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON array (for scripts).")
@click.pass_context
def status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Each campaign (or NAME): state, who created and approved it, customers pending, attempts by result."""
    async def main() -> list[dict[str, object]]:
        async with connection(dsn(ctx)) as conn:
            return await store.summaries(conn, name)

    rows = run(main())
    if name is not None and not rows:
        fail(f"no campaign named {name!r}")
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no campaigns")
    for row in rows:
        attempts = row["attempts"]
        assert isinstance(attempts, dict)
        click.echo(f"{row['name']}  {row['state']}  department={row['department']}  hours={row['hours']}"
                   f"  concurrency={row['concurrency']}  message={row['message']}\n"
                   f"    created by {row['created_by']}, approved by {row['approved_by'] or '-'}"
                   f"  customers={row['customers']} pending={row['pending']}\n"
                   f"    attempts: " + " ".join(f"{k}={v}" for k, v in attempts.items()))
