"""Time budgets that end at the budget, not when the late call lets go.

`asyncio.wait_for` and `asyncio.timeout` cancel a late awaitable and then wait for its
cancellation to finish. asyncpg cancels a query in flight by resetting its connection, which
through a slow database takes as long as the query: a 300 ms lookup budget became 5-10 s of a
caller's silence. `within` answers at the budget instead; the late task is cancelled and left to
finish in the background, owned here (kept until it ends, its outcome retrieved and logged), so
none leaks, none is lost and none ends in "Task exception was never retrieved".

How a caller-facing path waits on an external call (the budgets' values live in
`config.Settings`). Transports whose cancellation is immediate (an HTTP request, a socket read)
may keep `asyncio.timeout`; work that must end before its retry runs (the journey writer) too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Any, TypeVar

from agi_app.logs import log_event

log = logging.getLogger("hotline.budget")
T = TypeVar("T")

#: Tasks cut at their budget (or left by a cancelled caller), cancelled, still finishing.
_abandoned: set[asyncio.Task[Any]] = set()


async def within(budget_s: float, awaitable: Awaitable[T], *, what: str, call_id: str | None = None) -> T:
    """`awaitable`'s result (or exception) if it ends within `budget_s`; TimeoutError at the budget
    otherwise. `what` and `call_id` name the work in the log line of a late task's end.

    Cancelling the caller cancels the work and returns at once too: a caller who hung up does not
    wait for a slow database to let go either."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=budget_s)
    except asyncio.CancelledError:
        abandon(task, what=what, call_id=call_id)
        raise
    if not done:
        abandon(task, what=what, call_id=call_id)
        raise TimeoutError(f"{what}: no answer within {budget_s:g}s")
    return task.result()


def backoff_s(retry: int, *, first_s: float, cap_s: float, jitter: bool = False) -> float:
    """The pause before retry number `retry` (1, 2, ...) of an external call: `first_s`, doubled at
    each retry up to `cap_s`. With `jitter` it is a random 50-100 % of that, so that clients that
    lost one peer together (every server when Asterisk restarts) do not all come back in step."""
    pause = min(cap_s, first_s * 2.0 ** min(max(retry - 1, 0), 32))
    return pause * (0.5 + random.random() / 2) if jitter else pause


def abandon(task: asyncio.Task[Any], *, what: str, call_id: str | None = None) -> None:
    """Cancel `task` without waiting for it: it is kept until it ends, and its outcome logged."""
    if task.done():
        _retrieve(task, what, call_id)
        return
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(lambda ended: _ended(ended, what, call_id))


def abandoned() -> int:
    """How many abandoned tasks are still finishing (a metric; zero once a slow peer let go)."""
    return sum(1 for task in _abandoned if not task.done())


async def settle(timeout_s: float) -> int:
    """Wait up to `timeout_s` for this loop's abandoned tasks to end (a clean shutdown); how many
    are still running after it."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _abandoned if task.get_loop() is loop and not task.done()]
    if mine:
        await asyncio.wait(mine, timeout=timeout_s)
    return sum(1 for task in mine if not task.done())


def _ended(task: asyncio.Task[Any], what: str, call_id: str | None) -> None:
    _abandoned.discard(task)
    _retrieve(task, what, call_id)


def _retrieve(task: asyncio.Task[Any], what: str, call_id: str | None) -> None:
    """Log how an abandoned task ended. A result is a warning: the work was done after all,
    though its caller had already been given the fallback."""
    if task.cancelled():
        log_event(log, "late_cancelled", level=logging.DEBUG, call=call_id, what=what)
    elif (exc := task.exception()) is not None:
        log_event(log, "late_failed", level=logging.DEBUG, call=call_id, what=what, error=type(exc).__name__)
    else:
        log_event(log, "late_result", level=logging.WARNING, call=call_id, what=what)
