"""The worker loops callbacks and campaigns run (agi_app/serve/workers.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agi_app.ari.events import AriEvent, ChannelDestroyed, ChannelInfo
from agi_app.serve.workers import claim_forever, follow_forever, offer


def destroyed(channel: str) -> ChannelDestroyed:
    return ChannelDestroyed(type="ChannelDestroyed", channel=ChannelInfo(id=channel))


async def test_a_failing_event_is_logged_and_the_next_one_still_handled(caplog: pytest.LogCaptureFixture) -> None:
    events: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=10)
    handled: list[str | None] = []
    second_done = asyncio.Event()

    async def handle(event: AriEvent) -> None:
        if event.channel_id == "bad":
            raise RuntimeError("boom")
        handled.append(event.channel_id)
        second_done.set()

    events.put_nowait(destroyed("bad"))
    events.put_nowait(destroyed("good"))
    with caplog.at_level(logging.ERROR, logger="test.workers"):
        async with asyncio.timeout(2), asyncio.TaskGroup() as tasks:
            loop = tasks.create_task(follow_forever(events, handle, log=logging.getLogger("test.workers"),
                                                    failed="thing_event_failed"))
            await second_done.wait()
            loop.cancel()
    assert handled == ["good"]
    [failure] = [r.getMessage() for r in caplog.records if "thing_event_failed" in r.getMessage()]
    assert "error=RuntimeError" in failure and "channel=bad" in failure and "boom" in failure


async def test_a_round_runs_again_when_woken_also_after_a_reported_failure() -> None:
    wake = asyncio.Event()
    started: asyncio.Queue[int] = asyncio.Queue()
    errors: list[Exception] = []
    rounds = 0

    async def claim_round() -> None:
        nonlocal rounds
        rounds += 1
        started.put_nowait(rounds)
        if rounds == 1:
            raise OSError("database away")

    async with asyncio.timeout(2), asyncio.TaskGroup() as tasks:
        # Polled once an hour: every round after the first comes from a wake-up.
        loop = tasks.create_task(claim_forever(claim_round, wake, 3600.0, errors=(OSError,), on_error=errors.append))
        assert await started.get() == 1
        wake.set()
        assert await started.get() == 2
        wake.set()
        assert await started.get() == 3
        loop.cancel()
    assert [type(e) for e in errors] == [OSError]


async def test_an_error_it_was_not_told_to_expect_ends_the_loop() -> None:
    async def claim_round() -> None:
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        async with asyncio.timeout(2):
            await claim_forever(claim_round, asyncio.Event(), 3600.0, errors=(OSError,), on_error=lambda exc: None)


async def test_rounds_are_polled_when_nothing_wakes_them() -> None:
    polled = asyncio.Event()
    rounds = 0

    async def claim_round() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            polled.set()

    async with asyncio.timeout(2), asyncio.TaskGroup() as tasks:
        loop = tasks.create_task(claim_forever(claim_round, asyncio.Event(), 0.01, errors=(), on_error=lambda e: None))
        await polled.wait()
        loop.cancel()


def test_an_event_offered_to_a_full_queue_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    events: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=1)
    log = logging.getLogger("test.workers")
    with caplog.at_level(logging.ERROR, logger="test.workers"):
        offer(events, destroyed("first"), log=log, dropped="thing_event_dropped")
        offer(events, destroyed("second"), log=log, dropped="thing_event_dropped")
    assert events.qsize() == 1 and events.get_nowait().channel_id == "first"
    [drop] = [r.getMessage() for r in caplog.records if "thing_event_dropped" in r.getMessage()]
    assert "channel=second" in drop and "kind=ChannelDestroyed" in drop
