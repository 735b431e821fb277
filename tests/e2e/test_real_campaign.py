"""End-to-end: an outbound campaign on the real Asterisk. Created and approved by two actors through
the CLI and started, `hotline serve` dials the customer (a SIPp UAS behind the `customers`
endpoint), plays the campaign's recorded message to them and hangs up, and records the attempt
answered; a campaign outside its hours dials nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agi_app.centre.campaigns import AttemptLeg
from agi_app.db.pool import connection
from tests.e2e.conftest import Hotline
from tests.support.customers import customer_phones

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NUMBER = "13700137000"
MESSAGE = "announcement_rates"


def create_and_start(hotline: Hotline, tmp: Path, hours: str) -> str:
    """A campaign to NUMBER, created by a department, approved by an administrator, started."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    listing = tmp / f"{name}.csv"
    listing.write_text(f"phone\n{NUMBER}\n", encoding="utf-8")
    for args in (("create", name, "--department", "cards", "--message-sound", MESSAGE, "--customers", str(listing),
                  "--hours", hours, "--concurrency", "1", "--actor", "cards-dept"),
                 ("approve", name, "--actor", "e2e-admin"), ("start", name, "--actor", "e2e-admin")):
        done = hotline.cli("campaigns", *args)
        assert done.returncode == 0, done.stderr
    return name


def status(hotline: Hotline, name: str) -> dict[str, Any]:
    done = hotline.cli("campaigns", "status", name, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


async def channel_of(hotline: Hotline, name: str) -> str:
    async with connection(hotline.env["HOTLINE_DSN"]) as conn:
        target = await conn.fetchval("SELECT target_id FROM campaign_targets JOIN campaigns USING (campaign_id)"
                                     " WHERE name = $1", name)
    return AttemptLeg(target, 1).channel_id


async def test_a_customer_answers_hears_the_message_and_the_attempt_is_recorded_answered(
        hotline: Hotline, tmp_path: Path) -> None:
    observer = hotline.observer
    async with customer_phones(tmp_path / "customers") as phones:
        name = await asyncio.to_thread(create_and_start, hotline, tmp_path, "00:00-24:00")
        channel = await channel_of(hotline, name)
        finished = [e for e in observer.events if e.get("type") == "PlaybackFinished"]
        await observer.until(  # the serve looks at running campaigns every 5 s
            lambda: any(e.get("type") == "PlaybackFinished" and e["playback"]["target_uri"] == f"channel:{channel}"
                        for e in observer.events[len(finished):]), 30,
            lambda: f"{channel} played {observer.played.get(channel)}\n" + hotline.log_path.read_text()[-3000:])
        assert observer.played[channel] == [f"sound:hotline/zh/{MESSAGE}"], "the campaign's message, once"
        for _ in range(40):  # Asterisk hangs up on the customer once the message ended
            if phones.hung_up_on:
                break
            await asyncio.sleep(0.25)
        assert [a.split()[0] for a in phones.answered] == [NUMBER], "the customer's number was dialled, once"
        assert len(phones.hung_up_on) == 1, "the campaign hung up after its message"
        for _ in range(40):
            if (row := await asyncio.to_thread(status, hotline, name))["state"] == "finished":
                break
            await asyncio.sleep(0.25)
        assert row["state"] == "finished" and row["pending"] == 0, row
        assert row["attempts"] == {"dialling": 0, "answered": 1, "busy": 0, "no_answer": 0, "failed": 0}
        assert (row["created_by"], row["approved_by"]) == ("cards-dept", "e2e-admin")
        assert hotline.log_has(f"event=campaign_message_played call={channel}")


async def test_a_campaign_outside_its_hours_dials_nothing(hotline: Hotline, tmp_path: Path) -> None:
    local = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))  # the bank's time zone (the sandbox's calendar)
    hours = "00:00-01:00" if local.hour >= 2 else "12:00-13:00"
    name = await asyncio.to_thread(create_and_start, hotline, tmp_path, hours)
    channel = await channel_of(hotline, name)
    try:
        for _ in range(40):  # a round of the serve has looked at it (every 5 s)...
            if hotline.log_has(f"event=campaign_window campaign={name} dialling=no"):
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("the serve did not look at the campaign:\n" + hotline.log_path.read_text()[-3000:])
        await asyncio.sleep(6)  # ...and another round
        row = await asyncio.to_thread(status, hotline, name)
        assert row["state"] == "running" and row["pending"] == 1
        assert sum(row["attempts"].values()) == 0, row
        assert channel not in observer_channels(hotline), "no channel was created for it"
    finally:
        assert (await asyncio.to_thread(hotline.cli, "campaigns", "pause", name, "--actor", "e2e-admin")).returncode == 0


def observer_channels(hotline: Hotline) -> set[str]:
    return {e["channel"]["id"] for e in hotline.observer.events if e.get("type") == "ChannelCreated"}
