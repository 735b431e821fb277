"""Customers and their phone numbers in PostgreSQL (parameterised SQL only)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import asyncpg

from agi_app.directory.models import Customer

_BY_PHONE = (
    "SELECT c.customer_id, c.name, c.salutation, c.segment, c.language, c.bill_due_date, c.flags"
    " FROM customer_phones p JOIN customers c USING (customer_id) WHERE p.phone = $1"
)
_BY_ID = (
    "SELECT c.customer_id, c.name, c.salutation, c.segment, c.language, c.bill_due_date, c.flags"
    " FROM customers c WHERE c.customer_id = $1"
)


def _customer(row: asyncpg.Record, phones: Sequence[str] = ()) -> Customer:
    return Customer(row["customer_id"], row["name"], row["salutation"], row["segment"], row["language"],
                    tuple(phones), row["bill_due_date"], json.loads(row["flags"]) if row["flags"] else {})


async def find_by_phone(conn: asyncpg.Connection | asyncpg.Pool, phone: str) -> Customer | None:
    row = await conn.fetchrow(_BY_PHONE, phone)
    return _customer(row, (phone,)) if row else None


async def get(conn: asyncpg.Connection, customer_id: str) -> Customer | None:
    row = await conn.fetchrow(_BY_ID, customer_id)
    if row is None:
        return None
    phones = await conn.fetch("SELECT phone FROM customer_phones WHERE customer_id = $1 ORDER BY phone", customer_id)
    return _customer(row, [p["phone"] for p in phones])


async def import_customers(conn: asyncpg.Connection, customers: Sequence[Customer], *,
                           batch: int = 500, progress: Callable[[int], None] | None = None) -> None:
    """Upsert customers and replace their phone lists, all in one transaction."""
    async with conn.transaction():
        for start in range(0, len(customers), batch):
            chunk = customers[start:start + batch]
            await conn.executemany(
                "INSERT INTO customers (customer_id, name, salutation, segment, language, bill_due_date, flags)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
                " ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name,"
                " salutation = EXCLUDED.salutation, segment = EXCLUDED.segment, language = EXCLUDED.language,"
                " bill_due_date = EXCLUDED.bill_due_date, flags = EXCLUDED.flags, updated_at = now()",
                [(c.customer_id, c.name, c.salutation, c.segment, c.language, c.bill_due_date,
                  json.dumps(c.flags)) for c in chunk],
            )
            await conn.execute("DELETE FROM customer_phones WHERE customer_id = ANY($1::text[])",
                               [c.customer_id for c in chunk])
            await conn.executemany(
                "INSERT INTO customer_phones (phone, customer_id) VALUES ($1, $2)"
                " ON CONFLICT (phone) DO UPDATE SET customer_id = EXCLUDED.customer_id",
                [(phone, c.customer_id) for c in chunk for phone in c.phones],
            )
            if progress:
                progress(len(chunk))


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM customers"))
