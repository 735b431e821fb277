"""The wallboard in a real headless browser: Debian's chromium driven by Playwright for Python opens
`hotline serve`'s /wallboard while a SIPp caller waits in the main menu, sees the call (masked caller,
line, node) arrive over server-sent events, and saves a screenshot; once the caller hangs up the call
leaves the page and is counted in today's totals.

Run under `flock /tmp/hotline-asterisk.lock` like every test on the real Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect

from agi_app.config import Settings
from tests.e2e.conftest import RUN, Hotline
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; Playwright's own download is unreachable
SCREENSHOT = RUN / "results" / "wallboard.png"
CALLER = "13122229001"  # masked on the page as *******9001


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_wallboard_shows_a_sipp_call_while_it_is_in_progress(
        hotline: Hotline, browser: Browser, record_property: Callable[[str, object], None]) -> None:
    listen = hotline.env.get("HOTLINE_METRICS_LISTEN", Settings().metrics_listen)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"http://{listen}/wallboard")
    await expect(page.locator("#state")).to_have_text("live", timeout=10_000)
    await expect(page.locator("#in-progress")).to_have_text("0")
    # Today's totals are read from the journeys: a number once the first read is in ("?" before).
    await expect(page.locator("#calls-today")).to_have_text(re.compile(r"^\d+$"), timeout=10_000)
    calls_before = int(await page.locator("#calls-today").inner_text())

    # Nobody presses a key: the caller stays in the main menu (2 s timeouts) and hangs up after 10 s.
    call = asyncio.create_task(hotline.call(SipCall(CALLER, "95000", hangup_after=10.0, max_duration=30)))
    try:
        row = page.locator("#calls tbody tr", has_text="*******9001")
        await expect(row).to_be_visible(timeout=10_000)
        await expect(row.locator("td").nth(1)).to_have_text("95000")
        await expect(row.locator("td").nth(2)).to_have_text("main", timeout=10_000)
        await expect(page.locator("#in-progress")).to_have_text("1")
        assert CALLER not in await page.content(), "never the full number"
        await expect(page.locator("#flow img")).to_be_visible(timeout=10_000)  # the menus in use, drawn
        assert await page.locator("#flow img").evaluate("img => img.naturalWidth") > 0
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        record_property("screenshot", str(SCREENSHOT))  # in the JUnit report
        print(f"wallboard screenshot: {SCREENSHOT}")
    finally:
        placed = await call
    assert placed.ok, placed.stderr
    await expect(page.locator("#calls tbody tr", has_text="*******9001")).to_have_count(0, timeout=10_000)
    await expect(page.locator("#calls-today")).to_have_text(str(calls_before + 1), timeout=10_000)


async def test_monitor_json_shows_every_call_of_a_sipp_load_move_through_the_menu(hotline: Hotline) -> None:
    callers = [f"1312223{n:04d}" for n in range(1, 7)]
    # Six callers at once; each presses 1 (accounts) after 4 s, then hangs up 6 s later.
    load = [asyncio.create_task(hotline.call(SipCall(c, "95000", steps=[(4.0, "1")], hangup_after=6.0,
                                                     max_duration=40))) for c in callers]
    masked = {f"*******{c[-4:]}" for c in callers}
    seen: dict[str, set[str]] = {m: set() for m in masked}
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while not all(len(nodes) >= 2 and "accounts" in nodes for nodes in seen.values()):  # moved on
            assert asyncio.get_running_loop().time() < deadline, f"nodes seen per caller: {seen}"
            done = await asyncio.to_thread(hotline.cli, "monitor", "--json")
            assert done.returncode == 0, done.stderr
            assert not any(c in done.stdout for c in callers), "never a full number"
            for shown in json.loads(done.stdout)["calls"]:
                if shown["caller"] in seen:
                    seen[shown["caller"]].add(shown["node"])
    finally:
        results = await asyncio.gather(*load)
    assert all(r.ok for r in results), [r.stderr for r in results if not r.ok]
