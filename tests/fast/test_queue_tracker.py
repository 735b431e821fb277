"""The queue tracker: app_queue's AMI events, sent by the fake AMI server as Asterisk words them (clones
of the sandbox's recordings), read by the real AMI client, complete the caller's queue leg in
PostgreSQL; `hotline calls list --json` shows it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agi_app.ami.client import AmiClient
from agi_app.db.pool import create_pool
from agi_app.serve.queue_tracker import QueueTracker
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401  (the fixture)
from tests.fake_ami.server import SECRET, USER, FakeAmi
from tests.fast.conftest import Hotline, fetch, settings_for, start_hotline
from tests.support.cli import hotline_cli
from tests.support.demo import MAIN_ZH, UNKNOWN
from tests.support.proxy import TcpProxy

QUEUE = "hotline-general-zh"


class Tracking:
    """A tracker reading the fake AMI through the real client, and a way to wait for its writes."""

    def __init__(self, fake: FakeAmi, dsn: str) -> None:
        self.fake, self.dsn = fake, dsn

    def push(self, name: str, call_id: str, **values: object) -> None:
        self.fake.push(name, Queue=values.pop("Queue", QUEUE), Uniqueid=call_id, **values)

    async def leg(self, call_id: str, until: str) -> dict[str, Any]:
        """The call's leg once its result is `until`."""
        for _ in range(250):
            rows = await fetch(self.dsn, "SELECT * FROM queue_legs WHERE call_id = $1", call_id)
            if rows and rows[0]["result"] == until:
                return dict(rows[0])
            await asyncio.sleep(0.02)
        raise TimeoutError(f"leg of {call_id}: {rows}")


@pytest_asyncio.fixture
async def tracking(fake_ami: FakeAmi, dsn: str, db_proxy: TcpProxy) -> AsyncIterator[Tracking]:  # noqa: F811
    pool = await create_pool(db_proxy.through(dsn), budget_s=2.0)
    async with AmiClient(fake_ami.host, fake_ami.port, USER, SECRET) as ami:
        task = asyncio.create_task(QueueTracker(pool, budget_s=0.3, first_backoff_s=0.05).run(ami))
        await asyncio.sleep(0.05)  # subscribed
        try:
            yield Tracking(fake_ami, dsn)
        finally:
            task.cancel()
            await asyncio.wait({task})
            await pool.close()
    assert not task.done() or task.cancelled(), "the tracker never stops by itself"


async def test_an_answered_caller_has_the_wait_the_agent_and_the_talk_time(tracking: Tracking) -> None:
    call = "1732000000.7"
    # As app_queue sends them: the caller leaves the queue before AgentConnect says who answered.
    tracking.push("QueueCallerJoin", call, Position=1, Count=1)
    joined = await tracking.leg(call, "waiting")
    tracking.push("QueueCallerLeave", call, Position=1, Count=0)
    tracking.push("AgentConnect", call, MemberName="Wang Fang", Interface="PJSIP/agent-1001", HoldTime=12)
    answered = await tracking.leg(call, "answered")
    assert answered["agent"] == "Wang Fang" and answered["wait_s"] == 12 and answered["ended_at"] is None
    tracking.push("AgentComplete", call, MemberName="Wang Fang", HoldTime=12, TalkTime=20, Reason="agent")
    leg = await tracking.leg(call, "completed")
    assert leg["queue"] == "general-zh", "keyed by the skill group, as the transfer writes it"
    assert leg["joined_at"] == joined["joined_at"] and leg["answered_at"] >= leg["joined_at"]
    assert (leg["agent"], leg["wait_s"], leg["talk_s"]) == ("Wang Fang", 12, 20)
    assert leg["ended_at"] >= leg["answered_at"]


async def test_a_caller_who_hangs_up_waiting_is_abandoned_and_one_the_queue_gives_up_on_timed_out(
        tracking: Tracking) -> None:
    tracking.push("QueueCallerJoin", "c-abandon", Position=2, Count=2)
    tracking.push("QueueCallerJoin", "c-timeout", Position=3, Count=3)
    await tracking.leg("c-timeout", "waiting")
    tracking.push("QueueCallerAbandon", "c-abandon", Position=1, OriginalPosition=2, HoldTime=45)
    tracking.push("QueueCallerLeave", "c-abandon", Position=1, Count=1)  # app_queue: abandon, then leave
    tracking.push("QueueCallerLeave", "c-timeout", Position=1, Count=0)
    abandoned = await tracking.leg("c-abandon", "abandoned")
    assert abandoned["wait_s"] == 45 and abandoned["ended_at"] is not None
    timed_out = await tracking.leg("c-timeout", "timeout")
    assert timed_out["wait_s"] is not None and timed_out["ended_at"] >= timed_out["joined_at"]


