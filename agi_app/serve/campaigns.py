"""The campaign dialler: calls the customers of running campaigns, plays the answering party the
campaign's message, hangs up, and records each attempt's result.

Each round (every `campaign_poll_ms`, and at once after a call ends) it reads the business
calendar and, for each running campaign the rules let dial now (`centre.campaigns.may_dial`),
claims as many due customers as the campaign's free lines allow (`repositories.campaigns.claim`:
SKIP LOCKED, so servers sharing the database never call one customer twice) and originates them
the way callbacks dial customers (`callback_dial`, `callback_ring_s`) into our application with
args `campaign,<target>,<attempt>`. Answered, the message plays (a recorded prompt, or the text
through the speech synthesiser) and the call is hung up when it ends; unanswered, the channel's
cause says busy, no answer or failed (`centre.callbacks.attempt_result`, one reading of causes).

Nothing is kept only in memory: the channel id names the attempt (`AttemptLeg`), and after each
(re)connection of the event stream attempts whose channels Asterisk no longer has are closed as
failed, so a dead server's calls do not hold the campaign's lines for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import asyncpg

from agi_app.ari.client import AriClient, AriError
from agi_app.ari.events import (
    AriEvent,
    ChannelDestroyed,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    StreamConnected,
)
from agi_app.calendar.model import ALL_LINES
from agi_app.centre.callbacks import attempt_result, valid_number
from agi_app.centre.campaigns import CAMPAIGN_ARG, AttemptLeg, Result, may_dial
from agi_app.config import Settings
from agi_app.db.failures import DB_FAILURES
from agi_app.db.repositories import calendar
from agi_app.db.repositories import campaigns as store
from agi_app.db.repositories.campaigns import CampaignRow, Claimed
from agi_app.logs import log_event
from agi_app.media.items import MediaItem, Sound, Speech
from agi_app.media.resolver import MediaResolver
from agi_app.serve.workers import claim_forever, follow_forever, hang_up, offer, on_connection

log = logging.getLogger("hotline.campaigns")

T = TypeVar("T")


def attempt_args(leg: AttemptLeg) -> list[str]:
    """StasisStart's arguments of an answered attempt."""
    return [CAMPAIGN_ARG, str(leg.target_id), str(leg.attempt)]


def message_items(campaign: CampaignRow) -> list[MediaItem]:
    """What the answering party hears: the recorded prompt, or the text spoken."""
    if campaign.message_sound is not None:
        return [Sound(campaign.message_sound, campaign.language)]
    return [Speech(campaign.message_text or "", campaign.language)]


