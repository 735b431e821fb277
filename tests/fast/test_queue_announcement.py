"""Before a queue transfer: the caller's place and wait, announced from live queue state in their
language; a callback offered above the threshold (the key counts while the announcement plays);
no announcement — and no delay — when live state is not there; the queue leg recorded.

The real FlowRunner, CallSession, QueueAdvisor and media resolver on a simulated channel whose
playbacks take time; live queue state and the callback book are ports, given here."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agi_app.admin.simulate import SimulatedChannel
from agi_app.calendar.info import CalendarInfo
from agi_app.centre.advisor import QueueAdvisor
from agi_app.config import Settings
from agi_app.directory.facts import caller_facts
from agi_app.directory.models import Customer
from agi_app.engine.journey import Journey, JourneyRecord, MemorySink, QueueLeg
from agi_app.engine.session import Arrival, CallSession
from agi_app.flows.context import FlowContext
from agi_app.flows.loader import load_document
from agi_app.flows.runner import FlowRunner
from agi_app.media.resolver import MediaResolver, silent_sounds
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401 - the fixture
from tests.fake_ami.recordings import clone
from tests.fake_ami.server import SECRET, USER, FakeAmi, Member
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, fetch, import_demo_customers, running_hotline, settings_for
from tests.fast.flowkit import NOON, customer, doc
from tests.support.demo import VIP_EN
from tests.support.prompts import PROMPTS_FILE
from tests.support.queue_state import StubState, agent, snapshot

_ids = itertools.count(1)
QUEUES = {"general": {"queue": "general-en", "rules": [{"if": {"language": "zh"}, "queue": "general-zh"}]},
          "patient": {"queue": "general-en", "callback_offer_wait_s": 600}}
TRANSFER = {"t": {"type": "transfer", "prompt": "{{ sound('transfer_agent') }}"}}


class TimedChannel(SimulatedChannel):
    """A simulated channel on which each media item plays for `item_s` (a digit can arrive during
    it), stopped playbacks remembered."""

    def __init__(self, channel_id: str, item_s: float) -> None:
        super().__init__(channel_id)
        self.item_s = item_s
        self.playing: dict[str, asyncio.TimerHandle] = {}
        self.stopped: list[str] = []

    async def start_playback(self, media: Sequence[str], playback_id: str) -> None:
        self.played.extend(media)
        assert self.session is not None
        self.playing[playback_id] = asyncio.get_running_loop().call_later(
            self.item_s * len(media), self.session.on_playback_finished, playback_id)

    async def stop_playback(self, playback_id: str) -> None:
        if (timer := self.playing.pop(playback_id, None)) is not None and not timer.cancelled():
            timer.cancel()
            self.stopped.append(playback_id)


class Book:
    """The callback book port (the callback store implements it): remembers what it booked."""

    def __init__(self, *, accept: bool = True) -> None:
        self.accept = accept
        self.booked: list[tuple[str, str | None, str, str]] = []

    async def __call__(self, call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        self.booked.append((call_id, customer_id, number, group))
        return self.accept


def desk(state: StubState, book: Book | None = None, *, offer_above_s: int = 120, key_s: float = 0.1,
         budget_s: float = 0.2) -> QueueAdvisor:
    return QueueAdvisor(state, budget_s=budget_s, book=book, callback_offer_wait_s=offer_above_s,
                        callback_key_timeout_s=key_s)


MEDIA = MediaResolver(None, silent=silent_sounds(PROMPTS_FILE))


async def call(queue_desk: QueueAdvisor | None, *, nodes: dict[str, Any] | None = None, start: str = "t",
               caller: str = "13800138000", who: Customer | None = None, language: str = "en", item_s: float = 0.0,
               during: tuple[str, str] | None = None) -> tuple[JourneyRecord, TimedChannel]:
    """Run a flow (a transfer to `general` by default) to its end on a timed channel; `during`:
    (sound, digit) — the caller presses the digit shortly after that sound starts playing."""
    flows, _ = load_document(doc(nodes or TRANSFER, start=start, destinations=QUEUES))
    call_id = f"q-{next(_ids)}"
    channel = TimedChannel(call_id, item_s)
    record = JourneyRecord(call_id=call_id, caller=caller, dnis="95000", started_at=datetime.now(UTC))
    session = CallSession(Arrival(call_id, caller, "95000"), channel, Journey(record, MemorySink()))
    channel.session = session
    if during is not None:
        sound, digit = during
        start_playback = channel.start_playback

        async def press_during(media: Sequence[str], playback_id: str) -> None:
            await start_playback(media, playback_id)
            if any(uri.endswith(f"/{sound}") for uri in media):
                asyncio.get_running_loop().call_later(item_s / 2, session.on_dtmf, digit)

        channel.start_playback = press_during  # type: ignore[method-assign]
    facts = caller_facts(who, today=NOON.date(), bill_due_days=7)
    ctx = FlowContext(caller=caller, line=flows.lines["95000"], language=language, now=NOON, facts=facts,
                      calendar=CalendarInfo("open"))
    await FlowRunner(session, flows, ctx, MEDIA, desk=queue_desk).run()
    return record, channel


def heard(channel: TimedChannel) -> list[str]:
    return [uri.removeprefix("sound:hotline/").split("/", 1)[1] for uri in channel.played]


@pytest.mark.parametrize(("snap", "language", "said", "leg"), [
    # two agents on calls, three callers waiting, 120 s calls: 3 ahead, (3 + 1)/2 × 120 = 240 s → 4 minutes
    (snapshot(agent(1, busy=True), agent(2, busy=True), waiting=3, talktime=120, holdtime=75), "en",
     ["queue_position_before", "digits/3", "estimated_wait_before", "digits/4", "estimated_wait_after"],
     QueueLeg("general-en", 4, 240, 75, "waiting")),
    # Mandarin: 两位 and 两分钟 (2 ahead; 3 × 30 = 90 s, rounded up to 2 minutes), and the after-words
    (snapshot(agent(1, busy=True), waiting=2, talktime=30, holdtime=40), "zh",
     ["queue_position_before", "digits/liang", "queue_position_after", "estimated_wait_before", "digits/liang",
      "estimated_wait_after"],
     QueueLeg("general-zh", 3, 90, 40, "waiting")),
    # nobody ahead: "you are next"; 200 s → 4 minutes (up, never down)
    (snapshot(agent(1, busy=True), talktime=200), "en",
     ["queue_next", "estimated_wait_before", "digits/4", "estimated_wait_after"],
     QueueLeg("general-en", 1, 200, 0, "waiting")),
    # a short wait is still "1 minute", never "0"
    (snapshot(agent(1, busy=True), talktime=20), "zh",
     ["queue_next", "estimated_wait_before", "digits/1", "estimated_wait_after"],
     QueueLeg("general-zh", 1, 20, 0, "waiting")),
    # twelve ahead of two agents in Mandarin: 十二位
    (snapshot(agent(1, busy=True), agent(2, busy=True), waiting=12, talktime=60), "zh",
     ["queue_position_before", "digits/12", "queue_position_after", "estimated_wait_before", "digits/7",
      "estimated_wait_after"],
     QueueLeg("general-zh", 13, 390, 0, "waiting")),
    # no agent logged in and unpaused: said so, no number made up
    (snapshot(agent(1, paused=True), waiting=1, talktime=60), "en",
     ["queue_position_before", "digits/1", "queue_no_agents"],
     QueueLeg("general-en", 2, None, 0, "waiting")),
])
async def test_the_position_and_wait_are_announced_before_the_transfer(
        snap: Any, language: str, said: list[str], leg: QueueLeg) -> None:
    record, channel = await call(desk(StubState(snap)), language=language)
    assert heard(channel) == ["transfer_agent", "recording_notice", *said]
    assert channel.continued_to == ("hotline-agents", leg.queue, 1)
    assert record.queue_legs == [leg]


async def test_the_agent_key_announces_too() -> None:
    nodes = {"menu": {"type": "menu", "prompt": "{{ sound('menu_main') }}", "options": {"1": {"next": "t"}}},
             **TRANSFER}
    state = StubState(snapshot(agent(1, busy=True), talktime=60))
    _, channel = await call(desk(state), nodes=nodes, start="menu", during=("menu_main", "0"))
    assert heard(channel)[-4:] == ["queue_next", "estimated_wait_before", "digits/1", "estimated_wait_after"]
    assert state.asked == ["general-en"] and channel.continued_to == ("hotline-agents", "general-en", 1)


async def test_a_free_agent_means_no_announcement_at_all() -> None:
    record, channel = await call(desk(StubState(snapshot(agent(1), agent(2, busy=True), holdtime=30))))
    assert heard(channel) == ["transfer_agent", "recording_notice"] and channel.continued_to == ("hotline-agents", "general-en", 1)
    assert record.queue_legs == [QueueLeg("general-en", 1, 0, 30, "waiting")], "our estimate, 0, for the KPIs"


@pytest.mark.parametrize("state", [StubState(down=True), StubState(hang=True)], ids=["down", "no answer"])
async def test_without_live_state_the_caller_is_transferred_at_once_without_an_announcement(
        state: StubState, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    record, channel = await call(desk(state, Book(), budget_s=0.2))
    assert time.monotonic() - started < 0.6, "held back no longer than the budget"
    assert heard(channel) == ["transfer_agent", "recording_notice"] and channel.continued_to == ("hotline-agents", "general-en", 1)
    assert record.queue_legs == [QueueLeg("general-en", None, None, None, "waiting")]
    assert "queue_advice_unavailable" in caplog.text


async def test_live_state_is_read_while_the_transfer_prompt_plays() -> None:
    started = time.monotonic()
    _, channel = await call(desk(StubState(hang=True), budget_s=0.3), item_s=0.2)
    assert time.monotonic() - started < 0.6, \
        "the prompt (0.4 s: transfer_agent, recording_notice) and the budget (0.3 s) overlap, not add up"
    assert heard(channel) == ["transfer_agent", "recording_notice"] and channel.continued_to == ("hotline-agents", "general-en", 1)


async def test_a_caller_still_hearing_the_announcement_is_ahead_of_the_next_one() -> None:
    queue_desk = desk(StubState(snapshot(agent(1, busy=True), talktime=60)))
    first = asyncio.create_task(call(queue_desk, item_s=0.1))
    await asyncio.sleep(0.05)  # the first caller is hearing "transferring you": not in app_queue's list yet
    (early, _), (late, _) = await asyncio.gather(first, call(queue_desk, item_s=0.1))
    assert [leg.announced_position for leg in (*early.queue_legs, *late.queue_legs)] == [1, 2]
    after, _ = await call(queue_desk)  # both handed to the queue: app_queue lists them from now on
    assert after.queue_legs[0].announced_position == 1


LONG = snapshot(agent(1, busy=True), waiting=3, talktime=60)  # 4 × 60 = 240 s
SHORT = snapshot(agent(1, busy=True), talktime=60)  # 60 s


@pytest.mark.parametrize(("snap", "destination", "offered"), [
    (LONG, "general", True),  # 240 s > 120 s
    (SHORT, "general", False),  # 60 s ≤ 120 s
    (LONG, "patient", False),  # the destination's own threshold: 600 s
    (snapshot(agent(1, paused=True), talktime=60), "general", True),  # no agent: no number, a callback instead
])
async def test_a_callback_is_offered_above_the_threshold_only(snap: Any, destination: str, offered: bool) -> None:
    book = Book()
    nodes = {"t": {"type": "transfer", "destination": destination, "prompt": "{{ sound('transfer_agent') }}"}}
    record, channel = await call(desk(StubState(snap), book), nodes=nodes)
    assert ("callback_offer" in heard(channel)) is offered
    assert channel.continued_to == ("hotline-agents", "general-en", 1), "no key: the caller waits in the queue"
    assert book.booked == [] and record.services == []


async def test_key_1_during_the_position_announcement_books_the_callback_and_ends_the_call() -> None:
    book = Book()
    record, channel = await call(desk(StubState(LONG), book), who=customer("standard"), item_s=0.2,
                                 during=("queue_position_before", "1"))
    assert book.booked == [(record.call_id, "C9", "13800138000", "general-en")]
    said = heard(channel)
    assert said[:3] == ["transfer_agent", "recording_notice", "queue_position_before"] and said[-1] == "callback_confirmed"
    assert len(channel.stopped) == 1, "the announcement was cut short by the key, not played out"
    assert channel.hung_up and channel.continued_to is None
    assert record.services == [("callback", "ok")]
    assert record.queue_legs == [QueueLeg("general-en", 4, 240, 0, "callback")]


async def test_a_callback_that_cannot_be_booked_leaves_the_caller_in_the_queue() -> None:
    book = Book(accept=False)
    record, channel = await call(desk(StubState(LONG), book), item_s=0.05, during=("callback_offer", "1"))
    assert len(book.booked) == 1 and "callback_confirmed" not in heard(channel)
    assert channel.continued_to == ("hotline-agents", "general-en", 1) and not channel.hung_up
    assert record.services == [("callback", "failed")]
    assert record.queue_legs == [QueueLeg("general-en", 4, 240, 0, "waiting")]


async def test_another_key_is_no_callback() -> None:
    book = Book()
    record, channel = await call(desk(StubState(LONG), book), item_s=0.05, during=("callback_offer", "2"))
    assert book.booked == [] and channel.continued_to == ("hotline-agents", "general-en", 1)


@pytest.mark.parametrize("caller", ["anonymous", "", "+442071234567"])
async def test_no_callback_is_offered_without_a_national_number_to_call(caller: str) -> None:
    book = Book()
    record, channel = await call(desk(StubState(LONG), book), caller=caller, item_s=0.01,
                                 during=("queue_position_before", "1"))
    assert "callback_offer" not in heard(channel) and book.booked == []
    assert channel.continued_to == ("hotline-agents", "general-en", 1)


# --- a whole call on the real server: live state from the (fake) AMI, the leg in PostgreSQL ---------
async def vip_call_to_an_agent(hotline: Hotline) -> tuple[str, dict[str, Any]]:
    """The VIP caller C003 (English) on the VIP line presses 0: the relationship team, queue vip."""
    call = await hotline.call(VIP_EN, dnis="95001")
    await hotline.heard(call, "sound:hotline/en/opt_agent")
    await hotline.ari.press(call, "0")
    return call, await hotline.wait_ended(call)


def with_ami(fake_ari: FakeAri, fake_ami: FakeAmi, dsn: str, tmp_path: Path) -> Settings:  # noqa: F811
    """The server's settings for a test, AMI at the fake (the FastAGI hooks on any free port)."""
    return settings_for(fake_ari, dsn, tmp_path, ami_url=fake_ami.url, ami_user=USER, ami_password=SECRET,
                        agi_listen="127.0.0.1:0", callback_key_ms=100)


