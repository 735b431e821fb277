"""`hotline customers import` against a real PostgreSQL: a file is imported whole or not at all,
and a phone number never changes owner behind the administrator's back.

The group is invoked through click's CliRunner with the settings object `hotline` builds (as in
test_calendar_cli.py); CliRunner runs `asyncio.run` inside, so the tests are plain functions on the
session database, emptied at the start of each test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agi_app.cli.customers import customers
from agi_app.config import Settings
from tests.fast.conftest import query

HEADER = "customer_id,phone,name,salutation,segment,language,flags\n"


def import_csv(dsn: str, tmp_path: Path, rows: str, *options: str) -> Result:
    path = tmp_path / "customers.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return CliRunner().invoke(customers, ["import", str(path), *options], obj={"settings": Settings(dsn=dsn)},
                              env={"HOTLINE_ACTOR": "tester"})


def owners(dsn: str) -> dict[str, str]:
    return {r["phone"]: r["customer_id"] for r in query(dsn, "SELECT phone, customer_id FROM customer_phones")}


def test_a_number_owned_by_a_customer_not_in_the_file_is_a_row_error(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, "C1,13800138000,Wang,Mr,vip,zh,\n").exit_code == 0
    result = import_csv(db, tmp_path, "C2,13900139000,Li,Ms,vip,zh,\nC3,+86 138 0013 8000,Zhao,Mr,vip,zh,\n")
    assert result.exit_code == 1
    assert ("line 3: phone 13800138000 belongs to customer C1, who is not in this file (--reassign moves it)"
            in result.stderr)
    assert "nothing imported" in result.stderr
    assert owners(db) == {"13800138000": "C1"}
    assert [r["customer_id"] for r in query(db, "SELECT customer_id FROM customers")] == ["C1"]


def test_a_file_may_move_a_number_between_its_own_customers(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, "C1,13800138000,Wang,Mr,vip,zh,\nC2,13900139000,Li,Ms,vip,zh,\n").exit_code == 0
    result = import_csv(db, tmp_path, "C1,13900139000,Wang,Mr,vip,zh,\nC2,13800138000,Li,Ms,vip,zh,\n", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["phones_moved"] == 0
    assert owners(db) == {"13800138000": "C2", "13900139000": "C1"}


def test_reassign_moves_the_number_says_how_many_and_audits_each_move(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, "C1,13800138000;13700137000,Wang,Mr,vip,zh,\n").exit_code == 0
    result = import_csv(db, tmp_path, "C2,13800138000;13700137000,Li,Ms,vip,zh,\n", "--reassign")
    assert result.exit_code == 0, result.output
    assert "2 phone numbers moved from customers not in the file" in result.stdout
    assert owners(db) == {"13800138000": "C2", "13700137000": "C2"}
    rows = query(db, "SELECT actor, action, detail FROM audit_log ORDER BY id")
    assert [r["action"] for r in rows] == ["customers.import", "customers.import"]
    assert json.loads(rows[1]["detail"])["phones_moved"] == [
        {"phone": "13700137000", "from": "C1", "to": "C2"}, {"phone": "13800138000", "from": "C1", "to": "C2"}]


@pytest.mark.parametrize(("row", "error"), [
    ("C2,13900139000,Li\x1esound:evil,Ms,vip,zh,", "line 3: name contains a control character (U+001E)"),
    ("C2,13900139000,Li,Ms,vip,zh,risk_hold=maybe",
     "line 3: flag risk_hold: 'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)"),
])
def test_one_bad_row_imports_nothing_and_exits_1(db: str, tmp_path: Path, row: str, error: str) -> None:
    result = import_csv(db, tmp_path, "C1,13800138000,Wang,Mr,vip,zh,\n" + row + "\n")
    assert result.exit_code == 1
    assert error in result.stderr and "nothing imported" in result.stderr
    assert query(db, "SELECT 1 FROM customers") == []


def test_flags_set_to_no_are_stored_as_not_set(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, "C1,13800138000,Wang,Mr,vip,zh,risk_hold=no;vip=yes\n").exit_code == 0
    stored = json.loads(query(db, "SELECT flags FROM customers")[0]["flags"])
    assert stored == {"risk_hold": False, "vip": True}


def test_import_help_explains_flags_and_reassign() -> None:
    result = CliRunner().invoke(customers, ["import", "--help"])
    assert result.exit_code == 0
    assert "--reassign" in result.output and "yes/no" in result.output
