"""Writes journeys to PostgreSQL as they happen, off the call's path — and loses none.

Calls enqueue small write operations (never waiting on the database or the disk); one writer task
applies those waiting in memory together — one transaction, one statement per kind of operation
(two to eight round trips for up to `_BATCH_MAX` operations, not one acquire and statement each) —
under a time budget; a spill file is replayed one operation at a time. Every operation is idempotent
(inserts ignore conflicts, updates set values), so one that may or may not have been applied is
simply applied again.

- Order: batches are applied strictly in the order they were made, wherever they waited (memory or
  a spill file), and within a batch a call's row goes first, so a call's updates and child rows
  never go before its `calls` row. One order for all calls is the simple way to get that, and costs
  little: what makes a write fail transiently — the database gone, slow or overloaded — holds up
  every call anyway.
- Only transient errors (connection lost, timeout, too many connections, serialization failure,
  deadlock, shutdown or start-up of the server) are retried, with capped backoff. Any other error
  will never succeed: it is logged once with the call and the operation, and the writer moves on.
- When the database has been failing for `retry_for_s`, when the bounded in-memory queue fills,
  or at shutdown with writes pending, the pending operations are appended to a spill file
  (`journey_spill`, written in a thread) and replayed in order as soon as the database answers —
  by this process, or by the next one started with the same folder. A file is removed only once
  fully applied.
- Operations are lost only if the spill file cannot be written (disk full) or no spill folder is
  configured: logged loudly with a count (`dropped`).
- A spill file outlives the release that wrote it: an operation's name stands for its argument
  list, and every name ever spilled is applied — older ones upgraded (`_UPGRADES`). A line this
  release cannot apply (unreadable, a newer release's name, other arguments than its name stands
  for) is set aside in the spill folder's rejected file, logged once (`rejected`); the rest goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from agi_app.budget import backoff_s
from agi_app.config import DEFAULTS
from agi_app.db.failures import is_transient
from agi_app.db.journey_spill import SpillOp, SpillStore, encode
from agi_app.engine.journey import SELF_SERVICE, JourneyRecord, QueueLeg, SurveyContext
from agi_app.flows.services import ServiceResult
from agi_app.flows.survey import NoAnswer
from agi_app.logs import log_event

log = logging.getLogger("hotline.journey")

T = TypeVar("T")

_SQL = {
    "call_started_v2": "INSERT INTO calls (call_id, started_at, caller, dnis, asterisk) VALUES ($1, $2, $3, $4, $5)"
                       " ON CONFLICT (call_id) DO NOTHING",
    "call_identified": "UPDATE calls SET customer_id = $2, segment = $3, language = $4, menu_version = $5"
                       " WHERE call_id = $1",
    "node_entered": "INSERT INTO call_nodes (call_id, seq, node_id, entered_at) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT DO NOTHING",
    "node_input": "INSERT INTO call_inputs (call_id, seq, node_seq, input, result, at) VALUES ($1, $2, $3, $4, $5, $6)"
                  " ON CONFLICT DO NOTHING",
    "service_reached_v2": "INSERT INTO call_services (call_id, seq, service, result, at) VALUES ($1, $2, $3, $4, $5)"
                          " ON CONFLICT DO NOTHING",
    "survey_answer_v2": "INSERT INTO survey_answers (call_id, node_id, score, at, result, no_answer, kind, queue, agent)"
                        " VALUES ($1, $2, $3, $4, CASE WHEN $3::integer IS NULL THEN 'no_answer' ELSE 'ok' END,"
                        " $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    # The first half of the leg; the AMI queue tracker owns the other columns and may have written
    # first: only ours are set, and a result it already recorded stays.
    "queue_leg": "INSERT INTO queue_legs (call_id, queue, announced_position, announced_wait_s, asterisk_wait_s, result)"
                 " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id, queue) DO UPDATE SET"
                 " announced_position = EXCLUDED.announced_position, announced_wait_s = EXCLUDED.announced_wait_s,"
                 " asterisk_wait_s = EXCLUDED.asterisk_wait_s,"
                 " result = COALESCE(queue_legs.result, EXCLUDED.result)",
    "call_ended": "UPDATE calls SET ended_at = $2, outcome = $3, transfer_target = $4, duration_ms = $5"
                  " WHERE call_id = $1",
}
_ARITY = {name: max(int(n) for n in re.findall(r"\$(\d+)", sql)) for name, sql in _SQL.items()}  # arguments each takes

# Names earlier releases spilled, each turned into its successor's arguments (chains are followed):
# spill files are replayed after an upgrade. To change an operation's arguments, give it a new name
# (_v2, _v3, ...) in `_SQL` and add its old name here — never reuse a name for other arguments.
_UPGRADES: dict[str, Callable[..., SpillOp]] = {
    # before migration 015 (no Asterisk): a journey nobody can tell the Asterisk of is never closed as an orphan
    "call_started": lambda call_id, started_at, caller, dnis: SpillOp(
        "call_started_v2", (call_id, started_at, caller, dnis, None)),
    # before migration 009 (no time): a NULL `at` leaves the row out of time to service
    "service_reached": lambda call_id, seq, service, result: SpillOp(
        "service_reached_v2", (call_id, seq, service, result, None)),
    # before migration 008: a flow's survey node, always answered 1-5 (result ok follows from the score)
    "survey_answer": lambda call_id, node_id, score, at: SpillOp(
        "survey_answer_v2", (call_id, node_id, score, at, None, SELF_SERVICE.kind, None, None)),
}

_BACKOFF_FIRST_S, _BACKOFF_CAP_S = 0.05, 2.0
_REPLAY_CHUNK = 500
_BATCH_MAX = 200  # operations written together from memory (one transaction, one statement per kind)


class _Transient(Exception):
    """The database did not take a write this time; the same write is due again."""


class UnknownShape(ValueError):
    """An operation this release cannot apply: `unknown_op` (a name it never wrote) or
    `unknown_shape` (not the arguments its name stands for)."""


def upgraded(op: SpillOp) -> SpillOp:
    """`op` as one of `_SQL`'s operations, upgraded if an earlier release wrote it."""
    while op.name not in _SQL:
        upgrade = _UPGRADES.get(op.name)
        if upgrade is None:
            raise UnknownShape("unknown_op")
        try:
            op = upgrade(*op.args)
        except TypeError:  # another number of arguments
            raise UnknownShape("unknown_shape") from None
    if len(op.args) != _ARITY[op.name]:
        raise UnknownShape("unknown_shape")
    return op


