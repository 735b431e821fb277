"""Writes journeys to PostgreSQL as they happen, off the call's path.

Calls enqueue small write operations (never waiting on the database); one writer task applies
them in order under a time budget. The queue is bounded: if PostgreSQL is down long enough to
fill it, the oldest information is kept and new writes are dropped and counted, while callers
keep being served.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import asyncpg

from agi_app.engine.journey import CallRecord, ServiceResult
from agi_app.logs import log_event

log = logging.getLogger("hotline.journey")

_Op = tuple[str, str, tuple[Any, ...]]  # (call_id, sql, args)


class PgJourneySink:
    def __init__(self, pool: asyncpg.Pool, *, budget_s: float = 1.0, capacity: int = 20_000) -> None:
        self._pool = pool
        self._budget = budget_s
        self._queue: asyncio.Queue[_Op | None] = asyncio.Queue(maxsize=capacity)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journey-writer")

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (within `timeout`), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.put(None), timeout)
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log_event(log, "journey_flush_timeout", level=logging.ERROR, pending=self._queue.qsize())
            self._task.cancel()

    async def flush(self) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        await self._queue.join()

    def _put(self, call_id: str, sql: str, *args: Any) -> None:
        try:
            self._queue.put_nowait((call_id, sql, args))
        except asyncio.QueueFull:
            self.dropped += 1
            log_event(log, "journey_dropped", level=logging.ERROR, call=call_id, dropped=self.dropped)

    async def _run(self) -> None:
        while True:
            op = await self._queue.get()
            try:
                if op is None:
                    return
                call_id, sql, args = op
                try:
                    await asyncio.wait_for(self._pool.execute(sql, *args), self._budget)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.failed += 1
                    log_event(log, "journey_write_failed", level=logging.WARNING, call=call_id,
                              error=type(exc).__name__)
            finally:
                self._queue.task_done()

    # --- JourneySink ---------------------------------------------------------------------
    def call_started(self, record: CallRecord) -> None:
        self._put(record.call_id,
                  "INSERT INTO calls (call_id, started_at, caller, dnis) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT (call_id) DO NOTHING",
                  record.call_id, record.started_at, record.caller, record.dnis)

    def call_identified(self, record: CallRecord) -> None:
        self._put(record.call_id,
                  "UPDATE calls SET customer_id = $2, segment = $3, language = $4, menu_version = $5"
                  " WHERE call_id = $1",
                  record.call_id, record.customer_id, record.segment, record.language, record.menu_version)

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        self._put(call_id, "INSERT INTO call_nodes (call_id, seq, node_id, entered_at) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT DO NOTHING", call_id, seq, node_id, at)

    def node_input(self, call_id: str, seq: int, masked_input: str, result: str) -> None:
        self._put(call_id, "UPDATE call_nodes SET input = $3, result = $4 WHERE call_id = $1 AND seq = $2",
                  call_id, seq, masked_input, result)

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        self._put(call_id, "INSERT INTO call_services (call_id, seq, service, result) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT DO NOTHING", call_id, seq, service, result)

    def call_ended(self, record: CallRecord, ended_at: datetime) -> None:
        self._put(record.call_id,
                  "UPDATE calls SET ended_at = $2, outcome = $3, transfer_target = $4, duration_ms = $5"
                  " WHERE call_id = $1",
                  record.call_id, ended_at, record.outcome, record.transfer_target, record.duration_ms)
