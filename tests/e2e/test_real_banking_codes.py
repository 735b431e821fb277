"""Phone banking that needs the one-time code, on real SIP calls: a transfer and a PIN change by the
demo's known caller (王伟, C001, the general menu). The code is only known mid-call, once the server
has put it in the outbox, so the caller is a real softphone (baresip) that types each answer when
the observer has seen its prompt start, and the code as read from `otp_outbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from agi_app.db.pool import connection
from tests.e2e.conftest import Hotline
from tests.support.banking_security import outbox_code
from tests.support.demo import DEMO_PINS, KNOWN_ZH
from tests.support.softphone import Softphone, dial

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PIN, NEW_PIN = DEMO_PINS["C001"], "864200"
CURRENT = "6222020200001234"  # C001's current account; payee 1 is 李强
ZH = "sound:hotline/zh/"
PROMPT_S = 30.0  # a prompt after a service (scrypt, speech synthesis) on a busy 2-core machine


@dataclass
class Caller:
    """One softphone call and what the observer saw of it."""

    hotline: Hotline
    phone: Softphone
    channel: str

    def heard(self) -> list[str]:
        return self.hotline.observer.played[self.channel]

    async def after(self, sound: str, digits: str = "", *, times: int = 1) -> None:
        """Once `sound` has started (the `times`-th time), type `digits`."""
        await self.hotline.observer.until(lambda: self.heard().count(ZH + sound) >= times, PROMPT_S,
                                          lambda: f"{sound} x{times}; heard {self.heard()}")
        if digits:
            await self.phone.press(digits)


@contextlib.asynccontextmanager
async def known_caller(hotline: Hotline) -> AsyncIterator[Caller]:
    """A call from the known caller, answered and on the server; hung up after the test's steps,
    then its journey is in the database."""
    channels = hotline.observer.channel_by_caller[KNOWN_ZH]
    before = len(channels)
    async with dial(KNOWN_ZH, "95000") as phone:
        await phone.established()
        await hotline.observer.until(lambda: len(channels) > before, 10, lambda: "the call's channel")
        on = Caller(hotline, phone, channels[-1])
        yield on
        await phone.hang_up()
    await journey_of(hotline, on.channel)


async def journey_of(hotline: Hotline, call_id: str) -> dict[str, Any]:
    """The call's `calls list` row, once the journey writer has stored it."""
    async with asyncio.timeout(20):
        while True:
            listed = await asyncio.to_thread(hotline.cli, "calls", "list", "--json", "--caller", KNOWN_ZH,
                                             "--limit", "1")
            assert listed.returncode == 0, listed.stderr
            rows: list[dict[str, Any]] = json.loads(listed.stdout)
            if rows and rows[0]["call_id"] == call_id:
                return rows[0]
            await asyncio.sleep(0.5)


def services(row: dict[str, Any]) -> list[str]:
    return [f"{s['service']}:{s['result']}" for s in row["services"]]


def current_balance(hotline: Hotline) -> Decimal:
    listed = hotline.cli("accounts", "list", "--customer", "C001", "--json")
    assert listed.returncode == 0, listed.stderr
    return next(Decimal(a["balance"]) for a in json.loads(listed.stdout) if a["account_id"] == CURRENT)


async def code_from_outbox(hotline: Hotline) -> str:
    async with connection(hotline.env["HOTLINE_DSN"]) as conn:
        return await outbox_code(conn, "C001")


async def outbox_rows(hotline: Hotline) -> list[dict[str, Any]]:
    async with connection(hotline.env["HOTLINE_DSN"]) as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT code, used_at, call_id FROM otp_outbox WHERE customer_id = 'C001' ORDER BY id")]


def nowhere_in_log_or_journey(hotline: Hotline, row: dict[str, Any], *secrets: str) -> None:
    log, journey = hotline.log_path.read_text(encoding="utf-8"), json.dumps(row, ensure_ascii=False)
    for secret in secrets:
        alone = re.compile(rf"(?<![\d.]){secret}(?![\d.])")  # not a piece of a call id or a time
        assert not alone.search(log), "a secret in the server log"
        assert secret not in journey, "a secret in the call's journey"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def transfer(hotline: Hotline) -> AsyncIterator[tuple[dict[str, Any], str, Decimal, Decimal]]:
    """Accounts → transfer → PIN → payee 1 → 500 → the code from the outbox → confirm."""
    before = current_balance(hotline)
    async with known_caller(hotline) as on:
        await on.after("opt_accounts", "1")
        await on.after("opt_transfer", "2")
        await on.after("enter_pin", PIN)
        await on.after("enter_payee", "1#")
        await on.after("enter_amount", "500#")
        await on.after("enter_otp")
        code = await code_from_outbox(hotline)
        await on.phone.press(code)
        await on.after("confirm_or_cancel", "1")
        await on.after("receipt_is")
    yield await journey_of(hotline, on.channel), code, before, current_balance(hotline)


async def test_a_transfer_with_the_code_from_the_outbox_moves_the_money_once_confirmed(
        transfer: tuple[dict[str, Any], str, Decimal, Decimal]) -> None:
    row, _, before, after = transfer
    assert services(row) == ["authenticate:ok", "otp_send:ok", "otp_verify:ok", "transfer:ok"], row
    assert before - after == Decimal("500.00")


async def test_the_transfers_code_is_spent_and_neither_it_nor_the_pin_is_logged_or_journaled(
        transfer: tuple[dict[str, Any], str, Decimal, Decimal], hotline: Hotline) -> None:
    row, code, _, _ = transfer
    [sent] = [r for r in await outbox_rows(hotline) if r["call_id"] == row["call_id"]]
    assert sent["used_at"] is not None, "the code can be used again"
    assert sent["code"] is None, "a spent code is not kept in clear (the sandbox has no gateway to clear it)"
    nowhere_in_log_or_journey(hotline, row, PIN, code)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pin_change(hotline: Hotline, transfer: object) -> AsyncIterator[tuple[dict[str, Any], str]]:
    """Card services → PIN change → PIN → the code → the new PIN twice (after the transfer, which
    still used the old PIN)."""
    async with known_caller(hotline) as on:
        await on.after("opt_card_services", "2")
        await on.after("opt_pin_change", "2")
        await on.after("enter_pin", PIN)
        await on.after("enter_otp")
        code = await code_from_outbox(hotline)
        await on.phone.press(code)
        await on.after("enter_new_pin", NEW_PIN)
        await on.after("enter_new_pin_again", NEW_PIN)
        await on.after("opt_pin_change", times=2)  # back in card services: the change is done
    yield await journey_of(hotline, on.channel), code


async def test_a_pin_change_takes_the_code_from_the_outbox_and_the_new_pin_twice(
        pin_change: tuple[dict[str, Any], str], hotline: Hotline) -> None:
    row, code = pin_change
    assert services(row) == ["authenticate:ok", "otp_send:ok", "otp_verify:ok", "pin_change:ok"], row
    nowhere_in_log_or_journey(hotline, row, PIN, NEW_PIN, code)


async def test_after_a_pin_change_the_old_pin_is_refused_and_the_new_one_opens_the_balance(
        pin_change: tuple[dict[str, Any], str], hotline: Hotline) -> None:
    async with known_caller(hotline) as on:
        await on.after("opt_accounts", "1")
        await on.after("opt_balance", "1")
        await on.after("enter_pin", PIN)
        await on.after("opt_try_again", "1")
        await on.after("enter_pin", NEW_PIN, times=2)
        await on.after("your_balance_is")
    row = await journey_of(hotline, on.channel)
    assert services(row) == ["authenticate:refused", "authenticate:ok", "balance:ok"], row