class CampaignDialler:
    """`run` is the server's task for it; `on_event` receives the router's campaign events."""

    def __init__(self, client: AriClient, pool: asyncpg.Pool, settings: Settings, media: MediaResolver, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), queue_size: int = 1000) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self.media = media
        self.clock = clock
        self.retry_delay = timedelta(seconds=settings.campaign_retry_delay_s)
        self._events: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=queue_size)
        self._wake = asyncio.Event()
        self._allowed: dict[int, bool] = {}  # per campaign, whether the last round could dial (logged on change)

    def on_event(self, event: AriEvent) -> None:
        """An event of a campaign call (or a reconnection), from the router; never blocks."""
        offer(self._events, event, log=log, dropped="campaign_event_dropped")

    async def run(self) -> None:
        """Dial and follow the calls until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            # ValueError: a time zone this host does not know
            tasks.create_task(claim_forever(self.dial_due, self._wake, self.settings.campaign_poll_s,
                                            errors=(*DB_FAILURES, ValueError), on_error=self._round_failed),
                              name="campaigns-dial")
            tasks.create_task(follow_forever(self._events, self.handle, log=log, failed="campaign_event_failed"),
                              name="campaigns-follow")

    def _round_failed(self, exc: Exception) -> None:
        log_event(log, "campaign_round_failed", level=logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200])

    # --- dialling ------------------------------------------------------------------------------
    async def dial_due(self) -> None:
        """One round: every running campaign allowed now gets its free lines filled."""
        business = await self._db(lambda conn: calendar.load_calendar(conn, ALL_LINES))
        now = self.clock()
        for campaign in await self._db(store.running):
            allowed = may_dial(now, campaign.hours, business)
            if self._allowed.get(campaign.campaign_id) != allowed:
                self._allowed[campaign.campaign_id] = allowed
                log_event(log, "campaign_window", campaign=campaign.name, dialling="yes" if allowed else "no",
                          hours=str(campaign.hours), day=business.hours_on(now.astimezone(business.tz).date()).kind)
            if allowed:
                for claimed in await self._db(partial(store.claim, campaign_id=campaign.campaign_id)):
                    await self._dial(campaign, claimed)
            if await self._db(partial(store.finish_if_done, campaign_id=campaign.campaign_id)):
                log_event(log, "campaign_finished", campaign=campaign.name)

    async def _dial(self, campaign: CampaignRow, claimed: Claimed) -> None:
        leg = claimed.leg
        if not valid_number(claimed.number):  # only digits reach a dial string
            await self._end(leg, Result.FAILED, "not a dialable number")
            return
        try:
            await self.client.originate(self.settings.callback_dial.format(number=claimed.number),
                                        channel_id=leg.channel_id, app_args=attempt_args(leg),
                                        timeout_s=self.settings.callback_ring_s)
        except AriError as exc:
            log_event(log, "campaign_dial_failed", level=logging.ERROR, campaign=campaign.name, channel=leg.channel_id,
                      error=str(exc)[:200])
            await self._end(leg, Result.FAILED, f"not dialled: {exc.status or 'unreachable'}")
            return
        log_event(log, "campaign_dialling", call=leg.channel_id, campaign=campaign.name, attempt=leg.attempt)

    # --- following the calls ------------------------------------------------------------------
    async def handle(self, event: AriEvent) -> None:
        if isinstance(event, StreamConnected):
            await self.reconcile()
            return
        leg = AttemptLeg.parse(event.channel_id or "")
        if leg is None:
            if isinstance(event, StasisStart):  # says it is a campaign call, but no channel of ours is
                await self._hang_up(event.channel.id, "unknown_channel")
            return
        if isinstance(event, StasisStart):
            if list(event.args) != attempt_args(leg):
                await self._hang_up(leg.channel_id, "args_mismatch")
            else:
                await self._answered(leg)
        elif isinstance(event, PlaybackFinished):
            if event.playback.id == leg.playback_id:
                log_event(log, "campaign_message_played", call=leg.channel_id)
                await self._hang_up(leg.channel_id)
        elif isinstance(event, ChannelDestroyed):  # never answered, or gone
            result = Result(str(attempt_result(event.cause)))
            await self._end(leg, result, f"{result} (cause {event.cause})")
        elif isinstance(event, StasisEnd):  # answered, and now gone
            await self._end(leg, Result.FAILED, "ended after answering")

    async def _answered(self, leg: AttemptLeg) -> None:
        """The customer picked up: the message, then (PlaybackFinished) the hangup."""
        campaign_id = await self._db(lambda conn: store.mark_answered(conn, leg))
        campaign = None if campaign_id is None else await self._db(partial(store.get_by_id, campaign_id=campaign_id))
        if campaign is None:
            await self._hang_up(leg.channel_id, "not_dialling")
            return
        log_event(log, "campaign_answered", call=leg.channel_id, campaign=campaign.name, attempt=leg.attempt)
        uris = await self.media.uris(message_items(campaign), call_id=leg.channel_id)
        if not uris:  # the text could not be spoken: nothing to say, the attempt still counts as answered
            await self._hang_up(leg.channel_id, "no_message")
            return
        try:
            await self.client.play(leg.channel_id, uris, leg.playback_id)
        except AriError as exc:
            log_event(log, "campaign_play_failed", level=logging.WARNING, call=leg.channel_id, error=str(exc)[:200])
            await self._hang_up(leg.channel_id)

    async def _end(self, leg: AttemptLeg, unanswered: Result, detail: str) -> None:
        result = await self._db(lambda conn: store.end_attempt(conn, leg, unanswered, self.retry_delay, detail=detail))
        if result is not None:
            log_event(log, "campaign_attempt_ended", call=leg.channel_id, attempt=leg.attempt, result=str(result))
            self._wake.set()  # a line is free

    async def reconcile(self) -> None:
        """Attempts whose channels Asterisk no longer has (their server died) end as failed."""
        settle = timedelta(seconds=2 * self.settings.ari_budget_s)  # a fresh claim may not have its channel yet
        open_legs = await self._db(lambda conn: store.open_attempts(conn, settle))
        if not open_legs:
            return
        try:
            live = {str(c.get("id")) for c in await self.client.channels()}
        except AriError as exc:
            log_event(log, "campaign_reconcile_failed", level=logging.ERROR, error=str(exc)[:200])
            return
        for leg in open_legs:
            if leg.channel_id not in live:
                await self._end(leg, Result.FAILED, "lost with its server")

    # --- helpers ---------------------------------------------------------------------------------
    async def _db(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await on_connection(self.pool, self.settings.db_budget_s, operation)

    async def _hang_up(self, channel_id: str, refused: str | None = None) -> None:
        if refused:
            log_event(log, "campaign_channel_refused", level=logging.WARNING, channel=channel_id, reason=refused)
        await hang_up(self.client, channel_id, log=log, failed="campaign_hangup_failed")
