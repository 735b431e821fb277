"""Callbacks that keep the caller's place: the rules, then the dispatcher of a real server (real
PostgreSQL, real ARI client and router) against the fake ARI server, which plays app_queue (it
answers a placeholder when an agent takes it) and the customer's phone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from agi_app.ari.client import AriClient
from agi_app.centre.callbacks import (
    Leg,
    RetryPolicy,
    Status,
    after_failure,
    attempt_result,
    valid_group,
    valid_number,
)
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories import contact_centre as store
from agi_app.serve.callbacks import CallbackDispatcher
from tests.fake_ari.server import FakeAri, FakeChannel
from tests.fast.conftest import Hotline, fetch, settings_for, start_hotline
from tests.support.cli import hotline_cli
from tests.support.proxy import TcpProxy

NUMBER = "13800138000"
FREE = "127.0.0.1:0"  # the FastAGI listener: any free port (tests run side by side)


# --- the rules ------------------------------------------------------------------------------------
def test_leg_ids_name_the_callback_and_its_placement() -> None:
    leg = Leg(42, 3, "agent")
    assert leg.channel_id == "callback-42-3-agent"
    assert Leg.parse(leg.channel_id) == leg
    assert Leg.parse(leg.sibling("customer").channel_id) == Leg(42, 3, "customer")
    for not_ours in ("1732000000.17", "callback-42-3-agents", "callback-x-3-agent", "callback-42-3-agent\n", ""):
        assert Leg.parse(not_ours) is None


def test_what_a_customer_leg_ending_unanswered_means() -> None:
    assert attempt_result(17) == Status.BUSY
    assert attempt_result(19) == Status.NO_ANSWER and attempt_result(18) == Status.NO_ANSWER
    assert attempt_result(34) == Status.FAILED and attempt_result(0) == Status.FAILED


def test_failed_attempts_are_retried_after_the_delay_until_the_last() -> None:
    policy = RetryPolicy(max_attempts=3, retry_delay=timedelta(minutes=5))
    assert after_failure(0, Status.NO_ANSWER, policy).status == Status.WAITING
    assert after_failure(1, Status.BUSY, policy).delay == timedelta(minutes=5)
    last = after_failure(2, Status.BUSY, policy)
    assert (last.status, last.attempts, last.delay) == (Status.BUSY, 3, timedelta(0))
    with pytest.raises(ValueError):
        after_failure(0, Status.COMPLETED, policy)


def test_only_digits_and_our_group_names_reach_a_dial_string() -> None:
    assert valid_number(NUMBER) and not valid_number("+8613800138000") and not valid_number("1380&Dial(x)")
    assert valid_group("general-zh") and valid_group("vip")
    assert not valid_group("general@other") and not valid_group("General") and not valid_group("")


# --- the dispatcher ---------------------------------------------------------------------------------
@pytest_asyncio.fixture
async def centre(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, agi_listen=FREE, callback_poll_ms=100, callback_retry_delay_s=0,
                            callback_max_attempts=3)
    line = await start_hotline(fake_ari, dsn, settings)
    yield line
    await line.stop()


def dispatcher(hotline: Hotline) -> CallbackDispatcher:
    assert hotline.server.callbacks is not None
    return hotline.server.callbacks


async def callback_row(hotline: Hotline, callback_id: int = 1) -> dict[str, object]:
    rows = await fetch(hotline.dsn, "SELECT * FROM callbacks WHERE callback_id = $1", callback_id)
    return dict(rows[0])


async def wait_status(hotline: Hotline, status: str, callback_id: int = 1) -> dict[str, object]:
    """The callback's row once it has `status` (polled: the dispatcher writes it in its own time)."""
    for _ in range(250):
        if (row := await callback_row(hotline, callback_id))["status"] == status:
            return row
        await asyncio.sleep(0.02)
    raise TimeoutError(f"callback {callback_id} is {row['status']}, not {status}: {row}")


async def placeholder(ari: FakeAri, callback_id: int, placement: int) -> FakeChannel:
    cid = Leg(callback_id, placement, "agent").channel_id
    await ari.wait_for(lambda: cid in ari.channels)
    return ari.channel(cid)


async def customer_leg(ari: FakeAri, callback_id: int, placement: int) -> FakeChannel:
    cid = Leg(callback_id, placement, "customer").channel_id
    await ari.wait_for(lambda: cid in ari.channels)
    return ari.channel(cid)


