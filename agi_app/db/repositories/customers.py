"""Customers and their phone numbers in PostgreSQL (parameterised SQL only)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PhoneMove:
    """A number changing owner: it belonged to a customer the import does not mention."""

    phone: str
    from_customer: str
    to_customer: str


class PhonesOwnedElsewhere(Exception):
    """The import would take numbers from customers it does not mention; nothing was written."""

    def __init__(self, moves: list[PhoneMove]) -> None:
        super().__init__(f"{len(moves)} phone number(s) belong to customers not in the import")
        self.moves = moves


async def phone_moves(conn: asyncpg.Connection, customers: Sequence[Customer]) -> list[PhoneMove]:
    """Numbers in `customers` now owned by a customer outside them. Moves between customers of the
    import are not listed: the import states both customers' numbers."""
    new_owner = {phone: c.customer_id for c in customers for phone in c.phones}
    rows = await conn.fetch(
        "SELECT phone, customer_id FROM customer_phones"
        " WHERE phone = ANY($1::text[]) AND customer_id <> ALL($2::text[]) ORDER BY phone",
        list(new_owner), [c.customer_id for c in customers])
    return [PhoneMove(r["phone"], r["customer_id"], new_owner[r["phone"]]) for r in rows]


async def import_customers(conn: asyncpg.Connection, customers: Sequence[Customer], *, reassign: bool = False,
                           batch: int = 500, progress: Callable[[int], None] | None = None) -> list[PhoneMove]:
    """Upsert customers and replace their phone lists, all in one transaction; return the numbers
    taken from customers not in `customers` (for the audit log).

    Such a number moves only with `reassign`; without it PhonesOwnedElsewhere is raised and
    nothing is written (a typo in one row must not silently take a stranger's number).
    """
    async with conn.transaction():
        # Owners must not change between the check and the writes; plain lookups are not blocked.
        await conn.execute("LOCK TABLE customer_phones IN SHARE ROW EXCLUSIVE MODE")
        moves = await phone_moves(conn, customers)
        if moves and not reassign:
            raise PhonesOwnedElsewhere(moves)
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
    return moves


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM customers"))
