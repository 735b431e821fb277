"""The ARI implementation of the engine's `ChannelControl`: maps verbs to REST calls and ARI
errors to the engine's vocabulary (`ChannelGone`)."""

from __future__ import annotations

from collections.abc import Sequence

from agi_app.ari.client import AriClient, AriNotFound, AriNotInStasis
from agi_app.engine.channel import ChannelGone


class AriChannel:
    def __init__(self, client: AriClient, channel_id: str) -> None:
        self.client = client
        self.channel_id = channel_id

    async def answer(self) -> None:
        try:
            await self.client.answer(self.channel_id)
        except (AriNotFound, AriNotInStasis) as exc:
            raise ChannelGone(str(exc)) from exc

    async def start_playback(self, media: Sequence[str], playback_id: str) -> None:
        try:
            await self.client.play(self.channel_id, media, playback_id)
        except (AriNotFound, AriNotInStasis) as exc:
            raise ChannelGone(str(exc)) from exc

    async def stop_playback(self, playback_id: str) -> None:
        try:
            await self.client.stop_playback(playback_id)
        except AriNotFound:
            pass  # it finished on its own meanwhile

    async def playback_active(self, playback_id: str) -> bool:
        try:
            await self.client.get_playback(playback_id)
        except AriNotFound:
            return False
        return True

    async def exists(self) -> bool:
        try:
            await self.client.get_channel(self.channel_id)
        except AriNotFound:
            return False
        return True

    async def continue_in_dialplan(self, context: str, extension: str, priority: int = 1) -> None:
        try:
            await self.client.continue_in_dialplan(self.channel_id, context, extension, priority)
        except (AriNotFound, AriNotInStasis) as exc:
            raise ChannelGone(str(exc)) from exc

    async def hangup(self) -> None:
        try:
            await self.client.hangup(self.channel_id)
        except (AriNotFound, AriNotInStasis):
            pass  # already gone: the goal is reached
