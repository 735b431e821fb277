"""`hotline accounts import|list` against a real PostgreSQL: all or nothing with line numbers, the
SPEC's JSON, and a card number that never shows beyond its last 4 digits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agi_app.cli.accounts import accounts
from agi_app.config import Settings
from tests.fast.conftest import fetch, import_demo_customers
from tests.support import pg
from tests.support.banking_money import ACCOUNTS_CSV

HEADER = "customer_id,account_id,kind,currency,balance,card_number\n"


@pytest.fixture
def db(session_dsn: str) -> Iterator[str]:
    asyncio.run(pg.truncate(session_dsn))
    asyncio.run(import_demo_customers(session_dsn))
    yield session_dsn


def hotline(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(accounts, list(args), obj={"settings": Settings(dsn=dsn)},
                              env={"HOTLINE_ACTOR": "tester"})


def import_csv(dsn: str, tmp_path: Path, text: str) -> Result:
    path = tmp_path / "accounts.csv"
    path.write_text(text, encoding="utf-8")
    return hotline(dsn, "import", str(path))


def rows(dsn: str) -> list[tuple[str, int]]:
    return [(r["account_id"], r["balance_fen"]) for r in asyncio.run(fetch(
        dsn, "SELECT account_id, balance_fen FROM bank_accounts ORDER BY account_id"))]


def test_accounts_import_and_list_as_the_spec_says(db: str, tmp_path: Path) -> None:
    result = import_csv(db, tmp_path, ACCOUNTS_CSV)
    assert result.exit_code == 0, result.output
    listed = hotline(db, "list", "--customer", "C001", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [
        {"customer_id": "C001", "account_id": "6222000000001001", "kind": "current", "currency": "CNY",
         "balance": "1000.00", "card_status": "active"},
        {"customer_id": "C001", "account_id": "6222000000002002", "kind": "savings", "currency": "CNY",
         "balance": "20000.00", "card_status": None},
        {"customer_id": "C001", "account_id": "6222000000003003", "kind": "credit", "currency": "CNY",
         "balance": "-150.25", "card_status": "active"}]
    assert len(json.loads(hotline(db, "list", "--json").output)) == 4


def test_a_card_number_is_never_stored_or_shown_beyond_its_last_four_digits(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, ACCOUNTS_CSV).exit_code == 0
    shown = hotline(db, "list").output + hotline(db, "list", "--json").output
    assert "****1001" in shown
    stored = asyncio.run(fetch(db, "SELECT * FROM bank_cards"))
    everything = shown + repr([dict(r) for r in stored]) + repr(asyncio.run(fetch(db, "SELECT * FROM audit_log")))
    for card in ("6222020000001001", "6258000000003003", "62220200", "58000000"):
        assert card not in everything
    bad = import_csv(db, tmp_path, HEADER + "C001,6222000000001001,current,CNY,1.00,6222 0200 0000 100X\n"
                                            "C001,6222000000002002,current,CNY,1.00,6222020000004004\n"
                                            "C002,6222000000005005,current,CNY,1.00,6222020000004004\n")
    assert bad.exit_code == 1
    assert "6222020000004004" not in bad.output and "line 4: card_number ************4004 already on line 3" in bad.output


def test_accounts_import_is_all_or_nothing_and_names_every_bad_line(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, ACCOUNTS_CSV).exit_code == 0
    before = rows(db)
    result = import_csv(db, tmp_path, HEADER
                        + "C001,6222000000001001,current,CNY,1.00,\n"
                        + "C001,12 AB,current,CNY,1.00,\n"
                        + "C001,6222000000009009,checking,CNY,1.00,\n"
                        + "C001,6222000000009010,current,CNY,1.005,\n"
                        + "C001,6222000000009011,savings,CNY,-1.00,\n"
                        + "C001,6222000000001001,current,CNY,2.00,\n")
    assert result.exit_code == 1
    for expected in ("line 3: account_id '12 AB' is not 1 to 34 letters, digits, - or _",
                     "line 4: kind 'checking' is not one of savings, current, credit",
                     "line 5: balance '1.005' is not an amount like 1024.50",
                     "line 6: balance -1.00 is negative on a savings account",
                     "line 7: account_id 6222000000001001 already on line 2",
                     "nothing imported"):
        assert expected in result.output
    assert rows(db) == before


def test_an_account_of_a_customer_not_in_the_directory_imports_nothing(db: str, tmp_path: Path) -> None:
    result = import_csv(db, tmp_path, HEADER + "C001,6222000000001001,current,CNY,1.00,\n"
                                               "C999,6222000000009999,current,CNY,1.00,\n")
    assert result.exit_code == 1
    assert "line 3: customer_id C999 is not in the directory" in result.output
    assert rows(db) == []


def test_reimporting_does_not_reactivate_a_card_reported_lost(db: str, tmp_path: Path) -> None:
    assert import_csv(db, tmp_path, ACCOUNTS_CSV).exit_code == 0
    asyncio.run(fetch(db, "UPDATE bank_cards SET status = 'blocked' WHERE last4 = '1001'"))
    assert import_csv(db, tmp_path, ACCOUNTS_CSV).exit_code == 0
    listed = {a["account_id"]: a["card_status"] for a in json.loads(hotline(db, "list", "--json").output)}
    assert listed["6222000000001001"] == "blocked"


DEMO = Path(__file__).resolve().parents[2] / "config" / "demo"


def test_the_demo_bank_loads_and_loading_it_again_adds_nothing(db: str) -> None:
    for _ in range(2):
        for command, name in (("import", "accounts.csv"), ("import-bills", "bills.csv"),
                              ("import-payees", "payees.csv")):
            result = hotline(db, command, str(DEMO / name))
            assert result.exit_code == 0, result.output
    counts = asyncio.run(fetch(db, "SELECT (SELECT count(*) FROM bank_accounts) AS a, (SELECT count(*) FROM bank_cards)"
                                   " AS c, (SELECT count(*) FROM bank_bills) AS b, (SELECT count(*) FROM bank_payees) AS p"))
    assert dict(counts[0]) == {"a": 11, "c": 9, "b": 5, "p": 6}
    customers = {a["customer_id"] for a in json.loads(hotline(db, "list", "--json").output)}
    assert customers == {f"C00{n}" for n in range(1, 8)}  # every demo customer banks with us


def test_bills_and_payees_import_all_or_nothing_with_line_numbers(db: str, tmp_path: Path) -> None:
    bills = tmp_path / "bills.csv"
    bills.write_text("customer_id,biller_id,biller_name,amount,due_date\n"
                     "C001,power,City Power,356.80,2026-11-30\n"
                     "C001,power,City Power,0.00,2026-12-30\n"
                     "C001,po wer,City Power,1.00,2026-13-01\n"
                     "C999,power,City Power,1.00,2026-12-01\n", encoding="utf-8")
    result = hotline(db, "import-bills", str(bills))
    assert result.exit_code == 1
    for expected in ("line 3: amount 0.00 is not more than 0", "line 4: biller_id 'po wer'",
                     "line 4: due_date '2026-13-01' is not YYYY-MM-DD"):
        assert expected in result.output
    bills.write_text("customer_id,biller_id,biller_name,amount,due_date\n"
                     "C001,power,City Power,356.80,2026-11-30\n"
                     "C999,power,City Power,1.00,2026-12-01\n", encoding="utf-8")
    result = hotline(db, "import-bills", str(bills))
    assert result.exit_code == 1 and "line 3: customer_id C999 is not in the directory" in result.output
    payees = tmp_path / "payees.csv"
    payees.write_text("customer_id,payee_id,name,account_number\nC001,1,Li,6217000011112222\nC001,1,Wang,12\n",
                      encoding="utf-8")
    result = hotline(db, "import-payees", str(payees))
    assert result.exit_code == 1
    assert "line 3: payee 1 of C001 already on line 2" in result.output
    assert "line 3: account_number is not 4 to 34 digits" in result.output
    assert asyncio.run(fetch(db, "SELECT 1 FROM bank_bills UNION ALL SELECT 1 FROM bank_payees")) == []


def test_a_payee_stays_registered_since_its_first_import_unless_its_account_changes(db: str, tmp_path: Path) -> None:
    payees = tmp_path / "payees.csv"

    def load(number: str) -> object:
        payees.write_text(f"customer_id,payee_id,name,account_number\nC001,1,Li,{number}\n", encoding="utf-8")
        assert hotline(db, "import-payees", str(payees)).exit_code == 0
        asyncio.run(fetch(db, "UPDATE bank_payees SET registered_at = registered_at - interval '10 days'"
                              " WHERE registered_at > now() - interval '1 day'"))
        return asyncio.run(fetch(db, "SELECT registered_at FROM bank_payees"))[0]["registered_at"]

    first = load("6217000011112222")
    assert load("6217000011112222") == first
    assert load("6217000099998888") != first


def test_account_ids_may_be_a_banks_own_format_and_card_numbers_may_carry_hyphens(db: str, tmp_path: Path) -> None:
    result = import_csv(db, tmp_path, HEADER + "C001,SAV-0001-2345,savings,CNY,1024.50,6222-0202-0000-1234\n"
                                               "C001,CUR_A,current,cny,0,\n")
    assert result.exit_code == 0, result.output
    listed = json.loads(hotline(db, "list", "--json").output)
    assert [(a["account_id"], a["currency"], a["balance"], a["card_status"]) for a in listed] == [
        ("CUR_A", "CNY", "0.00", None), ("SAV-0001-2345", "CNY", "1024.50", "active")]
    bad = import_csv(db, tmp_path, HEADER + "C001,SAV 1,savings,CNY,1.00,\n")
    assert bad.exit_code == 1 and "line 2: account_id 'SAV 1' is not 1 to 34 letters, digits, - or _" in bad.output
