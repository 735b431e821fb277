"""The campaign dialler of a real server (real PostgreSQL, ARI client and router) against the fake
ARI server, which plays the customers' phones: originate, answer or fail with a cause, playback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from agi_app.ari.client import AriClient
from agi_app.centre.campaigns import AttemptLeg, Hours
from agi_app.db.pool import connection
from agi_app.db.repositories import campaigns as store
from agi_app.db.repositories.campaigns import NewCampaign
from agi_app.serve.app import media_resolver
from agi_app.serve.campaigns import CampaignDialler
from tests.fake_ari.server import FakeAri, FakeChannel
from tests.fast.conftest import Hotline, fetch, settings_for, start_hotline

ALL_DAY = Hours(time(0), time.max)
MESSAGE = "sound:hotline/zh/announcement_rates"


@pytest_asyncio.fixture
async def line(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, campaign_poll_ms=100, campaign_retry_delay_s=0)
    hotline = await start_hotline(fake_ari, dsn, settings)
    yield hotline
    await hotline.stop()


async def running_campaign(dsn: str, numbers: list[str], *, hours: Hours = ALL_DAY, concurrency: int = 2,
                           name: str = "cards", state: str = "start", text: str | None = None) -> None:
    """A campaign created by one actor, approved by another and started, as the CLI would; its
    message the recorded announcement_rates, or `text` spoken."""
    sound = None if text else "announcement_rates"
    async with connection(dsn) as conn:
        await store.create(conn, NewCampaign(name, "cards", sound, text, "zh", hours, concurrency),
                           [(None, n) for n in numbers], "li.na")
        await store.change_state(conn, name, "approve", "wang.wei")
        if state == "start":
            await store.change_state(conn, name, "start", "wang.wei")


async def dialled(ari: FakeAri, target: int, attempt: int) -> FakeChannel:
    cid = AttemptLeg(target, attempt).channel_id
    await ari.wait_for(lambda: cid in ari.channels)
    return ari.channel(cid)


async def attempts(dsn: str) -> list[tuple[int, int, str]]:
    rows = await fetch(dsn, "SELECT target_id, attempt, result FROM campaign_attempts ORDER BY target_id, attempt")
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def wait_attempts(dsn: str, expected: list[tuple[int, int, str]]) -> None:
    for _ in range(250):
        if (now := await attempts(dsn)) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"attempts {now}, expected {expected}")


async def test_an_answering_customer_hears_the_message_then_is_hung_up(line: Hotline) -> None:
    ari = line.ari
    await running_campaign(line.dsn, ["13100000001"])
    phone = await dialled(ari, 1, 1)
    assert phone.originated is not None
    assert phone.originated.endpoint == "PJSIP/13100000001@customers"
    assert phone.originated.app_args == ["campaign", "1", "1"]
    assert phone.originated.timeout == line.server.settings.callback_ring_s
    await ari.answer_originated(phone.id)
    await ari.wait_for(lambda: phone.hungup)
    assert phone.played == [MESSAGE], "the whole message, then the hangup"
    await wait_attempts(line.dsn, [(1, 1, "answered")])
    rows = await fetch(line.dsn, "SELECT t.done, t.attempts, a.answered_at IS NOT NULL AS answered, a.ended_at"
                                 " IS NOT NULL AS ended FROM campaign_targets t JOIN campaign_attempts a USING (target_id)")
    assert tuple(rows[0]) == (True, 1, True, True)
    for _ in range(100):
        if (await fetch(line.dsn, "SELECT state FROM campaigns"))[0]["state"] == "finished":
            break
        await asyncio.sleep(0.02)
    assert (await fetch(line.dsn, "SELECT state FROM campaigns"))[0]["state"] == "finished"
    assert len(ari.originated()) == 1


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                    reason="espeak-ng and sox required")
async def test_a_text_message_is_spoken_to_the_answering_customer(line: Hotline) -> None:
    ari = line.ari
    await running_campaign(line.dsn, ["13100000001"], text="您好，信用卡年费政策有变。")
    phone = await dialled(ari, 1, 1)
    await ari.answer_originated(phone.id)
    await ari.wait_for(lambda: phone.hungup, timeout=15)  # the first synthesis takes a moment
    (played,) = phone.played
    assert played.startswith("sound:hotline-tts/"), "generated speech, from the speech cache"
    speech = Path(line.server.settings.sounds_root) / f"{played.removeprefix('sound:')}.wav"
    assert speech.is_file()
    await wait_attempts(line.dsn, [(1, 1, "answered")])


async def test_each_attempt_records_its_result_and_a_customer_gets_three_at_most(line: Hotline) -> None:
    ari = line.ari
    await running_campaign(line.dsn, ["13100000001"])
    for attempt, cause in ((1, 17), (2, 19), (3, 34)):
        await ari.fail_originated((await dialled(ari, 1, attempt)).id, cause=cause)
    await wait_attempts(line.dsn, [(1, 1, "busy"), (1, 2, "no_answer"), (1, 3, "failed")])
    await asyncio.sleep(0.4)  # several rounds: no fourth call
    assert len(ari.originated()) == 3
    assert (await fetch(line.dsn, "SELECT done, attempts FROM campaign_targets"))[0]["done"]
    status = (await store_summary(line.dsn))["attempts"]
    assert status == {"dialling": 0, "answered": 0, "busy": 1, "no_answer": 1, "failed": 1}


async def store_summary(dsn: str) -> dict[str, object]:
    async with connection(dsn) as conn:
        (summary,) = await store.summaries(conn, "cards")
    return summary


async def test_no_more_calls_at_once_than_the_concurrency(line: Hotline) -> None:
    ari = line.ari
    await running_campaign(line.dsn, [f"1310000000{n}" for n in range(5)], concurrency=2)
    first = await dialled(ari, 1, 1)
    await dialled(ari, 2, 1)
    await asyncio.sleep(0.4)
    assert len(ari.originated()) == 2, "two lines, two calls"
    await ari.answer_originated(first.id)  # still a line while the message plays
    await ari.wait_for(lambda: first.hungup)
    third = await dialled(ari, 3, 1)
    await asyncio.sleep(0.3)
    assert len(ari.originated()) == 3
    await ari.fail_originated(third.id, cause=19)
    await dialled(ari, 4, 1)
    await asyncio.sleep(0.3)
    assert len(ari.originated()) == 4 and len([c for c in ari.originated() if not c.hungup]) == 2


@pytest.mark.parametrize("why", ["outside_hours", "holiday", "paused", "not_started"])
async def test_nothing_is_dialled_outside_the_hours_on_a_closed_day_or_unless_running(
        line: Hotline, why: str) -> None:
    local = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    hours = ALL_DAY
    if why == "outside_hours":  # a window that is not now
        hours = Hours(time(0), time(1)) if local.hour >= 2 else Hours(time(12), time(13))
    if why == "holiday":
        await fetch(line.dsn, "INSERT INTO calendar_days (scope, day, kind, name) VALUES ('*', $1, 'holiday', 'x')",
                    local.date())
    await running_campaign(line.dsn, ["13100000001"], hours=hours, state="approve" if why == "not_started" else "start")
    if why == "paused":
        async with connection(line.dsn) as conn:
            await store.change_state(conn, "cards", "pause", "wang.wei")
    await asyncio.sleep(0.5)  # several rounds
    assert not line.ari.originated()
    assert await attempts(line.dsn) == []


async def test_a_refused_originate_costs_an_attempt_and_is_retried(line: Hotline) -> None:
    ari = line.ari
    ari.fault("POST", r"^/channels$", status=500)
    await running_campaign(line.dsn, ["13100000001"])
    second = await dialled(ari, 1, 2)
    rows = await fetch(line.dsn, "SELECT attempt, result, detail FROM campaign_attempts ORDER BY attempt")
    assert tuple(rows[0]) == (1, "failed", "not dialled: 500")
    assert second.originated is not None


async def test_two_servers_on_one_database_call_each_customer_once_within_the_limit(line: Hotline) -> None:
    ari = line.ari
    await running_campaign(line.dsn, [f"1310000000{n}" for n in range(6)], concurrency=3, state="approve")
    async with connection(line.dsn) as conn:
        await store.change_state(conn, "cards", "start", "wang.wei")
    async with AriClient(ari.url, "hotline", "hotline-dev", ari.app) as client:
        settings = line.server.settings
        second = CampaignDialler(client, line.server.pool, settings, media_resolver(settings))
        await asyncio.gather(second.dial_due(), second.dial_due())
    await ari.wait_for(lambda: len(ari.originated()) == 3)
    await asyncio.sleep(0.3)
    targets = sorted(c.originated.app_args[1] for c in ari.originated() if c.originated)
    assert len(targets) == 3 and len(set(targets)) == 3


async def test_a_forged_campaign_stasis_start_is_hung_up(line: Hotline) -> None:
    ari = line.ari
    forged = await ari.place_call("13100000001", "campaign")
    await ari.wait_for(lambda: ari.channel(forged).hungup)
    assert forged not in line.server.calls.sessions


async def test_an_attempt_lost_with_a_dead_server_frees_its_line(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    await running_campaign(dsn, ["13100000001"], concurrency=1)
    await fetch(dsn, "UPDATE campaign_targets SET attempts = 1")
    await fetch(dsn, "INSERT INTO campaign_attempts (target_id, attempt, campaign_id, started_at)"
                     " VALUES (1, 1, 1, now() - interval '1 minute')")  # dialled by a server that died
    settings = settings_for(fake_ari, dsn, tmp_path, campaign_poll_ms=100, campaign_retry_delay_s=0)
    hotline = await start_hotline(fake_ari, dsn, settings)
    try:
        again = await dialled(fake_ari, 1, 2)
        assert again.originated is not None
        rows = await fetch(dsn, "SELECT result, detail FROM campaign_attempts WHERE attempt = 1")
        assert tuple(rows[0]) == ("failed", "lost with its server")
    finally:
        await hotline.stop()
