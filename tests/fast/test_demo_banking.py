"""The demo bank's menus with the real banking services behind them (real server, fake ARI, real
PostgreSQL, the demo accounts, bills, payees and PINs as `make demo` loads them): each operation
authenticates by PIN first, confirms before money moves and reads a receipt back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from agi_app.banking.pin import verify_secret
from agi_app.db.pool import connection
from agi_app.db.repositories.banking import list_accounts
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, fetch, import_demo_customers, settings_for, start_hotline
from tests.support.banking_security import outbox_code
from tests.support.demo import DEMO_PINS, KNOWN_ZH, UNKNOWN, load_demo_bank

PIN = DEMO_PINS["C001"]  # 王伟, the general line's known zh caller
ZH = "sound:hotline/zh/"


@pytest_asyncio.fixture
async def bank(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    await load_demo_bank(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    # A short pause after secure input (the PIN, the code) ends the discarding of type-ahead.
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, secure_quiet_gap_ms=50))
    yield line
    await line.stop()


async def choose(line: Hotline, call: str, *steps: tuple[str, str]) -> None:
    """For each (sound, digits): wait until the call has heard the sound, then press the digits."""
    for sound, digits in steps:
        await line.heard(call, ZH + sound)
        await line.ari.press(call, digits)


async def heard_times(line: Hotline, call: str, sound: str, times: int) -> None:
    await line.ari.wait_for(lambda: line.played(call).count(ZH + sound) == times)


def results(row: dict[str, Any]) -> list[str]:
    return [f"{s['service']}:{s['result']}" for s in row["services"]]


async def balance_of(dsn: str, account_id: str) -> str:
    async with connection(dsn) as conn:
        return next(str(a.balance) for a in await list_accounts(conn, "C001") if a.account_id == account_id)


async def test_a_known_caller_hears_the_balance_after_the_pin_and_a_greeting_by_name(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_accounts", "1"), ("opt_balance", "1"), ("enter_pin", PIN))
    await bank.heard(call, ZH + "your_balance_is")
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "balance:ok"]
    played = bank.played(call)
    assert played.index(ZH + "greeting_" + _time_of_day(played)) < played.index(ZH + "your_balance_is")
    assert any(uri.startswith("sound:hotline-tts/") for uri in played)  # the name, spoken after the PIN


def _time_of_day(played: list[str]) -> str:
    return next(uri.rsplit("_", 1)[1] for uri in played if uri.startswith(ZH + "greeting_"))


async def test_a_caller_whose_number_is_not_on_file_identifies_by_account_or_card_number_and_pin(
        bank: Hotline) -> None:
    by_account = await bank.call(UNKNOWN)
    await choose(bank, by_account, ("opt_accounts", "1"), ("opt_balance", "1"), ("opt_id_account", "1"),
                 ("enter_account_number", "6222020200001234#"), ("enter_pin", PIN))
    await bank.heard(by_account, ZH + "your_balance_is")
    by_card = await bank.call(UNKNOWN)
    await choose(bank, by_card, ("opt_accounts", "1"), ("opt_balance", "1"), ("opt_id_card", "2"),
                 ("enter_card_number", "6222021234562468#"), ("enter_pin", DEMO_PINS["C002"]))
    await bank.heard(by_card, ZH + "your_balance_is")
    for call in (by_account, by_card):
        row = await bank.wait_ended(call)
        assert row["customer_id"] is None, "the number still names nobody"
        assert results(row) == ["authenticate:ok", "balance:ok"]


async def test_a_bill_is_read_back_and_paid_only_after_the_caller_confirms(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_bill_payment", "5"), ("enter_pin", PIN), ("confirm_or_cancel", "1"))
    await bank.heard(call, ZH + "receipt_is")
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "bill_lookup:ok", "bill_payment:ok"]
    assert await balance_of(bank.dsn, "6222020200001234") == "12223.70"  # 12580.50 - 356.80
    played = bank.played(call)
    assert played.index(ZH + "confirm_or_cancel") < played.index(ZH + "operation_done") < played.index(ZH + "receipt_is")


async def test_a_cancelled_bill_payment_moves_nothing(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_bill_payment", "5"), ("enter_pin", PIN), ("confirm_or_cancel", "2"))
    await bank.heard(call, ZH + "operation_cancelled")
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "bill_lookup:ok", "bill_payment:refused"]
    assert await balance_of(bank.dsn, "6222020200001234") == "12580.50"


async def test_a_transfer_needs_the_one_time_code_from_the_outbox_and_a_confirmation(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_accounts", "1"), ("opt_transfer", "2"), ("enter_pin", PIN),
                 ("enter_payee", "1#"), ("enter_amount", "500#"))
    await bank.heard(call, ZH + "enter_otp")
    async with connection(bank.dsn) as conn:
        code = await outbox_code(conn, "C001")
    await bank.ari.press(call, code)
    await choose(bank, call, ("confirm_or_cancel", "1"))
    await bank.heard(call, ZH + "receipt_is")
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "otp_send:ok", "otp_verify:ok", "transfer:ok"]
    assert await balance_of(bank.dsn, "6222020200001234") == "12080.50"
    played = bank.played(call)
    assert played.index(ZH + "transfer_you_send") < played.index(ZH + "transfer_to_ending") \
        < played.index(ZH + "confirm_or_cancel")


async def test_a_lost_card_report_blocks_the_callers_cards_after_a_confirmation(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_card_services", "2"), ("opt_card_loss", "1"), ("enter_pin", PIN),
                 ("confirm_or_cancel", "1"))
    await bank.heard(call, ZH + "receipt_is")
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "card_loss:ok"]
    cards = await fetch(bank.dsn, "SELECT c.status FROM bank_cards c JOIN bank_accounts a USING (account_id)"
                                  " WHERE a.customer_id = 'C001'")
    assert [c["status"] for c in cards] == ["blocked"]
    others = await fetch(bank.dsn, "SELECT c.status FROM bank_cards c JOIN bank_accounts a USING (account_id)"
                                   " WHERE a.customer_id <> 'C001'")
    assert {c["status"] for c in others} == {"active"}


async def test_a_pin_change_takes_the_code_and_the_new_pin_twice(bank: Hotline) -> None:
    new_pin = "864200"
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_card_services", "2"), ("opt_pin_change", "2"), ("enter_pin", PIN))
    await bank.heard(call, ZH + "enter_otp")
    async with connection(bank.dsn) as conn:
        code = await outbox_code(conn, "C001")
    await bank.ari.press(call, code)
    await choose(bank, call, ("enter_new_pin", new_pin), ("enter_new_pin_again", new_pin))
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:ok", "otp_send:ok", "otp_verify:ok", "pin_change:ok"]
    [stored] = await fetch(bank.dsn, "SELECT pin_hash FROM customer_pins WHERE customer_id = 'C001'")
    assert verify_secret(new_pin, stored["pin_hash"])


async def test_three_wrong_pins_lock_phone_banking_so_the_right_pin_is_refused_too(bank: Hotline) -> None:
    call = await bank.call(KNOWN_ZH)
    await choose(bank, call, ("opt_accounts", "1"), ("opt_balance", "1"), ("enter_pin", "000000"))
    for attempt in (2, 3, 4):  # each refusal offers another try (1) or an agent (0); the 4th is the right PIN
        await heard_times(bank, call, "opt_try_again", attempt - 1)
        await bank.ari.press(call, "1")
        await heard_times(bank, call, "enter_pin", attempt)
        await bank.ari.press(call, PIN if attempt == 4 else "000000")
    await heard_times(bank, call, "opt_try_again", 4)
    await bank.ari.hangup(call)
    row = await bank.wait_ended(call)
    assert results(row) == ["authenticate:refused"] * 4
    assert ZH + "your_balance_is" not in bank.played(call)

    again = await bank.call(KNOWN_ZH)  # a new call: still locked
    await choose(bank, again, ("opt_accounts", "1"), ("opt_balance", "1"), ("enter_pin", PIN))
    await bank.ari.wait_for(lambda: ZH + "opt_try_again" in bank.played(again))
    await bank.ari.hangup(again)
    assert results(await bank.wait_ended(again)) == ["authenticate:refused"]
