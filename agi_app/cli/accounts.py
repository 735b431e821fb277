"""`hotline accounts`: the banking stand-in's accounts and cards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import click

from agi_app.banking.accounts import Account
from agi_app.banking.csv_import import parse_accounts, parse_bills, parse_payees
from agi_app.cli.common import EXIT_INVALID, actor, dsn, echo_json, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories import audit
from agi_app.db.repositories import banking as repo


@click.group()
def accounts() -> None:
    """Bank accounts and cards (the core-banking stand-in)."""


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text (byte {exc.start}); nothing imported")


@accounts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Import accounts from a CSV file, all or nothing.

    Columns: customer_id (in the directory already), account_id (letters, digits, - and _), kind
    (savings|current|credit), currency (e.g. CNY), balance (yuan, e.g. 1024.50; negative only on
    credit), optional card_number (only its digest and last 4 digits are kept; a card already
    blocked stays blocked). An account in the file gets the file's balance.

    Any problem: nothing is imported, every problem is listed with its line number, exit code 1.
    """
    parsed = parse_accounts(_read(file))
    _refuse(file, parsed.errors)

    async def main() -> tuple[list[str], int]:
        async with connection(dsn(ctx)) as conn:
            async with conn.transaction():
                problems = await _unknown_customers(conn, [a.customer_id for a in parsed.accounts],
                                                    [parsed.lines[a.account_id] for a in parsed.accounts])
                problems += [f"line {parsed.lines[account]}: card_number ending {parsed.cards[account][-4:]}"
                             f" belongs to account {other}" for account, other in
                             (await repo.cards_elsewhere(conn, parsed.cards)).items()]
                if problems:
                    return problems, 0
                await repo.import_accounts(conn, parsed.accounts, parsed.cards)
                await audit.record(conn, actor(), "accounts.import", {
                    "file": str(file), "accounts": len(parsed.accounts), "cards": len(parsed.cards)})
            return [], len(await repo.list_accounts(conn))

    problems, total = run(main())
    _refuse(file, problems)
    if as_json:
        echo_json({"imported": len(parsed.accounts), "cards": len(parsed.cards), "total_accounts": total})
    else:
        click.echo(f"imported {len(parsed.accounts)} accounts ({len(parsed.cards)} cards); {total} in the bank")


def _refuse(file: Path, problems: list[str]) -> None:
    if problems:
        for problem in problems:
            click.echo(f"{file}: {problem}", err=True)
        fail(f"{len(problems)} problem(s); nothing imported", EXIT_INVALID)


async def _unknown_customers(conn: asyncpg.Connection, customers: list[str], lines: list[int]) -> list[str]:
    unknown = await repo.missing_customers(conn, sorted(set(customers)))
    return [f"line {line}: customer_id {c} is not in the directory (import customers first)"
            for c, line in zip(customers, lines, strict=True) if c in unknown]


def _import_for_customers(ctx: click.Context, file: Path, errors: list[str], customers: list[str],
                          lines: list[int], write: Callable[[asyncpg.Connection], Awaitable[None]],
                          action: str, counts: dict[str, int]) -> None:
    """Rows that each belong to a directory customer: all written and audited in one transaction,
    or none (every problem listed with its line number, exit code 1)."""
    _refuse(file, errors)

    async def main() -> list[str]:
        async with connection(dsn(ctx)) as conn, conn.transaction():
            problems = await _unknown_customers(conn, customers, lines)
            if not problems:
                await write(conn)
                await audit.record(conn, actor(), action, {"file": str(file), **counts})
            return problems

    _refuse(file, run(main()))


@accounts.command("import-bills")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_bills(ctx: click.Context, file: Path) -> None:
    """Import bills from a CSV file, all or nothing.

    Columns: customer_id, biller_id, biller_name, amount (yuan, e.g. 356.80), due_date
    (YYYY-MM-DD). One bill per customer, biller and due date: importing again updates an unpaid
    bill's amount and adds nothing. A caller's bill payment pays the oldest unpaid bill.
    """
    parsed = parse_bills(_read(file))
    _import_for_customers(ctx, file, parsed.errors, [b.customer_id for b in parsed.bills], parsed.lines,
                          lambda conn: repo.import_bills(conn, parsed.bills), "accounts.import_bills",
                          {"bills": len(parsed.bills)})
    click.echo(f"imported {len(parsed.bills)} bills")


@accounts.command("import-payees")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_payees(ctx: click.Context, file: Path) -> None:
    """Import registered payees from a CSV file, all or nothing.

    Columns: customer_id, payee_id (1 to 8 digits: what the caller keys in to choose the payee),
    name, account_number (digits). A payee whose account number changes counts as newly
    registered (the risk rule on a new payee followed by a large transfer reads that time).
    """
    parsed = parse_payees(_read(file))
    _import_for_customers(ctx, file, parsed.errors, [p.customer_id for p in parsed.payees], parsed.lines,
                          lambda conn: repo.import_payees(conn, parsed.payees), "accounts.import_payees",
                          {"payees": len(parsed.payees)})
    click.echo(f"imported {len(parsed.payees)} payees")


def as_row(account: Account) -> dict[str, Any]:
    """The SPEC's JSON object: balance a decimal string, the card by status (its number never)."""
    return {"customer_id": account.customer_id, "account_id": account.account_id, "kind": account.kind,
            "currency": account.currency, "balance": str(account.balance), "card_status": account.card_status}


@accounts.command("list")
@click.option("--customer", "customer_id", help="Only this customer's accounts.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, customer_id: str | None, as_json: bool) -> None:
    """List accounts: customer, account, kind, currency, balance, card (last 4 digits) and status."""
    async def main() -> list[Account]:
        async with connection(dsn(ctx)) as conn:
            return await repo.list_accounts(conn, customer_id)

    found = run(main())
    if as_json:
        echo_json([as_row(a) for a in found])
        return
    for a in found:
        card = f"card ****{a.card_last4} {a.card_status}" if a.card_last4 else "no card"
        click.echo(f"{a.customer_id:<10} {a.account_id:<22} {a.kind:<8} {a.currency} {a.balance!s:>14}  {card}")
