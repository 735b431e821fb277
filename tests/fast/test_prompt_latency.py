"""How long callers wait for the next prompt (`hotline_prompt_latency_seconds`, make bench's P3):
the clock on its own, and a real server timing a call through the fake ARI server, scraped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from agi_app.monitoring.hooks import played_on
from agi_app.monitoring.metrics import PromptClock
from agi_app.serve.app import Server
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, settings_for, start_hotline
from tests.support.demo import MAIN_ZH, UNKNOWN


class Ticks:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def clock(limit: int = 10_000) -> tuple[PromptClock, Histogram, Ticks]:
    histogram = Histogram("waits", "test", ["since"], buckets=(0.01, 0.1, 1.0), registry=CollectorRegistry())
    ticks = Ticks()
    return PromptClock(histogram, limit=limit, clock=ticks), histogram, ticks


def observed(histogram: Histogram, since: str) -> tuple[float, float]:
    """(count, sum) of the observations of `since`."""
    samples = {s.name: s.value for m in histogram.collect() for s in m.samples if s.labels.get("since") == since}
    return samples.get("waits_count", 0.0), samples.get("waits_sum", 0.0)


def test_the_first_prompt_is_timed_from_the_call_arriving() -> None:
    prompts, histogram, ticks = clock()
    prompts.arrived("c1")
    ticks.now += 0.012
    prompts.prompt_started("c1")
    ticks.now += 1.0
    prompts.prompt_started("c1")  # a later prompt nobody waited for: not timed
    assert observed(histogram, "stasis_start") == (1, pytest.approx(0.012))
    assert observed(histogram, "dtmf") == (0, 0)


def test_the_last_key_before_a_prompt_starts_the_clock_but_not_before_the_first_prompt() -> None:
    prompts, histogram, ticks = clock()
    prompts.arrived("c1")
    ticks.now += 0.005
    prompts.key("c1")  # typed ahead of the first prompt: the call still waits for it
    ticks.now += 0.005
    prompts.prompt_started("c1")
    assert observed(histogram, "stasis_start") == (1, pytest.approx(0.01))
    prompts.key("c1")
    ticks.now += 2.0  # the caller types the next keys (a PIN)
    prompts.key("c1")
    ticks.now += 0.003
    prompts.prompt_started("c1")
    assert observed(histogram, "dtmf") == (1, pytest.approx(0.003))


def test_a_channel_that_leaves_is_forgotten_and_the_marks_are_bounded() -> None:
    prompts, histogram, _ = clock(limit=2)
    prompts.arrived("c1")
    prompts.left("c1")
    prompts.prompt_started("c1")
    assert observed(histogram, "stasis_start") == (0, 0)
    for channel in ("c2", "c3", "c4"):
        prompts.arrived(channel)
    assert prompts.pending == 2
    prompts.key("c2")  # a channel already tracked is still updated at the limit
    assert prompts.pending == 2


def test_only_play_requests_name_their_channel() -> None:
    assert played_on("/ari/channels/1795.12/play/1795.12-pb1") == "1795.12"
    assert played_on("/ari/channels/1795.12/play") == "1795.12"
    assert played_on("/ari/channels/1795.12/answer") is None
    assert played_on("/ari/bridges/b1/play/p1") is None
    assert played_on("/ari/playbacks/p1") is None


@pytest_asyncio.fixture
async def hotline(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.5
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, metrics_listen="127.0.0.1:0",
                                                           agi_listen="127.0.0.1:0"))
    yield line
    await line.stop()


async def prompt_waits(server: Server) -> dict[str, float]:
    """`hotline_prompt_latency_seconds_count` by `since`, scraped from the server's endpoint."""
    assert server.monitoring is not None and server.monitoring.endpoint is not None
    async with aiohttp.ClientSession() as http, http.get(server.monitoring.endpoint.url) as resp:
        text = await resp.text()
    return {s.labels["since"]: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "hotline_prompt_latency_seconds_count"}


async def until_waits(server: Server, expected: dict[str, float]) -> None:
    """The play request's answer reaches the client a moment after the fake server saw it."""
    for _ in range(100):
        if (seen := await prompt_waits(server)) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{seen} != {expected}")


async def test_a_real_call_times_its_first_prompt_and_the_prompt_after_a_key(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await until_waits(hotline.server, {"stasis_start": 1})
    await hotline.ari.press(call, "7")  # no such option: the invalid prompt follows the key
    await hotline.heard(call, "sound:hotline/zh/invalid")
    await until_waits(hotline.server, {"stasis_start": 1, "dtmf": 1})
    await hotline.ari.hangup(call)
    await hotline.wait_ended(call)
    assert hotline.server.monitoring is not None
    assert hotline.server.monitoring.metrics.prompt_clock.pending == 0, "the call's mark left with it"
