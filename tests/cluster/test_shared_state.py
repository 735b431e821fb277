"""What one server is told, the other knows: a menu publish, an emergency and a notice reach both
within a second, a PIN lockout on one node is honoured on the other, a one-time code sent by one is
void once the other sends one, callbacks and a campaign's customers are dialled once (not once per
server), and `hotline monitor` and `hotline kpi` count both servers' calls.

Calls that must reach a given node are placed straight to it (its own SIP port); the rest go
through Kamailio."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from agi_app.db.pool import connection
from agi_app.db.repositories.contact_centre import book_callback
from tests.cluster.conftest import NODE_SIP, POLL_MS, Cluster, until
from tests.support.agents import DemoAgent, load_agents, sip_password
from tests.support.customers import customer_phones
from tests.support.demo import DEMO_PINS, KNOWN_ZH, demo_menus_file
from tests.support.sipp import SipCall

pytestmark = pytest.mark.asyncio(loop_scope="session")

VIP_ZH = "13900139000"  # C002, the priority menu: 1 balance → PIN
WRONG = "000000"


async def test_a_menu_publish_reaches_both_servers_within_a_second(hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    menus = demo_menus_file(cluster.tmp, "next.yaml", timeout=2, main_intro="{{ sound('announcement_hours') }}")
    published = await asyncio.to_thread(cluster.cli, "menus", "publish", str(menus), "-m", "cluster next")
    assert published.returncode == 0, published.stderr
    version = re.search(r"published version (\d+)", published.stdout)
    assert version, published.stdout
    reloaded = f"event=menus_reloaded version={version.group(1)}"
    took = await until(lambda: all(s.log_has(reloaded) for s in cluster.servers.values()), 5.0,
                       f"both servers logged {reloaded}")
    assert took < 1.0, f"the publish reached both servers in {took:.2f} s"


async def test_an_emergency_and_a_notice_reach_both_servers_within_a_second(hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    # Valid from yesterday to tomorrow: today in the bank's time zone, whatever this machine's.
    around = [(date.today() + timedelta(days=d)).isoformat() for d in (-1, 1)]
    switched = await asyncio.to_thread(cluster.cli, "emergency", "on", "--sound", "emergency_default")
    assert switched.returncode == 0, switched.stderr
    added = await asyncio.to_thread(cluster.cli, "notices", "add", "--kind", "fee", "--sound", "announcement_rates",
                                    "--from", around[0], "--to", around[1])
    assert added.returncode == 0, added.stderr
    told = time.monotonic()
    callers = {"node1": "13122230001", "node2": "13122230002"}
    try:
        placing = [asyncio.ensure_future(cluster.call(SipCall(number, "95000", hangup_after=3.0, max_duration=30),
                                                      node=node)) for node, number in callers.items()]
        await asyncio.sleep(0)  # both SIPp callers are on their way
        assert time.monotonic() - told < 1.0, "both calls were placed within a second of the switch"
        results = await asyncio.gather(*placing)
    finally:
        off = await asyncio.to_thread(cluster.cli, "emergency", "off")
        notice = re.search(r"notice (\d+) added", added.stdout)
        assert notice, added.stdout
        removed = await asyncio.to_thread(cluster.cli, "notices", "remove", notice.group(1))
    assert off.returncode == 0 and removed.returncode == 0, off.stderr + removed.stderr
    assert all(r.ok for r in results), [r.stderr[-500:] for r in results]
    for node, number in callers.items():
        row = await asyncio.to_thread(cluster.last_call, number)
        assert row["path"][0] == "@emergency", f"{node}: {row['path']}"
        assert cluster.servers[node].log_has(f"event=call_context call={row['call_id']} "), node
        context = next(line for line in cluster.servers[node].log_path.read_text().splitlines()
                       if f"event=call_context call={row['call_id']} " in line)
        assert "emergency=on" in context and "notices=1" in context, context


@dataclass
class Security:
    """The journeys of the phone-banking calls, each pair placed on node1 then node2."""

    lockout: tuple[dict[str, Any], dict[str, Any]]  # three wrong PINs on node1; the right PIN on node2
    codes: tuple[dict[str, Any], dict[str, Any]]  # a transfer up to the code's prompt on node1, then on node2


async def _on_node1_then_node2(cluster: Cluster, first: SipCall, then: SipCall) -> tuple[dict[str, Any], ...]:
    rows = []
    for node, call in (("node1", first), ("node2", then)):
        assert (await cluster.call(call, node=node)).ok, node
        rows.append(await asyncio.to_thread(cluster.last_call, call.caller))
        assert cluster.servers[node].log_has(f"event=stasis_start call={rows[-1]['call_id']} "), node
    return tuple(rows)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def security(hotline_cluster: Cluster) -> Security:
    """Both pairs at once (different customers): the suite waits for the longer pair only."""
    # The priority menu: 1 balance → a wrong PIN three times (1: try again) — phone banking locks.
    wrong = SipCall(VIP_ZH, "95000", steps=[(4.0, "1"), (4.0, WRONG), (5.0, "1"), (4.0, WRONG), (5.0, "1"),
                                            (4.0, WRONG)], hangup_after=3, max_duration=90)
    right = SipCall(VIP_ZH, "95000", steps=[(4.0, "1"), (4.0, DEMO_PINS["C002"])], hangup_after=4, max_duration=60)
    # The general menu: 1 accounts → 2 transfer → PIN → payee 1 → 500 yuan → the code is sent.
    transfer = SipCall(KNOWN_ZH, "95000", steps=[(4.0, "1"), (3.0, "2"), (4.0, DEMO_PINS["C001"]), (5.0, "1#"),
                                                 (5.0, "500#")], hangup_after=4, max_duration=60)
    lockout, codes = await asyncio.gather(_on_node1_then_node2(hotline_cluster, wrong, right),
                                          _on_node1_then_node2(hotline_cluster, transfer, transfer))
    return Security((lockout[0], lockout[1]), (codes[0], codes[1]))


def services(row: dict[str, Any]) -> list[str]:
    return [f"{s['service']}:{s['result']}" for s in row["services"]]


async def test_a_pin_lockout_on_one_server_is_honoured_on_the_other(security: Security) -> None:
    locked, after = security.lockout
    assert services(locked) == ["authenticate:refused"] * 3, locked
    assert services(after) == ["authenticate:refused"], "the right PIN, refused on node2: the lockout is shared"


async def test_a_one_time_code_sent_by_one_server_is_void_once_the_other_sends_one(
        hotline_cluster: Cluster, security: Security) -> None:
    """One live code per customer across servers: node1's code is void once node2 sends another."""
    for row in security.codes:
        assert "otp_send:ok" in services(row), row
    async with connection(hotline_cluster.dsn) as conn:
        sent = await conn.fetch("SELECT call_id, voided_at, used_at, code IS NULL AS cleared FROM otp_outbox"
                                " WHERE customer_id = 'C001' ORDER BY id")
    assert [r["call_id"] for r in sent] == [row["call_id"] for row in security.codes], sent
    assert [r["call_id"].split("-", 1)[0] for r in sent] == ["node1", "node2"], "channel ids name their node"
    assert sent[0]["voided_at"] is not None and sent[0]["cleared"], "node1's code is void, its clear text gone"
    assert sent[1]["voided_at"] is None and sent[1]["used_at"] is None, "node2's code is the live one"


