"""PINs are kept only as salted slow hashes, and `hotline customers set-pin` takes the PIN from
standard input only, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from agi_app.banking.pin import InvalidPin, check_pin_format, hash_secret, verify_in_thread, verify_secret
from agi_app.cli.customers import customers
from agi_app.config import Settings
from agi_app.db.pool import connection
from tests.fast.conftest import query
from tests.support import pg
from tests.support.banking_security import add_customer


@pytest.fixture
def db(session_dsn: str) -> Iterator[str]:
    asyncio.run(pg.truncate(session_dsn))
    async def seed() -> None:
        async with connection(session_dsn) as conn:
            await add_customer(conn, "C100")
    asyncio.run(seed())
    yield session_dsn


def set_pin(dsn: str, customer_id: str, stdin: str) -> Result:
    return CliRunner().invoke(customers, ["set-pin", customer_id], input=stdin,
                              obj={"settings": Settings(dsn=dsn)}, env={"HOTLINE_ACTOR": "tester"})


def test_a_pin_hash_is_salted_scrypt_with_its_parameters_and_verifies_only_the_pin() -> None:
    first, second = hash_secret("123456"), hash_secret("123456")
    assert first != second  # a random salt per hash
    assert first.startswith("scrypt$16384$8$1$") and "123456" not in first
    assert verify_secret("123456", first) and verify_secret("123456", second)
    assert not verify_secret("123457", first)
    assert not verify_secret("123456", "plain$123456")


async def test_verification_runs_off_the_event_loop() -> None:
    stored = hash_secret("654321")
    loop_ticks = 0

    async def ticker() -> None:
        nonlocal loop_ticks
        while True:
            loop_ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert await verify_in_thread("654321", stored)
    finally:
        task.cancel()
    assert loop_ticks > 1  # the loop kept turning while scrypt ran


@pytest.mark.parametrize("text", ["12345", "1234567", "12345a", "", "１２３４５６"])
def test_anything_but_six_ascii_digits_is_not_a_pin(text: str) -> None:
    with pytest.raises(InvalidPin) as caught:
        check_pin_format(text)
    assert text not in str(caught.value) or not text


def test_set_pin_reads_standard_input_and_stores_only_a_hash_and_an_audit_line_without_the_pin(db: str) -> None:
    result = set_pin(db, "C100", "246810\n")
    assert result.exit_code == 0, result.output
    [row] = query(db, "SELECT pin_hash, failures, locked_until FROM customer_pins WHERE customer_id = 'C100'")
    assert verify_secret("246810", row["pin_hash"]) and "246810" not in row["pin_hash"]
    [audit] = query(db, "SELECT actor, action, detail::text AS detail FROM audit_log")
    assert (audit["actor"], audit["action"]) == ("tester", "customers.set_pin")
    assert "246810" not in audit["detail"] and "C100" in audit["detail"]
    assert "246810" not in result.output


def test_set_pin_clears_a_lockout(db: str) -> None:
    assert set_pin(db, "C100", "111111\n").exit_code == 0
    query(db, "UPDATE customer_pins SET failures = 3, locked_until = now() + interval '30 minutes'")
    assert set_pin(db, "C100", "222222\n").exit_code == 0
    [row] = query(db, "SELECT failures, locked_until FROM customer_pins")
    assert (row["failures"], row["locked_until"]) == (0, None)


@pytest.mark.parametrize("stdin", ["12345\n", "1234567\n", "abcdef\n", "\n"])
def test_set_pin_refuses_what_is_not_six_digits_and_changes_nothing(db: str, stdin: str) -> None:
    result = set_pin(db, "C100", stdin)
    assert result.exit_code == 1
    assert "6 digits" in result.output and (stdin.strip() not in result.output or not stdin.strip())
    assert query(db, "SELECT * FROM customer_pins") == [] and query(db, "SELECT * FROM audit_log") == []


def test_set_pin_never_takes_the_pin_as_an_argument(db: str) -> None:
    result = CliRunner().invoke(customers, ["set-pin", "C100", "246810"], input="",
                                obj={"settings": Settings(dsn=db)})
    assert result.exit_code != 0 and query(db, "SELECT * FROM customer_pins") == []


def test_set_pin_for_an_unknown_customer_changes_nothing(db: str) -> None:
    result = set_pin(db, "NOPE", "246810\n")
    assert result.exit_code == 1 and "no customer NOPE" in result.output
    assert query(db, "SELECT * FROM customer_pins") == []
