"""Writes journeys to PostgreSQL as they happen, off the call's path.

Calls enqueue small write operations (never waiting on the database); one writer task applies
them in order under a time budget. Every operation is idempotent (inserts ignore conflicts,
updates set values), so a write that failed or timed out is retried with backoff. The queue is
bounded: if PostgreSQL is down long enough to fill it, the oldest information is kept and new
writes are dropped and counted, while callers keep being served.
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
    def __init__(self, pool: asyncpg.Pool, *, budget_s: float = 1.0, capacity: int = 20_000,
                 attempts: int = 6) -> None:
        self._pool = pool
        self._budget = budget_s
        self._attempts = attempts
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
                await self._write(*op)
            finally:
                self._queue.task_done()

    async def _write(self, call_id: str, sql: str, args: tuple[Any, ...]) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await asyncio.wait_for(self._pool.execute(sql, *args), self._budget)
                return
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                error = type(exc).__name__
            if attempt < self._attempts:
                await asyncio.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)))
        self.failed += 1
        log_event(log, "journey_write_failed", level=logging.ERROR, call=call_id, error=error,
                  attempts=self._attempts)

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

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        self._put(call_id, "INSERT INTO call_inputs (call_id, seq, node_seq, input, result) VALUES ($1, $2, $3, $4, $5)"
                  " ON CONFLICT DO NOTHING", call_id, seq, node_seq, masked_input, result)

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        self._put(call_id, "INSERT INTO call_services (call_id, seq, service, result) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT DO NOTHING", call_id, seq, service, result)

    def survey_answer(self, call_id: str, node_id: str, score: int) -> None:
        self._put(call_id, "INSERT INTO survey_answers (call_id, node_id, score) VALUES ($1, $2, $3)"
                  " ON CONFLICT DO NOTHING", call_id, node_id, score)

    def call_ended(self, record: CallRecord, ended_at: datetime) -> None:
        self._put(record.call_id,
                  "UPDATE calls SET ended_at = $2, outcome = $3, transfer_target = $4, duration_ms = $5"
                  " WHERE call_id = $1",
                  record.call_id, ended_at, record.outcome, record.transfer_target, record.duration_ms)
