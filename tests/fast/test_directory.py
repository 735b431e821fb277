"""Phone normalisation, the customer CSV, and the lookup budget."""

from __future__ import annotations

import asyncio

import pytest

from agi_app.directory.csv_import import parse_customers
from agi_app.directory.models import Customer
from agi_app.directory.phone import normalize_phone
from agi_app.directory.service import Directory

HEADER = "customer_id,phone,name,salutation,segment,language\n"


@pytest.mark.parametrize(("raw", "expected"), [
    ("13800138000", "13800138000"),
    ("+86 138-0013-8000", "13800138000"),
    ("0086 13800138000", "13800138000"),
    ("013800138000", "13800138000"),
    ("+86 10 6512 3456", "1065123456"),
    ("010-6512-3456", "1065123456"),
    ("(010) 6512.3456", "1065123456"),
    ("+1 555 010 9999", "+15550109999"),
    ("001 555 010 9999", "+15550109999"),
    ("", None), ("abc", None), ("12", None), ("+86", None), ("138 0013 8000 ext 5", None), (None, None),
])
def test_normalize_phone(raw: str | None, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_csv_with_several_phones_and_extra_columns() -> None:
    parsed = parse_customers(HEADER.strip() + ",branch\nC1,+86 138 0013 8000; 010-6512-3456,王伟,Mr,vip,zh,Beijing\n")
    assert parsed.errors == []
    assert parsed.customers[0].phones == ("13800138000", "1065123456")
    assert parsed.customers[0].segment == "vip"


@pytest.mark.parametrize(("row", "message"), [
    ("C1,13800138000,Wang,Mr,gold,zh", "line 2: segment 'gold'"),
    ("C1,13800138000,Wang,Mr,vip,fr", "line 2: language 'fr'"),
    ("C1,not-a-phone,Wang,Mr,vip,zh", "line 2: phone 'not-a-phone' is not a valid number"),
    ("C1,13800138000,,Mr,vip,zh", "line 2: name is empty"),
    ("C1,13800138000,Wang,Mr,vip", "line 2: wrong number of fields"),
    ("C1,13800138000,Wang,Mr,vip,zh,extra", "line 2: wrong number of fields"),
    ('C1,"13800138000,Wang,Mr,vip,zh', "malformed"),
])
def test_bad_rows_are_reported_with_their_line(row: str, message: str) -> None:
    parsed = parse_customers(HEADER + row + "\n")
    assert any(message in e for e in parsed.errors), parsed.errors


def test_duplicates_across_rows_name_both_lines() -> None:
    parsed = parse_customers(HEADER + "C1,13800138000,A,Mr,vip,zh\nC2,+8613800138000,B,Ms,vip,zh\nC1,13900139000,C,Mr,vip,zh\n")
    assert "line 3: phone +8613800138000 already on line 2" in parsed.errors
    assert "line 4: customer_id C1 already on line 2" in parsed.errors


def test_missing_columns_and_empty_files() -> None:
    assert parse_customers("customer_id,phone,name\nC1,1380013,A\n").errors == [
        "line 1: missing column(s): salutation, segment, language"]
    assert parse_customers(HEADER).errors == ["no customer rows in file"]


async def test_lookup_budget_and_failures_degrade_to_unknown() -> None:
    async def slow(phone: str) -> Customer | None:
        await asyncio.sleep(5)  # a database far slower than the budget
        return None

    async def broken(phone: str) -> Customer | None:
        raise ConnectionError("database down")

    slow_id = await Directory(slow, budget_s=0.05).identify("13800138000")
    assert slow_id.customer is None and slow_id.degraded
    broken_id = await Directory(broken).identify("13800138000")
    assert broken_id.customer is None and broken_id.degraded
    assert (await Directory(broken).identify("garbage")).phone is None


FLAGGED = "customer_id,phone,name,salutation,segment,language,flags\n"


def test_flag_values_are_parsed_as_booleans() -> None:
    parsed = parse_customers(FLAGGED + "C1,13800138000,Wang,Mr,vip,zh,risk_hold=no;vip=false;bill_due;x=YES;y=0;z=on\n")
    assert parsed.errors == []
    assert parsed.customers[0].flags == {"risk_hold": False, "vip": False, "bill_due": True, "x": True,
                                         "y": False, "z": True}


@pytest.mark.parametrize(("flags", "message"), [
    ("risk_hold=maybe", "line 3: flag risk_hold: 'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)"),
    ("=yes", "line 3: flag with no name"),
    ("risk hold", "line 3: flag name 'risk hold' is not a-z, 0-9 and _"),
    ("vip;vip=no", "line 3: flag vip given twice"),
])
def test_a_flag_that_is_not_a_boolean_is_refused_with_its_line(flags: str, message: str) -> None:
    parsed = parse_customers(FLAGGED + "C1,13800138000,Wang,Mr,vip,zh,\n" + f"C2,13900139000,Li,Ms,vip,zh,{flags}\n")
    assert message in parsed.errors, parsed.errors


@pytest.mark.parametrize(("field", "value", "code"), [
    ("name", "Wang\x00", "U+0000"),
    ("name", "Wang\x1esound:evil", "U+001E"),
    ("name", '"Wang\nWei"', "U+000A"),
    ("name", "Wang\u202eieW", "U+202E"),
    ("name", "Wa\u200bng", "U+200B"),
    ("name", "Wang\u2028Wei", "U+2028"),
    ("salutation", "Mr\t", "U+0009"),
    ("customer_id", "C\x1b1", "U+001B"),
    ("flags", "vip=\x1eyes", "U+001E"),
    ("flags", "v\x85ip", "U+0085"),
])
def test_control_characters_in_any_text_column_are_refused(field: str, value: str, code: str) -> None:
    row = {"customer_id": "C2", "phone": "13900139000", "name": "Li", "salutation": "Ms", "segment": "vip",
           "language": "zh", "flags": ""}
    row[field] = value
    parsed = parse_customers(FLAGGED + "C1,13800138000,Wang,Mr,vip,zh,\n" + ",".join(row.values()) + "\n")
    assert f"line 3: {field} contains a control character ({code})" in parsed.errors, parsed.errors


def test_a_record_spanning_lines_is_reported_at_its_first_line_and_later_lines_stay_right() -> None:
    parsed = parse_customers(HEADER + 'C1,13800138000,"Wang\nWei",Mr,vip,zh\n\nC2,13900139000,Li,Ms,gold,zh\n')
    assert parsed.errors == ["line 2: name contains a control character (U+000A)",
                             "line 5: segment 'gold' is not one of standard, vip, private, elderly"]


def test_a_number_on_two_rows_is_reported_even_when_the_first_row_has_other_errors() -> None:
    parsed = parse_customers(HEADER + "C1,13800138000,A,Mr,gold,zh\nC2,13800138000,B,Ms,vip,zh\n")
    assert "line 3: phone 13800138000 already on line 2" in parsed.errors, parsed.errors
