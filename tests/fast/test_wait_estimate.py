"""The wait estimate (queue-length estimator) with known numbers, and the advisor's budgets and
fallbacks around the live queue state, the handle-time history and the callback book."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from agi_app.centre.advisor import QueueAdvisor, RecentTalkTimes
from agi_app.centre.estimate import estimate_wait, mean_handle_time
from agi_app.centre.queues import QueueSnapshot
from agi_app.flows.queueing import QueueAdvice, QueueAdviceUnavailable
from tests.support.queue_state import StubState, agent, snapshot


@pytest.mark.parametrize(("snap", "position", "wait_s"), [
    # two agents on calls, three callers waiting: the 4th caller waits for 4 agents' releases at 2 per AHT
    (snapshot(agent(1, busy=True), agent(2, busy=True), waiting=3), 4, 240),
    # one agent on a call, nobody waiting: next, one AHT
    (snapshot(agent(1, busy=True)), 1, 120),
    # three agents busy, five waiting: 6/3 × 120
    (snapshot(agent(1, busy=True), agent(2, busy=True), agent(3, busy=True), waiting=5), 6, 240),
    # one of three agents free, two waiting: the free agent takes the first, (3 - 1)/3 × 120 = 80
    (snapshot(agent(1), agent(2, busy=True), agent(3, busy=True), waiting=2), 3, 80),
    # a free agent and nobody waiting: no wait at all
    (snapshot(agent(1), agent(2, busy=True)), 1, 0),
    # a paused agent does not work: one busy agent counts, 3/1 × 120
    (snapshot(agent(1, busy=True), agent(2, paused=True), waiting=2), 3, 360),
    # an unreachable agent does not either
    (snapshot(agent(1, busy=True), agent(2, status="unavailable"), waiting=1), 2, 240),
    # nobody logged in and unpaused: no number to give
    (snapshot(agent(1, paused=True), waiting=4), 5, None),
    (snapshot(), 1, None),
])
def test_the_queue_length_estimate(snap: QueueSnapshot, position: int, wait_s: int | None) -> None:
    estimate = estimate_wait(snap, handle_s=120)
    assert (estimate.position, estimate.wait_s) == (position, wait_s)


def test_asterisks_figure_is_its_queue_wide_holdtime_whatever_the_position() -> None:
    near = estimate_wait(snapshot(agent(1, busy=True), holdtime=95), handle_s=120)
    far = estimate_wait(snapshot(agent(1, busy=True), waiting=9, holdtime=95), handle_s=120)
    assert near.asterisk_wait_s == far.asterisk_wait_s == 95
    assert (near.wait_s, far.wait_s) == (120, 1200)


@pytest.mark.parametrize(("recent", "talktime", "expected"), [
    ([100, 200, 300], 50, 205.0),  # recent talk times first, plus the wrap-up
    ([], 90, 95.0),  # no history: Asterisk's average talk time, plus the wrap-up
    ([], 0, 180.0),  # neither: the configured default handle time
])
def test_the_mean_handle_time_and_its_fallbacks(recent: list[int], talktime: int, expected: float) -> None:
    assert mean_handle_time(recent, talktime_s=talktime, wrapup_s=5, default_s=180) == expected


def history(talk: Sequence[int] = (), *, fail: bool = False, hang: bool = False) -> RecentTalkTimes:
    async def recent(group: str) -> Sequence[int]:
        if hang:
            await asyncio.Event().wait()
        if fail:
            raise OSError("database down")
        return talk
    return recent


async def test_the_advisor_adds_wrap_up_to_recent_talk_times() -> None:
    advisor = QueueAdvisor(StubState(snapshot(agent(1, busy=True), waiting=1, holdtime=70)), budget_s=0.5,
                           recent_talk_times=history([100, 140]), wrapup_s=10)
    assert await advisor.advise("c1", "cards") == QueueAdvice(position=2, wait_s=260, asterisk_wait_s=70)


@pytest.mark.parametrize("recent", [history(fail=True), history(hang=True), None])
async def test_without_history_the_advisor_falls_back_to_asterisks_talk_time(recent: RecentTalkTimes | None) -> None:
    advisor = QueueAdvisor(StubState(snapshot(agent(1, busy=True), talktime=90)), budget_s=0.1,
                           recent_talk_times=recent)
    assert (await advisor.advise("c1", "cards")).wait_s == 90


async def test_live_state_down_or_too_slow_is_no_advice_within_the_budget() -> None:
    with pytest.raises(QueueAdviceUnavailable, match="AMI not connected"):
        await QueueAdvisor(StubState(down=True), budget_s=0.2).advise("c1", "cards")
    started = time.monotonic()
    with pytest.raises(QueueAdviceUnavailable, match="no live state within 0.2s"):
        await QueueAdvisor(StubState(hang=True), budget_s=0.2, recent_talk_times=history(hang=True)).advise(
            "c1", "cards")
    assert time.monotonic() - started < 0.5
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("handle-times")] == [], "no reader left behind"


async def test_callers_told_about_a_queue_but_not_in_it_yet_count_as_ahead() -> None:
    advisor = QueueAdvisor(StubState(snapshot(agent(1), agent(2, busy=True), waiting=0, talktime=60)), budget_s=0.5)
    first = await advisor.advise("c1", "cards")
    second = await advisor.advise("c2", "cards")  # c1 still hears its announcement: app_queue lists nobody
    third = await advisor.advise("c3", "cards")
    assert [(a.position, a.wait_s) for a in (first, second, third)] == [(1, 0), (2, 30), (3, 60)]
    assert (await advisor.advise("c1", "cards")).position == 3, "a call never counts itself"
    assert (await advisor.advise("x", "vip")).position == 1, "per queue"
    for call_id in ("c1", "c2", "c3"):
        advisor.forget(call_id, "cards")  # in the queue now: app_queue's list has them from here on
    assert (await advisor.advise("c4", "cards")).position == 1


async def test_booking_a_callback_is_false_without_a_book_or_when_it_fails_or_stalls() -> None:
    state = StubState(snapshot())

    async def refuses(call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        raise OSError("database down")

    async def stalls(call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        await asyncio.Event().wait()
        return True

    booked: list[tuple[str, str | None, str, str]] = []

    async def books(call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        booked.append((call_id, customer_id, number, group))
        return True

    assert not QueueAdvisor(state, budget_s=0.1).offers_callbacks
    assert not await QueueAdvisor(state, budget_s=0.1).book_callback("c1", None, "13800138000", "cards")
    assert not await QueueAdvisor(state, budget_s=0.1, book=refuses).book_callback("c1", None, "13800138000", "cards")
    started = time.monotonic()
    assert not await QueueAdvisor(state, budget_s=0.1, book=stalls, book_budget_s=0.2).book_callback(
        "c1", None, "13800138000", "cards")
    assert time.monotonic() - started < 0.5
    assert await QueueAdvisor(state, budget_s=0.1, book=books).book_callback("c1", "C001", "13800138000", "cards")
    assert booked == [("c1", "C001", "13800138000", "cards")]
