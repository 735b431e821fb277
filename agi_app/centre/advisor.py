"""The contact centre's side of a queue transfer: the flows' `QueueDesk`, from live queue state
(`QueueState`, AMI in production), recent handle times and the callback book.

Every read has a time budget: live state that is not there in time means no announcement (the
caller is transferred at once), handle times that are not there mean Asterisk's own average talk
time. A desk without a callback book never offers one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from agi_app.budget import within
from agi_app.centre.callbacks import CallbackBook
from agi_app.centre.estimate import WaitEstimate, estimate_wait, mean_handle_time
from agi_app.centre.queues import QueueSnapshot, QueueState, QueueStateUnavailable
from agi_app.flows.queueing import QueueAdvice, QueueAdviceUnavailable
from agi_app.logs import log_event

log = logging.getLogger("hotline.centre")

#: Talk times (seconds) of a group's recently completed calls, newest first.
RecentTalkTimes = Callable[[str], Awaitable[Sequence[int]]]


class QueueAdvisor:
    """`flows.queueing.QueueDesk` over live queue state, handle-time history and a callback book."""

    def __init__(self, state: QueueState, *, budget_s: float, recent_talk_times: RecentTalkTimes | None = None,
                 book: CallbackBook | None = None, wrapup_s: int = 0, default_handle_s: float = 180.0,
                 callback_offer_wait_s: int = 120, callback_key_timeout_s: float = 5.0,
                 book_budget_s: float = 3.0) -> None:
        self._state = state
        self._budget_s = budget_s
        self._recent = recent_talk_times
        self._book = book
        self._wrapup_s = wrapup_s
        self._default_handle_s = default_handle_s
        self._callback_offer_wait_s = callback_offer_wait_s
        self._callback_key_timeout_s = callback_key_timeout_s
        self._book_budget_s = book_budget_s
        #: group → calls advised on it and not yet handed to it (or gone): ahead of the next caller,
        #: though app_queue does not list them yet.
        self._in_flight: defaultdict[str, set[str]] = defaultdict(set)

    @property
    def offers_callbacks(self) -> bool:
        return self._book is not None

    @property
    def callback_offer_wait_s(self) -> int:
        return self._callback_offer_wait_s

    @property
    def callback_key_timeout_s(self) -> float:
        return self._callback_key_timeout_s

    async def advise(self, call_id: str, group: str) -> QueueAdvice:
        """The advice for `call_id`, on its way into `group` from now until `forget`."""
        on_the_way = len(self._in_flight[group] - {call_id})
        self._in_flight[group].add(call_id)
        estimate = await self.estimate(group, in_flight=on_the_way)
        return QueueAdvice(estimate.position, estimate.wait_s, estimate.asterisk_wait_s)

    def forget(self, call_id: str, group: str) -> None:
        """`call_id` is in the queue now (app_queue lists it), took a callback, or ended."""
        calls = self._in_flight.get(group)
        if calls is not None:
            calls.discard(call_id)
            if not calls:
                del self._in_flight[group]

    async def estimate(self, group: str, *, in_flight: int = 0) -> WaitEstimate:
        """The wait for a caller joining `group` now; QueueAdviceUnavailable past the budget or when
        the live state cannot be read. The handle-time history is read meanwhile, under the same budget."""
        history = asyncio.create_task(self._handle_times(group), name=f"handle-times-{group}")
        try:
            snapshot = await self._snapshot(group)
            handle_s = mean_handle_time(await history, talktime_s=snapshot.asterisk_talktime_s,
                                        wrapup_s=self._wrapup_s, default_s=self._default_handle_s)
        finally:
            if not history.done():
                history.cancel()
                await asyncio.wait({history})
        return estimate_wait(snapshot, handle_s, in_flight=in_flight)

    async def _snapshot(self, group: str) -> QueueSnapshot:
        try:
            return await within(self._budget_s, self._state.snapshot(group), what="queue_state")
        except TimeoutError as exc:
            raise QueueAdviceUnavailable(f"queue {group!r}: no live state within {self._budget_s:g}s") from exc
        except QueueStateUnavailable as exc:
            raise QueueAdviceUnavailable(str(exc)) from exc

    async def _handle_times(self, group: str) -> Sequence[int]:
        """Recent talk times; none when the history cannot be read in time."""
        if self._recent is None:
            return ()
        try:
            return await within(self._budget_s, self._recent(group), what="handle_times")
        except Exception as exc:  # noqa: BLE001 - the estimate falls back to Asterisk's average talk time
            log_event(log, "handle_times_unavailable", level=logging.WARNING, queue=group, error=type(exc).__name__)
            return ()

    async def book_callback(self, call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        """Book through the callback book within its budget; False if there is none, it refused,
        failed or took too long (the caller then waits in the queue as they would have)."""
        if self._book is None:
            return False
        try:
            return await within(self._book_budget_s, self._book(call_id, customer_id, number, group),
                                what="callback_book", call_id=call_id)
        except Exception as exc:  # noqa: BLE001 - a failed booking is "not booked", never a dropped call
            log_event(log, "callback_book_failed", level=logging.ERROR, call=call_id, queue=group,
                      error=type(exc).__name__)
            return False
