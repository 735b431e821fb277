"""The cluster suite (`make cluster-test`): Kamailio on 127.0.0.1:5060 dispatching over two Asterisk
nodes of the sandbox chroot (scripts/cluster telephony-up), a `hotline serve` per node on its own ARI,
AGI and metrics ports, both on one fresh PostgreSQL database; real SIPp calls.

The cluster is brought up once per session and stopped after. Kamailio takes the single sandbox's
SIP port: run the suite under `flock /tmp/hotline-asterisk.lock` (the make target does), never
beside `make run` or the end-to-end suite.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from agi_app.config import read_env_file
from tests.e2e.conftest import Hotline, Observer
from tests.support import pg
from tests.support.cli import hotline_cli
from tests.support.demo import DEMO_DATA, demo_menus_file, load_demo_bank
from tests.support.sipp import SipCall, SipResult, place_call

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = str(REPO / "scripts" / "cluster")
CLUSTER_RUN = REPO / ".run" / "cluster"
#: The sandbox's values (scripts/cluster reads HOTLINE_SANDBOX_VALUES too, when set).
VALUES = yaml.safe_load(Path(os.environ.get("HOTLINE_SANDBOX_VALUES", REPO / "config" / "sandbox.yaml"))
                        .read_text(encoding="utf-8"))
#: Where callers send: Kamailio, on the sandbox's public SIP address.
FRONT = f"{VALUES['sip']['bind']}:{VALUES['sip']['port']}"
#: Each node's own SIP address (a call placed there bypasses Kamailio: it reaches that node for sure).
NODE_SIP = {name: f"{VALUES['sip']['bind']}:{node['sip']['port']}" for name, node in VALUES["cluster"]["nodes"].items()}
PROBE_INTERVAL_S = float(VALUES["cluster"]["probe_interval_s"])

_DISPATCH = re.compile(r"hotline-dispatch call=(\S+) node=\S* dst=sip:[^:]+:(\d+)")


def cluster_script(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLUSTER_SCRIPT, *args], check=check, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="session")
def telephony() -> Iterator[None]:
    """Kamailio and the Asterisk nodes up for the session (PostgreSQL too), all stopped after."""
    if os.geteuid() != 0:
        pytest.skip("the cluster needs root (chroot, mounts), as the sandbox does")
    busy = subprocess.run(["ss", "-Hlun", f"sport = :{VALUES['sip']['port']}"], capture_output=True, text=True)
    if busy.stdout.strip():
        pytest.exit(f"UDP {FRONT} is taken (the single sandbox's Asterisk? make sandbox-down): "
                    "the cluster's Kamailio needs it", 2)
    try:
        up = cluster_script("telephony-up", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        yield
    finally:
        down = cluster_script("down", check=False)
        assert down.returncode == 0, down.stdout + down.stderr


@dataclass
class Cluster:
    """The two servers (by node name) on one database, and what Kamailio did with each call."""

    servers: dict[str, Hotline]
    dsn: str
    tmp: Path

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return hotline_cli(self.dsn, *args, stdin=stdin)

    async def call(self, call: SipCall, *, node: str | None = None) -> SipResult:
        """Place `call` through Kamailio, or straight to `node`; its journey is in the database after."""
        result = await place_call(call, target=NODE_SIP[node] if node else FRONT)
        await asyncio.sleep(1.0)  # StasisEnd → journey writer → database
        return result

    def dispatched(self) -> dict[str, str]:
        """SIP Call-ID → the node Kamailio last sent its INVITE to (after any failover)."""
        by_port = {sip.rsplit(":", 1)[1]: name for name, sip in NODE_SIP.items()}
        text = (CLUSTER_RUN / "kamailio" / "kamailio.log").read_text(encoding="utf-8", errors="replace")
        return {m.group(1): by_port[m.group(2)] for m in _DISPATCH.finditer(text)}

    def node_states(self) -> dict[str, str]:
        """Kamailio's view of each node: its dispatcher flags (first letter A: active, I: inactive)."""
        listed = subprocess.run(["kamcmd", "-s", f"unix:{CLUSTER_RUN / 'kamailio' / 'kamailio.ctl'}",
                                 "dispatcher.list"], capture_output=True, text=True, timeout=10, check=True)
        states, flags = {}, ""
        for line in listed.stdout.splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "FLAGS":
                flags = value
            elif key == "DUID":
                states[value] = flags
        return states

    def last_call(self, caller: str) -> dict[str, Any]:
        return next(iter(self.servers.values())).last_call(caller)


#: Both servers look for due callbacks and campaign customers this often (the default is 5 s): rounds
#: of the two servers overlap more, and the tests wait less.
POLL_MS = 1000


def node_env(node: str, dsn: str) -> dict[str, str]:
    """What node `node`'s `hotline serve` reads: scripts/cluster's env file for it, on the test database."""
    return {**os.environ, **read_env_file(CLUSTER_RUN / node / "hotline.env"), "HOTLINE_DSN": dsn,
            "HOTLINE_ACTOR": "cluster-test", "HOTLINE_CALLBACK_POLL_MS": str(POLL_MS),
            "HOTLINE_CAMPAIGN_POLL_MS": str(POLL_MS)}


def _load_demo(dsn: str, tmp: Path) -> None:
    done = hotline_cli(dsn, "customers", "import", str(DEMO_DATA / "customers.csv"))
    assert done.returncode == 0, done.stderr
    asyncio.run(load_demo_bank(dsn))
    published = hotline_cli(dsn, "menus", "publish", str(demo_menus_file(tmp, "cluster.yaml", timeout=2)),
                            "-m", "cluster")
    assert published.returncode == 0, published.stderr


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hotline_cluster(telephony: None, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    dsn = await pg.create_database()
    tmp = tmp_path_factory.mktemp("cluster")
    await asyncio.to_thread(_load_demo, dsn, tmp)
    servers = {node: Hotline(node_env(node, dsn), Observer(), CLUSTER_RUN / node / "test-serve.log", tmp)
               for node in NODE_SIP}
    for server in servers.values():
        server.log_path.write_text("")
    codes: dict[str, int] = {}
    try:
        await asyncio.gather(*(server.start_serve() for server in servers.values()))
        yield Cluster(servers, dsn, tmp)
    finally:
        for node, server in servers.items():
            if server.server is not None:
                codes[node] = await server.stop_serve()
        await pg.drop_database(dsn)
    assert all(code == 0 for code in codes.values()), f"a server did not stop cleanly: {codes}"


async def until(check: Callable[[], object], timeout: float, what: str | Callable[[], str],
                every: float = 0.05) -> float:
    """Poll `check` until it holds; the seconds it took. `what` says what was awaited (a callable: read
    at the timeout, so it can tell what happened instead)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        await asyncio.sleep(every)
    return time.monotonic() - started

