"""The dialplan speaks the caller's language after we let the call go: every transfer sets
HOTLINE_LANGUAGE (the language the caller was served in) on the channel before its `continue`, so
the queue contexts' prompts, the fallback's apology and the survey's way back are in that language.
Whole calls through the real server and ARI client against the fake ARI; the session's own rule
(only a known code reaches the channel) on the simulator's channel."""

from __future__ import annotations

import asyncio

from agi_app.admin.simulate import simulated_session
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline
from tests.support.demo import KNOWN_ZH, MAIN_ZH, VIP_EN


def handoff(ari: FakeAri, call: str) -> list[str]:
    """The requests that let `call` go, in the order the fake received them (a failed one with its status)."""
    steps = []
    for request in ari.requests:
        query = {name: values[-1] for name, values in request.query.items()}
        if request.path == f"/ari/channels/{call}/variable":
            step = f"set {query['variable']}={query.get('value', '')}"
        elif request.path == f"/ari/channels/{call}/continue":
            step = f"continue {query['context']},{query['extension']},{query['priority']}"
        else:
            continue
        steps.append(step if request.status < 300 else f"{step} ({request.status})")
    return steps


async def test_an_english_caller_sent_to_a_queue_leaves_the_dialplan_speaking_english(hotline: Hotline) -> None:
    call = await hotline.call(VIP_EN, dnis="95001")
    await hotline.heard(call, "sound:hotline/en/digits/0")
    await hotline.ari.press(call, "0")  # the relationship team: the VIP queue
    row = await hotline.wait_ended(call)
    assert row["language"] == "en" and row["transfer_target"] == "vip"
    assert handoff(hotline.ari, call) == ["set HOTLINE_LANGUAGE=en", "continue hotline-agents,vip,1"]


async def test_a_mandarin_caller_sent_to_a_queue_leaves_it_speaking_mandarin(hotline: Hotline) -> None:
    call = await hotline.call(KNOWN_ZH)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.press(call, "3")  # pay the card bill: the cards queue
    row = await hotline.wait_ended(call)
    assert row["language"] == "zh" and row["transfer_target"] == "cards"
    assert handoff(hotline.ari, call) == ["set HOTLINE_LANGUAGE=zh", "continue hotline-agents,cards,1"]


async def test_a_call_given_up_at_shutdown_gets_the_fallback_in_its_language(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 30.0  # still in its greeting when the server stops
    call = await hotline.call(VIP_EN, dnis="95001")
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)))
    await hotline.stop()
    assert handoff(hotline.ari, call) == ["set HOTLINE_LANGUAGE=en", "continue hotline-fallback,s,1"]


async def test_a_language_that_could_not_be_set_is_never_followed_by_the_continue(hotline: Hotline) -> None:
    """Without its language the queue would speak the default one: the transfer fails as a whole
    and the call goes to the fallback, told the language there."""
    call = await hotline.call(VIP_EN, dnis="95001")
    await hotline.heard(call, "sound:hotline/en/digits/0")
    hotline.ari.fault("POST", r"/variable$", status=500)
    await hotline.ari.press(call, "0")
    await hotline.ari.wait_for(lambda: hotline.ari.channel(call).continued_to is not None)
    assert handoff(hotline.ari, call) == ["set HOTLINE_LANGUAGE=en (500)", "set HOTLINE_LANGUAGE=en",
                                          "continue hotline-fallback,s,1"]
    assert (await hotline.wait_ended(call))["outcome"] == "error"


async def test_only_a_known_language_code_reaches_the_channel() -> None:
    for language, variables in (("en", {"HOTLINE_LANGUAGE": "en"}), ("zh", {"HOTLINE_LANGUAGE": "zh"}),
                                ("fr", {}), ("en,x", {}), (None, {})):
        session, channel, _ = simulated_session("13800138000", "95000")
        await session.answer()
        await asyncio.wait_for(session.transfer("hotline-agents", "general", "general", language=language), 2)
        assert channel.continued_to == ("hotline-agents", "general", 1), language
        assert channel.variables == variables, language
