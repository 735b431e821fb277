"""Calls through Kamailio spread over both nodes, each served by its own node's `hotline serve`, and
every node sees the caller's number (Kamailio forwards the caller's From; Asterisk identifies
Kamailio by its address)."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.conftest import Cluster
from tests.support.demo import BILL_DUE, ELDERLY, KNOWN_ZH, VIP_EN
from tests.support.sipp import SipCall

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMERS = {KNOWN_ZH: "C001", VIP_EN: "C003", ELDERLY: "C004", BILL_DUE: "C005"}


def served_by(cluster: Cluster, call_id: object) -> list[str]:
    """The nodes whose server logged this call's arrival (its channel id)."""
    return [node for node, server in cluster.servers.items() if server.log_has(f"event=stasis_start call={call_id} ")]


async def test_calls_through_kamailio_spread_over_both_nodes_and_keep_the_callers_number(
        hotline_cluster: Cluster) -> None:
    cluster = hotline_cluster
    assert {node: flags[0] for node, flags in cluster.node_states().items()} == {"node1": "A", "node2": "A"}, \
        "both nodes answer Kamailio's probes"
    calls = [SipCall(number, "95000", hangup_after=3.0, max_duration=30) for number in CUSTOMERS]
    results = await asyncio.gather(*(cluster.call(call) for call in calls))
    assert all(r.ok and r.hangup_by == "local" for r in results), [r.stderr[-500:] for r in results if not r.ok]
    dispatched = cluster.dispatched()
    nodes = [dispatched[r.call_id] for r in results]
    assert sorted(nodes) == ["node1", "node1", "node2", "node2"], f"round robin over the nodes: {nodes}"
    for call, node in zip(calls, nodes, strict=True):
        row = await asyncio.to_thread(cluster.last_call, call.caller)
        assert row["customer_id"] == CUSTOMERS[call.caller], f"{node} identified the caller by number: {row}"
        assert row["path"] and row["path"][0] == "entry", row
        assert served_by(cluster, row["call_id"]) == [node], "the node Kamailio chose served the call"
