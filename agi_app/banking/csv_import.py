"""Parsing and checking the accounts CSV (`hotline accounts import`), all or nothing like the
customer import: every bad row is reported with its line number and a file with any bad row
imports nothing.

Columns (SPEC): customer_id, account_id (digits: callers hear its last 4), kind
(savings|current|credit), currency (ISO code, e.g. CNY), balance (yuan exact to the fen, e.g.
1024.50; only a credit account may be negative), card_number (optional, 12 to 19 digits; only its
digest and last 4 digits are kept). Other columns are ignored. Problems name a card by its last
4 digits only, never the whole number.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from agi_app.banking.accounts import KINDS, Account, mask_card
from agi_app.banking.money import Money, MoneyError
from agi_app.directory.csv_import import control_character

REQUIRED = ("customer_id", "account_id", "kind", "currency", "balance")
_ACCOUNT_ID = re.compile(r"[0-9]{4,34}")
_CARD = re.compile(r"[0-9]{12,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass
class ParsedAccounts:
    accounts: list[Account] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)  # account id → card number
    errors: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # account id → line, for later row errors


def parse_accounts(text: str, *, max_errors: int = 50) -> ParsedAccounts:
    result = ParsedAccounts()
    seen_cards: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            result.errors.append(f"line 1: missing column(s): {', '.join(missing)}")
            return result
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields:
                continue
            if len(fields) != len(header):
                result.errors.append(f"line {line}: wrong number of fields")
            else:
                _check(line, dict(zip(header, fields, strict=True)), result, seen_cards)
            if len(result.errors) >= max_errors:
                result.errors.append("too many errors, stopped checking")
                break
    except csv.Error as exc:
        result.errors.append(f"line {start}: malformed CSV: {exc}")
    if not result.accounts and not result.errors:
        result.errors.append("no account rows in file")
    return result


def _check(line: int, row: dict[str, str], result: ParsedAccounts, seen_cards: dict[str, int]) -> None:
    errors: list[str] = []
    for column in (*REQUIRED, "card_number"):
        if (code := control_character(row.get(column) or "")):
            errors.append(f"line {line}: {column} contains a control character ({code})")
    customer_id = row["customer_id"].strip()
    if not customer_id:
        errors.append(f"line {line}: customer_id is empty")
    account_id = row["account_id"].strip()
    if not _ACCOUNT_ID.fullmatch(account_id):
        errors.append(f"line {line}: account_id {account_id!r} is not 4 to 34 digits")
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
    card = "".join((row.get("card_number") or "").split())
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
