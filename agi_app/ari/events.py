"""Typed ARI events: the subset the call engine reacts to, parsed once at the transport edge.

Everything above the ARI adapter sees these dataclasses, never raw JSON. Events we do not use
become `OtherEvent` so nothing is lost for logging, and a malformed event cannot crash the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    language: str = ""
    context: str = ""
    exten: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelInfo:
        caller = data.get("caller") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            caller_number=str(caller.get("number", "")),
            caller_name=str(caller.get("name", "")),
            language=str(data.get("language", "")),
            context=str(dialplan.get("context", "")),
            exten=str(dialplan.get("exten", "")),
        )


@dataclass(frozen=True)
class PlaybackInfo:
    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        prefix = "channel:"
        return self.target_uri[len(prefix):] if self.target_uri.startswith(prefix) else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlaybackInfo:
        return cls(
            id=str(data.get("id", "")),
            media_uri=str(data.get("media_uri", "")),
            target_uri=str(data.get("target_uri", "")),
            state=str(data.get("state", "")),
        )


@dataclass(frozen=True)
class RecordingInfo:
    """A live recording (ARI's LiveRecording): `duration` in whole seconds, `cause` when it failed."""

    name: str
    target_uri: str = ""
    state: str = ""
    duration: int = 0
    cause: str = ""

    @property
    def channel_id(self) -> str | None:
        prefix = "channel:"
        return self.target_uri[len(prefix):] if self.target_uri.startswith(prefix) else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordingInfo:
        return cls(name=str(data.get("name", "")), target_uri=str(data.get("target_uri", "")),
                   state=str(data.get("state", "")), duration=int(data.get("duration") or 0),
                   cause=str(data.get("cause", "")))


@dataclass(frozen=True)
class AriEvent:
    type: str
    application: str = ""

    @property
    def channel_id(self) -> str | None:
        return None


@dataclass(frozen=True)
class ChannelEvent(AriEvent):
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo(id=""))

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


@dataclass(frozen=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int = 0


@dataclass(frozen=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0


@dataclass(frozen=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True)
class PlaybackEvent(AriEvent):
    playback: PlaybackInfo = field(default_factory=lambda: PlaybackInfo(id=""))

    @property
    def channel_id(self) -> str | None:
        return self.playback.channel_id


@dataclass(frozen=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True)
class PlaybackContinuing(PlaybackEvent):
    pass


@dataclass(frozen=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True)
class RecordingEvent(AriEvent):
    recording: RecordingInfo = field(default_factory=lambda: RecordingInfo(name=""))

    @property
    def channel_id(self) -> str | None:
        return self.recording.channel_id


@dataclass(frozen=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(frozen=True)
class RecordingFinished(RecordingEvent):
    """Ended by the terminating key, silence, its maximum length, a stop, or the caller hanging up."""


@dataclass(frozen=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(frozen=True)
class ApplicationReplaced(AriEvent):
    pass


@dataclass(frozen=True)
class OtherEvent(AriEvent):
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def channel_id(self) -> str | None:
        channel = self.raw.get("channel")
        return str(channel["id"]) if isinstance(channel, Mapping) and "id" in channel else None


@dataclass(frozen=True)
class StreamConnected(AriEvent):
    """Synthetic: the event WebSocket (re)connected. Events from before may have been lost, and
    channels may be in our application that we know nothing of (a restart): time to resync."""


_CHANNEL_EVENTS: dict[str, type[ChannelEvent]] = {
    "StasisEnd": StasisEnd,
    "ChannelStateChange": ChannelStateChange,
}
_PLAYBACK_EVENTS: dict[str, type[PlaybackEvent]] = {
    "PlaybackStarted": PlaybackStarted,
    "PlaybackContinuing": PlaybackContinuing,
    "PlaybackFinished": PlaybackFinished,
}
_RECORDING_EVENTS: dict[str, type[RecordingEvent]] = {
    "RecordingStarted": RecordingStarted,
    "RecordingFinished": RecordingFinished,
    "RecordingFailed": RecordingFailed,
}


def parse_event(data: object) -> AriEvent:
    """Turn one decoded WebSocket message into a typed event (never raises on odd input: a message
    that is not a JSON object, or whose parts have the wrong shape, becomes an `OtherEvent`)."""
    if not isinstance(data, Mapping):
        return OtherEvent("", "", {"unparsed": type(data).__name__})
    kind = str(data.get("type", ""))
    app = str(data.get("application", ""))
    try:
        if kind == "StasisStart":
            return StasisStart(kind, app, ChannelInfo.from_json(data["channel"]),
                               tuple(str(a) for a in data.get("args", [])))
        if kind == "ChannelDtmfReceived":
            return ChannelDtmfReceived(kind, app, ChannelInfo.from_json(data["channel"]),
                                       str(data.get("digit", "")), int(data.get("duration_ms", 0)))
        if kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            cls = ChannelHangupRequest if kind == "ChannelHangupRequest" else ChannelDestroyed
            return cls(kind, app, ChannelInfo.from_json(data["channel"]), int(data.get("cause", 0)))
        if kind in _CHANNEL_EVENTS:
            return _CHANNEL_EVENTS[kind](kind, app, ChannelInfo.from_json(data["channel"]))
        if kind in _PLAYBACK_EVENTS:
            return _PLAYBACK_EVENTS[kind](kind, app, PlaybackInfo.from_json(data["playback"]))
        if kind in _RECORDING_EVENTS:
            return _RECORDING_EVENTS[kind](kind, app, RecordingInfo.from_json(data["recording"]))
        if kind == "ApplicationReplaced":
            return ApplicationReplaced(kind, app)
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return OtherEvent(kind, app, dict(data))
