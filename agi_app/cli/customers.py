"""`hotline customers`: the customer directory."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click

from agi_app.banking.pin import InvalidPin, check_pin_format, hash_in_thread
from agi_app.cli.common import EXIT_INVALID, actor, dsn, echo_json, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories import audit, security
from agi_app.db.repositories import customers as repo
from agi_app.directory.csv_import import parse_customers
from agi_app.directory.models import Customer
from agi_app.directory.phone import normalize_phone


@click.group()
def customers() -> None:
    """Customer directory (who is calling)."""


@customers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reassign", is_flag=True,
              help="Move phone numbers that belong to customers not in the file (each move is audited).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_(ctx: click.Context, file: Path, reassign: bool, as_json: bool) -> None:
    """Import customers from a CSV file, all or nothing.

    Columns: customer_id, phone (several separated by ';'), name, salutation, segment
    (standard|vip|private|elderly), language (zh|en); optional bill_due_date (YYYY-MM-DD) and
    flags ('vip;risk_hold=no': a flag alone is set; after '=' yes/no, true/false, on/off or 1/0).
    Unknown columns are ignored; control characters are refused in every column.

    A phone number that belongs to a customer not in the file is an error, unless --reassign.
    Any problem: nothing is imported, every problem is listed with its line number, exit code 1.
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

    async def main() -> tuple[list[repo.PhoneMove], int | None]:
        async with connection(dsn(ctx)) as conn:
            show = len(parsed.customers) > 1000 and not as_json
            try:
                async with conn.transaction():
                    with click.progressbar(length=len(parsed.customers), label="importing", hidden=not show) as bar:
                        moves = await repo.import_customers(conn, parsed.customers, reassign=reassign,
                                                           progress=bar.update)
                    await audit.record(conn, actor(), "customers.import", {
                        "file": str(file), "customers": len(parsed.customers),
                        "phones_moved": [{"phone": m.phone, "from": m.from_customer, "to": m.to_customer}
                                         for m in moves]})
            except repo.PhonesOwnedElsewhere as exc:
                return exc.moves, None  # refused: nothing was written
            return moves, await repo.count(conn)

    moves, total = run(main())
    if total is None:
        for move in sorted(moves, key=lambda m: (parsed.lines[m.to_customer], m.phone)):
            click.echo(f"{file}: line {parsed.lines[move.to_customer]}: phone {move.phone} belongs to customer"
                       f" {move.from_customer}, who is not in this file (--reassign moves it)", err=True)
        fail(f"{len(moves)} problem(s); nothing imported", EXIT_INVALID)
    phones = sum(len(c.phones) for c in parsed.customers)
    if as_json:
        echo_json({"imported": len(parsed.customers), "phones": phones, "phones_moved": len(moves),
                   "total_customers": total})
    else:
        click.echo(f"imported {len(parsed.customers)} customers ({phones} phone numbers); {total} in directory")
        if moves:
            click.echo(f"{len(moves)} phone number{'s' * (len(moves) != 1)} moved from customers not in the file"
                       " (see `hotline db audit`)")


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


@customers.command("set-pin")
@click.argument("customer_id")
def set_pin(customer_id: str) -> None:
    """Set a customer's phone-banking PIN (exactly 6 digits), read from standard input — never an
    argument (argument lists are visible to every user of the host). Only a salted hash is stored;
    failures and any lockout are cleared; the audit log records the change, not the PIN."""
    ctx = click.get_current_context()
    if sys.stdin.isatty():
        pin = click.prompt("new PIN", hide_input=True, confirmation_prompt=True, err=True)
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    try:
        check_pin_format(pin)
    except InvalidPin as exc:
        fail(f"{exc}; nothing changed")

    async def main() -> bool:
        pin_hash = await hash_in_thread(pin)
        async with connection(dsn(ctx)) as conn:
            return await security.set_pin(conn, customer_id, pin_hash, actor=actor())

    if not run(main()):
        fail(f"no customer {customer_id}; nothing changed")
    click.echo(f"PIN set for customer {customer_id}")
