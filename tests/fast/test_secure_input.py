"""A PIN typed on a real call (fake ARI, real server, real PostgreSQL) appears nowhere: not in
the log, not in any table — even when typed ahead of its prompt."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agi_app.flows.loader import load_document
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import fetch, settings_for, start_hotline
from tests.fast.flowkit import doc

PIN = "739164"


async def test_a_pin_leaves_no_trace(fake_ari: FakeAri, dsn: str, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flows, _ = load_document(doc({
        "hello": {"type": "announcement", "prompt": "{{ sound('welcome') }}", "next": "pin"},
        "pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                "min_length": 6, "max_length": 6, "timeout": 2, "next": "bye"},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }, start="hello"), version=1)
    fake_ari.media_duration = lambda uri: 0.3
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path), flows)
    try:
        call = await line.call("13800138000")
        await fake_ari.wait_for(lambda: bool(line.played(call)))
        await fake_ari.press(call, PIN[:2])  # typed ahead, during the welcome
        await asyncio.sleep(0.5)
        await fake_ari.press(call, PIN[2:])
        row = await line.wait_ended(call)
    finally:
        line.shutdown.set()
        await asyncio.wait_for(line.task, 15)
    assert row["path"] == ["hello", "pin", "bye"]
    assert row["inputs"] == [{"node": "pin", "input": "******", "result": "ok"}]
    assert PIN not in caplog.text and PIN[2:] not in caplog.text
    for table in ("calls", "call_nodes", "call_inputs", "call_services", "audit_log"):
        dumped = " ".join(str(dict(r)) for r in await fetch(dsn, f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
        assert PIN not in dumped and PIN[2:] not in dumped, table
