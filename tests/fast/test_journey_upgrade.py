"""Journeys spilled by an earlier release are all written after an upgrade, and an operation this
release cannot apply is kept aside on disk, never dropped: the journey writer replaying spill files
written by hand, line for line as the previous release wrote them, into a migrated real PostgreSQL."""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agi_app.db.journey_spill import REJECTED, spill_dir_for
from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import create_pool
from tests.fast.conftest import fetch

T0 = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))

# The release before migrations 008 and 009 (commit 1f50237^): a service row without its time, a
# survey answer of four arguments (always a flow's survey node, always scored). The other
# operations kept their arguments since.
PREVIOUS_RELEASE = b"""\
{"op": "call_started", "args": ["old-1", {"t": "2026-11-23T09:30:15.123456+08:00"}, "13800138000", "95000"]}
{"op": "call_identified", "args": ["old-1", "C001", "standard", "zh", 1]}
{"op": "node_entered", "args": ["old-1", 1, "entry", {"t": "2026-11-23T09:30:16.123456+08:00"}]}
{"op": "node_entered", "args": ["old-1", 2, "main", {"t": "2026-11-23T09:30:17.123456+08:00"}]}
{"op": "node_input", "args": ["old-1", 1, 2, "1", "option", {"t": "2026-11-23T09:30:18+08:00"}]}
{"op": "service_reached", "args": ["old-1", 1, "balance", "ok"]}
{"op": "service_reached", "args": ["old-1", 2, "transfer_history", "failed"]}
{"op": "survey_answer", "args": ["old-1", "survey", 4, {"t": "2026-11-23T09:30:40+08:00"}]}
{"op": "queue_leg", "args": ["old-1", "cards", 2, 45, 60, "waiting"]}
{"op": "call_ended", "args": ["old-1", {"t": "2026-11-23T09:30:45.123456+08:00"}, "transferred", "cards", 30000]}
"""


def leftover(tmp_path: Path, lines: bytes) -> Path:
    """A spill file a stopped server left in the state folder."""
    folder = spill_dir_for(str(tmp_path / "state"))
    folder.mkdir(mode=0o700, parents=True)
    path = folder / "spill-20261123T013016000000-4242-0001.jsonl"
    path.write_bytes(lines)
    path.chmod(0o600)
    return path


async def replay(dsn: str, tmp_path: Path) -> PgJourneySink:
    """The upgraded release's writer on a healthy database: it replays what it finds, then stops."""
    async with await create_pool(dsn, budget_s=0.3) as pool:
        sink = PgJourneySink(pool, budget_s=0.3, spill_dir=spill_dir_for(str(tmp_path / "state")))
        sink.start()
        await sink.flush()
        await sink.close()
    return sink


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [m for m in caplog.messages if m.startswith(f"event={name} ")]


