"""The queue tracker: completes each caller's `queue_legs` row from app_queue's AMI events (joined,
answered by whom after how long, talked how long, abandoned or timed out), and names the agent
who took a callback's placeholder.

It reads one AMI event subscription; each event is one upsert (`contact_centre.apply_leg_event`)
under the database budget, retried a few times with backoff while the failure is transient. A
write that still fails is logged and dropped — the tracker never stops for it, and the IVR never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from agi_app.ami.client import AmiClient
from agi_app.ami.events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
)
from agi_app.budget import backoff_s
from agi_app.centre.callbacks import Leg
from agi_app.centre.qa import recording_name
from agi_app.centre.queue_legs import LegEvent, group_of
from agi_app.db.failures import DB_FAILURES, is_transient
from agi_app.db.repositories import contact_centre as store
from agi_app.logs import log_event

log = logging.getLogger("hotline.queue_tracker")

#: The AMI events the tracker subscribes to.
TRACKED = ("QueueCallerJoin", "AgentConnect", "AgentComplete", "QueueCallerAbandon", "QueueCallerLeave")


def leg_event(event: AmiEvent, at: datetime) -> LegEvent | None:
    """What one AMI event says about a caller's leg in one of our queues; None for anything else."""
    if not isinstance(event, QueueCallerJoin | QueueCallerLeave | QueueCallerAbandon | AgentConnect | AgentComplete):
        return None
    group = group_of(event.queue)
    if group is None or not event.unique_id:
        return None
    if isinstance(event, AgentConnect):
        # the dialplan records every agent leg of our queues at the bridge (centre/qa.py)
        return LegEvent("connect", event.unique_id, group, at, agent=event.member_name or event.interface,
                        wait_s=event.hold_time_s, recording=_recording(event.unique_id, group))
    if isinstance(event, AgentComplete):
        return LegEvent("complete", event.unique_id, group, at, agent=event.member_name or event.interface,
                        wait_s=event.hold_time_s, talk_s=event.talk_time_s)
    if isinstance(event, QueueCallerAbandon):
        return LegEvent("abandon", event.unique_id, group, at, wait_s=event.hold_time_s)
    return LegEvent("join" if isinstance(event, QueueCallerJoin) else "leave", event.unique_id, group, at)


def _recording(call_id: str, group: str) -> str | None:
    """The recording's name for the leg; None for ids the dialplan could not have named a file by."""
    try:
        return recording_name(call_id, group)
    except ValueError:
        return None


class QueueTracker:
    def __init__(self, pool: asyncpg.Pool, *, budget_s: float, attempts: int = 3, first_backoff_s: float = 0.2,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.pool = pool
        self.budget_s = budget_s
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.clock = clock

    async def run(self, ami: AmiClient) -> None:
        """Follow the queue events until cancelled."""
        subscription = ami.subscribe(TRACKED, queue_size=10_000)
        try:
            async for event in subscription:
                await self.handle(event)
        finally:
            subscription.close()

    async def handle(self, event: AmiEvent) -> None:
        """Record one event (received now)."""
        leg = leg_event(event, self.clock())
        if leg is None:
            return
        placeholder = Leg.parse(leg.call_id)
        if placeholder is not None:  # a callback waiting in the caller's place, not a call
            if leg.kind == "connect" and leg.agent:
                agent = leg.agent
                await self._write(leg, lambda conn: store.set_agent(conn, placeholder.callback_id,
                                                                    placeholder.attempt, agent))
            return
        await self._write(leg, lambda conn: store.apply_leg_event(conn, leg))
        log_event(log, "queue_leg", call=leg.call_id, queue=leg.group, kind=leg.kind, agent=leg.agent,
                  wait_s=leg.wait_s, talk_s=leg.talk_s)

    async def _write(self, leg: LegEvent, operation: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(self.budget_s):
                    async with self.pool.acquire() as conn:
                        await operation(conn)
                return
            except DB_FAILURES as exc:
                if attempt == self.attempts or not is_transient(exc):
                    log_event(log, "queue_leg_write_failed", level=logging.ERROR, call=leg.call_id, queue=leg.group,
                              kind=leg.kind, error=type(exc).__name__, attempts=attempt)
                    return
                await asyncio.sleep(backoff_s(attempt, first_s=self.first_backoff_s, cap_s=2.0))
