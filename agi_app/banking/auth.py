"""Phone-banking authentication: who the caller claims to be, checked against their PIN, with a
lockout that holds across calls and servers.

The calling number alone never authorises anything: a caller the directory recognised still types
their PIN, and anyone may name themselves by customer, account or card number instead. Wrong PINs
are counted per customer under a row lock in the store (so two calls guessing at once, on two
servers, share one count); `LockoutPolicy.max_failures` in a row lock phone banking for
`LockoutPolicy.lockout`, and while locked even the right PIN is refused. One call gets no more
failed attempts than that in all (so it cannot try a PIN on customer after customer). Every attempt is
recorded (call, customer, method, result; never the PIN) by the store in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from agi_app.banking.pin import verify_in_thread
from agi_app.secure import SecretDigits

AuthResult = Literal["ok", "wrong_pin", "locked", "no_pin", "unknown"]
#: How the caller named themselves: the calling number on file, or a number they typed.
Method = Literal["phone", "customer", "account", "card"]


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 3
    lockout: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class Attempt:
    call_id: str
    customer_id: str | None  # None: the number typed matched no customer
    method: Method


@dataclass(frozen=True)
class AuthVerdict:
    result: AuthResult
    customer_id: str | None = None
    locked_until: datetime | None = None
    wrong_pin: bool = False  # a PIN was checked and was wrong (also when it just locked phone banking)

    @property
    def ok(self) -> bool:
        return self.result == "ok"


#: Checks a PIN against the stored hash (runs while the store holds the customer's row lock).
PinCheck = Callable[[str], Awaitable[bool]]


class PinStore(Protocol):
    """Where PIN hashes, failure counts, lockouts and the attempt log live (PostgreSQL:
    `agi_app.db.repositories.security`)."""

    async def check_pin(self, attempt: Attempt, check: PinCheck, policy: LockoutPolicy) -> AuthVerdict:
        """Atomically, under the customer's lock: refuse while locked (or when the call has already
        failed `max_failures` times, whoever it named); else run `check` on the stored
        hash, reset the failure count on success or count a failure (locking at the policy's limit);
        record the attempt. A customer without a PIN is `no_pin`, an absent customer `unknown`."""

    async def set_pin(self, customer_id: str, pin_hash: str, *, call_id: str, actor: str) -> bool:
        """Store a new hash (clearing failures and any lockout); False if there is no such customer."""


class IdentityLookup(Protocol):
    """Who a typed number belongs to: a customer id, or None (account and card numbers: the money
    side's accounts and cards)."""

    async def by_customer_id(self, customer_id: str) -> str | None: ...

    async def by_account(self, account_number: str) -> str | None: ...

    async def by_card(self, card_number: str) -> str | None: ...


async def resolve_identity(lookup: IdentityLookup, method: Method, number: str) -> str | None:
    """The customer a typed customer, account or card number names (`phone` is resolved at call start)."""
    match method:
        case "customer":
            return await lookup.by_customer_id(number)
        case "account":
            return await lookup.by_account(number)
        case "card":
            return await lookup.by_card(number)
    return None


async def authenticate(store: PinStore, policy: LockoutPolicy, *, call_id: str, customer_id: str | None,
                       method: Method, pin: SecretDigits) -> AuthVerdict:
    """Check `pin` for the customer (None: nobody matched the number typed, recorded as `unknown`)."""
    secret = pin.reveal()  # for hashing only

    async def check(stored_hash: str) -> bool:
        return await verify_in_thread(secret, stored_hash)

    return await store.check_pin(Attempt(call_id, customer_id, method), check, policy)
