"""`hotline agents` as administrators run it (its own process) against the fake AMI server, with the
audit log in a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from agi_app.db.pool import connection
from agi_app.db.repositories import audit
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401  (the fixture)
from tests.fake_ami.server import SECRET, USER, FakeAmi
from tests.support.cli import hotline_cli


@pytest.fixture(autouse=True)
def ami_env(monkeypatch: pytest.MonkeyPatch, fake_ami: FakeAmi) -> None:  # noqa: F811
    monkeypatch.setenv("HOTLINE_AMI_URL", fake_ami.url)
    monkeypatch.setenv("HOTLINE_AMI_USER", USER)
    monkeypatch.setenv("HOTLINE_AMI_PASSWORD", SECRET)
    monkeypatch.setenv("HOTLINE_AMI_CONNECT_MS", "1500")


async def agents(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`hotline agents ARGS` in a thread: the fake AMI answers on this test's event loop meanwhile."""
    return await asyncio.to_thread(hotline_cli, dsn, "agents", *args)


async def test_login_list_pause_logout_change_the_live_queues_and_are_audited(
        fake_ami: FakeAmi, dsn: str) -> None:  # noqa: F811
    done = await agents(dsn, "login", "1001", "--queue", "general-zh", "--queue", "vip", "--penalty", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1001 logged in to queue general-zh", "1001 logged in to queue vip"]
    assert {"PJSIP/1001"} <= set(fake_ami.queues["hotline-general-zh"].members)

    paused = await agents(dsn, "pause", "1001", "--reason", "lunch")
    assert paused.returncode == 0, paused.stderr
    assert fake_ami.queues["hotline-vip"].members["PJSIP/1001"].paused_reason == "lunch"

    listed = await agents(dsn, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [row for row in json.loads(listed.stdout) if row["agent"] == "1001"]
    assert mine == [
        {"agent": "1001", "group": "general-zh", "status": "invalid", "paused": True, "calls_taken": 0, "in_call": False},
        {"agent": "1001", "group": "vip", "status": "invalid", "paused": True, "calls_taken": 0, "in_call": False},
    ]
    text = await agents(dsn, "list")
    assert "1001  queue=general-zh  status=invalid  paused=yes  calls=0  in_call=no" in text.stdout

    assert (await agents(dsn, "pause", "--off", "1001")).returncode == 0
    assert not fake_ami.queues["hotline-vip"].members["PJSIP/1001"].paused
    out = await agents(dsn, "logout", "1001", "--queue", "vip")
    assert out.returncode == 0 and out.stdout.strip() == "1001 logged out of queue vip"
    out = await agents(dsn, "logout", "1001")
    assert out.returncode == 0 and out.stdout.strip() == "1001 logged out of queue general-zh"
    assert not any("PJSIP/1001" in q.members for q in fake_ami.queues.values())

    async with connection(dsn) as conn:
        log = list(reversed(await audit.recent(conn)))
    assert [(r["actor"], r["action"], r["detail"]) for r in log] == [
        ("tester", "agents.login", {"agent": "1001", "queues": ["general-zh", "vip"], "penalty": 1}),
        ("tester", "agents.pause", {"agent": "1001", "queue": None, "reason": "lunch"}),
        ("tester", "agents.unpause", {"agent": "1001", "queue": None, "reason": None}),
        ("tester", "agents.logout", {"agent": "1001", "queues": ["vip"]}),
        ("tester", "agents.logout", {"agent": "1001", "queues": ["general-zh"]}),
    ]


async def test_without_a_database_the_queue_change_still_happens(fake_ami: FakeAmi) -> None:  # noqa: F811
    done = await agents("", "login", "1002", "--queue", "cards")
    assert done.returncode == 0, done.stderr
    assert "PJSIP/1002" in fake_ami.queues["hotline-cards"].members


async def test_with_the_database_down_the_change_stands_and_a_warning_says_it_was_not_audited(
        fake_ami: FakeAmi) -> None:  # noqa: F811
    done = await agents("postgresql://hotline@127.0.0.1:1/nowhere", "login", "1003", "--queue", "risk")
    assert done.returncode == 0, done.stderr
    assert "not recorded in the audit log" in done.stderr
    assert "PJSIP/1003" in fake_ami.queues["hotline-risk"].members


@pytest.mark.parametrize("args", [
    ("login", "1001\r\nAction: Originate", "--queue", "general-zh"),
    ("login", "10 01", "--queue", "general-zh"),
    ("login", "1001", "--queue", "general-zh\nAction: Originate"),
    ("login", "1001", "--queue", "nowhere"),
    ("login", "1001"),
    ("pause", "1001", "--reason", "lunch\r\nAction: Originate"),
    ("pause", "1001", "--off", "--reason", "lunch"),
    ("logout", "PJSIP/1001"),
])
async def test_malformed_ids_groups_and_reasons_are_usage_errors_and_reach_no_ami_header(
        fake_ami: FakeAmi, args: tuple[str, ...]) -> None:  # noqa: F811
    done = await agents("", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    changes = [a for a in fake_ami.actions if a["Action"] in ("QueueAdd", "QueueRemove", "QueuePause")]
    assert changes == []
    assert not any("Originate" in block for block in fake_ami.raw)


async def test_pausing_an_agent_logged_in_nowhere_is_refused(fake_ami: FakeAmi) -> None:  # noqa: F811
    done = await agents("", "pause", "ghost")
    assert done.returncode == 1
    assert "agent ghost is not logged in to any queue" in done.stderr
    assert (await agents("", "logout", "ghost")).returncode == 1


async def test_ami_down_or_silent_exits_3_and_wrong_credentials_exit_2(
        fake_ami: FakeAmi, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake_ami.silent = True
    slow = await agents("", "list")
    assert slow.returncode == 3 and "no login within 1.5s" in slow.stderr
    fake_ami.silent = False
    monkeypatch.setenv("HOTLINE_AMI_PASSWORD", "wrong")
    refused = await agents("", "list")
    assert refused.returncode == 2 and "refused the login" in refused.stderr
    assert "wrong" not in refused.stderr  # the secret tried is never echoed
    await fake_ami.stop()
    down = await agents("", "list")
    assert down.returncode == 3 and "ConnectionRefusedError" in down.stderr
