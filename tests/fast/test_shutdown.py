"""A stop ends, whenever it comes. The faults suite's CI met a `hotline serve` that, stopped
right after its start, never exited: its change listener's first reload query answered at the
very moment it was cancelled, Python 3.11's `asyncio.wait_for` returned the answer and dropped
the cancellation, and the listener went back to listening while the server waited for it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from agi_app.db.pool import create_pool
from agi_app.serve.app import stop_all
from agi_app.serve.reloader import ChangeListener, MenuReloader
from tests.fast.conftest import Hotline
from tests.support.demo import demo_flows


class StoppedAsItAnswers:
    """The real pool, and one twist: the moment a query's answer is back, `stopping` is cancelled
    (set by the test) — the answer and the stop at the same instant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.stopping: asyncio.Task[None] | None = None
        self.answered = 0

    async def fetchrow(self, *args: Any) -> asyncpg.Record | None:
        row = await self._pool.fetchrow(*args)
        self.answered += 1
        assert self.stopping is not None
        self.stopping.cancel()
        return row


async def test_a_listener_stopped_as_its_reload_query_answers_ends(dsn: str) -> None:
    pool = await create_pool(dsn, budget_s=1.0)
    try:
        twisted = StoppedAsItAnswers(pool)
        flows = demo_flows()
        reloader = MenuReloader(twisted, lambda: flows, lambda _new: None,  # type: ignore[arg-type]
                                services=(), budget_s=1.0)
        listener = asyncio.create_task(ChangeListener(dsn, budget_s=1.0, reloader=reloader).run())
        twisted.stopping = listener
        done, _ = await asyncio.wait({listener}, timeout=5)
        assert done, "the listener lost its cancellation and went on listening"
        assert listener.cancelled() and twisted.answered == 1
    finally:
        await pool.close()


LONG_RUNNING = {"callbacks", "campaigns", "alerts", "change-listener"}


async def test_every_background_task_ends_at_a_stop(hotline: Hotline) -> None:
    """The long-running tasks end cancelled; one-shot work (agi-listen once listening, the
    orphan-journey closer once done) may have finished on its own first — without an error."""
    running = [t for t in hotline.server._tasks if not t.done()]
    assert {t.get_name() for t in running} >= LONG_RUNNING
    await hotline.stop()
    assert [t.get_name() for t in running if not t.done()] == []
    assert {t.get_name() for t in running if t.cancelled()} >= LONG_RUNNING
    assert [t.get_name() for t in running if not t.cancelled() and t.exception()] == []


async def test_a_task_that_lost_its_cancellation_is_named_and_stopped_again(
        caplog: pytest.LogCaptureFixture) -> None:
    swallowed = asyncio.Event()

    async def deaf_once() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # the bug this guards against: the first cancellation is lost
        await asyncio.Event().wait()

    task = asyncio.create_task(deaf_once(), name="deaf-once")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="hotline.serve"):
        await asyncio.wait_for(stop_all([task], within_s=0.1), 5)
    assert swallowed.is_set() and task.cancelled()
    assert "event=task_stuck task=deaf-once waited_s=0.1" in caplog.text
