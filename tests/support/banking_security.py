"""Test data for phone-banking security: customers with PINs, the real security services over
PostgreSQL, codes read from the outbox (as the SMS gateway and the end-to-end suite read them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from agi_app.banking.auth import LockoutPolicy
from agi_app.banking.otp import OtpPolicy
from agi_app.banking.pin import hash_secret
from agi_app.banking.risk import RiskRules, RuleGuard
from agi_app.banking.security_services import SecurityServices, register_security_services
from agi_app.caller_facts import CallerFacts
from agi_app.db.repositories import customers, security
from agi_app.db.repositories.customers import import_customers
from agi_app.directory.facts import caller_facts
from agi_app.directory.models import Customer
from agi_app.flows.services import ServiceRegistry

# Cheap scrypt for test fixtures' stored hashes (verification reads the parameters from the hash).
FAST = {"n": 2**4, "r": 1, "p": 1}


async def add_customer(conn: asyncpg.Connection, customer_id: str = "C100", *, phone: str = "13900000100",
                       name: str = "Li Na", flags: Mapping[str, Any] | None = None, pin: str | None = None) -> None:
    await import_customers(conn, [Customer(customer_id, name, "Ms", "standard", "en", (phone,), None,
                                           dict(flags or {}))])
    if pin is not None:
        await security.set_pin(conn, customer_id, hash_secret(pin, **FAST))


async def facts_of(pool: asyncpg.Pool, customer_id: str) -> CallerFacts | None:
    async with pool.acquire() as conn:
        found = await customers.get(conn, customer_id)
    return caller_facts(found, today=date(2026, 11, 24), bill_due_days=7) if found else None


def security_registry(pool: asyncpg.Pool, *, lockout: LockoutPolicy | None = None, otp: OtpPolicy | None = None,
                      rules: RiskRules | None = None,
                      clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ServiceRegistry:
    """A registry with the real security services over PostgreSQL (default policies unless given)."""
    store = security.PgSecurity(pool)
    services = SecurityServices(store, store, store, RuleGuard(store, rules or RiskRules(), clock),
                                lambda customer_id: facts_of(pool, customer_id), lockout or LockoutPolicy(),
                                otp or OtpPolicy(), clock)
    registry = ServiceRegistry()
    register_security_services(registry, services)
    return registry


async def outbox_code(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> str:
    """The newest unsent code for the customer, as the gateway would send it."""
    codes = [c for c in await security.unsent_codes(conn) if c.customer_id == customer_id]
    assert codes, f"no code waiting for {customer_id}"
    return codes[-1].code