async def test_a_spill_file_of_the_previous_release_is_written_whole_after_the_upgrade(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    spill = leftover(tmp_path, PREVIOUS_RELEASE)

    sink = await replay(dsn, tmp_path)

    assert not events(caplog, "journey_write_failed") and not events(caplog, "journey_set_aside")
    assert (sink.failed, sink.rejected, sink.dropped) == (0, 0, 0)
    assert not spill.exists(), "a fully applied file is removed"
    [call] = await fetch(dsn, "SELECT started_at, ended_at, customer_id, outcome, duration_ms FROM calls")
    assert (call["started_at"], call["ended_at"]) == (T0, T0 + timedelta(seconds=30))
    assert (call["customer_id"], call["outcome"], call["duration_ms"]) == ("C001", "transferred", 30_000)
    assert len(await fetch(dsn, "SELECT 1 FROM call_nodes")) == 2
    assert len(await fetch(dsn, "SELECT 1 FROM call_inputs")) == 1
    services = await fetch(dsn, "SELECT seq, service, result, at FROM call_services ORDER BY seq")
    assert [tuple(r) for r in services] == [(1, "balance", "ok", None), (2, "transfer_history", "failed", None)], \
        "no time: left out of time to service"
    [survey] = await fetch(dsn, "SELECT * FROM survey_answers")
    assert {k: survey[k] for k in ("call_id", "node_id", "score", "kind", "result", "no_answer", "queue", "agent")} \
        == {"call_id": "old-1", "node_id": "survey", "score": 4, "kind": "after_self_service", "result": "ok",
            "no_answer": None, "queue": None, "agent": None}
    assert survey["at"] == datetime(2026, 11, 23, 9, 30, 40, tzinfo=T0.tzinfo)
    [leg] = await fetch(dsn, "SELECT queue, announced_position, announced_wait_s, result FROM queue_legs")
    assert tuple(leg) == ("cards", 2, 45, "waiting")


async def test_operations_this_release_cannot_apply_are_set_aside_and_the_rest_written(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    unknown = b'{"op": "call_rated", "args": ["new-1", 5, {"t": "2026-11-23T09:30:40+08:00"}]}\n'
    misshapen = b'{"op": "service_reached", "args": ["new-1", 1, "balance"]}\n'  # no such release
    too_long = b'{"op": "call_identified", "args": ["new-1", "C001", "standard", "zh", 1, "extra"]}\n'
    spill = leftover(tmp_path, b"".join([
        b'{"op": "call_started", "args": ["new-1", {"t": "2026-11-23T09:30:15.123456+08:00"}, "13800138000",'
        b' "95000"]}\n',
        unknown, misshapen, too_long,
        b'{"op": "call_ended", "args": ["new-1", {"t": "2026-11-23T09:30:45+08:00"}, "hangup", null, 30000]}\n']))

    sink = await replay(dsn, tmp_path)

    assert [tuple(r) for r in await fetch(dsn, "SELECT call_id, outcome FROM calls")] == [("new-1", "hangup")]
    assert not spill.exists(), "the rest of the file is applied and the file removed"
    rejected = spill.parent / REJECTED
    assert rejected.read_bytes().splitlines(keepends=True) == [unknown, misshapen, too_long], "kept as written"
    assert stat.S_IMODE(os.stat(rejected).st_mode) == 0o600
    assert sink.rejected == 3 and sink.failed == 0 and sink.dropped == 0
    logged = events(caplog, "journey_set_aside")
    assert len(logged) == 3, "each logged once"
    assert "op=call_rated" in logged[0] and "reason=unknown_op" in logged[0]
    assert "op=service_reached" in logged[1] and "reason=unknown_shape" in logged[1]
    assert "op=call_identified" in logged[2] and "reason=unknown_shape" in logged[2]

    await replay(dsn, tmp_path)  # the next start leaves the rejected file alone
    assert rejected.read_bytes().count(b"\n") == 3



async def test_a_line_this_release_cannot_read_is_set_aside_as_it_was(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    new_value = b'{"op": "node_entered", "args": ["read-1", 1, "entry", {"ts": 1795397415}]}\n'  # a tag unknown here
    garbage = b"\xff\xfe not json\n"
    spill = leftover(tmp_path, b"".join([
        b'{"op": "call_started", "args": ["read-1", {"t": "2026-11-23T09:30:15+08:00"}, "13800138000", "95000"]}\n',
        new_value, garbage]))

    sink = await replay(dsn, tmp_path)

    assert len(await fetch(dsn, "SELECT 1 FROM calls WHERE call_id = 'read-1'")) == 1
    assert not spill.exists()
    assert (spill.parent / REJECTED).read_bytes() == new_value + garbage
    assert sink.rejected == 2
    logged = events(caplog, "journey_set_aside")
    assert [("line=2" in m, "line=3" in m, "reason=corrupt" in m) for m in logged] == [(True, False, True),
                                                                                      (False, True, True)]
    assert not events(caplog, "journey_spill_line_skipped")
