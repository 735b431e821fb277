"""Phone banking on real SIP calls: the demo accounts, bills and PINs loaded as `make demo` does,
digits sent by SIPp as RFC 4733 events at pre-scheduled times.

A transfer and a PIN change need the one-time code read from the outbox while the call is on —
SIPp's digits are scheduled before it starts: test_real_banking_codes.py places those from baresip.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.conftest import Hotline
from tests.support.demo import DEMO_PINS
from tests.support.sipp import SipCall, SipResult

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ELDERLY, BILL_DUE, PRIVATE_EN, VIP_ZH = "13600136000", "13500135000", "13400134000", "13900139000"
WRONG = "000000"


@dataclass
class Placed:
    result: SipResult
    row: dict[str, Any]
    heard: list[str]

    @property
    def services(self) -> list[str]:
        return [f"{s['service']}:{s['result']}" for s in self.row["services"]]


# Pauses leave each prompt time to start; a key typed during a prompt stops it and counts. Digits
# after a PIN wait longer than the quiet gap that discards type-ahead beyond it.
BANKING = {
    # elderly menu: 1 balance → PIN
    "balance": SipCall(ELDERLY, "95000", steps=[(4.0, "1"), (4.0, DEMO_PINS["C004"])], hangup_after=10,
                       max_duration=90),
    # bill menu: 1 pay the bill → PIN → the bill read back → 1 confirm (typed during the read-back,
    # it skips the rest, as type-ahead does: the journey shows the confirmation)
    "bill": SipCall(BILL_DUE, "95000", steps=[(4.0, "1"), (4.0, DEMO_PINS["C005"]), (16.0, "1")],
                    hangup_after=10, max_duration=90),
    # priority menu: 2 card services → 1 lost card → PIN → 1 confirm
    "card_loss": SipCall(PRIVATE_EN, "95000", steps=[(4.0, "2"), (3.0, "1"), (4.0, DEMO_PINS["C006"]), (6.0, "1")],
                         hangup_after=10, max_duration=90),
    # priority menu: 1 balance → a wrong PIN three times (1: try again), then the right one
    "lockout": SipCall(VIP_ZH, "95000", steps=[(4.0, "1"), (4.0, WRONG), (5.0, "1"), (4.0, WRONG), (5.0, "1"),
                                               (4.0, WRONG), (7.0, "1"), (4.0, DEMO_PINS["C002"])],
                       hangup_after=6, max_duration=120),
}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def banking(hotline: Hotline) -> dict[str, Placed]:
    results = await asyncio.gather(*(hotline.call(call) for call in BANKING.values()))
    return {name: Placed(result, hotline.last_call(call.caller), hotline.observer.heard(call.caller))
            for (name, call), result in zip(BANKING.items(), results, strict=True)}


def accounts_of(hotline: Hotline, customer_id: str) -> list[dict[str, Any]]:
    listed = hotline.cli("accounts", "list", "--customer", customer_id, "--json")
    assert listed.returncode == 0, listed.stderr
    accounts: list[dict[str, Any]] = json.loads(listed.stdout)
    return accounts


async def test_the_balance_is_read_after_the_pin(banking: dict[str, Placed]) -> None:
    placed = banking["balance"]
    assert placed.result.ok, placed.result.stderr
    assert placed.services == ["authenticate:ok", "balance:ok"]
    assert placed.heard.index("sound:hotline/zh/enter_pin") < placed.heard.index("sound:hotline/zh/your_balance_is")


async def test_a_bill_is_paid_after_its_confirmation_and_a_receipt_is_read_back(banking: dict[str, Placed],
                                                                               hotline: Hotline) -> None:
    placed = banking["bill"]
    assert placed.services == ["authenticate:ok", "bill_lookup:ok", "bill_payment:ok"], placed.row
    assert {"node": "confirm", "input": "1", "result": "ok"} in placed.row["inputs"], placed.row["inputs"]
    assert "sound:hotline/zh/receipt_is" in placed.heard
    [current] = [a for a in accounts_of(hotline, "C005") if a["kind"] == "current"]
    assert current["balance"] == "758.35"  # 2046.35 - the 1288.00 card bill


async def test_a_lost_card_is_blocked_after_its_confirmation(banking: dict[str, Placed]) -> None:
    placed = banking["card_loss"]
    assert placed.services == ["authenticate:ok", "card_loss:ok"], placed.row
    assert placed.heard.index("sound:hotline/en/card_block_confirm") < placed.heard.index("sound:hotline/en/receipt_is")


async def test_three_wrong_pins_lock_phone_banking_and_the_right_pin_is_refused_after(
        banking: dict[str, Placed]) -> None:
    placed = banking["lockout"]
    assert placed.services == ["authenticate:refused"] * 4, placed.row
    assert placed.heard.count("sound:hotline/zh/enter_pin") == 4
    assert "sound:hotline/zh/your_balance_is" not in placed.heard
