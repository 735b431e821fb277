"""What the call engine needs from telephony: a handful of verbs on one channel.

The ARI adapter implements this; the engine, flows and domain code only ever see this protocol,
so none of them knows about HTTP or WebSockets. A verb fails only with the engine's own errors:
`ChannelGone` (nobody left to serve) or `ChannelFailed` (telephony did not do it; the caller may
still be there, so the call goes to the dialplan fallback).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class ChannelGone(Exception):
    """The channel hung up or left our application; the call is over for us."""


class ChannelFailed(Exception):
    """A request on the channel failed (unreachable, timed out, refused); the channel may still be
    there, waiting for us."""


class ChannelControl(Protocol):
    channel_id: str

    async def answer(self) -> None: ...

    async def start_playback(self, media: Sequence[str], playback_id: str) -> None:
        """Start playing `media` in order; completion arrives as a playback-finished event."""

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback; no error if it already finished."""

    async def playback_active(self, playback_id: str) -> bool: ...

    async def exists(self) -> bool: ...

    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        """Start recording the caller into `name` after a beep (`#` ends it, as do silence and
        `max_seconds`); its end arrives as a recording-finished event."""

    async def stop_recording(self, name: str) -> None:
        """End a recording and keep it; no error if it already ended."""

    async def continue_in_dialplan(self, context: str, extension: str, priority: int = 1, *,
                                   variables: Mapping[str, str] | None = None) -> None:
        """Leave our application for the dialplan at `context,extension,priority`, with `variables`
        set on the channel first: the dialplan cannot ask us what it reads there (the language)."""

    async def hangup(self) -> None: ...
