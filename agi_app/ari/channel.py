"""The ARI implementation of the engine's `ChannelControl`: maps verbs to REST calls and ARI
errors to the engine's vocabulary — a channel that is gone or no longer ours is `ChannelGone`,
any other failed request `ChannelFailed`. No `AriError` crosses this protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from agi_app.ari.client import AriClient, AriError, AriNotFound, AriNotInStasis
from agi_app.engine.channel import ChannelFailed, ChannelGone
from agi_app.logs import log_event

log = logging.getLogger("hotline.ari")

#: A stop that lands between a playback's start (state "playing", PlaybackStarted sent) and the
#: moment its sound can be controlled is refused with 500 "Could not stop playback"
#: (res_stasis_playback.c, `controllable` not yet set); a moment later it stops. A key pressed
#: right as a prompt starts — a caller's type-ahead, a DTMF flood — must not cost the call.
STOP_ATTEMPTS = 4
STOP_RETRY_S = 0.02


def engine_error(exc: AriError) -> ChannelGone | ChannelFailed:
    """An ARI error in the engine's words."""
    if isinstance(exc, AriNotFound | AriNotInStasis):
        return ChannelGone(str(exc))
    return ChannelFailed(str(exc))


class AriChannel:
    def __init__(self, client: AriClient, channel_id: str) -> None:
        self.client = client
        self.channel_id = channel_id

    async def answer(self) -> None:
        try:
            await self.client.answer(self.channel_id)
        except AriError as exc:
            raise engine_error(exc) from exc

    async def start_playback(self, media: Sequence[str], playback_id: str) -> None:
        try:
            await self.client.play(self.channel_id, media, playback_id)
        except AriError as exc:
            raise engine_error(exc) from exc

    async def stop_playback(self, playback_id: str) -> None:
        for attempt in range(1, STOP_ATTEMPTS + 1):
            try:
                await self.client.stop_playback(playback_id)
                return
            except AriNotFound:
                return  # it finished on its own meanwhile
            except AriError as exc:
                if exc.status != 500 or attempt == STOP_ATTEMPTS:
                    raise engine_error(exc) from exc
                log_event(log, "playback_stop_refused", call=self.channel_id, playback=playback_id, attempt=attempt)
            await asyncio.sleep(STOP_RETRY_S * attempt)

    async def playback_active(self, playback_id: str) -> bool:
        try:
            await self.client.get_playback(playback_id)
        except AriNotFound:
            return False
        except AriError as exc:
            raise engine_error(exc) from exc
        return True

    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        try:
            await self.client.record(self.channel_id, name, max_seconds=max_seconds,
                                     max_silence_seconds=max_silence_seconds)
        except AriError as exc:
            raise engine_error(exc) from exc

    async def stop_recording(self, name: str) -> None:
        try:
            await self.client.stop_recording(name)
        except AriNotFound:
            pass  # it ended on its own meanwhile
        except AriError as exc:
            raise engine_error(exc) from exc

    async def exists(self) -> bool:
        try:
            await self.client.get_channel(self.channel_id)
        except AriNotFound:
            return False
        except AriError as exc:
            raise engine_error(exc) from exc
        return True

    async def continue_in_dialplan(self, context: str, extension: str, priority: int = 1, *,
                                   variables: Mapping[str, str] | None = None) -> None:
        """The variables one request after another, then the continue: the dialplan runs as soon as
        the channel leaves Stasis, so a variable set after it would come too late."""
        try:
            for name, value in (variables or {}).items():
                await self.client.set_variable(self.channel_id, name, value)
            await self.client.continue_in_dialplan(self.channel_id, context, extension, priority)
        except AriError as exc:
            raise engine_error(exc) from exc

    async def hangup(self) -> None:
        try:
            await self.client.hangup(self.channel_id)
        except (AriNotFound, AriNotInStasis):
            pass  # already gone: the goal is reached
        except AriError as exc:
            raise engine_error(exc) from exc