@dataclass
class _SpillFile:
    path: Path
    offset: int = 0  # bytes already applied (or skipped) by this process
    line: int = 0
    applied: int = 0
    skipped: int = 0


class PgJourneySink:
    def __init__(self, pool: asyncpg.Pool, *, budget_s: float = DEFAULTS.db_budget_s, spill_dir: Path | None = None,
                 retry_for_s: float = DEFAULTS.journey_retry_s, capacity: int = DEFAULTS.journey_queue_max,
                 asterisk: str | None = None) -> None:
        self._pool = pool
        self._asterisk = asterisk  # which Asterisk the calls are on (`ari.client.asterisk_identity`)
        self._budget = budget_s
        self._retry_for = retry_for_s
        self._capacity = capacity
        self._store = SpillStore(spill_dir) if spill_dir is not None else None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="journey-spill")  # one thread: file work in order
        self._mem: deque[SpillOp] = deque()  # after everything in `_files`
        self._files: deque[_SpillFile] = deque()  # spilled, oldest first
        self._appending: _SpillFile | None = None  # the newest file, while spills still go into it
        self._spills: set[asyncio.Future[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._down_since: float | None = None
        self._failures = 0  # in a row
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # lost: could not be spilled
        self.failed = 0  # refused by the database for good
        self.rejected = 0  # not applicable by this release: set aside on disk
        self.spilled = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journey-writer")
        self._task.add_done_callback(_report_crash)

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is pending within `timeout`; whatever the database cannot take now is spilled
        to disk (fsync'ed) for the next start. Then stop."""
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                log_event(log, "journey_flush_timeout", level=logging.ERROR, pending=len(self._mem))
                self._task.cancel()
                await asyncio.wait({self._task})
        await self._spill_now("shutdown")  # what the writer did not get to (it keeps its place in order)
        if self._spills:
            await asyncio.wait(set(self._spills))
        if self._store is not None:
            await self._in_thread(self._store.close)
        self._io.shutdown(wait=False)

    async def flush(self) -> None:
        """Wait until everything enqueued so far is in PostgreSQL or refused by it for good (tests,
        tools); while the database is down, that is when it is back."""
        await self._idle.wait()

    @property
    def backlog(self) -> int:
        """Writes waiting in memory (the server's metrics read it)."""
        return len(self._mem)

    @property
    def spill_files(self) -> int:
        """Spill files waiting to be replayed (their writes are safe on disk, just not in PostgreSQL yet)."""
        return len(self._files)

    def _put(self, name: str, *args: Any) -> None:
        if self._store is None and len(self._mem) >= self._capacity:
            self.dropped += 1
            log_event(log, "journey_dropped", level=logging.ERROR, call=args[0], dropped=self.dropped)
            return
        self._mem.append(SpillOp(name, args))
        self._idle.clear()
        self._wake.set()
        if len(self._mem) >= self._capacity:
            future = self._spill("queue_full")
            if future is not None:
                self._spills.add(future)
                future.add_done_callback(self._spills.discard)

    # --- the writer task -----------------------------------------------------------------
    async def _run(self) -> None:
        await self._claim_leftovers()
        while True:
            try:
                if self._files:
                    if self._stopping.is_set():  # memory stays behind the files: on disk too
                        return
                    await self._replay(self._files[0])
                elif self._mem:
                    batch = list(islice(self._mem, _BATCH_MAX))
                    await self._execute_batch(batch)
                    if self._mem and self._mem[0] is batch[0]:  # not spilled meanwhile
                        for _ in batch:
                            self._mem.popleft()
                elif self._stopping.is_set():
                    return
                else:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
            except _Transient as exc:
                if await self._outage(exc):
                    return

    async def _execute(self, op: SpillOp) -> bool:
        """Apply `op`: True if written, False if refused for good or set aside (logged); _Transient to retry."""
        try:
            op = upgraded(op)
        except UnknownShape as exc:
            await self._set_aside(encode(op), str(exc), call=op.args[0] if op.args else None, op=op.name)
            return False
        sql = _SQL[op.name]
        try:
            # asyncio.timeout, not budget.within: it waits for a cut write to end (done or rolled
            # back), so its retry never runs beside it (the writer is in the background: no caller waits here)
            async with asyncio.timeout(self._budget):
                await self._pool.execute(sql, *op.args)
        except Exception as exc:
            if is_transient(exc):
                raise _Transient(type(exc).__name__) from exc
            self._database_answered()
            self._give_up(op, type(exc).__name__, getattr(exc, "sqlstate", None))
            return False
        self._database_answered()
        return True

    async def _execute_batch(self, batch: list[SpillOp]) -> None:
        """Apply the operations waiting in memory together: one transaction, one statement per kind
        of operation; _Transient to retry them all. Kinds go in `_SQL`'s order, a call's row first:
        every kind commutes with the ones after it (inserts of their own rows, updates of their own
        columns) except that its rows need the call's row, and operations of one kind keep theirs."""
        if len(batch) == 1:
            await self._execute(batch[0])
            return
        grouped: dict[str, list[SpillOp]] = {}
        for op in batch:
            try:
                op = upgraded(op)
            except UnknownShape:
                await self._execute(op)  # set aside (memory holds only this release's own)
                continue
            grouped.setdefault(op.name, []).append(op)
        await self._apply([(name, grouped[name]) for name in _SQL if name in grouped])

    async def _apply(self, groups: list[tuple[str, list[SpillOp]]]) -> None:
        """Write `groups` in one transaction. One the database refuses for good (a constraint, a
        bad value) is given up — if it held more than one operation, each is tried alone first, so
        only the refused ones are — after the groups before it are written, then the rest go on."""
        while groups:
            refused = await self._write_groups(groups)
            if refused is None:
                return
            at, exc = refused
            await self._apply(groups[:at])
            name, ops = groups[at]
            if len(ops) == 1:
                self._give_up(ops[0], type(exc).__name__, getattr(exc, "sqlstate", None))
            else:
                for op in ops:
                    await self._execute(op)
            groups = groups[at + 1:]

    async def _write_groups(self, groups: list[tuple[str, list[SpillOp]]]) -> tuple[int, Exception] | None:
        """None once written; else which group the database refused for good, and why."""
        at = 0

        async def write() -> None:
            nonlocal at
            async with self._pool.acquire() as conn, conn.transaction():
                for at, (name, ops) in enumerate(groups):  # noqa: B007 - `at` says which one failed
                    await conn.executemany(_SQL[name], [op.args for op in ops])

        try:
            async with asyncio.timeout(self._budget):  # as in `_execute`: waits for a cut write to end
                await write()
        except Exception as exc:
            if is_transient(exc):
                raise _Transient(type(exc).__name__) from exc
            self._database_answered()
            return at, exc
        self._database_answered()
        return None

    async def _set_aside(self, raw: bytes, reason: str, **about: object) -> None:
        """Keep a spill line this release cannot apply for one that can; lost only if it cannot be kept."""
        if self._store is None:  # an operation from memory: a release always knows its own
            self._lost(1, reason, None, "no spill folder")
            return
        try:
            path = await self._in_thread(self._store.set_aside, raw)
        except OSError as exc:
            self._lost(1, reason, None, exc.strerror or type(exc).__name__)
            return
        self.rejected += 1
        log_event(log, "journey_set_aside", level=logging.ERROR, **about, reason=reason, file=path,
                  rejected=self.rejected)

    def _give_up(self, op: SpillOp, error: str, sqlstate: str | None) -> None:
        self.failed += 1
        log_event(log, "journey_write_failed", level=logging.ERROR, call=op.args[0] if op.args else None,
                  op=op.name, error=error, sqlstate=sqlstate)

    async def _outage(self, exc: _Transient) -> bool:
        """Retry later, spilling once the database has been failing too long; True when stopping."""
        now = asyncio.get_running_loop().time()
        self._failures += 1
        if self._down_since is None:
            self._down_since = now
            log_event(log, "journey_db_unavailable", level=logging.WARNING, error=str(exc), pending=len(self._mem))
        if self._stopping.is_set():
            await self._spill_now("shutdown")
            return True
        if self._store is not None and now - self._down_since >= self._retry_for:
            await self._spill_now("database_down")
        delay = backoff_s(self._failures, first_s=_BACKOFF_FIRST_S, cap_s=_BACKOFF_CAP_S)
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            pass
        return False

    def _database_answered(self) -> None:
        self._failures = 0
        if self._down_since is not None:
            log_event(log, "journey_db_back", down_s=round(asyncio.get_running_loop().time() - self._down_since, 1),
                      pending=len(self._mem), spilled_files=len(self._files))
            self._down_since = None

    # --- spilling and replaying ----------------------------------------------------------
    def _spill(self, reason: str) -> asyncio.Future[None] | None:
        """Move everything in memory to the end of the newest spill file (written in the thread)."""
        if not self._mem:
            return None
        batch = list(self._mem)
        self._mem.clear()
        if self._store is None:
            self._lost(len(batch), reason, None, "no spill folder")
            return None
        if self._appending is None:
            self._appending = _SpillFile(self._store.new_path())
            self._files.append(self._appending)
        target = self._appending.path
        try:
            future = asyncio.wrap_future(self._io.submit(self._store.append, target, batch))
        except RuntimeError:  # written to after close(): its thread is gone
            self._lost(len(batch), reason, target, "writer closed")
            return None
        future.add_done_callback(partial(self._spill_done, target, len(batch), reason))
        return future

    async def _spill_now(self, reason: str) -> None:
        future = self._spill(reason)
        if future is not None:
            await asyncio.wait({future})

    def _spill_done(self, path: Path, count: int, reason: str, future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is None:
            self.spilled += count
            log_event(log, "journey_spilled", level=logging.WARNING, count=count, file=path, reason=reason)
        else:
            self._lost(count, reason, path, getattr(error, "strerror", None) or type(error).__name__)

    def _lost(self, count: int, reason: str, path: Path | None, error: str) -> None:
        self.dropped += count
        log_event(log, "journey_lost", level=logging.ERROR, count=count, dropped=self.dropped, reason=reason,
                  file=path, error=error)

    async def _claim_leftovers(self) -> None:
        if self._store is None:
            return
        try:
            claimed, refused = await self._in_thread(self._store.claim_leftovers)
        except OSError as exc:
            log_event(log, "journey_spill_unavailable", level=logging.ERROR, folder=self._store.folder,
                      error=exc.strerror or type(exc).__name__)
            return
        for path, reason in refused:
            log_event(log, "journey_spill_file_left", level=logging.WARNING, file=path, reason=reason)
        self._files.extendleft(_SpillFile(path) for path in reversed(claimed))  # earlier runs' calls first
        if claimed:
            log_event(log, "journey_spill_found", files=len(claimed), folder=self._store.folder)

    async def _replay(self, spill: _SpillFile) -> None:
        """Apply a spill file from where this process left it, then remove it."""
        assert self._store is not None
        if spill is self._appending:
            self._appending = None  # sealed: later spills start a new file, after this one
        try:
            while entries := await self._in_thread(self._store.read, spill.path, spill.offset, spill.line,
                                                   _REPLAY_CHUNK):
                for entry in entries:
                    if entry.problem == "corrupt":
                        await self._set_aside(entry.raw, "corrupt", spill=spill.path, line=entry.line)
                    elif entry.op is None:
                        spill.skipped += 1
                        log_event(log, "journey_spill_line_skipped", level=logging.WARNING, file=spill.path,
                                  line=entry.line, reason=entry.problem)
                    elif await self._execute(entry.op):
                        spill.applied += 1
                    spill.offset, spill.line = entry.end, entry.line
            await self._in_thread(self._store.remove, spill.path)
        except OSError as exc:  # unreadable: leave it for a human rather than block every later journey
            log_event(log, "journey_spill_unreadable", level=logging.ERROR, file=spill.path,
                      error=exc.strerror or type(exc).__name__, applied=spill.applied)
        else:
            log_event(log, "journey_replayed", count=spill.applied, skipped=spill.skipped, file=spill.path)
        self._files.popleft()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._io.submit(fn, *args))

    # --- JourneySink ---------------------------------------------------------------------
    def call_started(self, record: JourneyRecord) -> None:
        self._put("call_started_v2", record.call_id, record.started_at, record.caller, record.dnis, self._asterisk)

    def call_identified(self, record: JourneyRecord) -> None:
        self._put("call_identified", record.call_id, record.customer_id, record.segment, record.language,
                  record.menu_version)

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        self._put("node_entered", call_id, seq, node_id, at)

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        self._put("node_input", call_id, seq, node_seq, masked_input, result, datetime.now(UTC))

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        self._put("service_reached_v2", call_id, seq, service, result, datetime.now(UTC))

    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        self._put("survey_answer_v2", call_id, node_id, score, datetime.now(UTC), no_answer, context.kind,
                  context.queue, context.agent)

    def queue_leg(self, call_id: str, leg: QueueLeg) -> None:
        self._put("queue_leg", call_id, leg.queue, leg.announced_position, leg.announced_wait_s, leg.asterisk_wait_s,
                  leg.result)

    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None:
        self._put("call_ended", record.call_id, ended_at, record.outcome, record.transfer_target,
                  record.duration_ms)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log_event(log, "journey_writer_crashed", level=logging.CRITICAL, error=type(task.exception()).__name__)
