"""One node dies under load: SIPp callers arrive through Kamailio every LOAD_GAP_S, and a few seconds
in node2's Asterisk is killed (SIGKILL: no goodbye to anyone). Kamailio takes node2 out within its
probe interval; calls that arrive meanwhile fail over to node1 and succeed; the only calls lost are
the ones node2 was carrying when it died, and every surviving call's journey is complete.

node2 is started again afterwards (its `hotline serve` reconnects by itself), so the session goes on
with both nodes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

import pytest

from tests.cluster.conftest import CLUSTER_RUN, PROBE_INTERVAL_S, Cluster, cluster_script, until
from tests.support.sipp import SipCall, SipResult

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOAD_CALLS = 24
LOAD_GAP_S = 0.4
CALL_S = 5.0  # each caller hangs up this long after the answer
KILL_AFTER_S = 3.0
DEAD = "node2"
#: Kamailio probes every PROBE_INTERVAL_S; the probe in flight when the node dies may take the
#: transaction's timeout (invite_timeout_ms) to fail, and the next probe confirms it.
TAKEN_OUT_WITHIN_S = 2 * PROBE_INTERVAL_S + 1.0


@dataclass
class Placed:
    number: str
    started: float  # seconds after the load began
    result: SipResult


async def place_at(cluster: Cluster, delay: float, number: str, origin: float) -> Placed:
    await asyncio.sleep(delay)
    started = time.monotonic() - origin
    result = await cluster.call(SipCall(number, "95000", hangup_after=CALL_S, max_duration=30))
    return Placed(number, started, result)


async def test_a_node_killed_under_load_loses_only_its_own_calls(hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    pid = int((CLUSTER_RUN / DEAD / "asterisk.pid").read_text())
    server = cluster.servers[DEAD]
    resyncs = server.log_path.read_text().count("event=resync ")
    origin = time.monotonic()
    load = asyncio.gather(*(place_at(cluster, i * LOAD_GAP_S, f"1312226{i:04d}", origin) for i in range(LOAD_CALLS)))
    try:
        await asyncio.sleep(KILL_AFTER_S)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic() - origin
        taken_out = await until(lambda: cluster.node_states()[DEAD].startswith("I"), 10.0,
                                f"Kamailio marks {DEAD} inactive")
        placed: list[Placed] = await load
    finally:
        restarted = await asyncio.to_thread(cluster_script, "node-start", DEAD, check=False)
    assert restarted.returncode == 0, restarted.stderr
    assert taken_out < TAKEN_OUT_WITHIN_S, f"{DEAD} taken out {taken_out:.1f} s after its death"

    dispatched = cluster.dispatched()
    final = {p.result.call_id: dispatched[p.result.call_id] for p in placed}
    lost = [p for p in placed if not p.result.ok]
    on_dead = [p for p in placed if final[p.result.call_id] == DEAD]
    # Every call node2 carried had started before the kill and was still on (callers talk CALL_S s).
    assert all(p.started < killed_at for p in on_dead), [(p.started, killed_at) for p in on_dead]
    assert on_dead, "node2 carried calls when it died"
    assert [p.result.call_id for p in lost] == [p.result.call_id for p in on_dead], \
        f"lost {len(lost)} calls, {len(on_dead)} were on {DEAD}"
    after = [p for p in placed if p.started > killed_at]
    assert after and all(p.result.ok and final[p.result.call_id] == "node1" for p in after), \
        "every call after the kill succeeded on node1"
    for p in placed:
        if p.result.ok:
            row = await asyncio.to_thread(cluster.last_call, p.number)
            assert row["ended_at"] and row["outcome"] and row["path"][0] == "entry", row
    print(f"\nfailover: {len(placed)} calls, {len(lost)} lost (all on {DEAD}), "
          f"{len(after)} after the kill all on node1, {DEAD} out after {taken_out:.2f} s")

    # node2 back: Kamailio sends it calls again once a probe is answered; its server reconnects
    # (and resyncs) by itself.
    await until(lambda: cluster.node_states()[DEAD].startswith("A"), 10.0, f"{DEAD} active again")
    await until(lambda: server.log_path.read_text().count("event=resync ") > resyncs, 30.0,
                lambda: f"{DEAD}'s hotline serve reconnected:\n" + server.log_path.read_text()[-2000:], every=0.2)
