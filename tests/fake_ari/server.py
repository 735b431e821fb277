"""A strict fake of Asterisk 22's ARI: real HTTP + WebSocket on loopback, driven by the test.

Why: the call engine and its ARI client must be tested as they run in production (real sockets, real
JSON, real event order) without an Asterisk.  The fake is strict in both directions:

* every REST request is checked against Asterisk's own swagger declarations (``swagger.py``); a
  request Asterisk would not accept is answered as Asterisk would and appended to ``violations``;
* every event and response body is cloned from recordings of the real sandbox (``fixtures.py``) and
  validated against the declared models before it leaves; an invalid one raises (a bug in the fake).

The test plays the caller (``place_call``, ``press``, ``hangup``) and inspects what the app did
(``channel(id).played``, ``requests``...).  It can also make Asterisk misbehave the ways a network
and a busy Asterisk do: ``fault`` fails, or holds unanswered, the requests matching a method and
path (the event WebSocket's handshake too), still after checking them against the declarations;
``place_call(hold_start=True)`` puts a channel in the application (``GET /applications`` lists it)
while its StasisStart is still on its way, until ``deliver_stasis_start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .fixtures import Recordings, load_recordings
from .swagger import Operation, Swagger, SwaggerError, load_swagger


@dataclass
class RecordedRequest:
    """One REST request as the fake received it, with the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    status: int = 0
    response: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A scripted misbehaviour for the requests matching ``method`` and ``path`` (``re.search`` on
    the path without ``/ari``); see ``FakeAri.fault``."""

    method: str
    path: re.Pattern[str]
    status: int | None = None  # answer with this error status instead of serving the request
    hold: bool = False  # leave the request unanswered until `release()` or until the client gives up
    remaining: int | None = 1  # how many more requests it affects; None: every one until removed
    hits: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining is None or self.remaining > 0) and method == self.method and bool(
            self.path.search(path))

    def release(self) -> None:
        """Held requests go on and are served normally (those still waiting, and later ones)."""
        self.released.set()


@dataclass
class FakePlayback:
    """A playback operation on a channel (Asterisk queues them per channel)."""

    id: str
    channel_id: str
    media: list[str]
    language: str
    state: str = "queued"
    index: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeRecording:
    """A recording of a channel (``POST /channels/{id}/record``). The fake caller speaks the whole
    time (Asterisk counts a recording's length in the voice frames it receives), so only
    ``terminateOn``, ``maxDurationSeconds``, a stop or the hangup end it."""

    name: str
    channel_id: str
    format: str
    max_seconds: int
    terminate_on: str
    beep: bool
    started: float
    state: str = "recording"
    duration: int = 0
    timer: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Origination:
    """How the app dialled a channel (``POST /channels``); the test then plays the far end."""

    endpoint: str
    app_args: list[str]
    timeout: int
    other_id: str | None  # a Local channel's second half


@dataclass
class FakeBridge:
    id: str
    name: str
    created: str
    channels: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)  # media played to the whole bridge, in order


@dataclass
class FakeChannel:
    """The fake's view of one call leg; tests read it to see what the app did."""

    id: str
    number: int
    caller: str
    caller_name: str
    dnis: str
    language: str
    created: str
    state: str = "Ring"
    hungup: bool = False
    in_stasis: bool = False
    continued_to: tuple[str, str, int] | None = None
    played: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    moh: bool = False
    silence: bool = False
    ringing: bool = False
    hangup_reason: str | None = None
    start_held: bool = False  # in Stasis, but its StasisStart not yet sent (``deliver_stasis_start``)
    stasis_args: tuple[str, ...] = ()  # the Stasis() arguments, when not just the dialled number
    recording: FakeRecording | None = None  # the recording in progress
    recorded: list[str] = field(default_factory=list)  # names of the recordings made, in order
    originated: Origination | None = None  # dialled by the app (its events reach the app from the start)
    tech_name: str = ""  # the channel name, when not a caller's (an originated channel's)
    queue: list[FakePlayback | tuple[str, str, int]] = field(default_factory=list)  # control queue
    current: FakePlayback | None = None
    worker: asyncio.Task[None] | None = None


@dataclass
class _Conn:
    """One event WebSocket."""

    ws: web.WebSocketResponse
    request: web.Request
    apps: list[str]
    subscribe_all: bool
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    replaced: bool = False


@dataclass
class _Call:
    """One REST request being served."""

    op: Operation
    path_vars: dict[str, str]
    params: dict[str, list[str]]
    body: Any

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default


class _Refused(Exception):
    """Answer the request with this status/body (an expected ARI error, not a violation)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


#: Event types that make up a recorded call ending.
#: Q.850 cause texts as Asterisk words them (ChannelDestroyed's cause_txt).
_CAUSE_TEXT = {16: "Normal Clearing", 17: "User busy", 18: "No user responding", 19: "User alerting, no answer",
               21: "Call Rejected", 34: "Circuit/channel congestion"}

_END_TYPES = ("ChannelVarset", "ChannelHangupRequest", "StasisEnd", "ChannelDestroyed", "PlaybackFinished")


def _now() -> str:
    """Asterisk's timestamp style: ``2024-05-01T10:00:00.123+0000``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


class FakeAri:
    """A fake Asterisk ARI server for one Stasis application (see the module docstring)."""

    def __init__(
        self,
        *,
        app: str = "hotline",
        user: str = "hotline",
        password: str = "hotline-dev",
        swagger_dir: Path | None = None,
        fixtures_dir: Path | None = None,
    ) -> None:
        self.app = app
        self.user = user
        self.password = password
        self.swagger: Swagger = load_swagger(swagger_dir)
        self.rec: Recordings = load_recordings(fixtures_dir)
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.events: list[dict[str, Any]] = []  # every event emitted, in order (also when nobody listened)
        self.media_duration: Callable[[str], float] = lambda uri: 0.3
        self.channels: dict[str, FakeChannel] = {}
        self.faults: list[Fault] = []
        self._stopping = asyncio.Event()
        self._auth = aiohttp.encode_basic_auth(user, password) if hasattr(aiohttp, "encode_basic_auth") else (
            aiohttp.BasicAuth(user, password).encode()
        )
        self._conns: list[_Conn] = []
        self._owner: dict[str, _Conn] = {}  # app name -> WebSocket currently receiving its events
        self._playbacks: dict[str, FakePlayback] = {}
        self.recordings: dict[str, FakeRecording] = {}  # every recording made, live or stored, by name
        self.bridges: dict[str, FakeBridge] = {}
        self._consumed: set[int] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._id_base = int(time.time())
        self._chan_tpl = self.rec.template("StasisStart")["channel"]
        self._asterisk_id = self.rec.template("StasisStart").get("asterisk_id")
        # keyed by (method, path template): swagger nicknames repeat across resources ("get", "list")
        self._handlers: dict[tuple[str, str], Callable[[_Call], Any]] = {
            ("GET", "/asterisk/info"): self._h_info,
            ("GET", "/asterisk/ping"): self._h_ping,
            ("GET", "/channels"): self._h_list_channels,
            ("GET", "/applications"): self._h_list_applications,
            ("GET", "/applications/{applicationName}"): self._h_get_application,
            ("GET", "/channels/{channelId}"): self._h_get_channel,
            ("GET", "/playbacks/{playbackId}"): self._h_get_playback,
            ("POST", "/channels/{channelId}/answer"): self._h_answer,
            ("DELETE", "/channels/{channelId}"): self._h_hangup,
            ("POST", "/channels"): self._h_originate,
            ("POST", "/bridges"): self._h_create_bridge,
            ("POST", "/bridges/{bridgeId}/addChannel"): self._h_add_to_bridge,
            ("DELETE", "/bridges/{bridgeId}"): self._h_destroy_bridge,
            ("POST", "/bridges/{bridgeId}/play/{playbackId}"): self._h_play_on_bridge,
            ("POST", "/channels/{channelId}/continue"): self._h_continue,
            ("POST", "/channels/{channelId}/play"): self._h_play,
            ("POST", "/channels/{channelId}/play/{playbackId}"): self._h_play,
            ("DELETE", "/playbacks/{playbackId}"): self._h_stop_playback,
            ("POST", "/channels/{channelId}/record"): self._h_record,
            ("POST", "/recordings/live/{recordingName}/stop"): self._h_stop_recording,
            ("GET", "/channels/{channelId}/variable"): self._h_get_var,
            ("POST", "/channels/{channelId}/variable"): self._h_set_var,
            ("POST", "/channels/{channelId}/ring"): self._h_ring,
            ("DELETE", "/channels/{channelId}/ring"): self._h_ring,
            ("POST", "/channels/{channelId}/moh"): self._h_moh,
            ("DELETE", "/channels/{channelId}/moh"): self._h_moh,
            ("POST", "/channels/{channelId}/silence"): self._h_silence,
            ("DELETE", "/channels/{channelId}/silence"): self._h_silence,
        }

    # ================================================================== lifecycle
    async def start(self) -> None:
        """Listen on 127.0.0.1 with a free port; sets ``url``."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop playbacks, close WebSockets and the listener."""
        self._stopping.set()  # requests held by a fault give up
        for task in list(self._tasks):
            task.cancel()
        for ch in self.channels.values():
            if ch.worker:
                ch.worker.cancel()
        for conn in list(self._conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ================================================================== test-side API
    def channel(self, channel_id: str) -> FakeChannel:
        return self.channels[channel_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109 (agreed API)
        """Poll ``predicate`` until true; TimeoutError otherwise (tests: wait for the app to react)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"condition not met within {timeout:.1f} s")
            await asyncio.sleep(0.005)

    async def wait_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (agreed API)
        """Until a WebSocket receives this app's events."""
        await self.wait_for(lambda: self.app in self._owner, timeout)

    async def wait_request(self, method: str, path_regex: str, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109 (agreed API)
        """The first answered request with ``method`` whose path matches ``path_regex`` (``re.search``)
        and that no earlier ``wait_request`` returned; waits for it if needed."""
        rx = re.compile(path_regex)
        found: list[RecordedRequest] = []

        def check() -> bool:
            for i, r in enumerate(self.requests):
                if i not in self._consumed and r.status and r.method == method.upper() and rx.search(r.path):
                    self._consumed.add(i)
                    found.append(r)
                    return True
            return False

        await self.wait_for(check, timeout)
        return found[0]

    async def place_call(self, caller: str, dnis: str, *, caller_name: str = "", language: str = "en",
                         hold_start: bool = False, args: Sequence[str] = ()) -> str:
        """A caller dials ``dnis``: a Ring channel enters Stasis (StasisStart, args [dnis], or
        ``args`` as a dialplan's Stasis(app,...) would give them).

        As in Asterisk, if no WebSocket is connected for the app, Stasis() fails and the channel is
        hung up at once without any event (``channel(id).hungup`` is True). With ``hold_start`` the
        channel is in the application but its StasisStart is still on its way (an event queued behind
        others): it is sent by ``deliver_stasis_start``.
        """
        n = next(self._ids)
        ch = FakeChannel(
            id=f"{self._id_base}.{n}", number=n, caller=caller, caller_name=caller_name, dnis=dnis,
            language=language, created=_now(), stasis_args=tuple(args),
        )
        self.channels[ch.id] = ch
        if self.app not in self._owner:
            ch.hungup = True
            return ch.id
        ch.in_stasis = True
        ch.start_held = hold_start
        if not hold_start:
            self._emit_stasis_start(ch)
        return ch.id

    def deliver_stasis_start(self, channel_id: str) -> None:
        """Send the StasisStart that ``place_call(hold_start=True)`` held back."""
        ch = self.channels[channel_id]
        if ch.start_held:
            ch.start_held = False
            self._emit_stasis_start(ch)

    def _emit_stasis_start(self, ch: FakeChannel) -> None:
        ev = self.rec.template("StasisStart")
        ev["args"] = list(ch.stasis_args) or [ch.dnis]
        self._emit(ev, ch)

    def fault(self, method: str, path_regex: str, *, status: int | None = None, hold: bool = False,
              times: int | None = 1) -> Fault:
        """Make the next ``times`` requests (None: all, until removed from ``faults``) matching
        ``method`` and ``path_regex`` fail with ``status``, or stay unanswered (``hold``) until
        ``Fault.release()`` or until the client gives up (a timeout: recorded with status 0).

        Faults apply after the request is checked against the declarations, so a malformed request
        is still a violation. The event WebSocket's handshake is ``GET /events``.
        """
        if (status is None) == (not hold):
            raise ValueError("a fault either fails (status=...) or holds (hold=True)")
        fault = Fault(method.upper(), re.compile(path_regex), status, hold, times)
        self.faults.append(fault)
        return fault

    async def press(self, channel_id: str, digits: str, *, gap: float = 0.05, duration_ms: int = 100) -> None:
        """The caller presses ``digits`` (one ChannelDtmfReceived each, ``gap`` seconds apart)."""
        ch = self.channels[channel_id]
        for i, digit in enumerate(digits):
            if ch.hungup or not ch.in_stasis:
                return
            if i:
                await asyncio.sleep(gap)
            ev = self.rec.template("ChannelDtmfReceived")
            ev["digit"] = digit
            ev["duration_ms"] = duration_ms
            self._emit(ev, ch)
            rec = ch.recording
            if rec is not None and (rec.terminate_on == "any" or rec.terminate_on == digit):
                self._finish_recording(ch, rec)

    async def hangup(self, channel_id: str) -> None:
        """The caller hangs up; replays the recorded end of a caller-hung-up call."""
        ch = self.channels[channel_id]
        if ch.hungup:
            return
        if not ch.in_stasis:  # after continue the app is no longer subscribed to the channel
            ch.hungup = True
            return
        self._end_call(ch, self.rec.caller_hangup_tail())

    def originated(self, endpoint_prefix: str = "") -> list[FakeChannel]:
        """Channels the app dialled (``POST /channels``), in order, whose endpoint starts so."""
        return [c for c in self.channels.values()
                if c.originated is not None and c.originated.endpoint.startswith(endpoint_prefix)]

    async def answer_originated(self, channel_id: str) -> None:
        """The far end of a channel the app dialled answers: it enters Stasis with the appArgs
        of the originate (a Local placeholder: app_queue connected an agent to its other half)."""
        ch = self.channels[channel_id]
        assert ch.originated is not None and not ch.hungup and not ch.in_stasis, ch
        ch.state = "Up"
        ch.in_stasis = True
        ev = self.rec.template("StasisStart")
        ev["args"] = list(ch.originated.app_args)
        self._emit(ev, ch)

    async def fail_originated(self, channel_id: str, cause: int = 19) -> None:
        """A channel the app dialled ends before it was answered (19 no answer, 17 busy, ...):
        the app, subscribed since the originate, hears ChannelDestroyed with the cause."""
        ch = self.channels[channel_id]
        assert ch.originated is not None and not ch.hungup and not ch.in_stasis, ch
        self._destroy_unanswered(ch, cause)

    def _destroy_unanswered(self, ch: FakeChannel, cause: int) -> None:
        ch.hungup = True
        if ch.originated is not None and ch.originated.other_id in self.channels:
            self.channels[ch.originated.other_id].hungup = True  # a Local channel's halves end together
        # No ChannelDestroyed is recorded (a call's app leaves it at StasisEnd): a recorded
        # ChannelHangupRequest with Asterisk's ChannelDestroyed fields, checked against the declarations.
        ev = self.rec.template("ChannelHangupRequest")
        ev.pop("soft", None)
        ev["type"] = "ChannelDestroyed"
        ev["cause"] = cause
        ev["cause_txt"] = _CAUSE_TEXT.get(cause, "Unknown")
        self._emit(ev, ch)

    async def drop_websocket(self) -> None:
        """Abruptly cut every event WebSocket (no close frame); channels stay in Stasis."""
        for conn in list(self._conns):
            self._forget(conn)
            transport = conn.request.transport
            if transport is not None:
                transport.abort() if hasattr(transport, "abort") else transport.close()
            conn.queue.put_nowait(None)

    # ================================================================== events
    def _channel_json(self, ch: FakeChannel) -> dict[str, Any]:
        """Snapshot of ``ch`` in the recorded Channel shape (only recorded keys are filled)."""
        snap = copy.deepcopy(self._chan_tpl)
        snap["id"] = ch.id
        if "name" in snap:
            snap["name"] = re.sub(r"-[0-9a-f]{8}$", f"-{ch.number:08x}", snap["name"])
        if "protocol_id" in snap:
            snap["protocol_id"] = f"fake-{uuid.uuid5(uuid.NAMESPACE_OID, ch.id).hex}@127.0.0.1" if (
                snap["protocol_id"]) else ""
        if ch.tech_name:
            snap["name"] = ch.tech_name
        snap["state"] = ch.state
        if isinstance(snap.get("caller"), dict):
            snap["caller"]["number"] = ch.caller
            snap["caller"]["name"] = ch.caller_name
        dp = snap.get("dialplan")
        if isinstance(dp, dict):
            old_exten = dp.get("exten", "")
            dp["exten"] = ch.dnis
            if isinstance(dp.get("app_data"), str) and old_exten:
                dp["app_data"] = dp["app_data"].replace(old_exten, ch.dnis)
        snap["creationtime"] = ch.created
        snap["language"] = ch.language
        return snap

    def _playback_json(self, pb: FakePlayback, template: dict[str, Any] | None = None) -> dict[str, Any]:
        snap = copy.deepcopy(template) if template else self.rec.template("PlaybackStarted")["playback"]
        snap["id"] = pb.id
        snap["media_uri"] = pb.media[min(pb.index, len(pb.media) - 1)]
        if pb.index + 1 < len(pb.media):
            snap["next_media_uri"] = pb.media[pb.index + 1]
        else:
            snap.pop("next_media_uri", None)
        snap["target_uri"] = f"channel:{pb.channel_id}"
        if "language" in snap or pb.language:
            snap["language"] = pb.language
        snap["state"] = pb.state
        return snap

    def _emit(self, event: dict[str, Any], ch: FakeChannel | None = None, pb: FakePlayback | None = None) -> None:
        """Substitute live values into a recorded event, validate it, and queue it for the app."""
        event["timestamp"] = _now()
        event["application"] = self.app
        if self._asterisk_id is not None:
            event["asterisk_id"] = self._asterisk_id
        if ch is not None and "channel" in event:
            event["channel"] = self._channel_json(ch)
        if pb is not None and "playback" in event:
            event["playback"] = self._playback_json(pb, event["playback"])
        self.swagger.validate_event(event)  # raises: an invalid event is a bug in the fake
        self.events.append(event)
        owner = self._owner.get(self.app)
        stasis_only = event["type"] in ("StasisStart", "StasisEnd")
        for conn in self._conns:
            if conn is owner:
                conn.queue.put_nowait(json.dumps(event))
            elif conn.subscribe_all and not conn.replaced and not stasis_only:
                for name in conn.apps:
                    if name != self.app and self._owner.get(name) is conn:
                        conn.queue.put_nowait(json.dumps({**event, "application": name}))

    def _end_call(self, ch: FakeChannel, tail: list[dict[str, Any]]) -> None:
        """Replay a recorded call ending (hangup by the caller or by the app) on ``ch``.

        Playback events in the recording apply to the playback playing now (dropped when none plays);
        queued playbacks and a pending continue die silently, as in Asterisk.
        """
        pb = ch.current
        ch.hungup = True
        for bridge in self.bridges.values():
            if ch.id in bridge.channels:
                bridge.channels.remove(ch.id)
        if ch.originated is not None and ch.originated.other_id in self.channels:
            self.channels[ch.originated.other_id].hungup = True  # a Local channel's halves end together
        for item in ch.queue:
            if isinstance(item, FakePlayback):
                item.state = "failed"
                self._playbacks.pop(item.id, None)
        ch.queue.clear()
        for ev in tail:
            if ev["type"].startswith("Playback"):
                if pb is not None:
                    pb.state = ev["playback"].get("state", "failed")
                    self._finish_playback(ch, pb, emit_event=ev)
                    pb = None
                continue
            if ev["type"] == "StasisEnd":
                if ch.recording is not None:  # as recorded: kept, finished after the hangup request
                    self._finish_recording(ch, ch.recording)
                ch.in_stasis = False
            self._emit(ev, ch)
        if ch.recording is not None:
            self._finish_recording(ch, ch.recording)
        if pb is not None:
            pb.state = "failed"
            self._finish_playback(ch, pb, emit_event=None)
        ch.in_stasis = False
        if ch.worker is not None:
            ch.worker.cancel()
            ch.worker = None

    def _apply_continue(self, ch: FakeChannel, target: tuple[str, str, int]) -> None:
        """The channel leaves Stasis for the dialplan (StasisEnd as recorded after ``continue``)."""
        ch.continued_to = target
        ch.in_stasis = False
        for item in ch.queue:
            if isinstance(item, FakePlayback):
                self._playbacks.pop(item.id, None)
        ch.queue.clear()
        tail = [e for e in self.rec.events_after("continue") if e["type"] == "StasisEnd"] or [
            self.rec.template("StasisEnd")]
        for ev in tail:
            self._emit(ev, ch)

    # ================================================================== playbacks
    def _finish_playback(self, ch: FakeChannel, pb: FakePlayback, emit_event: dict[str, Any] | None) -> None:
        if self._playbacks.pop(pb.id, None) is None:
            return
        if ch.current is pb:
            ch.current = None
        pb.wake.set()
        if emit_event is not None:
            self._emit(emit_event, ch, pb)

    async def _play_worker(self, ch: FakeChannel) -> None:
        """Runs the channel's command queue in order, as Asterisk's channel control queue does.

        A playback blocks the queue until it ends, so a ``continue`` sent during a playback only takes
        effect after it (recorded: continue during demo-congrats did nothing until the call ended).
        Between list items Asterisk sends PlaybackContinuing (old item) then PlaybackStarted (new item).
        """
        try:
            while ch.queue and not ch.hungup and ch.in_stasis:
                item = ch.queue.pop(0)
                if isinstance(item, tuple):
                    self._apply_continue(ch, item)
                    break
                pb = item
                if pb.id not in self._playbacks:
                    continue
                ch.current = pb
                pb.state, pb.index = "playing", 0
                ch.played.append(pb.media[0])
                self._emit(self.rec.template("PlaybackStarted"), ch, pb)
                while True:
                    pb.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(pb.wake.wait(), self.media_duration(pb.media[pb.index]))
                    if pb.id not in self._playbacks:  # stopped, or the channel went away meanwhile
                        break
                    if pb.index + 1 < len(pb.media):
                        pb.state = "continuing"
                        self._emit(self.rec.template("PlaybackContinuing"), ch, pb)
                        pb.index += 1
                        pb.state = "playing"
                        ch.played.append(pb.media[pb.index])
                        self._emit(self.rec.template("PlaybackStarted"), ch, pb)
                        continue
                    pb.state = "done"
                    self._finish_playback(ch, pb, self.rec.template("PlaybackFinished"))
                    break
        finally:
            if ch.worker is asyncio.current_task():
                ch.worker = None

    # ================================================================== recordings
    def _recording_json(self, rec: FakeRecording, template: dict[str, Any]) -> dict[str, Any]:
        """``rec`` in the shape of the recorded LiveRecording ``template`` (its fields, no others)."""
        body = copy.deepcopy(template)
        body.update(name=rec.name, format=rec.format, target_uri=f"channel:{rec.channel_id}", state=rec.state)
        if "duration" in body:
            body["duration"] = rec.duration
        return body

    def _emit_recording(self, kind: str, rec: FakeRecording) -> None:
        event = self.rec.template(kind)
        event["recording"] = self._recording_json(rec, event["recording"])
        self._emit(event)

    def _finish_recording(self, ch: FakeChannel, rec: FakeRecording) -> None:
        if ch.recording is not rec:
            return
        ch.recording = None
        if rec.timer is not None and rec.timer is not asyncio.current_task():
            rec.timer.cancel()
        rec.state = "done"
        rec.duration = min(rec.max_seconds or 10**6, int(time.monotonic() - rec.started))
        self._emit_recording("RecordingFinished", rec)

    async def _recording_limit(self, ch: FakeChannel, rec: FakeRecording) -> None:
        await asyncio.sleep(rec.max_seconds)
        self._finish_recording(ch, rec)

    # ================================================================== HTTP plumbing
    def _violation(self, text: str) -> None:
        self.violations.append(text)

    def _error_body(self, label: str | None, status: int, message: str) -> tuple[int, Any]:
        """Status and body Asterisk gave in the recording ``label``; the fallback keeps its style."""
        if label and self.rec.has_label(label):
            resp = self.rec.response(label)
            return resp.status, resp.json
        return status, {"message": message}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for k, v in request.rel_url.query.items():
            query.setdefault(k, []).append(v)
        body_text = await request.text() if request.can_read_body else ""
        body: Any = None
        body_error = None
        if body_text.strip():
            try:
                body = json.loads(body_text)
            except ValueError:
                body_error = "request body is not JSON"
        rec = RecordedRequest(request.method, request.path, query, body)
        where = f"{request.method} {request.path_qs}"
        status: int = 500
        payload: Any = None
        headers: dict[str, str] = {}
        ws: web.WebSocketResponse | None = None
        try:
            status, payload, headers, ws = await self._serve(request, rec, body_text, body, body_error, where)
        except SwaggerError as exc:  # the fake built an invalid body: a bug to fix in the fake
            self._violation(f"FAKE BUG answering {where}: {exc}")
            status, payload = 500, {"message": f"fake bug: {exc}"}
        rec.status, rec.response, rec.headers = status, payload, headers
        self.requests.append(rec)
        if ws is not None:
            return ws
        if status == 0:  # held until the client left: nobody reads this answer
            return web.Response(status=503)
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                            headers=headers)

    async def _serve(
        self, request: web.Request, rec: RecordedRequest, body_text: str, body: Any, body_error: str | None,
        where: str,
    ) -> tuple[int, Any, dict[str, str], web.WebSocketResponse | None]:
        if "api_key" in rec.query:
            self._violation(f"{where}: credentials in the URL (api_key) are forbidden by policy")
            return 400, {"message": "api_key in URL refused (policy: Basic Authorization header only)"}, {}, None
        if request.headers.get("Authorization") != self._auth:
            self._violation(f"{where}: missing or wrong Basic Authorization header")
            status, payload = self._error_body("no_auth", 401, "Authentication required")
            return status, payload, {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'}, None
        if not rec.path.startswith("/ari/"):
            self._violation(f"{where}: not an ARI path")
            return 404, {"message": "Not found"}, {}, None
        match = self.swagger.route(rec.path[len("/ari"):])
        if match is None:
            self._violation(f"{where}: no such ARI resource")
            status, payload = self._error_body("unknown_path", 404, "Resource not found")
            return status, payload, {}, None
        op = match.methods.get(request.method)
        if op is None:
            self._violation(f"{where}: method not declared (allowed: {sorted(match.methods)})")
            status, payload = self._error_body("wrong_method", 405, "Invalid method")
            return status, payload, {"Allow": ",".join(["OPTIONS", *sorted(match.methods)])}, None
        params, errors = self.swagger.check_query(op, rec.query)
        if body_error:
            errors.append(body_error)
        elif body is not None:
            if request.content_type != "application/json":
                errors.append(f"JSON body sent with Content-Type {request.content_type!r}")
            if not isinstance(body, dict):
                errors.append("request body must be a JSON object")
            else:
                for key, value in body.items():
                    param = op.params.get(key)
                    if param is None or param.param_type == "path":
                        errors.append(f"undeclared body field {key!r} for {op.method} {op.path}")
                    elif param.param_type == "body" and not isinstance(value, dict):
                        errors.append(f"body parameter {key!r} must be a JSON object")
                    elif param.param_type == "query":
                        params[key] = [str(value).lower() if isinstance(value, bool) else str(value)]
        for name, param in op.params.items():
            if param.required and param.param_type == "query" and name not in params:
                errors.append(f"missing required parameter {name!r}")
            if param.required and param.param_type == "body" and not (isinstance(body, dict) and name in body):
                errors.append(f"missing required body parameter {name!r}")
        if errors:
            self._violation(f"{where}: " + "; ".join(errors))
            return 400, {"message": "; ".join(errors)}, {}, None
        call = _Call(op, match.path_vars, params, body)
        fault = next((f for f in self.faults if f.matches(request.method, rec.path[len("/ari"):])), None)
        if fault is not None:
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
            if fault.status is not None:
                status, payload = self._error_body(None, fault.status, "Injected failure")
                return status, payload, {}, None
            if not await self._held(request, fault):
                return 0, None, {}, None  # nobody waits for the answer any more
        if op.upgrade == "websocket":
            ws = await self._websocket(request, call)
            return 101, None, {}, ws
        handler = self._handlers.get((op.method, op.path))
        if handler is None:
            self._violation(f"{where}: operation {op.nickname} is declared but the fake does not implement it")
            return 501, {"message": f"fake ARI does not implement {op.nickname}"}, {}, None
        try:
            result = handler(call)
            if asyncio.iscoroutine(result):
                result = await result
        except _Refused as exc:
            return exc.status, exc.body, {}, None
        status, payload, headers = result if len(result) == 3 else (*result, {})
        if 200 <= status < 300 and payload is not None and op.response_class != "void":
            problems = self.swagger.validate(payload, op.response_class)
            if problems:
                raise SwaggerError("; ".join(problems))
        return status, payload, headers, None

    async def _held(self, request: web.Request, fault: Fault) -> bool:
        """Wait until the fault is released (True) or the client gave up or the fake stops (False)."""
        while not fault.released.is_set():
            transport = request.transport
            if transport is None or transport.is_closing() or self._stopping.is_set():
                return False
            await asyncio.sleep(0.005)
        return True

    # ================================================================== WebSocket
    async def _websocket(self, request: web.Request, call: _Call) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("ari",), autoping=True)
        await ws.prepare(request)
        apps = call.params.get("app", [])
        conn = _Conn(ws, request, apps, call.one("subscribeAll") == "true")
        self._conns.append(conn)
        for name in apps:
            old = self._owner.get(name)
            if old is not None and old is not conn:
                old.replaced = True
                replaced = self.rec.template("ApplicationReplaced") if self.rec.has_event(
                    "ApplicationReplaced") else {"type": "ApplicationReplaced"}
                replaced["timestamp"] = _now()
                replaced["application"] = name
                if self._asterisk_id is not None:
                    replaced["asterisk_id"] = self._asterisk_id
                self.swagger.validate_event(replaced)
                old.queue.put_nowait(json.dumps(replaced))
            self._owner[name] = conn
        writer = asyncio.create_task(self._ws_writer(conn))
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        try:
            async for _msg in ws:
                pass  # ARI clients send nothing meaningful on the event socket
        finally:
            self._forget(conn)
            conn.queue.put_nowait(None)
        return ws

    async def _ws_writer(self, conn: _Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _forget(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
        for name, owner in list(self._owner.items()):
            if owner is conn:
                del self._owner[name]

    # ================================================================== REST handlers
    def _live(self, call: _Call, op_label: str) -> FakeChannel:
        """The channel of the request, refused as Asterisk refuses it when gone or out of Stasis."""
        cid = call.path_vars.get("channelId", "")
        ch = self.channels.get(cid)
        if ch is None or ch.hungup:
            raise _Refused(*self._error_body(f"{op_label}_after_hangup", 404, "Channel not found"))
        if not ch.in_stasis:
            raise _Refused(*self._error_body(f"{op_label}_after_continue", 409,
                                             "Channel not in Stasis application"))
        return ch

    def _h_info(self, call: _Call) -> tuple[int, Any]:
        info = self.rec.response("asterisk_info").json if self.rec.has_label("asterisk_info") else {}
        only = call.params.get("only")
        if only:
            info = {k: v for k, v in info.items() if k in only}
        return 200, info

    def _h_ping(self, call: _Call) -> tuple[int, Any]:
        body = {"asterisk_id": self._asterisk_id or "00:00:00:00:00:00", "ping": "pong", "timestamp": _now()}
        return 200, body

    def _h_list_channels(self, call: _Call) -> tuple[int, Any]:
        return 200, [self._channel_json(c) for c in self.channels.values() if not c.hungup]

    def _h_list_applications(self, call: _Call) -> tuple[int, Any]:
        return 200, [self._application_json(name) for name in sorted(self._owner)]

    def _application_json(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = (
            self.rec.response("get_application").json if self.rec.has_label("get_application") else {}
        ) or {}
        body["name"] = name
        body["channel_ids"] = [c.id for c in self.channels.values() if c.in_stasis and not c.hungup] if (
            name == self.app) else []
        return body

    def _h_get_channel(self, call: _Call) -> tuple[int, Any]:
        ch = self.channels.get(call.path_vars["channelId"])
        if ch is None or ch.hungup:
            raise _Refused(*self._error_body("get_channel_after_hangup", 404, "Channel not found"))
        return 200, self._channel_json(ch)

    def _h_get_playback(self, call: _Call) -> tuple[int, Any]:
        pb = self._playbacks.get(call.path_vars["playbackId"])
        if pb is None:
            raise _Refused(*self._error_body("get_playback_unknown", 404, "Playback not found"))
        return 200, self._playback_json(pb)

    def _h_get_application(self, call: _Call) -> tuple[int, Any]:
        name = call.path_vars["applicationName"]
        if name not in self._owner:
            raise _Refused(*self._error_body("get_application_unknown", 404, "Application not found"))
        return 200, self._application_json(name)

    def _h_answer(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "answer")
        if ch.state != "Up":
            ch.state = "Up"
            self._emit(self.rec.template("ChannelStateChange"), ch)
        return 204, None

    def _h_hangup(self, call: _Call) -> tuple[int, Any]:
        cid = call.path_vars["channelId"]
        ch = self.channels.get(cid)
        if ch is None or ch.hungup:
            raise _Refused(*self._error_body("delete_after_hangup", 404, "Channel not found"))
        ch.hangup_reason = call.one("reason_code") or call.one("reason")
        if not ch.in_stasis and ch.originated is not None and ch.state != "Up":  # dialled, still ringing
            self._destroy_unanswered(ch, 16)
            return 204, None
        if not ch.in_stasis:  # hung up after continue: the app no longer hears about it (recorded: 204)
            ch.hungup = True
            return 204, None
        label = "hangup_during_playback" if ch.current is not None else "hangup_by_app"
        tail = [e for e in self.rec.events_after(label) if e["type"] in _END_TYPES]
        self._end_call(ch, tail or self.rec.caller_hangup_tail())
        return 204, None

    def _h_originate(self, call: _Call) -> tuple[int, Any]:
        """Dial an endpoint for the app: the channel exists (Down) until the test answers or fails it."""
        endpoint = call.one("endpoint") or ""
        cid = call.one("channelId") or f"{self._id_base}.{next(self._ids)}"
        other = call.one("otherChannelId")
        if call.one("app") != self.app or call.one("extension") or call.one("context"):
            raise _Refused(400, {"message": "the fake only originates into its own application"})
        if cid in self.channels or (other and other in self.channels):
            raise _Refused(409, {"message": "Channel with given unique ID already exists"})
        tech, _, rest = endpoint.partition("/")
        if not tech or not rest:
            raise _Refused(400, {"message": "Invalid endpoint"})
        n = next(self._ids)
        timeout = int(call.one("timeout") or 30)
        args = (call.one("appArgs") or "").split(",") if call.one("appArgs") else []
        name = f"{tech}/{rest.removesuffix('/n')}-{n:08x}" + (";1" if tech == "Local" else "")
        ch = FakeChannel(id=cid, number=n, caller=call.one("callerId") or "", caller_name="", dnis="s",
                         language="en", created=_now(), state="Down",
                         originated=Origination(endpoint, args, timeout, other), tech_name=name)
        self.channels[cid] = ch
        if other:
            self.channels[other] = FakeChannel(id=other, number=n, caller="", caller_name="", dnis="s", language="en",
                                               created=ch.created, state="Down", tech_name=name[:-1] + "2")
        return 200, self._channel_json(ch)

    def _bridge_json(self, bridge: FakeBridge) -> dict[str, Any]:
        return {"id": bridge.id, "technology": "simple_bridge", "bridge_type": "mixing", "bridge_class": "stasis",
                "creator": "Stasis", "name": bridge.name, "channels": list(bridge.channels),
                "creationtime": bridge.created, "video_mode": "talker"}

    def _h_create_bridge(self, call: _Call) -> tuple[int, Any]:
        bid = call.one("bridgeId") or str(uuid.uuid4())
        if call.one("type") not in (None, "mixing"):
            raise _Refused(400, {"message": "the fake makes mixing bridges only"})
        if bid in self.bridges:
            raise _Refused(409, {"message": "Bridge with id already exists"})
        bridge = self.bridges[bid] = FakeBridge(bid, call.one("name") or "", _now())
        return 200, self._bridge_json(bridge)

    def _h_add_to_bridge(self, call: _Call) -> tuple[int, Any]:
        bridge = self.bridges.get(call.path_vars["bridgeId"])
        if bridge is None:
            raise _Refused(404, {"message": "Bridge not found"})
        ids = [i for value in call.params.get("channel", []) for i in value.split(",")]
        chans = [self.channels.get(i) for i in ids]
        if any(c is None or c.hungup for c in chans):
            raise _Refused(400, {"message": "Channel not found"})
        if any(not c.in_stasis for c in chans if c is not None):
            raise _Refused(422, {"message": "Channel not in Stasis application"})
        if any(i in b.channels for b in self.bridges.values() for i in ids):
            raise _Refused(409, {"message": "Channel is already bridged"})
        bridge.channels.extend(ids)
        return 204, None

    def _h_play_on_bridge(self, call: _Call) -> tuple[int, Any]:
        """Media every channel of the bridge hears: PlaybackStarted, then PlaybackFinished once it
        has played (``media_duration`` per item), for the bridge's target."""
        bridge = self.bridges.get(call.path_vars["bridgeId"])
        if bridge is None:
            raise _Refused(404, {"message": "Bridge not found"})
        media = list(call.params["media"])
        bridge.played.extend(media)
        snap = self.rec.template("PlaybackStarted")["playback"]
        snap.update(id=call.path_vars["playbackId"], media_uri=media[0], target_uri=f"bridge:{bridge.id}",
                    state="playing", language=call.one("lang") or "en")
        snap.pop("next_media_uri", None)

        async def play() -> None:
            self._emit({**self.rec.template("PlaybackStarted"), "playback": dict(snap)})
            await asyncio.sleep(sum(self.media_duration(m) for m in media))
            self._emit({**self.rec.template("PlaybackFinished"), "playback": {**snap, "state": "done"}})

        task = asyncio.create_task(play())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 201, snap

    def _h_destroy_bridge(self, call: _Call) -> tuple[int, Any]:
        if self.bridges.pop(call.path_vars["bridgeId"], None) is None:
            raise _Refused(404, {"message": "Bridge not found"})
        return 204, None

    def _h_continue(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "continue")
        target = (call.one("context") or "hotline", call.one("extension") or ch.dnis,
                  int(call.one("priority") or 1))
        if ch.current is None and not ch.queue:
            self._apply_continue(ch, target)
        else:  # queued behind the playbacks, as Asterisk does
            ch.queue.append(target)
        return 204, None

    def _h_play(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        ch = self._live(call, "play")
        pb_id = call.path_vars.get("playbackId") or call.one("playbackId") or str(uuid.uuid4())
        if pb_id in self._playbacks:
            raise _Refused(409, {"message": "Playback with that id already exists"})
        pb = FakePlayback(pb_id, ch.id, list(call.params["media"]), call.one("lang") or ch.language)
        self._playbacks[pb_id] = pb
        ch.queue.append(pb)
        tpl = self.rec.response("play_list").json if self.rec.has_label("play_list") else None
        body = self._playback_json(pb, tpl)
        if ch.worker is None:
            ch.worker = asyncio.create_task(self._play_worker(ch))
        headers: dict[str, str] = {}
        if tpl is not None:
            loc = self.rec.response("play_list").headers.get("Location")
            if loc:
                headers["Location"] = loc.replace(tpl["id"], pb_id)
        return 201, body, headers

    def _h_stop_playback(self, call: _Call) -> tuple[int, Any]:
        pb = self._playbacks.get(call.path_vars["playbackId"])
        if pb is None:
            raise _Refused(*self._error_body("stop_playback_again", 404, "Playback not found"))
        ch = self.channels[pb.channel_id]
        ch.stopped.append(pb.media[pb.index])
        if ch.current is pb:
            tail = [e for e in self.rec.events_after("stop_playback") if e["type"] == "PlaybackFinished"]
            pb.state = tail[0]["playback"]["state"] if tail else "done"
            self._finish_playback(ch, pb, tail[0] if tail else self.rec.template("PlaybackFinished"))
        else:  # still queued: dropped silently
            self._playbacks.pop(pb.id, None)
            ch.queue = [item for item in ch.queue if item is not pb]
        return 204, None

    def _h_record(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "record")
        name, fmt = call.one("name") or "", call.one("format") or ""
        if fmt not in ("wav", "gsm", "ulaw", "alaw", "sln"):
            raise _Refused(422, {"message": "Recording format not found"})
        if ch.recording is not None or ch.current is not None:
            raise _Refused(409, {"message": "the fake records only while nothing plays or records"})
        if name in self.recordings and call.one("ifExists", "fail") == "fail":
            status, body = self._error_body("record_exists", 409, "already exists")
            used = str(self.rec.request("record_exists")["query"]["name"][0])
            raise _Refused(status, {**body, "message": str(body["message"]).replace(used, name)})
        rec = FakeRecording(name, ch.id, fmt, int(call.one("maxDurationSeconds") or 0),
                            call.one("terminateOn") or "none", call.one("beep") == "true", time.monotonic(),
                            state="queued")
        self.recordings[name] = ch.recording = rec
        ch.recorded.append(name)
        answer = self._recording_json(rec, self.rec.response("record").json)
        rec.state = "recording"
        if rec.max_seconds:
            rec.timer = asyncio.get_running_loop().create_task(self._recording_limit(ch, rec))
            self._tasks.add(rec.timer)
            rec.timer.add_done_callback(self._tasks.discard)
        self._emit_recording("RecordingStarted", rec)
        return 201, answer

    def _h_stop_recording(self, call: _Call) -> tuple[int, Any]:
        rec = self.recordings.get(call.path_vars["recordingName"])
        if rec is None or rec.state != "recording":
            raise _Refused(*self._error_body("stop_recording_again", 404, "Recording not found"))
        self._finish_recording(self.channels[rec.channel_id], rec)
        return 204, None

    def _h_get_var(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "get_variable")
        name = call.one("variable") or ""
        if name not in ch.variables:
            raise _Refused(*self._error_body("get_variable_unset", 404, "Provided variable was not found"))
        return 200, {"value": ch.variables[name]}

    def _h_set_var(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "set_variable")
        name, value = call.one("variable") or "", call.one("value") or ""
        ch.variables[name] = value
        if call.one("report_events") != "false" and self.rec.has_label("set_variable"):
            for ev in self.rec.events_after("set_variable"):
                if ev["type"] == "ChannelVarset":
                    ev["variable"], ev["value"] = name, value
                    self._emit(ev, ch)
                    break
        return 204, None

    def _h_ring(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "ring")
        ch.ringing = call.op.method == "POST"
        return 204, None

    def _h_moh(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "moh")
        ch.moh = call.op.method == "POST"
        return 204, None

    def _h_silence(self, call: _Call) -> tuple[int, Any]:
        ch = self._live(call, "silence")
        ch.silence = call.op.method == "POST"
        return 204, None
