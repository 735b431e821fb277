"""End-to-end: real Asterisk 22 (sandbox chroot), real PostgreSQL, `hotline serve` as a process,
and real SIP calls from SIPp with RFC 4733 digits. An observer ARI application subscribed to
everything records what each call heard, without taking part in it.

The suite brings up what is not running and stops only what it started. It refuses to run
beside a `make run` server, which would take the calls instead of the server under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from agi_app.ami.client import AmiClient
from agi_app.ami.events import AgentEvent
from agi_app.config import Settings, read_env_file
from tests.support import pg
from tests.support.agents import DemoAgent, load_agents, running_agents, sip_password
from tests.support.cli import HOTLINE
from tests.support.demo import DEMO_DATA, DEMO_PINS, demo_menus_file
from tests.support.sipp import SipCall, SipResult, place_call

REPO = Path(__file__).resolve().parents[2]
SANDBOX = str(REPO / "scripts" / "sandbox")
RUN = REPO / ".run"


def _sandbox(*args: str, check: bool = True) -> int:
    return subprocess.run([SANDBOX, *args], check=check, stdout=subprocess.DEVNULL).returncode


@pytest.fixture(scope="session")
def sandbox_env() -> Iterator[dict[str, str]]:
    """Asterisk and PostgreSQL up; the env the CLI and server read."""
    _sandbox("deps")
    _sandbox("chroot")
    pg_started = _sandbox("pg-status", check=False) != 0
    _sandbox("pg-start")
    asterisk_started = _sandbox("asterisk-status", check=False) != 0
    if asterisk_started:
        _sandbox("asterisk-start")
    _sandbox("env")
    env = {**os.environ, **read_env_file(RUN / "hotline.env")}
    # Journeys the dialplan wrote before this session (make run, an earlier run) are not its databases'.
    for leftover in Path(env["HOTLINE_DIALPLAN_JOURNEYS_DIR"]).glob("*.tsv"):
        leftover.unlink()
    yield env
    if asterisk_started:
        _sandbox("asterisk-stop", check=False)
    if pg_started:
        _sandbox("pg-stop", check=False)


def e2e_flows_file(tmp: Path, name: str = "e2e-flows.yaml", *, main_intro: str = "") -> Path:
    """The demo menus with 2 s menu timeouts (timeout paths take seconds, not half a minute; real
    calls need longer than the fast suite's); `main_intro` tells versions apart by ear."""
    return demo_menus_file(tmp, name, main_intro=main_intro, timeout=2)


async def polled(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Wait until `check` is true, or fail saying `what`. For what another task fills, such as AMI's
    agent events: `Observer.until` wakes only on ARI events, and none may come while a caller is
    with an agent or after the call."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what()}")
        await asyncio.sleep(0.1)


@dataclass
class Observer:
    """A second ARI app with subscribeAll: who called, what each channel played."""

    channel_by_caller: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    played: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Per channel id, the dialplan applications it ran with their data, e.g. ("Playback", "hotline/zh/...").
    dialplan: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    channel_names: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)  # replaced by a fresh one at each event

    def handle(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event.get("type")
        if kind == "ChannelCreated":
            channel = event["channel"]
            self.channel_names.append(channel["name"])
            self.channel_by_caller[channel["caller"]["number"]].append(channel["id"])
        elif kind == "PlaybackStarted":  # once per item of a media list (Continuing repeats the last one)
            target = event["playback"]["target_uri"]
            if target.startswith("channel:"):
                self.played[target.removeprefix("channel:")].append(event["playback"]["media_uri"])
        elif kind == "ChannelDialplan" and event.get("dialplan_app"):
            self.dialplan[event["channel"]["id"]].append((event["dialplan_app"], event.get("dialplan_app_data", "")))
        self.news.set()
        self.news = asyncio.Event()

    async def until(self, check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
        """Wait for the events that make `check` true (a call heard a prompt, a channel appeared);
        `what` says, at the timeout, what was awaited and what happened instead."""
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    await self.news.wait()
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s: {what()}") from None

    def heard(self, caller: str) -> list[str]:
        """Media started on the newest channel from `caller` (each item of a list counts)."""
        return self.played[self.channel_by_caller[caller][-1]]


@dataclass
class Hotline:
    env: dict[str, str]
    observer: Observer
    log_path: Path
    tmp: Path
    server: subprocess.Popen[bytes] | None = None

    async def start_serve(self) -> None:
        """Start `hotline serve` (its output appended to the log) and wait until its ARI app is connected."""
        assert self.server is None or self.server.poll() is not None, "hotline serve is already running"
        with self.log_path.open("a") as log:
            self.server = subprocess.Popen([HOTLINE, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if await _app_connected(self.env, self.env["HOTLINE_ARI_APP"]):
                return
            assert self.server.poll() is None, self.log_path.read_text()
            await asyncio.sleep(0.1)
        pytest.fail("hotline serve did not connect to ARI:\n" + self.log_path.read_text())

    async def stop_serve(self) -> int:
        """SIGTERM `hotline serve` (a graceful stop) and wait for it to exit; its exit code."""
        assert self.server is not None
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.server.wait, 30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                await asyncio.to_thread(self.server.wait)
        return self.server.returncode

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HOTLINE, *args], env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=60)

    async def call(self, call: SipCall) -> SipResult:
        result = await place_call(call)
        await asyncio.sleep(1.0)  # StasisEnd → journey writer → database
        return result

    def log_has(self, text: str) -> bool:
        return text in self.log_path.read_text(encoding="utf-8")

    async def dialplan_journey(self, call_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The `calls list` row of a call only the dialplan ran, once `hotline serve` imported the
        line its hangup handler wrote (every HOTLINE_DIALPLAN_JOURNEYS_EVERY_MS)."""
        rows: list[dict[str, Any]] = []

        def imported() -> bool:
            listed = self.cli("calls", "list", "--json", "--call-id", call_id)
            assert listed.returncode == 0, listed.stderr
            rows[:] = json.loads(listed.stdout)
            return bool(rows)

        await polled(imported, timeout, lambda: f"no journey imported for {call_id}")
        return rows[0]

    def last_call(self, caller: str) -> dict[str, Any]:
        listed = self.cli("calls", "list", "--json", "--caller", caller, "--limit", "1")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert rows, f"no call from {caller} recorded"
        return rows[0]


def _load_demo_bank(hotline: Hotline) -> None:
    """The demo customers, accounts, cards, bills, payees and PINs, as `make demo` loads them."""
    for args in (("customers", "import", "customers.csv"), ("accounts", "import", "accounts.csv"),
                 ("accounts", "import-bills", "bills.csv"), ("accounts", "import-payees", "payees.csv")):
        done = hotline.cli(*args[:-1], str(DEMO_DATA / args[-1]))
        assert done.returncode == 0, done.stderr
    for customer_id, pin in DEMO_PINS.items():
        done = hotline.cli("customers", "set-pin", customer_id, stdin=pin + "\n")
        assert done.returncode == 0, done.stderr


async def _observe(env: dict[str, str], observer: Observer, ready: asyncio.Event) -> None:
    """Feed `observer` until cancelled, connecting again when Asterisk restarts (the fault matrix
    restarts it mid-session)."""
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    url = env["HOTLINE_ARI_URL"].rstrip("/") + "/ari/events"
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        while True:
            try:
                async with session.ws_connect(url, params={"app": "hotline-observer", "subscribeAll": "true"}) as ws:
                    ready.set()
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            observer.handle(json.loads(msg.data))
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.5)


async def _app_connected(env: dict[str, str], app: str) -> bool:
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.get(env["HOTLINE_ARI_URL"].rstrip("/") + "/ari/applications") as resp:
            return any(a["name"] == app for a in await resp.json())


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hotline(sandbox_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hotline]:
    if await _app_connected(sandbox_env, sandbox_env["HOTLINE_ARI_APP"]):
        pytest.exit("a hotline server is already connected to the sandbox (make run?): stop it first", 2)
    dsn = await pg.create_database()
    env = {**sandbox_env, "HOTLINE_DSN": dsn}
    tmp = tmp_path_factory.mktemp("e2e")
    hotline = Hotline(env, Observer(), RUN / "e2e-serve.log", tmp)
    _load_demo_bank(hotline)
    ready = asyncio.Event()
    observer = asyncio.create_task(_observe(env, hotline.observer, ready))
    await asyncio.wait_for(ready.wait(), 10)
    published = hotline.cli("menus", "publish", str(e2e_flows_file(tmp)), "-m", "e2e")
    assert published.returncode == 0, published.stderr
    hotline.log_path.write_text("")
    try:
        await hotline.start_serve()
        yield hotline
    finally:
        returncode = await hotline.stop_serve() if hotline.server is not None else 0
        observer.cancel()
        await pg.drop_database(dsn)
    assert returncode == 0, "hotline serve did not stop cleanly:\n" + hotline.log_path.read_text()[-3000:]


#: Every demo agent talks this long in end-to-end calls, then hangs up.
AGENT_TALK_S = 3.0


def _agents_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`hotline agents ...` on the sandbox's AMI, recording nothing (no database for the audit log)."""
    return subprocess.run([HOTLINE, "agents", *args], env={k: v for k, v in env.items() if k != "HOTLINE_DSN"},
                          capture_output=True, text=True, timeout=60)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo_agents(sandbox_env: dict[str, str]) -> AsyncIterator[dict[str, DemoAgent]]:
    """The demo agents of config/sandbox.yaml registered (SIPp UAS each, AGENT_TALK_S of talk) and logged
    in to their groups with `hotline agents login`, as `make run` does; logged out and stopped after."""
    specs = load_agents()
    async with running_agents(specs, password=sip_password(sandbox_env), talk_s=AGENT_TALK_S) as agents:
        try:
            for spec in specs:
                _agents_cli(sandbox_env, "logout", spec.endpoint)  # a login kept by persistentmembers
                done = _agents_cli(sandbox_env, "login", spec.endpoint, *(f"--queue={g}" for g in spec.groups))
                assert done.returncode == 0, done.stdout + done.stderr
            yield agents
        finally:
            for spec in specs:
                _agents_cli(sandbox_env, "logout", spec.endpoint)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def agent_events(sandbox_env: dict[str, str]) -> AsyncIterator[list[AgentEvent]]:
    """Every AMI agent event (AgentCalled, AgentConnect, AgentComplete, ...) from now on, in order:
    which member answered which caller channel (`unique_id` = the ARI channel id), and who hung up."""
    events: list[AgentEvent] = []
    async with AmiClient.from_settings(Settings.load(sandbox_env)) as ami:
        subscription = ami.subscribe(["AgentCalled", "AgentRingNoAnswer", "AgentConnect", "AgentComplete"])

        async def collect() -> None:
            async for event in subscription:
                if isinstance(event, AgentEvent):
                    events.append(event)

        collector = asyncio.create_task(collect())
        try:
            yield events
        finally:
            collector.cancel()
            subscription.close()