async def test_a_booking_puts_a_placeholder_in_the_callers_queue_at_once(centre: Hotline) -> None:
    assert await dispatcher(centre).book("1732.5", "C001", NUMBER, "general-zh")
    agent = await placeholder(centre.ari, 1, 1)
    assert agent.originated is not None
    assert agent.originated.endpoint == "Local/1-general-zh@hotline-callback/n", "queued without optimising away"
    assert agent.originated.app_args == ["callback", "1"]
    assert agent.originated.other_id == "callback-1-1-queue"
    assert agent.originated.timeout == centre.server.settings.callback_queue_wait_s
    row = await wait_status(centre, "queued")
    assert (row["call_id"], row["customer_id"], row["number"], row["queue"]) == ("1732.5", "C001", NUMBER, "general-zh")
    assert not centre.ari.originated("PJSIP/"), "nobody is dialled before an agent takes the placeholder"


async def test_the_agent_waits_while_the_customer_is_dialled_then_greeted_and_bridged(centre: Hotline) -> None:
    ari = centre.ari
    await fetch(centre.dsn, "INSERT INTO calls (call_id, started_at, language) VALUES ('1732.5', now(), 'en')")
    await dispatcher(centre).book("1732.5", "C001", NUMBER, "general-zh")
    agent = await placeholder(ari, 1, 1)
    await ari.answer_originated(agent.id)  # app_queue connected an agent to the placeholder

    customer = await customer_leg(ari, 1, 1)
    assert customer.originated is not None
    assert customer.originated.endpoint == f"PJSIP/{NUMBER}@customers"
    assert customer.originated.app_args == ["callback-customer", "1"]
    assert customer.originated.timeout == centre.server.settings.callback_ring_s
    await wait_status(centre, "dialling")
    assert not ari.bridges

    await ari.answer_originated(customer.id)
    await ari.wait_for(lambda: any(b.played for b in ari.bridges.values()))
    (bridge,) = ari.bridges.values()
    assert sorted(bridge.channels) == sorted([agent.id, customer.id])
    assert bridge.played == ["sound:hotline/en/callback_greeting"], "both hear it, in the booking call's language"
    assert customer.played == [] and agent.played == []
    await wait_status(centre, "connected")

    await ari.hangup(customer.id)  # the customer ends the conversation
    row = await wait_status(centre, "completed")
    await ari.wait_for(lambda: agent.hungup)
    assert not ari.bridges, "the bridge is destroyed"
    assert row["attempts"] == 0 and row["detail"] == "ended by the customer"


async def test_a_customer_who_does_not_answer_frees_the_agent_and_is_tried_again_up_to_the_limit(
        centre: Hotline) -> None:
    ari = centre.ari
    await dispatcher(centre).book("1732.5", None, NUMBER, "vip")
    for placement in (1, 2, 3):
        agent = await placeholder(ari, 1, placement)
        await ari.answer_originated(agent.id)
        customer = await customer_leg(ari, 1, placement)
        await ari.fail_originated(customer.id, cause=19 if placement < 3 else 17)
        await ari.wait_for(lambda agent=agent: agent.hungup)  # type: ignore[misc]
    row = await wait_status(centre, "busy")
    assert row["attempts"] == 3 and "busy" in str(row["detail"])
    await asyncio.sleep(0.3)  # several poll rounds: no fourth placeholder
    assert len(ari.originated("Local/")) == 3


