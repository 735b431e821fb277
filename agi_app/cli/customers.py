"""`hotline customers`: the customer directory."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from agi_app.cli.common import EXIT_INVALID, actor, dsn, echo_json, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories import audit
from agi_app.db.repositories import customers as repo
from agi_app.directory.csv_import import parse_customers
from agi_app.directory.models import Customer
from agi_app.directory.phone import normalize_phone


@click.group()
def customers() -> None:
    """Customer directory (who is calling)."""


@customers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Import customers from a CSV file, all or nothing.

    Columns: customer_id, phone (several separated by ';'), name, salutation, segment
    (standard|vip|private|elderly), language (zh|en); optional bill_due_date, flags.
    Unknown columns are ignored. Any bad row: nothing is imported, every problem is listed
    with its line number, exit code 1.
    """
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text (byte {exc.start}); nothing imported")
    parsed = parse_customers(text)
    if parsed.errors:
        for error in parsed.errors:
            click.echo(f"{file}: {error}", err=True)
        fail(f"{len(parsed.errors)} problem(s); nothing imported", EXIT_INVALID)

    async def main() -> int:
        async with connection(dsn(ctx)) as conn:
            show = len(parsed.customers) > 1000 and not as_json
            async with conn.transaction():
                with click.progressbar(length=len(parsed.customers), label="importing", hidden=not show) as bar:
                    await repo.import_customers(conn, parsed.customers, progress=bar.update)
                await audit.record(conn, actor(), "customers.import", {"file": str(file),
                                                                       "customers": len(parsed.customers)})
            return await repo.count(conn)

    total = run(main())
    phones = sum(len(c.phones) for c in parsed.customers)
    if as_json:
        echo_json({"imported": len(parsed.customers), "phones": phones, "total_customers": total})
    else:
        click.echo(f"imported {len(parsed.customers)} customers ({phones} phone numbers); {total} in directory")


@customers.command("show")
@click.argument("phone_or_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, phone_or_id: str, as_json: bool) -> None:
    """Show one customer, by customer id or by phone number (any format)."""
    async def main() -> Customer | None:
        async with connection(dsn(ctx)) as conn:
            found = await repo.get(conn, phone_or_id)
            phone = normalize_phone(phone_or_id)
            if found is None and phone:
                by_phone = await repo.find_by_phone(conn, phone)
                found = await repo.get(conn, by_phone.customer_id) if by_phone else None
            return found

    customer = run(main())
    if customer is None:
        fail(f"no customer {phone_or_id}")
    data = asdict(customer)
    if as_json:
        echo_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key:>14}: {value}")
