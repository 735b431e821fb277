"""The bank's data as the hotline sees it, and the typed protocol of the bank behind it.

`Bank` is what a core-banking system would implement; `db/repositories/banking.py` is our
PostgreSQL stand-in. Each money-moving method is one atomic operation on the bank's side, with
its own checks (balance, daily limit, card status) and an idempotency key, so that a retried
request never moves money twice. Refusals are results (`Outcome.refused`), not exceptions: an
exception means the bank failed, and the call hears that the operation did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from agi_app.banking.money import Money

Kind = Literal["savings", "current", "credit"]
KINDS: tuple[Kind, ...] = ("savings", "current", "credit")
CardStatus = Literal["active", "blocked"]

#: Why an operation was refused; services turn them into call variables (`refusal`) and prompts.
Reason = Literal["not_authenticated", "no_account", "no_bill", "no_payee", "insufficient_funds",
                 "daily_limit", "card_blocked", "needs_second_factor", "risk", "bad_amount",
                 "no_card", "same_account", "not_confirmed"]


def mask_card(number: str) -> str:
    """All but the last 4 digits hidden: `************1234` (what any screen or log may show)."""
    digits = "".join(c for c in number if c.isdigit())
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


@dataclass(frozen=True)
class Account:
    customer_id: str
    account_id: str
    kind: Kind
    currency: str
    balance: Money
    card_last4: str | None = None  # the account's card, shown only as its last 4 digits
    card_status: CardStatus | None = None

    @property
    def ending(self) -> str:
        """The last 4 of its digits, which is all a caller hears of an account number ("" if none)."""
        return "".join(c for c in self.account_id if c.isdigit())[-4:]


@dataclass(frozen=True)
class Bill:
    customer_id: str
    biller_id: str
    biller_name: str
    amount: Money
    due_date: date


@dataclass(frozen=True)
class Payee:
    """Someone the customer registered (at a branch or online) as a transfer target."""

    customer_id: str
    payee_id: str  # what the caller keys in
    name: str
    account_number: str


@dataclass(frozen=True)
class Order:
    """Who asks for an operation, in which call, and the key that makes a retry harmless."""

    customer_id: str
    call_id: str
    idempotency_key: str


@dataclass(frozen=True)
class Outcome:
    """What the bank did: `receipt` is set when it did it, `reason` when it refused."""

    receipt: str | None = None
    reason: Reason | None = None
    amount: Money | None = None
    account: str | None = None  # the account debited (or whose card was blocked)

    @property
    def ok(self) -> bool:
        return self.receipt is not None

    @classmethod
    def refused(cls, reason: Reason) -> Outcome:
        return cls(reason=reason)


class Bank(Protocol):
    """The core-banking operations the hotline offers by phone."""

    async def accounts(self, customer_id: str) -> list[Account]:
        """The customer's accounts, in a stable order (account id)."""
        ...

    async def due_bill(self, customer_id: str) -> Bill | None:
        """The oldest unpaid bill: the one `pay_bill` pays."""
        ...

    async def pay_bill(self, order: Order, account_id: str | None) -> Outcome:
        """Pay the customer's oldest unpaid bill from `account_id` (else the first current account)."""
        ...

    async def transfer(self, order: Order, from_account: str | None, to: str, amount: Money,
                       daily_limit: Money) -> Outcome:
        """Move `amount` to one of the customer's own accounts or a registered payee (`to` is an
        account id or a payee id), from `from_account` or the first current account."""
        ...

    async def payee_registered_at(self, customer_id: str, payee_id: str) -> datetime | None:
        """When the customer registered payee `payee_id` (None: no such payee), for the risk rule
        "a new payee followed by a large transfer"."""
        ...

    async def block_card(self, order: Order, card_last4: str | None) -> Outcome:
        """Block the customer's card ending `card_last4` (every active card when None), at once;
        blocking a blocked card is done, not refused."""
        ...

    async def record(self, order: Order, operation: str, outcome: Outcome) -> None:
        """Audit an operation refused before it reached the bank (e.g. not authenticated)."""
        ...
