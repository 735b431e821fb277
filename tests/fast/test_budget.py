"""Time budgets end at the budget: `within` never waits for a late call's cancellation, and the
late task stays owned until it ends. The finding it fixes: a caller looked up through a slow
database (asyncpg cancels a query in flight by resetting the connection, as slow as the query)
waited seconds past a 300 ms budget."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agi_app.budget import abandoned, backoff_s, settle, within
from agi_app.centre.advisor import QueueAdvisor
from agi_app.centre.queues import QueueSnapshot
from agi_app.db.pool import create_pool
from agi_app.db.repositories import customers
from agi_app.directory.service import Directory
from agi_app.flows.queueing import QueueAdviceUnavailable
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, settings_for, start_hotline
from tests.fast.flowkit import customer, doc, run_flow
from tests.support.demo import KNOWN_ZH, MAIN_ZH
from tests.support.proxy import TcpProxy

#: Generous on a loaded machine, yet far below the seconds a waited-for cancellation takes.
MARGIN_S = 1.0


async def stubborn(seen: list[str], *, holds_s: float = 1.5, then: BaseException | None = None,
                   result: str | None = None) -> str:
    """Work that takes `holds_s` to let go once cancelled, then ends as told (re-raising the
    cancellation by default), as an asyncpg query does through a slow database."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        seen.append("cancelled")
        await asyncio.sleep(holds_s)
        if result is not None:
            return result
        raise then or asyncio.CancelledError() from None
    return "never"


@pytest_asyncio.fixture
async def unretrieved() -> list[dict[str, Any]]:
    """What the loop's exception handler is told ("Task exception was never retrieved", ...)."""
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))
    return reported


async def test_the_result_and_the_exception_pass_through() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    async def fails() -> int:
        raise LookupError("no such row")

    assert await within(1.0, answer(), what="answer") == 42
    with pytest.raises(LookupError, match="no such row"):
        await within(1.0, fails(), what="fails")
    assert abandoned() == 0


async def test_times_out_at_the_budget_though_the_work_resists_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hotline.budget")
    seen: list[str] = []
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(0.1, stubborn(seen, holds_s=1.5), what="lookup", call_id="c-1")
    assert time.monotonic() - started < 0.1 + 0.5, "answered at the budget, not after the cancellation"
    await asyncio.sleep(0)
    assert seen == ["cancelled"], "the late work was cancelled"
    assert abandoned() == 1, "and is owned while it lets go"
    assert await settle(5.0) == 0
    assert abandoned() == 0
    assert "event=late_cancelled call=c-1 what=lookup" in caplog.text