async def test_a_call_hears_its_place_from_ami_and_its_queue_leg_is_stored(
        fake_ari: FakeAri, fake_ami: FakeAmi, dsn: str, tmp_path: Path) -> None:  # noqa: F811
    vip = fake_ami.queues["hotline-vip"]
    vip.params = clone(vip.params, Holdtime=80, TalkTime=150)
    vip.members = {"PJSIP/agent-1001": Member("PJSIP/agent-1001", "agent-1001", "PJSIP/agent-1001", in_call=True,
                                              status=2)}  # AST_DEVICE_INUSE
    for n in (1, 2):
        fake_ami.add_caller("hotline-vip", f"PJSIP/caller-{n}", f"waiting-{n}")
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.01
    settings = with_ami(fake_ari, fake_ami, dsn, tmp_path)
    async with running_hotline(fake_ari, dsn, settings) as hotline:
        assert hotline.server.ami is not None
        await hotline.server.ami.wait_connected()
        call, row = await vip_call_to_an_agent(hotline)
    played = [uri.removeprefix("sound:hotline/en/") for uri in hotline.played(call)]
    # 2 ahead of one busy agent, no completed calls yet: 3 × (TalkTime 150 s + wrap-up 2 s) = 456 s → 8
    # minutes; above the 120 s threshold: a callback offered (no key: the caller waits in the queue)
    assert played[-8:] == ["transfer_agent", "recording_notice", "queue_position_before", "digits/2", "estimated_wait_before",
                           "digits/8", "estimated_wait_after", "callback_offer"]
    assert fake_ari.channel(call).continued_to == ("hotline-agents", "vip", 1)
    assert row["transfer_target"] == "vip"
    legs = await fetch(dsn, "SELECT queue, announced_position, announced_wait_s, asterisk_wait_s, result"
                            " FROM queue_legs WHERE call_id = $1", call)
    assert [tuple(leg) for leg in legs] == [("vip", 3, 456, 80, "waiting")]


async def test_with_ami_down_a_call_is_transferred_without_an_announcement(
        fake_ari: FakeAri, fake_ami: FakeAmi, dsn: str, tmp_path: Path) -> None:  # noqa: F811
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.01
    await fake_ami.stop()
    settings = with_ami(fake_ari, fake_ami, dsn, tmp_path)
    async with running_hotline(fake_ari, dsn, settings) as hotline:
        call, row = await vip_call_to_an_agent(hotline)
    assert hotline.played(call)[-2:] == ["sound:hotline/en/transfer_agent", "sound:hotline/en/recording_notice"]
    assert fake_ari.channel(call).continued_to == ("hotline-agents", "vip", 1)
    legs = await fetch(dsn, "SELECT announced_position, result FROM queue_legs WHERE call_id = $1", call)
    assert [tuple(leg) for leg in legs] == [(None, "waiting")]
