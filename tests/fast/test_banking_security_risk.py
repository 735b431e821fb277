"""The risk rules over real PostgreSQL, through `RuleGuard` — the `RiskGuard` money's transfer
calls: a new payee followed by a large transfer flags the customer and refuses; each threshold is
configurable; a customer on hold is refused every guarded operation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio

from agi_app.banking.risk import RiskRules, RuleGuard
from agi_app.db.pool import create_pool
from agi_app.db.repositories.security import PgSecurity
from tests.support.banking_security import add_customer

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    db = await create_pool(dsn)
    async with db.acquire() as conn:
        await add_customer(conn, "C100")
    yield db
    await db.close()


def guard(pool: asyncpg.Pool, **rules: object) -> RuleGuard:
    return RuleGuard(PgSecurity(pool), RiskRules(**rules), clock=lambda: NOW)  # type: ignore[arg-type]


async def held(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT flags ->> 'risk_hold' FROM customers WHERE customer_id = 'C100'") == "true"


async def test_a_large_transfer_to_a_payee_added_today_is_refused_and_flags_the_customer(pool: asyncpg.Pool) -> None:
    verdict = await guard(pool).check("C100", "transfer", Decimal("10000.00"), call_id="call-9",
                                      payee_added_at=NOW - timedelta(hours=2))
    assert (verdict.allowed, verdict.rule) == (False, "new_payee_large_transfer") and await held(pool)
    row = await pool.fetchrow("SELECT call_id, detail ->> 'rule' AS rule FROM security_events WHERE kind = 'risk_flag'")
    assert (row["call_id"], row["rule"]) == ("call-9", "new_payee_large_transfer")


@pytest.mark.parametrize(("amount", "added_hours_ago"), [("9999.99", 2), ("50000.00", 25), ("50000.00", None)])
async def test_a_small_transfer_or_an_established_payee_is_allowed(pool: asyncpg.Pool, amount: str,
                                                                   added_hours_ago: int | None) -> None:
    added = None if added_hours_ago is None else NOW - timedelta(hours=added_hours_ago)
    verdict = await guard(pool).check("C100", "transfer", Decimal(amount), payee_added_at=added)
    assert verdict.allowed and not await held(pool)


async def test_the_large_amount_and_the_payee_window_are_configurable(pool: asyncpg.Pool) -> None:
    strict = guard(pool, large_transfer=Decimal("500.00"), new_payee_window=timedelta(hours=72))
    verdict = await strict.check("C100", "transfer", Decimal("500.00"), payee_added_at=NOW - timedelta(hours=48))
    assert not verdict.allowed


async def test_a_customer_on_hold_is_refused_every_guarded_operation(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE customers SET flags = '{\"risk_hold\": true}'")
    for operation in ("transfer", "bill_payment", "pin_change"):
        verdict = await guard(pool).check("C100", operation, Decimal("1.00"))  # type: ignore[arg-type]
        assert (verdict.allowed, verdict.rule) == (False, "risk_hold")


async def test_the_pin_change_limit_is_configurable(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO security_events (at, customer_id, kind, call_id) VALUES"
                       " ($1, 'C100', 'pin_change', 'earlier')", NOW - timedelta(hours=1))
    assert (await guard(pool, max_pin_changes=3).check("C100", "pin_change")).allowed
    assert not (await guard(pool, max_pin_changes=2).check("C100", "pin_change")).allowed


async def test_pin_changes_outside_the_window_do_not_count(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO security_events (at, customer_id, kind, call_id) VALUES"
                       " ($1, 'C100', 'pin_change', 'earlier')", NOW - timedelta(hours=25))
    assert (await guard(pool).check("C100", "pin_change")).allowed