async def test_a_late_failure_is_retrieved_and_logged_never_left_unretrieved(
        unretrieved: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hotline.budget")
    seen: list[str] = []
    with pytest.raises(TimeoutError):
        await within(0.05, stubborn(seen, holds_s=0.1, then=ConnectionResetError()), what="calendar")
    assert await settle(5.0) == 0
    gc.collect()  # an unretrieved exception is reported when its task is collected
    await asyncio.sleep(0)
    assert unretrieved == []
    assert "event=late_failed what=calendar error=ConnectionResetError" in caplog.text


async def test_work_done_after_its_budget_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The caller was given the fallback, yet the work happened: worth a look."""
    seen: list[str] = []
    with pytest.raises(TimeoutError):
        await within(0.05, stubborn(seen, holds_s=0.1, result="filed"), what="complaint", call_id="c-2")
    await settle(5.0)
    assert [r.levelname for r in caplog.records if "event=late_result call=c-2 what=complaint" in r.message] \
        == ["WARNING"]


async def test_a_cancelled_caller_returns_at_once_and_the_work_is_cancelled() -> None:
    seen: list[str] = []
    caller = asyncio.create_task(within(30.0, stubborn(seen, holds_s=1.5), what="service"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert time.monotonic() - started < 0.5, "the hung-up caller did not wait for the work to let go"
    assert seen == ["cancelled"] and abandoned() == 1
    assert await settle(5.0) == 0


async def test_settle_reports_what_is_still_running() -> None:
    seen: list[str] = []
    with pytest.raises(TimeoutError):
        await within(0.01, stubborn(seen, holds_s=1.0), what="slow")
    assert await settle(0.05) == 1
    assert await settle(5.0) == 0
    assert abandoned() == 0


# ------------------------------------------------------------------------------ its users


async def test_a_process_service_past_its_timeout_reports_what_really_happened() -> None:
    """Process services are the exception to `within`: a money move cancelled at its timeout while
    its commit is on the way must be reported as done (ok), not "failed" — the caller would try
    again. The runner waits for the cancelled service to settle."""
    seen: list[str] = []

    async def service(call: ServiceCall) -> ServiceOutcome:
        return ServiceOutcome(await stubborn(seen, holds_s=0.3, result="ok"))  # committed meanwhile

    registry = ServiceRegistry()
    registry.register("transfer", service)
    bye = {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}
    nodes = {"p": {"type": "process", "service": "transfer", "params": {"timeout": 0.2}, "next": "done",
                   "on_failed": "failed"}, "done": bye, "failed": bye}
    record, _, _, _ = await run_flow(doc(nodes, start="p"), services=registry, who=customer())
    assert seen == ["cancelled"]
    assert record.path == ["p", "done"] and record.services == [("transfer", "ok")]


class LiveQueue:
    """Queue state answered at once, or (`stubborn`) never, and slow to let go when cancelled."""

    def __init__(self, *, stubborn: bool = False) -> None:
        self.stubborn = stubborn
        self.seen: list[str] = []

    async def snapshot(self, queue: str) -> QueueSnapshot:
        if self.stubborn:
            await stubborn(self.seen, holds_s=3.0)
        return QueueSnapshot(queue, asterisk_talktime_s=120)


async def test_queue_advice_is_given_up_at_its_budget_though_its_sources_are_slow_to_let_go() -> None:
    history_seen: list[str] = []

    async def slow_history(group: str) -> list[int]:
        await stubborn(history_seen, holds_s=3.0)
        return [60]

    started = time.monotonic()
    estimate = await QueueAdvisor(LiveQueue(), budget_s=0.2, recent_talk_times=slow_history).estimate("general")
    assert time.monotonic() - started < 0.2 + MARGIN_S, "the history's cancellation was waited for"
    assert estimate.handle_s == 120, "Asterisk's talk time stood in for the history"
    state = LiveQueue(stubborn=True)
    started = time.monotonic()
    with pytest.raises(QueueAdviceUnavailable):
        await QueueAdvisor(state, budget_s=0.2).estimate("general")
    assert time.monotonic() - started < 0.2 + MARGIN_S, "the live state's cancellation was waited for"
    await asyncio.sleep(0)  # the cancellation reaches the abandoned snapshot
    assert history_seen == state.seen == ["cancelled"]
    await settle(10.0)


# ------------------------------------------------------------------------------ the finding


async def test_directory_through_a_slow_database_answers_at_its_budget(dsn: str, db_proxy: TcpProxy) -> None:
    await import_demo_customers(dsn)
    pool = await create_pool(db_proxy.through(dsn), budget_s=2.0)
    directory = Directory(lambda phone: customers.find_by_phone(pool, phone), budget_s=0.3)
    try:
        assert (await directory.identify(KNOWN_ZH)).customer is not None  # the pool's connection is open
        db_proxy.delay = 2.0  # a query in flight now: its cancellation resets the connection, slowly
        started = time.monotonic()
        identity = await directory.identify(KNOWN_ZH, call_id="slow-1")
        elapsed = time.monotonic() - started
    finally:
        db_proxy.delay = 0.0
        await settle(30.0)
        await pool.close()
    assert identity.degraded and identity.customer is None
    assert elapsed < 0.3 + MARGIN_S, f"the caller waited {elapsed:.1f}s for the cancelled query"


@pytest_asyncio.fixture
async def slow_hotline(fake_ari: FakeAri, dsn: str, db_proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Hotline]:
    """A hotline whose database goes through `db_proxy` (lookup and call-start budgets 300 ms)."""
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, db_proxy.through(dsn), tmp_path, lookup_budget_ms=300, call_start_budget_ms=300)
    line = await start_hotline(fake_ari, dsn, settings)
    yield line
    db_proxy.delay = 0.0
    await line.stop()


async def test_a_caller_gets_the_general_menu_at_the_budget_when_queries_are_in_flight(
        slow_hotline: Hotline, db_proxy: TcpProxy) -> None:
    hotline = slow_hotline
    first = await hotline.call(KNOWN_ZH)  # opens the pool's connections: the next call's queries run at once
    await hotline.heard(first, MAIN_ZH)
    await hotline.ari.hangup(first)
    await hotline.wait_ended(first)
    db_proxy.delay = 2.0
    started = time.monotonic()
    call = await hotline.call(KNOWN_ZH)
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)), timeout=15)
    elapsed = time.monotonic() - started
    assert hotline.played(call)[0] == "sound:hotline/zh/welcome", "treated as unknown: no name"
    assert elapsed < 0.3 + MARGIN_S, f"the caller waited {elapsed:.1f}s in silence for the slow database"


def test_backoff_doubles_from_the_first_pause_up_to_the_cap() -> None:
    pauses = [backoff_s(retry, first_s=0.5, cap_s=10.0) for retry in range(1, 8)]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_s(10_000, first_s=0.05, cap_s=2.0) == 2.0  # no overflow however long the outage


def test_jittered_backoff_stays_between_half_and_all_of_the_pause() -> None:
    pauses = {backoff_s(3, first_s=0.5, cap_s=10.0, jitter=True) for _ in range(200)}
    assert all(1.0 <= pause <= 2.0 for pause in pauses)
    assert len(pauses) > 100, "clients that lost one peer together must not come back in step"
