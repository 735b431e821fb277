"""What a call costs in ARI requests, counted on the fake ARI server: each prompt one play request
for its whole media list, a menu step answered by a digit two requests (stop the menu, play the
next prompt). A change that adds a request to these paths fails here (the bench's goal is ≤ 3 per
simple menu step; `python -m bench.scale` measures it under load)."""

from __future__ import annotations

import asyncio

from tests.fake_ari.server import RecordedRequest
from tests.fast.conftest import Hotline
from tests.support.demo import MAIN_ZH, UNKNOWN


def on_call(requests: list[RecordedRequest], call: str) -> list[str]:
    """The requests on the call's channel or one of its playbacks (named `<call>-pb<n>`)."""
    return [f"{r.method} {r.path.replace(call, '{call}').split('-pb')[0]}" for r in requests
            if f"/channels/{call}" in r.path or f"/playbacks/{call}-pb" in r.path]


async def test_a_call_reaches_its_menu_in_three_requests_and_a_menu_step_costs_two(hotline: Hotline) -> None:
    ari = hotline.ari
    ari.media_duration = lambda uri: 30.0 if uri == MAIN_ZH else 0.01
    await ari.wait_request("GET", "/applications/hotline")  # the resync at start: it checks calls it finds
    await asyncio.sleep(0.1)
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    to_menu = on_call(ari.requests, call)
    assert to_menu == ["POST /ari/channels/{call}/answer", "POST /ari/channels/{call}/play/{call}",
                       "POST /ari/channels/{call}/play/{call}"], "answer, the greeting, the menu"
    menu = [r for r in ari.requests if r.path.endswith("-pb2")][0]
    assert len(menu.query["media"][0].split(",")) > 1, "the menu's options in one request"
    ari.media_duration = lambda uri: 30.0  # the next prompt plays on
    played = len(hotline.played(call))
    await ari.press(call, "1")
    await ari.wait_for(lambda: len(hotline.played(call)) > played)
    step = on_call(ari.requests, call)[len(to_menu):]
    assert step == ["DELETE /ari/playbacks/{call}", "POST /ari/channels/{call}/play/{call}"]
    await ari.hangup(call)
    await hotline.wait_ended(call)