async def test_an_unanswered_attempt_waits_for_its_retry_delay(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    settings = settings_for(fake_ari, dsn, tmp_path, agi_listen=FREE, callback_poll_ms=50, callback_retry_delay_s=60)
    hotline = await start_hotline(fake_ari, dsn, settings)
    try:
        await dispatcher(hotline).book("1732.5", None, NUMBER, "vip")
        await fake_ari.answer_originated((await placeholder(fake_ari, 1, 1)).id)
        await fake_ari.fail_originated((await customer_leg(fake_ari, 1, 1)).id, cause=19)
        row = await wait_status(hotline, "waiting")
        assert row["attempts"] == 1 and row["placements"] == 1
        await asyncio.sleep(0.3)
        assert len(fake_ari.originated("Local/")) == 1, "not placed again before the delay"
        assert (await fetch(dsn, "SELECT due_at - updated_at > interval '59 s' AS later FROM callbacks"))[0]["later"]
    finally:
        await hotline.stop()


async def test_an_agent_who_leaves_while_the_customer_rings_ends_the_attempt(centre: Hotline) -> None:
    ari = centre.ari
    await dispatcher(centre).book("1732.5", None, NUMBER, "vip")
    agent = await placeholder(ari, 1, 1)
    await ari.answer_originated(agent.id)
    customer = await customer_leg(ari, 1, 1)
    await ari.hangup(agent.id)
    await ari.wait_for(lambda: customer.hungup)  # the phone stops ringing
    again = await placeholder(ari, 1, 2)
    assert again.originated is not None
    row = await callback_row(centre)
    assert row["attempts"] == 1, "counted: a phone nobody answers is not rung behind every impatient agent"
    assert row["detail"] == "the agent left before the customer answered"


async def test_a_placeholder_the_queue_gives_up_on_counts_as_an_attempt_and_goes_back_in_later(
        centre: Hotline) -> None:
    ari = centre.ari
    await dispatcher(centre).book("1732.5", None, NUMBER, "vip")
    await ari.fail_originated((await placeholder(ari, 1, 1)).id, cause=16)  # no agent could take it
    again = await placeholder(ari, 1, 2)  # (retry delay 0 here)
    row = await callback_row(centre)
    assert row["attempts"] == 1 and row["detail"] == "placeholder ended unanswered (cause 16)"
    assert again.originated is not None and not ari.originated("PJSIP/"), "no customer was called"


async def test_bookings_are_placed_in_the_order_booked_even_when_asterisk_refuses_one(centre: Hotline) -> None:
    ari = centre.ari
    ari.fault("POST", r"^/channels$", status=500)  # the first placement is refused
    book = dispatcher(centre).book
    for n in range(3):
        assert await book(f"call-{n}", None, f"1380013800{n}", "general-zh")
    await ari.wait_for(lambda: len(ari.originated("Local/")) == 3)
    assert [c.originated.app_args[1] for c in ari.originated("Local/") if c.originated] == ["1", "2", "3"]
    assert (await callback_row(centre))["detail"] == "placeholder not placed: 500"


async def test_a_second_dispatcher_on_the_same_database_places_each_callback_once(centre: Hotline) -> None:
    ari, dsn = centre.ari, centre.dsn
    for n in range(6):  # stored as a booking does, both dispatchers then race for them
        await fetch(dsn, "INSERT INTO callbacks (call_id, number, queue) VALUES ($1, $2, 'vip')", f"c{n}", NUMBER)
    async with AriClient(ari.url, "hotline", "hotline-dev", ari.app) as client:
        second = CallbackDispatcher(client, centre.server.pool, centre.server.settings)
        await asyncio.gather(second.place_due(), second.place_due(), dispatcher(centre).place_due())
    await ari.wait_for(lambda: len(ari.originated("Local/")) == 6)
    await asyncio.sleep(0.2)
    placed = [c.originated.app_args[1] for c in ari.originated("Local/") if c.originated]
    assert sorted(placed, key=int) == ["1", "2", "3", "4", "5", "6"], "each once"
    rows = await fetch(dsn, "SELECT DISTINCT status, placements FROM callbacks")
    assert [tuple(r) for r in rows] == [("queued", 1)]


async def test_a_claim_skips_a_callback_another_server_is_claiming_instead_of_waiting_or_taking_it(dsn: str) -> None:
    for n in range(2):
        await fetch(dsn, "INSERT INTO callbacks (call_id, number, queue) VALUES ($1, $2, 'vip')", f"c{n}", NUMBER)
    async with connection(dsn) as first, connection(dsn) as second:
        async with first.transaction():  # the first server's claim, not yet committed
            (mine,) = await store.claim_due(first, limit=1)
            (theirs,) = await asyncio.wait_for(store.claim_due(second, limit=1), 2)
            assert (mine.callback_id, theirs.callback_id) == (1, 2)
        assert await store.claim_due(second, limit=5) == []


async def test_a_stasis_start_claiming_to_be_a_callback_that_is_not_is_hung_up(centre: Hotline) -> None:
    ari = centre.ari
    forged = await ari.place_call(NUMBER, "callback")  # args ["callback"], on a channel no callback made
    await ari.wait_for(lambda: ari.channel(forged).hungup)
    assert forged not in centre.server.calls.sessions, "not taken for a call either"
    assert not ari.originated()


async def test_a_placeholder_lost_with_a_dead_server_is_placed_again_and_a_live_one_keeps_its_place(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    for call_id, status in (("lost", "queued"), ("alive", "queued"), ("dialled", "dialling"), ("talked", "connected")):
        await fetch(dsn, "INSERT INTO callbacks (call_id, number, queue, status, placements, updated_at)"
                         " VALUES ($1, $2, 'vip', $3, 1, now() - interval '1 hour')", call_id, NUMBER, status)
    # The dead server's placeholder for callback 2 still waits in app_queue.
    async with AriClient(fake_ari.url, "hotline", "hotline-dev", fake_ari.app) as client:
        await client.originate("Local/2-vip@hotline-callback/n", channel_id="callback-2-1-agent",
                               other_channel_id="callback-2-1-queue", app_args=["callback", "2"], timeout_s=3600)
    settings = settings_for(fake_ari, dsn, tmp_path, agi_listen=FREE, callback_poll_ms=50)
    hotline = await start_hotline(fake_ari, dsn, settings)
    try:
        again = await placeholder(fake_ari, 1, 2)  # callback 1: placed again, as placement 2
        assert again.originated is not None
        dialled_again = await placeholder(fake_ari, 3, 2)  # callback 3: its customer leg is gone
        assert dialled_again.originated is not None
        await asyncio.sleep(0.2)
        assert "callback-2-2-agent" not in fake_ari.channels, "the live placeholder keeps its place"
        rows = {r["call_id"]: r for r in await fetch(dsn, "SELECT call_id, status, attempts, placements FROM callbacks")}
        assert rows["alive"]["status"] == "queued" and rows["alive"]["placements"] == 1
        assert rows["lost"]["attempts"] == 0 and rows["dialled"]["attempts"] == 0
        talked = await callback_row(hotline, 4)
        assert (talked["status"], talked["detail"]) == ("completed", "ended unobserved"), "its channels are gone"
        await fake_ari.answer_originated("callback-2-1-agent")  # its agent comes: this server carries it on
        await customer_leg(fake_ari, 2, 1)
    finally:
        await hotline.stop()


async def test_a_booking_that_cannot_be_stored_in_time_is_refused(fake_ari: FakeAri, dsn: str, db_proxy: TcpProxy,
                                                                  tmp_path: Path) -> None:
    settings = settings_for(fake_ari, dsn, tmp_path, agi_listen=FREE, db_budget_ms=300)
    pool = await create_pool(db_proxy.through(dsn), budget_s=2.0)
    try:
        async with AriClient(fake_ari.url, "hotline", "hotline-dev", fake_ari.app) as client:
            dispatch = CallbackDispatcher(client, pool, settings)
            book = dispatch.book
            assert not await book("1732.5", None, "12", "vip"), "not a number"
            assert not await book("1732.5", None, NUMBER, "vip;x"), "not a group"
            assert await book("1732.5", None, NUMBER, "vip")  # (the insert is prepared on the connection now)
            # The insert reaches PostgreSQL and commits within the budget; its answer comes back after.
            db_proxy.delay = 0.2
            started = asyncio.get_running_loop().time()
            assert not await book("slow", None, NUMBER, "vip"), "the database did not answer in time"
            assert asyncio.get_running_loop().time() - started < 0.5, "the caller waited the budget, no longer"
            db_proxy.delay = 0
            for _ in range(300):  # stored late, then withdrawn: that caller is not called back
                rows = await fetch(dsn, "SELECT status, detail FROM callbacks WHERE call_id = 'slow'")
                if rows and rows[0]["status"] == "cancelled":
                    break
                await asyncio.sleep(0.05)
            assert [tuple(r) for r in rows] == [("cancelled", "booking timed out")]
            assert not fake_ari.originated(), "nothing placed for the withdrawn booking (no placer runs here)"
            await dispatch.close()
    finally:
        await pool.close()


async def test_callbacks_list_shows_each_callback_and_filters_by_status(dsn: str) -> None:
    await fetch(dsn, "INSERT INTO callbacks (call_id, customer_id, number, queue) VALUES ('c1', 'C001', $1, 'vip')",
                NUMBER)
    await fetch(dsn, "INSERT INTO callbacks (call_id, number, queue, status, attempts, agent, detail)"
                     " VALUES ('c2', $1, 'general-zh', 'completed', 1, 'Wang Fang', 'ended by the customer')", NUMBER)
    listed = hotline_cli(dsn, "callbacks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["callback_id"], r["call_id"], r["status"]) for r in rows] == [(2, "c2", "completed"), (1, "c1", "waiting")]
    assert rows[0]["agent"] == "Wang Fang" and rows[0]["attempts"] == 1 and rows[1]["customer_id"] == "C001"
    done = json.loads(hotline_cli(dsn, "callbacks", "list", "--json", "--status", "completed").stdout)
    assert [r["call_id"] for r in done] == ["c2"]
    text = hotline_cli(dsn, "callbacks", "list").stdout
    assert "#2  call=c2 queue=general-zh" in text and "completed  attempts=1  agent=Wang Fang  (ended by the customer)" in text
    assert hotline_cli(dsn, "callbacks", "list", "--status", "nonsense").returncode == 2
