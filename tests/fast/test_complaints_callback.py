"""A complaint seen through to its callback on a real server (real PostgreSQL, ARI client, router
and callback dispatcher) against the fake ARI server: the caller records it, an administrator
resolves it, the complaints group's agent takes the callback, the caller answers, and the ticket
says they were called back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from click.testing import CliRunner

from agi_app.centre.callbacks import Leg
from agi_app.cli.complaints import complaints
from agi_app.config import Settings
from tests.fake_ari.server import FakeAri, FakeChannel
from tests.fast.conftest import Hotline, fetch, import_demo_customers, settings_for, start_hotline
from tests.support.demo import KNOWN_ZH, MAIN_ZH


@pytest_asyncio.fixture
async def centre(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, agi_listen="127.0.0.1:0",
                                                           callback_poll_ms=100))
    yield line
    await line.stop()


async def leave_complaint(centre: Hotline) -> str:
    """A caller records a complaint about a card and keeps it; the call's id."""
    ari = centre.ari
    call = await centre.call(KNOWN_ZH)
    await centre.heard(call, MAIN_ZH)
    await ari.press(call, "4")
    await ari.wait_request("POST", f"/channels/{call}/record")
    await asyncio.sleep(1.1)
    await ari.press(call, "#")
    await centre.heard(call, "sound:hotline/zh/complaint_confirm")
    await ari.press(call, "1")
    await centre.heard(call, "sound:hotline/zh/complaint_category")
    await ari.press(call, "3")
    await centre.wait_ended(call)
    return call


async def leg(ari: FakeAri, role: str) -> FakeChannel:
    channel_id = Leg(1, 1, role).channel_id
    await ari.wait_for(lambda: channel_id in ari.channels)
    return ari.channel(channel_id)


async def ticket_status(centre: Hotline) -> tuple[str, str | None]:
    for _ in range(250):
        [row] = await fetch(centre.dsn, "SELECT status, callback_result FROM complaints")
        if row["callback_result"] is not None:
            break
        await asyncio.sleep(0.02)
    return row["status"], row["callback_result"]


async def test_a_resolved_complaint_is_called_back_and_the_ticket_says_so(centre: Hotline) -> None:
    ari = centre.ari
    call = await leave_complaint(centre)
    resolved = await asyncio.to_thread(
        CliRunner().invoke, complaints, ["resolve", "CMP-000001", "--note", "Card fee refunded", "--actor", "alice"],
        obj={"settings": Settings(dsn=centre.dsn)})
    assert resolved.exit_code == 0, resolved.output

    agent = await leg(ari, "agent")  # the placeholder waits in the complaints group's queue
    assert agent.originated is not None and agent.originated.endpoint == "Local/1-complaints@hotline-callback/n"
    await ari.answer_originated(agent.id)  # a complaints agent takes it
    customer = await leg(ari, "customer")
    assert customer.originated is not None and customer.originated.endpoint == f"PJSIP/{KNOWN_ZH}@customers"
    await ari.answer_originated(customer.id)
    await ari.wait_for(lambda: any(b.channels for b in ari.bridges.values()))
    await ari.hangup(customer.id)

    assert await ticket_status(centre) == ("called_back", "completed")
    [callback] = await fetch(centre.dsn, "SELECT call_id, customer_id, queue FROM callbacks")
    assert tuple(callback) == (call, "C001", "complaints")
