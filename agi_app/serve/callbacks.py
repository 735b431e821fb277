"""The callback dispatcher: places each booked callback's placeholder in its queue, dials the
customer when an agent takes the placeholder, bridges the two, and records the result.

A placeholder is an ARI originate of `Local/<id>-<group>@hotline-callback/n` into our application:
its second half waits in app_queue `hotline-<group>` exactly where the caller would have waited
(the dialplan does not answer it), so the callback is dialled when the caller would have reached an
agent and never ahead of those still waiting. When app_queue connects an agent, the first half is
answered and enters Stasis (args `callback,<id>`): the agent is on the line. The customer is then
originated (args `callback-customer,<id>`); answered, they are bridged to the agent at once and
the bridge plays callback_greeting, so the agent hears what the customer is told and is on the
line the moment it ends (no one waits alone in silence). A customer who does not answer frees the agent at once and is tried again later.

Nothing here is remembered only in memory: every decision reads the callback's row, and the
channel ids name the callback and its placement (`centre.callbacks.Leg`), so a server that starts
while callbacks are under way carries them on. After each (re)connection of the event stream it
reconciles: a placement whose channels Asterisk no longer has was lost with a dead server and is
placed again (a live placeholder keeps its place, its events now reach this server).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import asyncpg

from agi_app.ari.client import AriClient, AriError, AriNotFound
from agi_app.ari.events import (
    AriEvent,
    ChannelDestroyed,
    StasisEnd,
    StasisStart,
    StreamConnected,
)
from agi_app.centre.callbacks import (
    ARG_FOR_ROLE,
    Leg,
    RetryPolicy,
    Status,
    attempt_result,
    valid_group,
    valid_number,
)
from agi_app.config import Settings
from agi_app.db.failures import DB_FAILURES
from agi_app.db.repositories import contact_centre as store
from agi_app.db.repositories.contact_centre import CallbackRow
from agi_app.logs import log_event
from agi_app.media.items import Sound
from agi_app.serve.workers import claim_forever, follow_forever, hang_up, offer, on_connection

log = logging.getLogger("hotline.callbacks")

T = TypeVar("T")

#: The dialplan context whose `<id>-<group>` extension queues a placeholder (dialplan/extensions.conf.j2).
PLACEHOLDER_CONTEXT = "hotline-callback"
#: Withdrawing a booking stored too late runs in the background: it may take longer than a caller could wait.
_WITHDRAW_BUDGET_S = 10.0


def bridge_id(leg: Leg) -> str:
    return f"callback-{leg.callback_id}-{leg.attempt}"


def greeting_id(leg: Leg) -> str:
    return f"{bridge_id(leg)}-greeting"


class CallbackDispatcher:
    """Implements `centre.callbacks.CallbackBook` (`book`); `run` is the server's task for it."""

    def __init__(self, client: AriClient, pool: asyncpg.Pool, settings: Settings, *, queue_size: int = 1000) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self.policy = RetryPolicy(settings.callback_max_attempts, timedelta(seconds=settings.callback_retry_delay_s))
        self._events: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=queue_size)
        self._wake = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()

    # --- the IVR's side ----------------------------------------------------------------------
    async def book(self, call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        """Store the callback and have its placeholder queued now (see `CallbackBook`)."""
        if not valid_number(number) or not valid_group(group):
            log_event(log, "callback_refused", level=logging.WARNING, call=call_id, queue=group,
                      reason="invalid_number" if not valid_number(number) else "invalid_group")
            return False
        insert = asyncio.ensure_future(self._db(lambda conn: store.book_callback(
            conn, call_id=call_id, customer_id=customer_id, number=number, queue=group)))
        # The caller waits for this answer: a hard budget, not one stretched by a slow cancellation.
        done, _ = await asyncio.wait({insert}, timeout=self.settings.db_budget_s)
        try:
            if insert not in done:
                self._own(self._withdraw(insert, call_id, group))
                raise TimeoutError
            callback_id = insert.result()
        except DB_FAILURES as exc:
            log_event(log, "callback_book_failed", level=logging.ERROR, call=call_id, queue=group,
                      error=type(exc).__name__)
            return False
        log_event(log, "callback_booked", call=call_id, callback=callback_id, queue=group)
        self._wake.set()
        return True

    async def _withdraw(self, insert: asyncio.Future[int], call_id: str, group: str) -> None:
        """A booking the caller was told failed must not call them back, should it be stored late
        (an insert given up on here may still have been committed by the server)."""
        await asyncio.wait({insert})
        if not insert.cancelled():
            insert.exception()  # retrieved: already reported as the booking's failure
        try:
            withdrawn = await self._db(lambda conn: store.withdraw(conn, call_id, group), budget_s=_WITHDRAW_BUDGET_S)
        except DB_FAILURES as exc:
            log_event(log, "callback_withdraw_failed", level=logging.ERROR, call=call_id, queue=group,
                      error=type(exc).__name__)
            return
        if withdrawn:
            log_event(log, "callback_withdrawn", level=logging.WARNING, call=call_id, queue=group,
                      reason="stored after the booking's budget")

    def _own(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- ARI's side ----------------------------------------------------------------------------
    def on_event(self, event: AriEvent) -> None:
        """An event for a callback leg (or a reconnection), from the router; never blocks."""
        offer(self._events, event, log=log, dropped="callback_event_dropped")

    async def run(self) -> None:
        """Place due callbacks and follow their legs until cancelled."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(claim_forever(self.place_due, self._wake, self.settings.callback_poll_s,
                                                errors=DB_FAILURES, on_error=self._claim_failed),
                                  name="callbacks-place")
                tasks.create_task(follow_forever(self._events, self.handle, log=log, failed="callback_event_failed"),
                                  name="callbacks-follow")
        finally:
            await self.close()

    async def close(self) -> None:
        """End the background work of late bookings (`run` does it when it stops)."""
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)

    def _claim_failed(self, exc: Exception) -> None:
        log_event(log, "callback_claim_failed", level=logging.ERROR, error=type(exc).__name__)

    # --- placing ---------------------------------------------------------------------------------
    async def place_due(self) -> None:
        """Claim the due callbacks one by one, oldest first, and originate their placeholders in
        that order (one at a time: a refused one keeps its place before those behind it)."""
        while rows := await self._db(lambda conn: store.claim_due(conn, limit=1)):
            if not await self._place(rows[0]):
                return  # Asterisk refused or is down: the rest wait for the next round

    async def _place(self, row: CallbackRow) -> bool:
        leg = Leg(row.callback_id, row.placements, "agent")
        try:
            await self.client.originate(
                f"Local/{row.callback_id}-{row.queue}@{PLACEHOLDER_CONTEXT}/n", channel_id=leg.channel_id,
                other_channel_id=leg.sibling("queue").channel_id, app_args=[ARG_FOR_ROLE["agent"], str(row.callback_id)],
                timeout_s=self.settings.callback_queue_wait_s)
        except AriError as exc:
            log_event(log, "callback_place_failed", level=logging.ERROR, call=row.call_id, callback=row.callback_id,
                      error=str(exc)[:200])
            detail = f"placeholder not placed: {exc.status or 'unreachable'}"
            await self._db(lambda conn: store.requeue(conn, row.callback_id, row.placements, detail=detail))
            return False
        log_event(log, "callback_queued", call=row.call_id, callback=row.callback_id, queue=row.queue,
                  placement=row.placements, attempts=row.attempts)
        return True

    # --- following the legs ------------------------------------------------------------------------
    async def handle(self, event: AriEvent) -> None:
        if isinstance(event, StreamConnected):
            await self.reconcile()
            return
        leg = Leg.parse(event.channel_id or "")
        if leg is None:
            if isinstance(event, StasisStart):  # says it is a callback, but no channel of ours is
                await self._refuse(event.channel.id, "unknown_channel")
            return
        if isinstance(event, StasisStart):
            if leg.role not in ARG_FOR_ROLE or list(event.args) != [ARG_FOR_ROLE[leg.role], str(leg.callback_id)]:
                await self._refuse(leg.channel_id, "args_mismatch")
            elif leg.role == "agent":
                await self._agent_answered(leg)
            else:
                await self._customer_answered(leg)
        elif isinstance(event, ChannelDestroyed):  # a leg dialled and never answered (or not yet in Stasis)
            await self._leg_ended(leg, event.cause)
        elif isinstance(event, StasisEnd):  # a leg that answered hung up (the app hears no ChannelDestroyed)
            await self._leg_ended(leg, 16)

    async def _agent_answered(self, leg: Leg) -> None:
        """An agent took the placeholder: dial the customer while the agent waits on the line."""
        row = await self._db(lambda conn: store.get_callback(conn, leg.callback_id))
        if row is None or not await self._db(lambda conn: store.move(conn, leg.callback_id, leg.attempt,
                                                                      [Status.QUEUED], Status.DIALLING)):
            await self._refuse(leg.channel_id, "not_queued")
            return
        log_event(log, "callback_agent_ready", call=row.call_id, callback=row.callback_id, placement=leg.attempt)
        customer = leg.sibling("customer")
        try:
            await self.client.originate(self.settings.callback_dial.format(number=row.number),
                                        channel_id=customer.channel_id, timeout_s=self.settings.callback_ring_s,
                                        app_args=[ARG_FOR_ROLE["customer"], str(leg.callback_id)])
        except AriError as exc:
            log_event(log, "callback_dial_failed", level=logging.ERROR, call=row.call_id, callback=row.callback_id,
                      error=str(exc)[:200])
            await self._attempt_failed(row, leg, Status.FAILED, f"customer not dialled: {exc.status or 'unreachable'}")
            return
        log_event(log, "callback_dialling", call=row.call_id, callback=row.callback_id, placement=leg.attempt)

    async def _customer_answered(self, leg: Leg) -> None:
        """The customer answered: into one mixing bridge with the agent (once: the status move is
        the claim), and the bridge greets them both."""
        customer, agent = leg.sibling("customer"), leg.sibling("agent")
        if not await self._db(lambda conn: store.move(conn, leg.callback_id, leg.attempt, [Status.DIALLING],
                                                      Status.CONNECTED)):
            await self._refuse(leg.channel_id, "not_dialling")
            return
        row = await self._db(lambda conn: store.get_callback(conn, leg.callback_id))
        assert row is not None
        try:
            await self.client.create_bridge(bridge_id(leg))
            await self.client.add_to_bridge(bridge_id(leg), [agent.channel_id, customer.channel_id])
        except AriError as exc:
            log_event(log, "callback_bridge_failed", level=logging.ERROR, call=row.call_id,
                      callback=row.callback_id, error=str(exc)[:200])
            await self._attempt_failed(row, leg, Status.FAILED, f"not bridged: {exc.status or 'unreachable'}")
            await self._drop_bridge(leg)
            return
        log_event(log, "callback_connected", call=row.call_id, callback=row.callback_id, placement=leg.attempt,
                  agent=row.agent)
        language = await self._db(lambda conn: store.call_language(conn, row.call_id)) or "zh"
        try:
            await self.client.play_on_bridge(bridge_id(leg), [Sound("callback_greeting", language).uri],
                                             greeting_id(leg))
        except AriError as exc:  # they talk without it
            log_event(log, "callback_greeting_failed", level=logging.WARNING, call=row.call_id,
                      callback=row.callback_id, error=str(exc)[:200])

    async def _leg_ended(self, leg: Leg, cause: int) -> None:
        """A leg is gone: end the attempt according to where the callback stood."""
        row = await self._db(lambda conn: store.get_callback(conn, leg.callback_id))
        if row is None or row.placements != leg.attempt or leg.role == "queue":
            return
        customer, agent = leg.sibling("customer"), leg.sibling("agent")
        if row.status == Status.CONNECTED:
            await self._hang_up(customer if leg.role == "agent" else agent)
            await self._drop_bridge(leg)
            if await self._db(lambda conn: store.move(conn, leg.callback_id, leg.attempt, [Status.CONNECTED],
                                                      Status.COMPLETED, detail=f"ended by the {leg.role}")):
                log_event(log, "callback_completed", call=row.call_id, callback=row.callback_id, agent=row.agent,
                          ended_by=leg.role)
        elif row.status == Status.QUEUED and leg.role == "agent":
            # The placeholder left the queue unanswered: no agent in time, or the queue refused it.
            await self._attempt_failed(row, leg, Status.FAILED, f"placeholder ended unanswered (cause {cause})")
        elif row.status == Status.DIALLING and leg.role == "agent":
            # The agent left while the customer's phone rang. Counted, so that a phone nobody answers
            # is not rung again and again behind impatient agents.
            await self._attempt_failed(row, leg, Status.FAILED, "the agent left before the customer answered")
        elif row.status == Status.DIALLING:
            result = attempt_result(cause)
            await self._attempt_failed(row, leg, result, f"customer {result} (cause {cause})")

    async def _attempt_failed(self, row: CallbackRow, leg: Leg, result: Status, detail: str) -> None:
        """The attempt is over without a conversation: the agent is freed, the callback retried or ended."""
        await self._hang_up(leg.sibling("agent"))
        await self._hang_up(leg.sibling("customer"))
        status = await self._db(lambda conn: store.fail_attempt(conn, row.callback_id, leg.attempt, result,
                                                                self.policy, detail=detail))
        if status is not None:
            log_event(log, "callback_attempt_failed", call=row.call_id, callback=row.callback_id, result=str(result),
                      then=str(status), attempts=row.attempts + 1)

    # --- after a (re)connection ------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Placements whose channels are gone (their server died) are placed again or closed."""
        settle = timedelta(seconds=2 * self.settings.ari_budget_s)  # a fresh claim may not have its channel yet
        rows = await self._db(lambda conn: store.open_callbacks(conn, older_than=settle))
        if not rows:
            return
        try:
            live = {str(c.get("id")) for c in await self.client.channels()}
        except AriError as exc:
            log_event(log, "callback_reconcile_failed", level=logging.ERROR, error=str(exc)[:200])
            return
        for row in rows:
            if await self._reconcile(row, live):
                log_event(log, "callback_reconciled", level=logging.WARNING, call=row.call_id,
                          callback=row.callback_id, was=str(row.status))
        self._wake.set()

    async def _reconcile(self, row: CallbackRow, live: set[str]) -> bool:
        """Close or re-place one open callback whose channels are gone; True if it was."""
        leg = Leg(row.callback_id, row.placements, "agent")
        customer = leg.sibling("customer")
        if row.status == Status.QUEUED and not {leg.channel_id, leg.sibling("queue").channel_id} & live:
            return await self._db(lambda conn: store.requeue(conn, row.callback_id, row.placements,
                                                             detail="placeholder lost"))
        if row.status == Status.DIALLING and customer.channel_id not in live:
            await self._hang_up(leg)
            return await self._db(lambda conn: store.requeue(conn, row.callback_id, row.placements,
                                                             detail="lost while dialling"))
        if row.status == Status.CONNECTED and not {leg.channel_id, customer.channel_id} <= live:
            await self._hang_up(leg)
            await self._hang_up(customer)
            await self._drop_bridge(leg)
            return await self._db(lambda conn: store.move(conn, row.callback_id, row.placements, [Status.CONNECTED],
                                                          Status.COMPLETED, detail="ended unobserved"))
        return False

    # --- helpers ---------------------------------------------------------------------------------
    async def _db(self, operation: Callable[[asyncpg.Connection], Awaitable[T]], *,
                  budget_s: float | None = None) -> T:
        return await on_connection(self.pool, budget_s or self.settings.db_budget_s, operation)

    async def _refuse(self, channel_id: str, reason: str) -> None:
        log_event(log, "callback_channel_refused", level=logging.WARNING, channel=channel_id, reason=reason)
        await self._hang_up_id(channel_id)

    async def _hang_up(self, leg: Leg) -> None:
        await self._hang_up_id(leg.channel_id)

    async def _hang_up_id(self, channel_id: str) -> None:
        await hang_up(self.client, channel_id, log=log, failed="callback_hangup_failed")

    async def _drop_bridge(self, leg: Leg) -> None:
        try:
            await self.client.destroy_bridge(bridge_id(leg))
        except AriNotFound:
            pass
        except AriError as exc:
            log_event(log, "callback_bridge_cleanup_failed", level=logging.WARNING, bridge=bridge_id(leg),
                      error=str(exc)[:200])
