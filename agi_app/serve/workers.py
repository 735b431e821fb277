"""The skeleton of a server-side worker (callbacks, campaigns): two loops it runs until cancelled,
and the few steps both take the same way.

A worker claims its work from the database in rounds (woken when something frees a line, polled
otherwise, so a missed wake-up only delays) and follows the ARI events of the calls it placed
(one event at a time from a bounded queue; one call's failure is logged and never stops the others).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from agi_app.ari.client import AriClient, AriError, AriNotFound, AriNotInStasis
from agi_app.ari.events import AriEvent
from agi_app.logs import log_event

T = TypeVar("T")


async def claim_forever(claim_round: Callable[[], Awaitable[None]], wake: asyncio.Event, poll_s: float, *,
                        errors: tuple[type[Exception], ...], on_error: Callable[[Exception], None]) -> None:
    """Run `claim_round` now, then whenever `wake` is set or `poll_s` has passed; `errors` (a
    database or clock failure) are reported through `on_error` and the next round tries again."""
    while True:
        wake.clear()  # cleared before the round: a wake-up during it is not lost
        try:
            await claim_round()
        except errors as exc:
            on_error(exc)
        try:
            async with asyncio.timeout(poll_s):
                await wake.wait()
        except TimeoutError:
            pass


async def follow_forever(events: asyncio.Queue[AriEvent], handle: Callable[[AriEvent], Awaitable[None]], *,
                         log: logging.Logger, failed: str) -> None:
    """Hand each queued event to `handle`; a failure is logged as the `failed` event and the
    next event is handled all the same."""
    while True:
        event = await events.get()
        try:
            await handle(event)
        except Exception as exc:  # noqa: BLE001 - one call's failure must not stop the others
            log_event(log, failed, level=logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200],
                      channel=event.channel_id)


def offer(events: asyncio.Queue[AriEvent], event: AriEvent, *, log: logging.Logger, dropped: str) -> None:
    """Queue an event from the router without blocking it; a full queue drops (and logs) the event."""
    try:
        events.put_nowait(event)
    except asyncio.QueueFull:
        log_event(log, dropped, level=logging.ERROR, kind=event.type, channel=event.channel_id)


async def on_connection(pool: asyncpg.Pool, budget_s: float,
                        operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """One database operation on a pooled connection, waiting for the connection included in the budget."""
    async with asyncio.timeout(budget_s):
        async with pool.acquire() as conn:
            return await operation(conn)


async def hang_up(client: AriClient, channel_id: str, *, log: logging.Logger, failed: str) -> None:
    """Hang a channel up; one already gone is no failure, any other refusal is logged as `failed`."""
    try:
        await client.hangup(channel_id)
    except (AriNotFound, AriNotInStasis):
        pass  # gone already
    except AriError as exc:
        log_event(log, failed, level=logging.ERROR, channel=channel_id, error=str(exc)[:200])
