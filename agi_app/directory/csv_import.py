"""Parsing and checking the customer CSV: every bad row is reported with its line number, and a
file with any bad row imports nothing (the caller decides to write only when `errors` is empty).

Required columns: customer_id, phone (several separated by `;`), name, salutation, segment,
language. Optional: bill_due_date (YYYY-MM-DD), flags (`a;b=c`). Other columns are ignored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from agi_app.directory.models import LANGUAGES, SEGMENTS, Customer
from agi_app.directory.phone import normalize_phone

REQUIRED = ("customer_id", "phone", "name", "salutation", "segment", "language")


@dataclass
class ParsedFile:
    customers: list[Customer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_flags(text: str) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = item.partition("=")
        flags[key.strip()] = value.strip() if sep else True
    return flags


def iter_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; line numbers count the header as line 1."""
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="__extra__", strict=True)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"line 1: missing column(s): {', '.join(missing)}")
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"line {reader.line_num}: malformed CSV: {exc}") from exc
        yield reader.line_num, row


def check_row(line: int, row: dict[str, str], seen_ids: dict[str, int], seen_phones: dict[str, int]) -> tuple[Customer | None, list[str]]:
    errors: list[str] = []
    if "__extra__" in row or any(row.get(c) is None for c in REQUIRED):
        return None, [f"line {line}: wrong number of fields"]
    cid = row["customer_id"].strip()
    if not cid:
        errors.append(f"line {line}: customer_id is empty")
    elif cid in seen_ids:
        errors.append(f"line {line}: customer_id {cid} already on line {seen_ids[cid]}")
    name = row["name"].strip()
    if not name:
        errors.append(f"line {line}: name is empty")
    segment = row["segment"].strip().lower()
    if segment not in SEGMENTS:
        errors.append(f"line {line}: segment {segment!r} is not one of {', '.join(SEGMENTS)}")
    language = row["language"].strip().lower()
    if language not in LANGUAGES:
        errors.append(f"line {line}: language {language!r} is not one of {', '.join(LANGUAGES)}")
    phones: list[str] = []
    raw_phones = [p for p in row["phone"].split(";") if p.strip()]
    if not raw_phones:
        errors.append(f"line {line}: no phone number")
    for raw in raw_phones:
        phone = normalize_phone(raw)
        if phone is None:
            errors.append(f"line {line}: phone {raw.strip()!r} is not a valid number")
        elif phone in seen_phones and seen_phones[phone] != line:
            errors.append(f"line {line}: phone {raw.strip()} already on line {seen_phones[phone]}")
        elif phone not in phones:
            phones.append(phone)
    due: date | None = None
    if (raw_due := (row.get("bill_due_date") or "").strip()):
        try:
            due = date.fromisoformat(raw_due)
        except ValueError:
            errors.append(f"line {line}: bill_due_date {raw_due!r} is not YYYY-MM-DD")
    if errors:
        return None, errors
    seen_ids[cid] = line
    for phone in phones:
        seen_phones[phone] = line
    return Customer(cid, name, row["salutation"].strip(), segment, language, tuple(phones), due,
                    parse_flags(row.get("flags") or "")), []


def parse_customers(text: str, *, max_errors: int = 50) -> ParsedFile:
    result = ParsedFile()
    seen_ids: dict[str, int] = {}
    seen_phones: dict[str, int] = {}
    try:
        for line, row in iter_rows(text):
            customer, errors = check_row(line, row, seen_ids, seen_phones)
            if customer:
                result.customers.append(customer)
            result.errors.extend(errors)
            if len(result.errors) >= max_errors:
                result.errors.append("too many errors, stopped checking")
                break
    except (csv.Error, ValueError) as exc:
        result.errors.append(str(exc))
    if not result.customers and not result.errors:
        result.errors.append("no customer rows in file")
    return result
