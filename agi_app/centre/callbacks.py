"""Callbacks that keep the caller's place: the rules, with no I/O.

A booked callback puts a *placeholder* in the caller's queue at once (a Local channel waiting in
app_queue in the caller's place). When an agent takes the placeholder, the agent waits on the line
while the customer is dialled; answered, the two are bridged. Each attempt's channels have ids
derived from (callback id, attempt), so any server — one restarted meanwhile too — can tell which
callback an ARI event belongs to from the channel id alone, and whether an attempt's channels
still exist.

Status: waiting (due to be queued) → queued (placeholder in the queue) → dialling (an agent took
it, the customer is being called) → connected → completed. An attempt that fails goes back to
waiting after `retry_delay` until `max_attempts`, then ends as no_answer / busy / failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol


class CallbackBook(Protocol):
    """What the IVR calls when a caller accepts a callback instead of waiting."""

    async def __call__(self, call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        """Store a callback to `number` for skill `group`, and queue its placeholder at once.

        True once it is stored (the caller may be told so); False when it could not be (invalid
        number or group, the database did not answer in time): the caller is then not promised one.
        """
        ...


class Status(StrEnum):
    WAITING = "waiting"
    QUEUED = "queued"
    DIALLING = "dialling"
    CONNECTED = "connected"
    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses of a callback still owed to the customer (a server is, or must be, working on it).
OPEN = frozenset({Status.WAITING, Status.QUEUED, Status.DIALLING, Status.CONNECTED})

#: An attempt's failure, as stored: the customer did not answer, was busy, or something else failed.
FAILURES = (Status.NO_ANSWER, Status.BUSY, Status.FAILED)

#: StasisStart's first argument for each callback leg that enters the application (a call's is
#: the number dialled: digits).
ARG_FOR_ROLE = {"agent": "callback", "customer": "callback-customer"}
CALLBACK_ARGS = frozenset(ARG_FOR_ROLE.values())

_GROUP = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_NUMBER = re.compile(r"\d{3,20}")
_LEG = re.compile(r"callback-(\d{1,18})-(\d{1,4})-(agent|queue|customer)")

#: Q.850 causes that mean "the customer was busy" and "nobody answered"; any other cause before
#: the customer answered is a failure (unreachable number, congestion, trunk down).
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19, 20})


def valid_group(group: str) -> bool:
    """A skill group name that may go into a queue name and a dialplan extension."""
    return bool(_GROUP.fullmatch(group))


def valid_number(number: str) -> bool:
    """Digits only (normalised): nothing a dial string could interpret."""
    return bool(_NUMBER.fullmatch(number))


@dataclass(frozen=True)
class Leg:
    """One channel of one callback attempt: `agent` is the placeholder's Stasis side (the agent is
    on it once answered), `queue` its other half waiting in app_queue, `customer` the call out."""

    callback_id: int
    attempt: int
    role: str

    @property
    def channel_id(self) -> str:
        return f"callback-{self.callback_id}-{self.attempt}-{self.role}"

    def sibling(self, role: str) -> Leg:
        return Leg(self.callback_id, self.attempt, role)

    @classmethod
    def parse(cls, channel_id: str) -> Leg | None:
        """The leg a channel id names, or None for any other channel (a caller's)."""
        found = _LEG.fullmatch(channel_id)
        return cls(int(found[1]), int(found[2]), found[3]) if found else None


def attempt_result(cause: int) -> Status:
    """What a customer leg that ended before being answered says about the attempt."""
    if cause in _BUSY_CAUSES:
        return Status.BUSY
    if cause in _NO_ANSWER_CAUSES:
        return Status.NO_ANSWER
    return Status.FAILED


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_delay: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class AfterFailure:
    """Where a failed attempt leaves the callback: `status` waiting (retried after `delay`) or the
    failure itself once the attempts are used up."""

    status: Status
    attempts: int
    delay: timedelta


def after_failure(attempts_before: int, result: Status, policy: RetryPolicy) -> AfterFailure:
    """One more attempt used; retried later while attempts remain."""
    if result not in FAILURES:
        raise ValueError(f"{result} is not an attempt's failure")
    attempts = attempts_before + 1
    if attempts < policy.max_attempts:
        return AfterFailure(Status.WAITING, attempts, policy.retry_delay)
    return AfterFailure(result, attempts, timedelta(0))
