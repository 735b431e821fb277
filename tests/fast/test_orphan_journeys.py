"""Journeys a killed server left open are closed by the server that takes its place on the same
Asterisk — and only those: another node's calls in progress, and rows an older release wrote
without an Asterisk, are not touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agi_app.ari.client import AriClient
from agi_app.db.pool import connection
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import import_demo_customers, settings_for, start_hotline


async def _open_journey(dsn: str, call_id: str, asterisk: str | None, started: datetime,
                        nodes: list[datetime]) -> None:
    async with connection(dsn) as conn:
        await conn.execute("INSERT INTO calls (call_id, started_at, caller, dnis, asterisk)"
                           " VALUES ($1, $2, '13800138000', '95000', $3)", call_id, started, asterisk)
        for seq, at in enumerate(nodes, start=1):
            await conn.execute("INSERT INTO call_nodes (call_id, seq, node_id, entered_at) VALUES ($1, $2, 'main', $3)",
                               call_id, seq, at)


async def _row(dsn: str, call_id: str) -> dict[str, object]:
    async with connection(dsn) as conn:
        row = await conn.fetchrow("SELECT ended_at, outcome, duration_ms, asterisk FROM calls WHERE call_id = $1",
                                  call_id)
    assert row is not None
    return dict(row)


async def test_a_restarted_server_closes_its_asterisks_open_journeys_at_their_last_trace(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with AriClient(fake_ari.url, "hotline", "hotline-dev", fake_ari.app) as client:
        ours = AriClient.asterisk_identity(await client.asterisk_info())
    assert ours is not None and "@" in ours
    now = datetime.now(UTC)
    await _open_journey(dsn, "killed-1", ours, now - timedelta(minutes=2),
                        [now - timedelta(minutes=2), now - timedelta(seconds=90)])
    await _open_journey(dsn, "killed-2", ours, now - timedelta(seconds=5), [])
    await _open_journey(dsn, "other-node", "node2@02:00:00:00:00:09", now - timedelta(minutes=1), [])
    await _open_journey(dsn, "old-release", None, now - timedelta(minutes=1), [])
    await import_demo_customers(dsn)
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path))
    try:
        for _ in range(250):  # closed in the background, once the database answers
            if (await _row(dsn, "killed-2"))["ended_at"] is not None:
                break
            await asyncio.sleep(0.02)
        killed = await _row(dsn, "killed-1")
        assert killed["outcome"] == "error" and killed["duration_ms"] == 30_000
        assert killed["ended_at"] == now - timedelta(seconds=90)
        assert (await _row(dsn, "killed-2"))["duration_ms"] == 0  # nothing after its start: it ends there
        for untouched in ("other-node", "old-release"):
            assert (await _row(dsn, untouched))["ended_at"] is None, untouched

        call = await line.call("13800138000")  # this server's own calls carry its Asterisk
        await line.ari.hangup(call)
        ended = await line.wait_ended(call)
        assert ended["outcome"] == "abandoned" and (await _row(dsn, call))["asterisk"] == ours
    finally:
        await line.stop()