async def test_other_queues_and_a_callbacks_placeholder_leave_no_leg_but_the_callback_learns_its_agent(
        tracking: Tracking) -> None:
    await fetch(tracking.dsn, "INSERT INTO callbacks (call_id, number, queue, status, placements)"
                              " VALUES ('1732.5', '13800138000', 'general-zh', 'queued', 1)")
    tracking.push("QueueCallerJoin", "elsewhere", Queue="sales", Position=1, Count=1)
    tracking.push("QueueCallerJoin", "callback-1-1-queue", Position=1, Count=1)
    tracking.push("AgentConnect", "callback-1-1-queue", MemberName="Emma Clark", HoldTime=30)
    tracking.push("QueueCallerJoin", "last", Position=1, Count=1)
    await tracking.leg("last", "waiting")  # events are handled in order: the ones before are done
    assert [r["call_id"] for r in await fetch(tracking.dsn, "SELECT call_id FROM queue_legs")] == ["last"]
    rows = await fetch(tracking.dsn, "SELECT agent FROM callbacks")
    assert rows[0]["agent"] == "Emma Clark"


async def test_a_write_that_cannot_be_made_is_logged_and_the_tracker_goes_on(
        tracking: Tracking, db_proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    db_proxy.go_down()  # every retry refused
    with caplog.at_level(logging.ERROR, logger="hotline.queue_tracker"):
        tracking.push("QueueCallerJoin", "lost", Position=1, Count=1)
        for _ in range(250):
            if "queue_leg_write_failed" in caplog.text:
                break
            await asyncio.sleep(0.02)
    assert "event=queue_leg_write_failed call=lost queue=general-zh kind=join" in caplog.text
    assert "attempts=3" in caplog.text, "retried first"
    db_proxy.refuse = False
    tracking.push("QueueCallerJoin", "next", Position=1, Count=1)
    await tracking.leg("next", "waiting")


async def test_the_servers_tracker_completes_the_leg_of_a_transferred_call_and_calls_list_shows_it(
        fake_ari: Any, fake_ami: FakeAmi, dsn: str, tmp_path: Path) -> None:  # noqa: F811
    settings = settings_for(fake_ari, dsn, tmp_path, agi_listen="127.0.0.1:0", ami_url=fake_ami.url,
                            ami_user=USER, ami_password=SECRET)
    hotline: Hotline = await start_hotline(fake_ari, dsn, settings)
    tracking = Tracking(fake_ami, dsn)
    try:
        call = await hotline.call(UNKNOWN)
        await hotline.ari.press(call, "0")  # to an agent: the general queue in Mandarin
        await hotline.wait_ended(call)
        await hotline.ari.wait_for(lambda: fake_ami.connections > 0)
        tracking.push("QueueCallerJoin", call, Position=1, Count=1)
        tracking.push("QueueCallerLeave", call, Position=1, Count=0)
        tracking.push("AgentConnect", call, MemberName="Wang Fang", HoldTime=3)
        tracking.push("AgentComplete", call, MemberName="Wang Fang", HoldTime=3, TalkTime=20, Reason="caller")
        await tracking.leg(call, "completed")
    finally:
        await hotline.stop()

    result = hotline_cli(dsn, "calls", "list", "--json", "--call-id", call)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    queue = row["queue"]
    assert {k: queue[k] for k in ("group", "wait_s", "agent", "talk_s", "result")} == {
        "group": "general-zh", "wait_s": 3, "agent": "Wang Fang", "talk_s": 20, "result": "completed"}
    assert set(queue) == {"group", "announced_position", "announced_wait_s", "wait_s", "agent", "talk_s", "result"}
    assert row["outcome"] == "transferred" and row["transfer_target"] == "general"
    text = hotline_cli(dsn, "calls", "list", "--call-id", call).stdout
    assert "queue: general-zh  waited 3 s" in text and "agent Wang Fang  talked 20 s  completed" in text


async def test_calls_list_shows_no_queue_for_a_call_that_never_reached_one(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.hangup(call)
    await hotline.wait_ended(call)
    (row,) = json.loads(hotline_cli(hotline.dsn, "calls", "list", "--json", "--call-id", call).stdout)
    assert row["queue"] is None