async def test_a_campaigns_customers_are_dialled_once_by_the_two_servers(hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    numbers = [f"1312224{i:04d}" for i in range(6)]
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    listing = cluster.tmp / f"{name}.csv"
    listing.write_text("phone\n" + "\n".join(numbers) + "\n", encoding="utf-8")
    async with customer_phones(cluster.tmp / "customers") as phones:
        for args in (("create", name, "--department", "cards", "--message-sound", "announcement_rates",
                      "--customers", str(listing), "--hours", "00:00-24:00", "--concurrency", "6",
                      "--actor", "cards-dept"),
                     ("approve", name, "--actor", "cluster-admin"), ("start", name, "--actor", "cluster-admin")):
            done = await asyncio.to_thread(cluster.cli, "campaigns", *args)
            assert done.returncode == 0, done.stderr

        def status() -> dict[str, Any]:
            done = cluster.cli("campaigns", "status", name, "--json")
            assert done.returncode == 0, done.stderr
            row: dict[str, Any] = json.loads(done.stdout)[0]
            return row

        row: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal row
            row = status()
            return row["state"] == "finished"

        await until(finished, 40, lambda: f"campaign {name} finished: {row}", every=0.5)
        await asyncio.sleep(3 * POLL_MS / 1000)  # more rounds of each server: nothing more may be dialled
    dialled = sorted(a.split()[0] for a in phones.answered)
    assert dialled == numbers, f"each customer rang once, whichever server claimed them: {dialled}"
    assert row["attempts"] == {"dialling": 0, "answered": 6, "busy": 0, "no_answer": 0, "failed": 0}, row
    by_server = {node: server.log_path.read_text().count("event=campaign_message_played")
                 for node, server in cluster.servers.items()}
    assert sum(by_server.values()) == 6, by_server


def kpi_calls(cluster: Cluster) -> int:
    """Today's ended calls by `hotline kpi` (the bank's day: the sandbox calendar's time zone)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    done = cluster.cli("kpi", "--day", today, "--json")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["calls"])


async def test_monitor_and_kpi_show_both_servers_calls(hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    before = await asyncio.to_thread(kpi_calls, cluster)
    callers = {"node1": "13122250001", "node2": "13122250002"}
    placing = [asyncio.ensure_future(cluster.call(SipCall(n, "95000", hangup_after=6.0, max_duration=30), node=node))
               for node, n in callers.items()]
    snapshot: dict[str, Any] = {}

    def both_in_progress() -> bool:
        nonlocal snapshot
        done = cluster.cli("monitor", "--json")
        assert done.returncode == 0, done.stderr
        snapshot = json.loads(done.stdout)
        return {str(c.get("server")) for c in snapshot.get("calls", [])} >= set(callers)

    await until(both_in_progress, 5.0, lambda: f"both servers' calls in the monitor: {snapshot}", every=0.2)
    assert sorted(s["server"] for s in snapshot["servers"]) == ["node1", "node2"]
    assert all(r.ok for r in await asyncio.gather(*placing))
    assert await asyncio.to_thread(kpi_calls, cluster) == before + 2, "the KPIs count both servers' calls"


async def test_callbacks_are_dialled_once_by_the_two_servers(hotline_cluster: Cluster) -> None:
    """An agent of general-zh on each node (registered with that node, logged in through its
    server's AMI); whichever server claims a booked callback places it on its own node, and each
    customer is dialled back once."""
    cluster = hotline_cluster
    specs = {spec.endpoint: spec for spec in load_agents()}
    on_node = {"node1": replace(specs["agent-1001"], talk_s=2), "node2": replace(specs["agent-1002"], talk_s=2)}
    numbers = [f"1312227{i:04d}" for i in range(3)]
    agents = [DemoAgent(spec, sip_password(), cluster.tmp / "agents", target=NODE_SIP[node])
              for node, spec in on_node.items()]
    try:
        for agent in agents:
            await agent.start()
        for node, spec in on_node.items():
            server = cluster.servers[node]
            await asyncio.to_thread(server.cli, "agents", "logout", spec.endpoint)  # kept by persistentmembers
            done = await asyncio.to_thread(server.cli, "agents", "login", spec.endpoint, "--queue", "general-zh")
            assert done.returncode == 0, done.stdout + done.stderr
        async with customer_phones(cluster.tmp / "callback-customers") as phones:
            async with connection(cluster.dsn) as conn:
                booked = [await book_callback(conn, call_id=f"cluster-{uuid.uuid4().hex[:8]}", customer_id=None,
                                              number=number, queue="general-zh") for number in numbers]
            rows: list[dict[str, Any]] = []

            def all_done() -> bool:
                nonlocal rows
                listed = cluster.cli("callbacks", "list", "--json", "--limit", "50")
                assert listed.returncode == 0, listed.stderr
                rows = [r for r in json.loads(listed.stdout) if r["callback_id"] in booked]
                return all(r["status"] in ("completed", "failed", "no_answer", "busy") for r in rows)

            await until(all_done, 60, lambda: f"callbacks done: {rows}", every=0.5)
            await asyncio.sleep(3 * POLL_MS / 1000)  # more rounds of each server: nothing more may be dialled
        assert [r["status"] for r in rows] == ["completed"] * len(numbers), rows
        assert sorted(a.split()[0] for a in phones.answered) == numbers, "each customer dialled back once"
        connected = {node: [i for i in booked if re.search(rf"event=callback_connected \S+ callback={i}\b",
                                                            server.log_path.read_text())]
                     for node, server in cluster.servers.items()}
        assert sorted(connected["node1"] + connected["node2"]) == sorted(booked), f"each connected once: {connected}"
    finally:
        for node, spec in on_node.items():
            await asyncio.to_thread(cluster.servers[node].cli, "agents", "logout", spec.endpoint)
        for agent in agents:
            await agent.stop()
