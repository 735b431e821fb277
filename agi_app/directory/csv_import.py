"""Parsing and checking the customer CSV: every bad row is reported with its line number, and a
file with any bad row imports nothing (the caller decides to write only when `errors` is empty).

Required columns: customer_id, phone (several separated by `;`), name, salutation, segment,
language. Optional: bill_due_date (YYYY-MM-DD), flags (`a;b=no`: a flag alone is set, `=` takes a
boolean). Other columns are ignored.

Text reaches callers' ears (names become speech, and the prompt renderer marks media with `\\x1e`)
and administrators' screens, so a control or invisible format character in any column we import
is a row error rather than something to clean up later.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from agi_app.directory.models import LANGUAGES, SEGMENTS, Customer
from agi_app.directory.phone import normalize_phone

REQUIRED = ("customer_id", "phone", "name", "salutation", "segment", "language")
OPTIONAL = ("bill_due_date", "flags")

TRUE_WORDS = frozenset({"yes", "true", "on", "1", "y"})
FALSE_WORDS = frozenset({"no", "false", "off", "0", "n"})
_FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Cc: C0/C1 controls (NUL, ESC, \x1e, newlines, tab); Cf: invisible format characters, among them
# the bidi overrides (U+202E) and zero-width spaces (U+200B); Zl/Zp: U+2028/U+2029 line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


@dataclass
class ParsedFile:
    customers: list[Customer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # customer_id → line, to report later row errors


def control_character(text: str) -> str | None:
    """The first control or invisible format character in `text` as `U+XXXX`, or None."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def parse_flags(text: str) -> tuple[dict[str, bool], list[str]]:
    """`a;b=no;c=yes` → ({a: True, b: False, c: True}, problems)."""
    flags: dict[str, bool] = {}
    problems: list[str] = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        raw_name, sep, raw_value = item.partition("=")
        name, value = raw_name.strip(), raw_value.strip().lower()
        if not name:
            problems.append("flag with no name")
        elif not _FLAG_NAME.fullmatch(name):
            problems.append(f"flag name {name!r} is not a-z, 0-9 and _")
        elif name in flags:
            problems.append(f"flag {name} given twice")
        elif not sep or value in TRUE_WORDS:
            flags[name] = True
        elif value in FALSE_WORDS:
            flags[name] = False
        else:
            problems.append(f"flag {name}: {raw_value.strip()!r} is not a boolean (yes/no, true/false, on/off, 1/0)")
    return flags, problems


def iter_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; a row's line is where its record starts (a quoted field may span
    lines), counting the header as line 1. Extra fields go under `__extra__`; missing ones are absent."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise ValueError(f"line 1: malformed CSV: {exc}") from exc
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"line 1: missing column(s): {', '.join(missing)}")
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"line {start}: malformed CSV: {exc}") from exc
        line, start = start, reader.line_num + 1
        if not fields:
            continue
        row = dict(zip(header, fields, strict=False))
        if len(fields) > len(header):
            row["__extra__"] = ",".join(fields[len(header):])
        yield line, row


def check_row(line: int, row: dict[str, str], seen_ids: dict[str, int], seen_phones: dict[str, int]) -> tuple[Customer | None, list[str]]:
    errors: list[str] = []
    if "__extra__" in row or any(row.get(c) is None for c in REQUIRED):
        return None, [f"line {line}: wrong number of fields"]
    for column in (*REQUIRED, *OPTIONAL):
        if (code := control_character(row.get(column) or "")):
            errors.append(f"line {line}: {column} contains a control character ({code})")
    cid = row["customer_id"].strip()
    if not cid:
        errors.append(f"line {line}: customer_id is empty")
    elif cid in seen_ids:
        errors.append(f"line {line}: customer_id {cid} already on line {seen_ids[cid]}")
    else:
        seen_ids[cid] = line
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
            seen_phones[phone] = line
    due: date | None = None
    if (raw_due := (row.get("bill_due_date") or "").strip()):
        try:
            due = date.fromisoformat(raw_due)
        except ValueError:
            errors.append(f"line {line}: bill_due_date {raw_due!r} is not YYYY-MM-DD")
    flags, flag_problems = parse_flags(row.get("flags") or "")
    errors.extend(f"line {line}: {problem}" for problem in flag_problems)
    if errors:
        return None, errors
    return Customer(cid, name, row["salutation"].strip(), segment, language, tuple(phones), due, dict(flags)), []


def parse_customers(text: str, *, max_errors: int = 50) -> ParsedFile:
    result = ParsedFile()
    seen_ids: dict[str, int] = {}
    seen_phones: dict[str, int] = {}
    try:
        for line, row in iter_rows(text):
            customer, errors = check_row(line, row, seen_ids, seen_phones)
            if customer:
                result.customers.append(customer)
                result.lines[customer.customer_id] = line
            result.errors.extend(errors)
            if len(result.errors) >= max_errors:
                result.errors.append("too many errors, stopped checking")
                break
    except (csv.Error, ValueError) as exc:
        result.errors.append(str(exc))
    if not result.customers and not result.errors:
        result.errors.append("no customer rows in file")
    return result
