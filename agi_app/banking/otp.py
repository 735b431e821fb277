"""One-time codes, the second factor for risky operations (PIN change, large transfers).

A code goes to the phone number on file through an outbox table, `otp_outbox` — the SMS gateway's
stand-in: the gateway must send the code, so the row holds it in clear only until the gateway
marks it sent (then the clear code is erased); verification never reads the clear code, it
compares the salted hash stored beside it. A code expires (`OtpPolicy.ttl`), is good once, and
allows `OtpPolicy.max_attempts` tries; issuing a new one for the customer voids the older ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from agi_app.banking.pin import hash_in_thread, verify_in_thread
from agi_app.secure import SecretDigits

OtpResult = Literal["ok", "wrong", "expired", "exhausted", "none"]


@dataclass(frozen=True)
class OtpPolicy:
    ttl: timedelta = timedelta(minutes=5)
    max_attempts: int = 3
    length: int = 6


@dataclass(frozen=True)
class OutboxMessage:
    customer_id: str
    phone: str
    call_id: str
    code: str  # clear, for the gateway only
    code_hash: str
    expires_at: datetime


class OtpStore(Protocol):
    async def issue(self, message: OutboxMessage) -> None:
        """Queue the code for the gateway; older unused codes of the customer stop working."""

    async def check(self, customer_id: str, check: Callable[[str], Awaitable[bool]], max_attempts: int) -> OtpResult:
        """Under a lock on the customer's newest unused code: `none` without one, `expired`,
        `exhausted` past the attempts, else count the attempt and run `check` on its hash (`ok`
        marks it used)."""


def new_code(length: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


async def send_code(store: OtpStore, policy: OtpPolicy, *, customer_id: str, phone: str, call_id: str,
                    now: datetime) -> None:
    code = new_code(policy.length)
    await store.issue(OutboxMessage(customer_id, phone, call_id, code, await hash_in_thread(code),
                                    now + policy.ttl))


async def verify_code(store: OtpStore, policy: OtpPolicy, *, customer_id: str, code: SecretDigits) -> OtpResult:
    secret = code.reveal()  # for hashing only

    async def check(stored_hash: str) -> bool:
        return await verify_in_thread(secret, stored_hash)

    return await store.check(customer_id, check, policy.max_attempts)
