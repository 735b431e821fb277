"""The two loops a server-side worker (callbacks, campaigns) runs until cancelled.

A worker claims its work from the database in rounds (woken when something frees a line, polled
otherwise, so a missed wake-up only delays) and follows the ARI events of the calls it placed
(one event at a time from a bounded queue; one call's failure is logged and never stops the others).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agi_app.ari.events import AriEvent
from agi_app.logs import log_event


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
