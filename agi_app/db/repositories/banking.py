"""The banking stand-in in PostgreSQL: `PgBank` implements `banking.accounts.Bank`.

Every money-moving operation is one transaction that first locks all the customer's account rows
(`FOR UPDATE`, in account-id order, so two calls of one customer queue instead of deadlocking),
then checks the idempotency key, the balance, the daily limit and the card, writes the
transaction, the balances and an audit row, and commits: two calls racing on one account can
neither lose nor create money, and a retry returns the first receipt. Parameterised SQL only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeAlias

import asyncpg

from agi_app.banking.accounts import Account, Bill, CardStatus, Kind, Order, Outcome, Payee, Reason
from agi_app.banking.money import Money
from agi_app.calendar.model import DEFAULT_TIMEZONE

Executor: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

# What the customer sent to payees since midnight in the bank's zone (the all-lines calendar
# zone, else $2): the daily limit's day.
_SENT_TODAY = (
    "SELECT coalesce(sum(amount_fen), 0) FROM bank_transactions WHERE customer_id = $1"
    " AND kind = 'transfer' AND payee_id IS NOT NULL AND created_at >="
    " (SELECT date_trunc('day', now() AT TIME ZONE z) AT TIME ZONE z FROM coalesce("
    "(SELECT timezone FROM calendar_settings WHERE scope = '*'), $2) AS z)"
)
_ACCOUNTS = (
    "SELECT a.customer_id, a.account_id, a.kind, a.currency, a.balance_fen, c.last4, c.status"
    " FROM bank_accounts a LEFT JOIN bank_cards c USING (account_id)"
)


def card_digest(number: str) -> str:
    """What is stored of a card number: its SHA-256, to find the card when a caller types it."""
    return hashlib.sha256("".join(c for c in number if c.isdigit()).encode()).hexdigest()


def _account(row: asyncpg.Record) -> Account:
    kind: Kind = row["kind"]
    status: CardStatus | None = row["status"]
    return Account(row["customer_id"], row["account_id"], kind, row["currency"], Money(row["balance_fen"]),
                   row["last4"], status)


async def list_accounts(conn: Executor, customer_id: str | None = None) -> list[Account]:
    if customer_id is None:
        rows = await conn.fetch(_ACCOUNTS + " ORDER BY a.customer_id, a.account_id")
    else:
        rows = await conn.fetch(_ACCOUNTS + " WHERE a.customer_id = $1 ORDER BY a.account_id", customer_id)
    return [_account(r) for r in rows]


async def import_accounts(conn: asyncpg.Connection, accounts: Sequence[Account],
                          cards: dict[str, str]) -> None:
    """Upsert accounts (balances as given) and their cards (`cards`: account id → full number, of
    which only the digest and the last 4 are kept), in one transaction. A card already blocked
    stays blocked: an import must not reactivate a card reported lost."""
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO bank_accounts (account_id, customer_id, kind, currency, balance_fen)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE SET"
            " customer_id = EXCLUDED.customer_id, kind = EXCLUDED.kind, currency = EXCLUDED.currency,"
            " balance_fen = EXCLUDED.balance_fen, updated_at = now()",
            [(a.account_id, a.customer_id, a.kind, a.currency, a.balance.fen) for a in accounts])
        await conn.executemany(
            "INSERT INTO bank_cards (account_id, card_digest, last4) VALUES ($1, $2, $3)"
            " ON CONFLICT (account_id) DO UPDATE SET card_digest = EXCLUDED.card_digest, last4 = EXCLUDED.last4,"
            " status = CASE WHEN bank_cards.card_digest = EXCLUDED.card_digest THEN bank_cards.status"
            " ELSE 'active' END",
            [(account_id, card_digest(number), number[-4:]) for account_id, number in cards.items()])


async def import_bills(conn: asyncpg.Connection, bills: Sequence[Bill]) -> None:
    """Upsert billers and bills (one per customer, biller and due date); a paid bill keeps its amount."""
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO bank_billers (biller_id, name) VALUES ($1, $2)"
            " ON CONFLICT (biller_id) DO UPDATE SET name = EXCLUDED.name",
            sorted({(b.biller_id, b.biller_name) for b in bills}))
        await conn.executemany(
            "INSERT INTO bank_bills (customer_id, biller_id, amount_fen, due_date) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (customer_id, biller_id, due_date) DO UPDATE SET amount_fen = EXCLUDED.amount_fen"
            " WHERE bank_bills.paid_txn IS NULL",
            [(b.customer_id, b.biller_id, b.amount.fen, b.due_date) for b in bills])


async def import_payees(conn: asyncpg.Connection, payees: Sequence[Payee]) -> None:
    """Upsert registered payees. A payee whose account number changes is a new payee (its
    registration time restarts, which the risk rule on new payees reads); otherwise it is kept."""
    await conn.executemany(
        "INSERT INTO bank_payees (customer_id, payee_id, name, account_number) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (customer_id, payee_id) DO UPDATE SET name = EXCLUDED.name,"
        " account_number = EXCLUDED.account_number, registered_at = CASE WHEN"
        " bank_payees.account_number = EXCLUDED.account_number THEN bank_payees.registered_at ELSE now() END",
        [(p.customer_id, p.payee_id, p.name, p.account_number) for p in payees])


async def missing_customers(conn: Executor, customer_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT id FROM unnest($1::text[]) AS id"
                            " WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = id)",
                            list(customer_ids))
    return {r["id"] for r in rows}


async def cards_elsewhere(conn: Executor, cards: dict[str, str]) -> dict[str, str]:
    """Account id → the other account already holding that card number (a card is one account's)."""
    digests = {card_digest(n): a for a, n in cards.items()}
    rows = await conn.fetch("SELECT account_id, card_digest FROM bank_cards WHERE card_digest = ANY($1::text[])",
                            list(digests))
    return {digests[r["card_digest"]]: r["account_id"] for r in rows
            if r["account_id"] != digests[r["card_digest"]]}


async def customer_by_account(conn: Executor, account_id: str) -> str | None:
    """Whose account this is (an unknown caller may name an account number to authenticate)."""
    found = await conn.fetchval("SELECT customer_id FROM bank_accounts WHERE account_id = $1", account_id)
    return str(found) if found is not None else None


async def customer_by_card(conn: Executor, card_number: str) -> str | None:
    """Whose card this is, found by the number's digest (the number itself is not stored)."""
    found = await conn.fetchval("SELECT a.customer_id FROM bank_cards c JOIN bank_accounts a USING (account_id)"
                                " WHERE c.card_digest = $1", card_digest(card_number))
    return str(found) if found is not None else None


def _pick(accounts: list[Account], wanted: str | None, kinds: tuple[Kind, ...]) -> Account | None:
    """The account the caller named, by number or by its last 4 digits (when only one ends so),
    else the first of `kinds` in that order of preference."""
    if wanted:
        found = [a for a in accounts if a.account_id == wanted or (len(wanted) == 4 and a.ending == wanted)]
        return found[0] if len(found) == 1 else None
    for kind in kinds:
        for account in accounts:
            if account.kind == kind:
                return account
    return None


class PgBank:
    """The PostgreSQL stand-in for a core-banking system."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._get_pool = pool  # the server's pool, which exists only once the server has started

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._get_pool()

    async def accounts(self, customer_id: str) -> list[Account]:
        return await list_accounts(self._pool, customer_id)

    async def payee_registered_at(self, customer_id: str, payee_id: str) -> datetime | None:
        found: datetime | None = await self._pool.fetchval(
            "SELECT registered_at FROM bank_payees WHERE customer_id = $1 AND payee_id = $2", customer_id, payee_id)
        return found

    async def due_bill(self, customer_id: str) -> Bill | None:
        row = await self._pool.fetchrow(
            "SELECT b.customer_id, b.biller_id, r.name, b.amount_fen, b.due_date FROM bank_bills b"
            " JOIN bank_billers r USING (biller_id) WHERE b.customer_id = $1 AND b.paid_txn IS NULL"
            " ORDER BY b.due_date, b.bill_id LIMIT 1", customer_id)
        return Bill(row["customer_id"], row["biller_id"], row["name"], Money(row["amount_fen"]),
                    row["due_date"]) if row else None

    async def pay_bill(self, order: Order, account_id: str | None) -> Outcome:
        async with self._pool.acquire() as conn, conn.transaction():
            accounts = await _lock(conn, order.customer_id)
            if (done := await _already(conn, order)) is not None:
                return done
            bill = await conn.fetchrow(
                "SELECT bill_id, amount_fen FROM bank_bills WHERE customer_id = $1 AND paid_txn IS NULL"
                " ORDER BY due_date, bill_id LIMIT 1 FOR UPDATE", order.customer_id)
            source = _pick(accounts, account_id, ("current", "savings"))
            amount = Money(bill["amount_fen"]) if bill else None
            reason = (_debit_refusal(source, amount) if amount is not None else "no_bill")
            if reason is not None or source is None or amount is None or bill is None:
                return await _refuse(conn, order, "bill_payment", reason or "no_account", amount)
            txn = await _move(conn, order, "bill_payment", source, amount, bill_id=bill["bill_id"])
            await conn.execute("UPDATE bank_bills SET paid_txn = $2 WHERE bill_id = $1", bill["bill_id"], txn[0])
            return await _done(conn, order, "bill_payment", txn[1], amount, source.account_id)

    async def transfer(self, order: Order, from_account: str | None, to: str, amount: Money,
                       daily_limit: Money) -> Outcome:
        async with self._pool.acquire() as conn, conn.transaction():
            accounts = await _lock(conn, order.customer_id)
            if (done := await _already(conn, order)) is not None:
                return done
            source = _pick(accounts, from_account, ("current", "savings"))
            target = _pick(accounts, to, ())
            payee = None if target else await conn.fetchval(
                "SELECT payee_id FROM bank_payees WHERE customer_id = $1 AND payee_id = $2", order.customer_id, to)
            reason: Reason | None = _debit_refusal(source, amount)
            if amount.fen <= 0:
                reason = "bad_amount"
            elif reason is None and target is None and payee is None:
                reason = "no_payee"
            elif reason is None and source is not None and target is not None \
                    and target.account_id == source.account_id:
                reason = "same_account"
            elif reason is None and payee is not None:
                sent = Money(int(await conn.fetchval(_SENT_TODAY, order.customer_id, DEFAULT_TIMEZONE)))
                if sent + amount > daily_limit:
                    reason = "daily_limit"
            if reason is not None or source is None:
                return await _refuse(conn, order, "transfer", reason or "no_account", amount)
            txn = await _move(conn, order, "transfer", source, amount, target=target, payee_id=payee)
            return await _done(conn, order, "transfer", txn[1], amount, source.account_id)

    async def block_card(self, order: Order, card_last4: str | None) -> Outcome:
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, order.customer_id)
            cards = await conn.fetch(
                "SELECT c.account_id, c.status FROM bank_cards c JOIN bank_accounts a USING (account_id)"
                " WHERE a.customer_id = $1 AND ($2::text IS NULL OR c.last4 = $2) ORDER BY c.account_id",
                order.customer_id, card_last4)
            if not cards:
                return await _refuse(conn, order, "card_loss", "no_card", None)
            await conn.execute(
                "UPDATE bank_cards SET status = 'blocked', blocked_at = coalesce(blocked_at, now())"
                " WHERE account_id = ANY($1::text[])", [c["account_id"] for c in cards])
            receipt = str(await conn.fetchval("SELECT nextval('bank_receipts')"))
            return await _done(conn, order, "card_loss", receipt, None, cards[0]["account_id"])

    async def record(self, order: Order, operation: str, outcome: Outcome) -> None:
        await _audit(self._pool, order, operation, outcome)


async def _lock(conn: asyncpg.Connection, customer_id: str) -> list[Account]:
    rows = await conn.fetch(_ACCOUNTS + " WHERE a.customer_id = $1 ORDER BY a.account_id FOR UPDATE OF a",
                            customer_id)
    return [_account(r) for r in rows]


async def _already(conn: asyncpg.Connection, order: Order) -> Outcome | None:
    """The receipt of the transaction this key already made (a retry), or None."""
    row = await conn.fetchrow("SELECT receipt, amount_fen, from_account FROM bank_transactions"
                              " WHERE idempotency_key = $1", order.idempotency_key)
    return Outcome(row["receipt"], amount=Money(row["amount_fen"]), account=row["from_account"]) if row else None


def _debit_refusal(source: Account | None, amount: Money | None) -> Reason | None:
    if source is None or source.kind == "credit":
        return "no_account"
    if source.card_status == "blocked":
        return "card_blocked"  # a card reported lost: its account pays nothing by phone
    if amount is not None and source.balance < amount:
        return "insufficient_funds"
    return None


async def _move(conn: asyncpg.Connection, order: Order, kind: str, source: Account, amount: Money, *,
                target: Account | None = None, payee_id: str | None = None,
                bill_id: int | None = None) -> tuple[int, str]:
    row = await conn.fetchrow(
        "INSERT INTO bank_transactions (receipt, idempotency_key, call_id, customer_id, kind, from_account,"
        " to_account, payee_id, bill_id, amount_fen)"
        " VALUES (nextval('bank_receipts')::text, $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING txn_id, receipt",
        order.idempotency_key, order.call_id, order.customer_id, kind, source.account_id,
        target.account_id if target else None, payee_id, bill_id, amount.fen)
    await conn.execute("UPDATE bank_accounts SET balance_fen = balance_fen - $2, updated_at = now()"
                       " WHERE account_id = $1", source.account_id, amount.fen)
    if target is not None:
        await conn.execute("UPDATE bank_accounts SET balance_fen = balance_fen + $2, updated_at = now()"
                           " WHERE account_id = $1", target.account_id, amount.fen)
    return int(row["txn_id"]), str(row["receipt"])


async def _refuse(conn: asyncpg.Connection, order: Order, operation: str, reason: Reason,
                  amount: Money | None) -> Outcome:
    outcome = Outcome(reason=reason, amount=amount)
    await _audit(conn, order, operation, outcome)
    return outcome


async def _done(conn: asyncpg.Connection, order: Order, operation: str, receipt: str, amount: Money | None,
                account: str | None) -> Outcome:
    outcome = Outcome(receipt, amount=amount, account=account)
    await _audit(conn, order, operation, outcome)
    return outcome


async def _audit(conn: Executor, order: Order, operation: str, outcome: Outcome) -> None:
    """One row per operation: ok (a receipt), refused (a reason) or failed (neither)."""
    result = "ok" if outcome.ok else "refused" if outcome.reason else "failed"
    await conn.execute(
        "INSERT INTO banking_operations (call_id, customer_id, operation, result, reason, receipt, amount_fen)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order.call_id, order.customer_id or None, operation,
        result, outcome.reason, outcome.receipt or None,
        outcome.amount.fen if outcome.amount is not None else None)
