"""Test data for phone-banking security: customers with PINs, codes read from the outbox (as the
SMS gateway and the end-to-end suite read them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from agi_app.banking.pin import hash_secret
from agi_app.db.repositories import security
from agi_app.db.repositories.customers import import_customers
from agi_app.directory.models import Customer

# Cheap scrypt for test fixtures' stored hashes (verification reads the parameters from the hash).
FAST = {"n": 2**4, "r": 1, "p": 1}


async def add_customer(conn: asyncpg.Connection, customer_id: str = "C100", *, phone: str = "13900000100",
                       name: str = "Li Na", flags: Mapping[str, Any] | None = None, pin: str | None = None) -> None:
    await import_customers(conn, [Customer(customer_id, name, "Ms", "standard", "en", (phone,), None,
                                           dict(flags or {}))])
    if pin is not None:
        await security.set_pin(conn, customer_id, hash_secret(pin, **FAST))


async def outbox_code(conn: asyncpg.Connection, customer_id: str) -> str:
    """The newest unsent code for the customer, as the gateway would send it."""
    codes = [c for c in await security.unsent_codes(conn) if c.customer_id == customer_id]
    assert codes, f"no code waiting for {customer_id}"
    return codes[-1].code
