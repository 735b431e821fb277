"""Tests of the fake ARI server itself: if the fake is lax or wrong, every engine test built on it lies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fake_ari import FakeAri, load_recordings, load_swagger
from tests.fake_ari.fixtures import DEFAULT_FIXTURES_DIR

AUTH = {"Authorization": aiohttp.encode_basic_auth("hotline", "hotline-dev")}


class Client:
    """A minimal ARI client, like the app's: Basic header, one event WebSocket."""

    def __init__(self, fake: FakeAri) -> None:
        self.fake = fake
        self.session = aiohttp.ClientSession(headers=AUTH)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(f"{self.fake.url}/ari/events?app=hotline")
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.fake.wait_connected()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.put_nowait(json.loads(msg.data))

    async def next_event(self, etype: str, within: float = 3.0) -> dict[str, Any]:
        """Next event of ``etype``; events of other types before it are skipped."""
        async with asyncio.timeout(within):
            while True:
                ev = await self.events.get()
                if ev["type"] == etype:
                    return ev

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.fake.url}/ari{path}", **kw) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()


@pytest_asyncio.fixture
async def client(fake_ari: FakeAri) -> AsyncIterator[Client]:
    c = Client(fake_ari)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


# ---------------------------------------------------------------------------------- strictness
async def test_undeclared_parameter_is_refused_and_recorded(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    status, body = await client.call("POST", f"/channels/{cid}/answer", params={"timeout": "3"})
    assert status == 400 and "timeout" in body["message"]
    assert len(fake_ari.violations) == 1 and "undeclared" in fake_ari.violations[0]
    assert fake_ari.channel(cid).state == "Ring"
    fake_ari.violations.clear()


async def test_bad_allowable_value_and_types_are_refused(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    status, _ = await client.call("DELETE", f"/channels/{cid}", params={"reason": "bored"})
    assert status == 400
    status, _ = await client.call("POST", f"/channels/{cid}/continue", params={"priority": "one"})
    assert status == 400
    status, _ = await client.call("POST", f"/channels/{cid}/variable",
                                  params={"variable": "X", "value": "1", "report_events": "yes"})
    assert status == 400
    status, _ = await client.call("POST", f"/channels/{cid}/play")  # media is required
    assert status == 400
    status, _ = await client.call("PUT", f"/channels/{cid}/answer")  # method not declared
    assert status != 204
    status, _ = await client.call("POST", f"/channels/{cid}/dance")
    assert status == 404
    assert len(fake_ari.violations) == 6
    assert not fake_ari.channel(cid).hungup
    fake_ari.violations.clear()


async def test_body_must_be_json_object_of_declared_params(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    status, _ = await client.call("POST", f"/channels/{cid}/variables", json={"variables": {"A": "1"}})
    assert status == 501  # declared and well-formed, but the fake does not implement it: flagged too
    status, _ = await client.call("POST", f"/channels/{cid}/variables", json={"variables": "A=1"})
    assert status == 400
    status, _ = await client.call("POST", f"/channels/{cid}/answer", json=["x"])
    assert status == 400
    assert len(fake_ari.violations) == 3
    fake_ari.violations.clear()


async def test_missing_auth_is_401_and_api_key_is_a_violation(fake_ari: FakeAri) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{fake_ari.url}/ari/asterisk/info") as resp:
            assert resp.status == 401
            assert "WWW-Authenticate" in resp.headers
        async with s.get(f"{fake_ari.url}/ari/asterisk/info?api_key=hotline:hotline-dev") as resp:
            assert resp.status >= 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(f"{fake_ari.url}/ari/events?app=hotline")
        assert exc.value.status == 401
    assert len(fake_ari.violations) == 3 and "api_key" in fake_ari.violations[1]
    fake_ari.violations.clear()


async def test_wrong_password_is_401(fake_ari: FakeAri) -> None:
    hdr = {"Authorization": aiohttp.encode_basic_auth("hotline", "nope")}
    async with aiohttp.ClientSession(headers=hdr) as s, s.get(f"{fake_ari.url}/ari/channels") as resp:
        assert resp.status == 401
    fake_ari.violations.clear()


async def test_allow_multiple_comma_separated_or_repeated(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    status, _ = await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:a,sound:b"})
    assert status == 201
    status, _ = await client.call("POST", f"/channels/{cid}/play", params=[("media", "sound:c"), ("media", "sound:d")])
    assert status == 201
    await fake_ari.wait_for(lambda: len(fake_ari.channel(cid).played) == 4)
    assert fake_ari.channel(cid).played == ["sound:a", "sound:b", "sound:c", "sound:d"]


# ---------------------------------------------------------------------------------- events
async def test_place_call_emits_valid_stasis_start(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95001", caller_name="Li Lei", language="zh")
    ev = await client.next_event("StasisStart")
    assert ev["args"] == ["95001"] and ev["application"] == "hotline"
    assert ev["channel"]["id"] == cid and ev["channel"]["state"] == "Ring"
    assert ev["channel"]["caller"] == {"name": "Li Lei", "number": "13800138000"}
    assert ev["channel"]["language"] == "zh"
    assert "timestamp" in ev and "asterisk_id" in ev
    sw = load_swagger()
    for emitted in fake_ari.events:
        assert sw.validate(emitted, "Message") == []


def test_every_recorded_event_and_body_is_valid() -> None:
    """The recordings are Asterisk's own words: they must satisfy Asterisk's own declarations."""
    sw = load_swagger()
    rec = load_recordings(DEFAULT_FIXTURES_DIR)
    for ev in rec.events():
        assert sw.validate(ev, "Message") == [], ev["type"]
    for label in ("play_list", "get_application", "asterisk_info"):
        if rec.has_label(label):
            req = rec.request(label)
            match = sw.route(req["path"][len("/ari"):])
            assert match is not None
            op = match.methods[req["method"]]
            assert sw.validate(rec.response(label).json, op.response_class) == [], label


def test_invalid_event_raises() -> None:
    from tests.fake_ari import SwaggerError

    sw = load_swagger()
    with pytest.raises(SwaggerError):
        sw.validate_event({"type": "ChannelDtmfReceived", "application": "hotline",
                           "timestamp": "2024-01-01T00:00:00.000+0000", "digit": 1, "duration_ms": 100})
    with pytest.raises(SwaggerError):
        sw.validate_event({"type": "NoSuchEvent"})


async def test_answer_play_list_finishes(fake_ari: FakeAri, client: Client) -> None:
    fake_ari.media_duration = lambda uri: 0.05
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.next_event("StasisStart")
    assert (await client.call("POST", f"/channels/{cid}/answer"))[0] == 204
    ev = await client.next_event("ChannelStateChange")
    assert ev["channel"]["state"] == "Up" and fake_ari.channel(cid).state == "Up"
    status, body = await client.call("POST", f"/channels/{cid}/play",
                                     params={"media": "sound:demo-thanks,sound:demo-congrats"})
    assert status == 201 and body["target_uri"] == f"channel:{cid}"
    started = await client.next_event("PlaybackStarted")
    assert started["playback"]["id"] == body["id"]
    assert started["playback"]["media_uri"] == "sound:demo-thanks"
    await client.next_event("PlaybackContinuing")
    finished = await client.next_event("PlaybackFinished")
    assert finished["playback"]["id"] == body["id"] and finished["playback"]["state"] == "done"
    assert fake_ari.channel(cid).played == ["sound:demo-thanks", "sound:demo-congrats"]
    status, _ = await client.call("GET", f"/playbacks/{body['id']}")
    assert status == 404
    await fake_ari.press(cid, "12#")
    digits = [(await client.next_event("ChannelDtmfReceived"))["digit"] for _ in range(3)]
    assert digits == ["1", "2", "#"]
    assert (await client.call("DELETE", f"/channels/{cid}"))[0] == 204
    end = await client.next_event("StasisEnd")
    assert end["channel"]["id"] == cid
    assert fake_ari.channel(cid).hungup and not fake_ari.channel(cid).in_stasis
    req = await fake_ari.wait_request("DELETE", rf"^/ari/channels/{cid}$")
    assert req.status == 204


async def test_stop_playback_typeahead(fake_ari: FakeAri, client: Client) -> None:
    fake_ari.media_duration = lambda uri: 5.0
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.call("POST", f"/channels/{cid}/answer")
    status, body = await client.call("POST", f"/channels/{cid}/play/my-pb", params={"media": "sound:demo-congrats"})
    assert status == 201 and body["id"] == "my-pb"
    await client.next_event("PlaybackStarted")
    await fake_ari.press(cid, "5")
    assert (await client.next_event("ChannelDtmfReceived"))["digit"] == "5"
    status, got = await client.call("GET", "/playbacks/my-pb")
    assert status == 200 and got["state"] == "playing"
    assert (await client.call("DELETE", "/playbacks/my-pb"))[0] == 204
    finished = await client.next_event("PlaybackFinished", within=1.0)
    assert finished["playback"]["id"] == "my-pb"
    assert fake_ari.channel(cid).stopped == ["sound:demo-congrats"]
    assert (await client.call("DELETE", "/playbacks/my-pb"))[0] == 404
    assert fake_ari.violations == []


async def test_caller_hangup_during_playback(fake_ari: FakeAri, client: Client) -> None:
    fake_ari.media_duration = lambda uri: 5.0
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.call("POST", f"/channels/{cid}/answer")
    _, pb = await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:demo-congrats"})
    await client.next_event("PlaybackStarted")
    await fake_ari.hangup(cid)
    seen = []
    async with asyncio.timeout(2):
        while "StasisEnd" not in seen:
            seen.append((await client.events.get())["type"])
    assert "ChannelHangupRequest" in seen and "PlaybackFinished" in seen
    ch = fake_ari.channel(cid)
    assert ch.hungup and not ch.in_stasis
    status, _ = await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:x"})
    assert status == 404
    status, _ = await client.call("POST", f"/channels/{cid}/answer")
    assert status == 404
    assert (await client.call("DELETE", f"/playbacks/{pb['id']}"))[0] == 404
    assert fake_ari.violations == []  # refusals of a racing app are ARI's normal answers, not violations


async def test_continue_leaves_stasis(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.call("POST", f"/channels/{cid}/answer")
    status, _ = await client.call("POST", f"/channels/{cid}/variable", params={"variable": "SKILL", "value": "vip"})
    assert status == 204
    status, body = await client.call("GET", f"/channels/{cid}/variable", params={"variable": "SKILL"})
    assert status == 200 and body == {"value": "vip"}
    status, _ = await client.call("POST", f"/channels/{cid}/continue",
                                  params={"context": "hotline-agents", "extension": "general", "priority": "1"})
    assert status == 204
    await client.next_event("StasisEnd")
    ch = fake_ari.channel(cid)
    assert ch.continued_to == ("hotline-agents", "general", 1) and not ch.in_stasis and not ch.hungup
    status, _ = await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:x"})
    assert status in (409, 412, 422)


async def test_reconnect_after_drop_sees_no_replayed_stasis_start(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.next_event("StasisStart")
    await fake_ari.drop_websocket()
    assert client.ws is not None and client._reader is not None
    await asyncio.wait_for(client._reader, 2)  # the client sees its socket die
    await client.connect()
    await fake_ari.press(cid, "7")
    ev = await client.next_event("ChannelDtmfReceived")
    assert ev["channel"]["id"] == cid
    assert fake_ari.channel(cid).in_stasis
    types = [e["type"] for e in fake_ari.events]
    assert types.count("StasisStart") == 1


async def test_get_application_lists_live_channels(fake_ari: FakeAri, client: Client) -> None:
    a = await fake_ari.place_call("13800138000", "95000")
    b = await fake_ari.place_call("13900139000", "95001")
    status, body = await client.call("GET", "/applications/hotline")
    assert status == 200 and sorted(body["channel_ids"]) == sorted([a, b])
    await fake_ari.hangup(a)
    status, body = await client.call("GET", "/applications/hotline")
    assert body["channel_ids"] == [b]
    status, chans = await client.call("GET", "/channels")
    assert status == 200 and [c["id"] for c in chans] == [b]
    status, info = await client.call("GET", "/asterisk/info")
    assert status == 200 and isinstance(info, dict)
    status, _ = await client.call("GET", "/applications/nosuch")
    assert status == 404
    status, _ = await client.call("GET", "/channels/nosuch")
    assert status == 404


async def test_second_websocket_replaces_first(fake_ari: FakeAri, client: Client) -> None:
    other = Client(fake_ari)
    try:
        await other.connect()
        ev = await client.next_event("ApplicationReplaced")
        assert ev["application"] == "hotline"
        cid = await fake_ari.place_call("13800138000", "95000")
        assert (await other.next_event("StasisStart"))["channel"]["id"] == cid
        with pytest.raises(TimeoutError):
            await client.next_event("StasisStart", within=0.2)
    finally:
        await other.close()


async def test_no_app_connected_means_stasis_fails(fake_ari: FakeAri) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    assert fake_ari.channel(cid).hungup and fake_ari.events == []


# ---------------------------------------------------------------------------------- recorded Asterisk behaviour
async def test_list_playback_event_sequence_matches_asterisk(fake_ari: FakeAri, client: Client) -> None:
    """Recorded: Started(a, next b) -> Continuing(a) -> Started(b) -> Finished(b, done)."""
    fake_ari.media_duration = lambda uri: 0.02
    cid = await fake_ari.place_call("13800138000", "95000")
    status, body = await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:a,sound:b"})
    assert status == 201 and body["state"] == "queued" and body["next_media_uri"] == "sound:b"
    seq = []
    async with asyncio.timeout(2):
        while not seq or seq[-1][0] != "PlaybackFinished":
            ev = await client.events.get()
            if ev["type"].startswith("Playback"):
                pb = ev["playback"]
                seq.append((ev["type"], pb["media_uri"], pb.get("next_media_uri"), pb["state"]))
    assert seq == [
        ("PlaybackStarted", "sound:a", "sound:b", "playing"),
        ("PlaybackContinuing", "sound:a", "sound:b", "continuing"),
        ("PlaybackStarted", "sound:b", None, "playing"),
        ("PlaybackFinished", "sound:b", None, "done"),
    ]


async def test_app_hangup_during_playback_fails_the_playback(fake_ari: FakeAri, client: Client) -> None:
    fake_ari.media_duration = lambda uri: 5.0
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:demo-congrats"})
    await client.next_event("PlaybackStarted")
    assert (await client.call("DELETE", f"/channels/{cid}", params={"reason_code": "16"}))[0] == 204
    types = []
    async with asyncio.timeout(2):
        while "StasisEnd" not in types:
            ev = await client.events.get()
            types.append(ev["type"])
            if ev["type"] == "PlaybackFinished":
                assert ev["playback"]["state"] == "failed"
    assert types.index("ChannelHangupRequest") < types.index("PlaybackFinished") < types.index("StasisEnd")
    assert (await client.call("DELETE", f"/channels/{cid}"))[1] == {"message": "Channel not found"}


async def test_continue_waits_behind_a_playing_prompt(fake_ari: FakeAri, client: Client) -> None:
    """Recorded: continue during a playback returns 204 but takes effect only when the playback ends."""
    fake_ari.media_duration = lambda uri: 0.4
    cid = await fake_ari.place_call("13800138000", "95000")
    await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:demo-thanks"})
    await client.next_event("PlaybackStarted")
    status, _ = await client.call("POST", f"/channels/{cid}/continue",
                                  params={"context": "hotline-agents", "extension": "general", "priority": "1"})
    assert status == 204 and fake_ari.channel(cid).in_stasis and fake_ari.channel(cid).continued_to is None
    await client.next_event("PlaybackFinished")
    await client.next_event("StasisEnd")
    assert fake_ari.channel(cid).continued_to == ("hotline-agents", "general", 1)
    status, body = await client.call("POST", f"/channels/{cid}/answer")
    assert (status, body) == (409, {"message": "Channel not in Stasis application"})
    status, _ = await client.call("GET", f"/channels/{cid}")
    assert status == 200  # still alive in the dialplan
    assert (await client.call("DELETE", f"/channels/{cid}"))[0] == 204


async def test_error_answers_are_asterisks(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    await fake_ari.hangup(cid)
    assert await client.call("POST", f"/channels/{cid}/play", params={"media": "sound:x"}) == (
        404, {"message": "Channel not found"})
    assert await client.call("GET", f"/channels/{cid}/variable", params={"variable": "X"}) == (
        404, {"message": "Provided channel was not found"})
    assert await client.call("GET", "/playbacks/nope") == (404, {"message": "Playback not found"})
    async with client.session.put(f"{fake_ari.url}/ari/channels/{cid}/answer") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "OPTIONS,POST"
        assert await resp.json() == {"message": "Invalid method"}
    assert len(fake_ari.violations) == 1
    fake_ari.violations.clear()


async def test_play_location_and_wait_request(fake_ari: FakeAri, client: Client) -> None:
    cid = await fake_ari.place_call("13800138000", "95000")
    async with client.session.post(f"{fake_ari.url}/ari/channels/{cid}/play/p1",
                                   params={"media": "sound:x"}) as resp:
        assert resp.status == 201 and resp.headers["Location"] == "/ari/playbacks/p1"
    req = await fake_ari.wait_request("POST", r"/play/p1$")
    assert req.query == {"media": ["sound:x"]} and req.status == 201
    with pytest.raises(TimeoutError):
        await fake_ari.wait_request("POST", r"/play/p1$", timeout=0.1)  # already consumed


def test_recordings_hold_no_credentials() -> None:
    for path in DEFAULT_FIXTURES_DIR.glob("*.json"):
        text = path.read_text()
        assert "hotline-dev" not in text and "api_key" not in text and "Authorization" not in text, path
