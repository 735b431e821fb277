"""Parsing and checking the banking stand-in's CSV files (`hotline accounts import`,
`import-bills`, `import-payees`), all or nothing like the customer import: every bad row is
reported with its line number and a file with any bad row imports nothing. Control characters are
refused in every column (names become speech).

Columns (SPEC): customer_id, account_id (letters, digits, - and _: callers hear the last 4 of its
digits), kind
(savings|current|credit), currency (ISO code, e.g. CNY), balance (yuan exact to the fen, e.g.
1024.50; only a credit account may be negative), card_number (optional, 12 to 19 digits, spaces and
hyphens ignored; only its digest and last 4 digits are kept). Other columns are ignored. Problems name a card by its last
4 digits only, never the whole number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from agi_app.banking.accounts import KINDS, Account, Bill, Payee, mask_card
from agi_app.banking.money import Money, MoneyError
from agi_app.directory.csv_import import control_character

REQUIRED = ("customer_id", "account_id", "kind", "currency", "balance")
_ACCOUNT_ID = re.compile(r"[0-9A-Za-z_-]{1,34}")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{4,34}")
_CARD = re.compile(r"[0-9]{12,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass
class Parsed:
    errors: list[str] = field(default_factory=list)


@dataclass
class ParsedAccounts(Parsed):
    accounts: list[Account] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)  # account id → card number
    lines: dict[str, int] = field(default_factory=dict)  # account id → line, for later row errors


def read_rows(text: str, required: tuple[str, ...], result: Parsed, *, max_errors: int = 50) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) for each well-formed row, counting the header as line 1; malformed CSV, a
    missing column or a row of the wrong width goes to `result.errors` with its line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            result.errors.append(f"line 1: missing column(s): {', '.join(missing)}")
            return
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields:
                continue
            if len(fields) != len(header):
                result.errors.append(f"line {line}: wrong number of fields")
            else:
                row = dict(zip(header, fields, strict=True))
                bad = [f"line {line}: {column} contains a control character ({code})"
                       for column, value in row.items() if (code := control_character(value))]
                result.errors.extend(bad)
                if not bad:
                    yield line, row
            if len(result.errors) >= max_errors:
                result.errors.append("too many errors, stopped checking")
                return
    except csv.Error as exc:
        result.errors.append(f"line {start}: malformed CSV: {exc}")


def parse_accounts(text: str) -> ParsedAccounts:
    result = ParsedAccounts()
    seen_cards: dict[str, int] = {}
    for line, row in read_rows(text, REQUIRED, result):
        _check(line, row, result, seen_cards)
    if not result.accounts and not result.errors:
        result.errors.append("no account rows in file")
    return result


def _check(line: int, row: dict[str, str], result: ParsedAccounts, seen_cards: dict[str, int]) -> None:
    errors: list[str] = []
    customer_id = row["customer_id"].strip()
    if not customer_id:
        errors.append(f"line {line}: customer_id is empty")
    account_id = row["account_id"].strip()
    if not _ACCOUNT_ID.fullmatch(account_id):
        errors.append(f"line {line}: account_id {account_id!r} is not 1 to 34 letters, digits, - or _")
    elif account_id in result.lines:
        errors.append(f"line {line}: account_id {account_id} already on line {result.lines[account_id]}")
    kind = row["kind"].strip().lower()
    if kind not in KINDS:
        errors.append(f"line {line}: kind {kind!r} is not one of {', '.join(KINDS)}")
    currency = row["currency"].strip().upper()
    if not _CURRENCY.fullmatch(currency):
        errors.append(f"line {line}: currency {currency!r} is not a three-letter code such as CNY")
    balance: Money | None = None
    try:
        balance = Money.parse(row["balance"])
        if balance.fen < 0 and kind != "credit":
            errors.append(f"line {line}: balance {balance} is negative on a {kind} account (only credit may be)")
    except MoneyError:
        errors.append(f"line {line}: balance {row['balance'].strip()!r} is not an amount like 1024.50")
    card = "".join((row.get("card_number") or "").replace("-", " ").split())
    if card and not _CARD.fullmatch(card):
        errors.append(f"line {line}: card_number {mask_card(card) or '?'} is not 12 to 19 digits")
    elif card in seen_cards:
        errors.append(f"line {line}: card_number {mask_card(card)} already on line {seen_cards[card]}")
    if errors or balance is None:
        result.errors.extend(errors)
        return
    result.lines[account_id] = line
    result.accounts.append(Account(customer_id, account_id, kind, currency, balance))  # type: ignore[arg-type]
    if card:
        seen_cards[card] = line
        result.cards[account_id] = card


BILL_COLUMNS = ("customer_id", "biller_id", "biller_name", "amount", "due_date")
PAYEE_COLUMNS = ("customer_id", "payee_id", "name", "account_number")
_BILLER_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")
_PAYEE_ID = re.compile(r"[0-9]{1,8}")


@dataclass
class ParsedBills(Parsed):
    bills: list[Bill] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each bill


def parse_bills(text: str) -> ParsedBills:
    """Bills: customer_id, biller_id, biller_name, amount (yuan, more than 0), due_date (YYYY-MM-DD)."""
    result = ParsedBills()
    seen: dict[tuple[str, str, date], int] = {}
    for line, row in read_rows(text, BILL_COLUMNS, result):
        errors: list[str] = []
        customer_id, biller_id, name = row["customer_id"].strip(), row["biller_id"].strip(), row["biller_name"].strip()
        if not customer_id:
            errors.append(f"line {line}: customer_id is empty")
        if not _BILLER_ID.fullmatch(biller_id):
            errors.append(f"line {line}: biller_id {biller_id!r} is not 1 to 32 letters, digits, _ or -")
        if not name:
            errors.append(f"line {line}: biller_name is empty")
        amount: Money | None = None
        try:
            amount = Money.parse(row["amount"])
            if amount.fen <= 0:
                errors.append(f"line {line}: amount {amount} is not more than 0")
        except MoneyError:
            errors.append(f"line {line}: amount {row['amount'].strip()!r} is not an amount like 1024.50")
        due: date | None = None
        try:
            due = date.fromisoformat(row["due_date"].strip())
        except ValueError:
            errors.append(f"line {line}: due_date {row['due_date'].strip()!r} is not YYYY-MM-DD")
        if due is not None and (customer_id, biller_id, due) in seen:
            errors.append(f"line {line}: the same bill is already on line {seen[(customer_id, biller_id, due)]}")
        if errors or amount is None or due is None:
            result.errors.extend(errors)
            continue
        seen[(customer_id, biller_id, due)] = line
        result.bills.append(Bill(customer_id, biller_id, name, amount, due))
        result.lines.append(line)
    if not result.bills and not result.errors:
        result.errors.append("no bill rows in file")
    return result


@dataclass
class ParsedPayees(Parsed):
    payees: list[Payee] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def parse_payees(text: str) -> ParsedPayees:
    """Registered payees: customer_id, payee_id (1 to 8 digits, what the caller keys in), name,
    account_number (digits)."""
    result = ParsedPayees()
    seen: dict[tuple[str, str], int] = {}
    for line, row in read_rows(text, PAYEE_COLUMNS, result):
        errors: list[str] = []
        customer_id, payee_id, name = row["customer_id"].strip(), row["payee_id"].strip(), row["name"].strip()
        number = "".join(row["account_number"].split())
        if not customer_id:
            errors.append(f"line {line}: customer_id is empty")
        if not _PAYEE_ID.fullmatch(payee_id):
            errors.append(f"line {line}: payee_id {payee_id!r} is not 1 to 8 digits")
        elif (customer_id, payee_id) in seen:
            errors.append(f"line {line}: payee {payee_id} of {customer_id} already on line {seen[(customer_id, payee_id)]}")
        if not name:
            errors.append(f"line {line}: name is empty")
        if not _ACCOUNT_NUMBER.fullmatch(number):
            errors.append(f"line {line}: account_number is not 4 to 34 digits")
        if errors:
            result.errors.extend(errors)
            continue
        seen[(customer_id, payee_id)] = line
        result.payees.append(Payee(customer_id, payee_id, name, number))
        result.lines.append(line)
    if not result.payees and not result.errors:
        result.errors.append("no payee rows in file")
    return result
