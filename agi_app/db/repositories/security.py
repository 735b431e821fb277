"""Phone-banking security in PostgreSQL: PIN hashes and lockouts, the authentication log, the
one-time-code outbox, security events and the risk flag (migration 005). Implements the banking
protocols `PinStore`, `RiskStore`, `OtpStore` and `IdentityLookup` (parameterised SQL only).

Lockout and code attempts are decided under a row lock (`SELECT ... FOR UPDATE`) in one
transaction with their log row, so calls on several servers share one count.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from agi_app.banking.auth import Attempt, AuthVerdict, LockoutPolicy, PinCheck
from agi_app.banking.otp import OtpResult, OutboxMessage
from agi_app.banking.risk import HOLD_FLAG, EventKind
from agi_app.db.repositories import audit, banking

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"



async def set_pin(conn: asyncpg.Connection, customer_id: str, pin_hash: str, *, call_id: str = "",
                  actor: str = "") -> bool:
    """Store a PIN hash for an existing customer, clear failures and lockout, count a PIN change and
    audit it (without the PIN); False if there is no such customer. One transaction."""
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM customers WHERE customer_id = $1 FOR UPDATE", customer_id) is None:
            return False
        await conn.execute(
            "INSERT INTO customer_pins (customer_id, pin_hash) VALUES ($1, $2)"
            " ON CONFLICT (customer_id) DO UPDATE SET pin_hash = EXCLUDED.pin_hash, failures = 0,"
            " locked_until = NULL, changed_at = now()", customer_id, pin_hash)
        await conn.execute("INSERT INTO security_events (customer_id, kind, call_id, detail)"
                           " VALUES ($1, 'pin_change', $2, $3::jsonb)", customer_id, call_id,
                           json.dumps({"by": "phone" if call_id else actor}))
        if actor:
            await audit.record(conn, actor, "customers.set_pin", {"customer_id": customer_id})
    return True


async def auth_attempts(conn: Db, *, customer_id: str | None = None, call_id: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT at, call_id, customer_id, method, result FROM auth_attempts"
        " WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::text IS NULL OR call_id = $2) ORDER BY id",
        customer_id, call_id)
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class PendingCode:
    id: int
    customer_id: str
    phone: str
    code: str


async def unsent_codes(conn: Db) -> list[PendingCode]:
    """What the SMS gateway has still to send (the e2e suite reads codes here)."""
    rows = await conn.fetch("SELECT id, customer_id, phone, code FROM otp_outbox WHERE sent_at IS NULL"
                            " AND code IS NOT NULL ORDER BY id")
    return [PendingCode(r["id"], r["customer_id"], r["phone"], r["code"]) for r in rows]


async def mark_sent(conn: Db, outbox_id: int) -> None:
    """The gateway sent it: the clear code is erased, only its hash remains."""
    await conn.execute("UPDATE otp_outbox SET sent_at = now(), code = NULL WHERE id = $1", outbox_id)


class PgSecurity:
    """The banking security protocols over one pool (or a connection; or a function giving the
    server's pool, which exists only once the server has started)."""

    def __init__(self, db: Db | Callable[[], asyncpg.Pool]) -> None:
        self._db = db

    @property
    def pool(self) -> Db:
        return self._db() if callable(self._db) else self._db

    # --- PinStore ------------------------------------------------------------------------
    async def check_pin(self, attempt: Attempt, check: PinCheck, policy: LockoutPolicy) -> AuthVerdict:
        async with self._connection() as conn, conn.transaction():
            verdict = await self._check_locked(conn, attempt, check, policy)
            await conn.execute("INSERT INTO auth_attempts (call_id, customer_id, method, result)"
                               " VALUES ($1, $2, $3, $4)", attempt.call_id, attempt.customer_id, attempt.method,
                               "wrong_pin" if verdict.wrong_pin else verdict.result)
        return verdict

    async def _check_locked(self, conn: asyncpg.Connection, attempt: Attempt, check: PinCheck,
                            policy: LockoutPolicy) -> AuthVerdict:
        customer = attempt.customer_id
        if attempt.call_id and await conn.fetchval(
                "SELECT count(*) FROM auth_attempts WHERE call_id = $1 AND result <> 'ok'",
                attempt.call_id) >= policy.max_failures:
            return AuthVerdict("locked", customer)  # this call has failed enough: no more guesses in it
        if customer is None or await conn.fetchval("SELECT 1 FROM customers WHERE customer_id = $1",
                                                   customer) is None:
            return AuthVerdict("unknown")
        row = await conn.fetchrow("SELECT pin_hash, failures, locked_until, now() AS now FROM customer_pins"
                                  " WHERE customer_id = $1 FOR UPDATE", customer)
        if row is None:
            return AuthVerdict("no_pin", customer)
        if row["locked_until"] is not None and row["locked_until"] > row["now"]:
            return AuthVerdict("locked", customer, row["locked_until"])
        if await check(row["pin_hash"]):
            await conn.execute("UPDATE customer_pins SET failures = 0, locked_until = NULL WHERE customer_id = $1",
                               customer)
            return AuthVerdict("ok", customer)
        failures = (0 if row["locked_until"] is not None else row["failures"]) + 1  # a lock that ran out starts afresh
        if failures >= policy.max_failures:
            until = row["now"] + policy.lockout
            await conn.execute("UPDATE customer_pins SET failures = $2, locked_until = $3 WHERE customer_id = $1",
                               customer, failures, until)
            return AuthVerdict("locked", customer, until, wrong_pin=True)
        await conn.execute("UPDATE customer_pins SET failures = $2, locked_until = NULL WHERE customer_id = $1",
                           customer, failures)
        return AuthVerdict("wrong_pin", customer, wrong_pin=True)

    async def set_pin(self, customer_id: str, pin_hash: str, *, call_id: str, actor: str) -> bool:
        async with self._connection() as conn:
            return await set_pin(conn, customer_id, pin_hash, call_id=call_id, actor=actor)

    # --- IdentityLookup ------------------------------------------------------------------
    async def by_customer_id(self, customer_id: str) -> str | None:
        found = await self.pool.fetchval("SELECT customer_id FROM customers WHERE customer_id = $1", customer_id)
        return str(found) if found is not None else None

    async def by_account(self, account_number: str) -> str | None:
        return await banking.customer_by_account(self.pool, account_number)

    async def by_card(self, card_number: str) -> str | None:
        """A blocked card still identifies its holder: knowing it proves nothing without the PIN."""
        return await banking.customer_by_card(self.pool, card_number)

    # --- RiskStore -----------------------------------------------------------------------
    async def is_held(self, customer_id: str) -> bool:
        held = await self.pool.fetchval("SELECT (flags ->> $2)::boolean FROM customers WHERE customer_id = $1",
                                        customer_id, HOLD_FLAG)
        return bool(held)

    async def count_events(self, customer_id: str, kind: EventKind, since: datetime) -> int:
        if kind == "wrong_pin":
            sql = ("SELECT count(*) FROM auth_attempts WHERE customer_id = $1 AND result = 'wrong_pin'"
                   " AND at >= $2")
        else:
            sql = ("SELECT count(*) FROM security_events WHERE customer_id = $1 AND kind = 'pin_change'"
                   " AND call_id <> '' AND at >= $2")  # by phone; the bank's set-pin is not the caller's activity
        return int(await self.pool.fetchval(sql, customer_id, since))

    async def flag(self, customer_id: str, rule: str, *, call_id: str) -> None:
        async with self._connection() as conn, conn.transaction():
            await conn.execute("UPDATE customers SET flags = flags || jsonb_build_object($2::text, true),"
                               " updated_at = now() WHERE customer_id = $1", customer_id, HOLD_FLAG)
            await conn.execute("INSERT INTO security_events (customer_id, kind, call_id, detail)"
                               " VALUES ($1, 'risk_flag', $2, $3::jsonb)", customer_id, call_id,
                               json.dumps({"rule": rule}))

    # --- OtpStore ------------------------------------------------------------------------
    async def issue(self, message: OutboxMessage) -> None:
        async with self._connection() as conn, conn.transaction():
            # A replaced code is never sent nor accepted: its clear text goes with it.
            await conn.execute("UPDATE otp_outbox SET voided_at = now(), code = NULL WHERE customer_id = $1"
                               " AND used_at IS NULL AND voided_at IS NULL", message.customer_id)
            await conn.execute(
                "INSERT INTO otp_outbox (customer_id, phone, call_id, code, code_hash, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)", message.customer_id, message.phone, message.call_id,
                message.code, message.code_hash, message.expires_at)

    async def check(self, customer_id: str, check: Callable[[str], Awaitable[bool]], max_attempts: int) -> OtpResult:
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, code_hash, attempts, expires_at <= now() AS expired FROM otp_outbox"
                " WHERE customer_id = $1 AND used_at IS NULL AND voided_at IS NULL"
                " ORDER BY id DESC LIMIT 1 FOR UPDATE", customer_id)
            if row is None:
                return "none"
            if row["expired"]:
                return "expired"
            if row["attempts"] >= max_attempts:
                return "exhausted"
            ok = await check(row["code_hash"])
            # A used code is spent: nothing may send or show it any more (the sandbox has no gateway).
            await conn.execute("UPDATE otp_outbox SET attempts = attempts + 1, used_at = CASE WHEN $2 THEN now() END,"
                               " code = CASE WHEN $2 THEN NULL ELSE code END WHERE id = $1", row["id"], ok)
            return "ok" if ok else "wrong"

    def _connection(self) -> Any:
        """A connection: the given one, or one from the pool for this operation."""
        db = self.pool
        return _Borrowed(db) if isinstance(db, asyncpg.Connection) else db.acquire()


class _Borrowed:
    """An already-open connection used as if acquired (tests and the CLI hand one in)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def __aenter__(self) -> asyncpg.Connection:
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        return None
