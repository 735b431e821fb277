"""`hotline serve` during a PostgreSQL outage: it starts from the last valid menu version cached on
disk, serves every caller as unknown, and recovers — menus, callers, journeys — when the database
returns. Without a usable cache it refuses to start, saying why."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from agi_app.flows.loader import demo_flow_path, read_document
from agi_app.serve.app import StartupError
from agi_app.serve.menu_cache import MenuCache
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, settings_for, start_hotline
from tests.support.cli import hotline_cli
from tests.support.demo import KNOWN_ZH, MAIN_ZH, demo_menus_file
from tests.support.proxy import TcpProxy

DEAD_DSN = "postgresql://hotline@127.0.0.1:1/hotline"  # nothing listens on port 1


def cache_file(state: Path) -> Path:
    return state / "menus" / "active.json"


def cached_version(state: Path) -> int | None:
    path = cache_file(state)
    return int(json.loads(path.read_text(encoding="utf-8"))["version"]) if path.exists() else None


async def start_published(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> Hotline:
    """A server on the published menus, caching them in `tmp_path / "state"`."""
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, state_dir=str(tmp_path / "state"))
    return await start_hotline(fake_ari, dsn, settings, published=True)


async def test_the_menu_cache_is_written_at_start_and_on_every_reload(fake_ari: FakeAri, dsn: str,
                                                                      tmp_path: Path) -> None:
    assert hotline_cli(dsn, "menus", "publish", str(demo_menus_file(tmp_path, "v1.yaml"))).returncode == 0
    line = await start_published(fake_ari, dsn, tmp_path)
    try:
        state = tmp_path / "state"
        assert cached_version(state) == 1
        assert stat.S_IMODE(cache_file(state).stat().st_mode) == 0o600
        assert stat.S_IMODE(cache_file(state).parent.stat().st_mode) == 0o700
        v2 = demo_menus_file(tmp_path, "v2.yaml", main_intro="{{ sound('announcement_hours') }}")
        assert hotline_cli(dsn, "menus", "publish", str(v2)).returncode == 0
        await fake_ari.wait_for(lambda: cached_version(state) == 2)
        assert stat.S_IMODE(cache_file(state).stat().st_mode) == 0o600
        assert not list(cache_file(state).parent.glob(".*")), "no temp file is left behind"
    finally:
        await line.stop()


async def test_serve_starts_from_the_cached_menus_while_postgresql_is_down_and_recovers_when_it_returns(
        fake_ari: FakeAri, dsn: str, db_proxy: TcpProxy, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await import_demo_customers(dsn)
    assert hotline_cli(dsn, "menus", "publish", str(demo_menus_file(tmp_path, "v1.yaml"))).returncode == 0
    first = await start_published(fake_ari, dsn, tmp_path)
    await first.stop()  # a normal run leaves version 1 cached
    v2 = demo_menus_file(tmp_path, "v2.yaml", main_intro="{{ sound('announcement_hours') }}")
    assert hotline_cli(dsn, "menus", "publish", str(v2)).returncode == 0  # published while this server was down

    db_proxy.refuse = True
    line = await start_published(fake_ari, db_proxy.through(dsn), tmp_path)
    try:
        assert line.server.flows.version == 1
        assert "event=serve_degraded reason=database_unreachable menu_version=1 source=cache" in caplog.text
        during = await line.call(KNOWN_ZH)
        await line.heard(during, MAIN_ZH)
        assert line.played(during)[0] == "sound:hotline/zh/welcome", "an unknown caller: the general greeting"
        assert fake_ari.channel(during).continued_to is None, "served, not sent to the dialplan fallback"
        await fake_ari.hangup(during)

        db_proxy.refuse = False
        await fake_ari.wait_for(lambda: line.server.flows.version == 2, timeout=30)
        await fake_ari.wait_for(lambda: "event=serve_recovered" in caplog.text)
        assert cached_version(tmp_path / "state") == 2
        after = await line.call(KNOWN_ZH)
        await line.heard(after, MAIN_ZH)
        await fake_ari.press(after, "0")
        row = await line.wait_ended(after, timeout=30)
        assert (row["customer_id"], row["menu_version"]) == ("C001", 2), "recognised again, on the new version"
    finally:
        await line.stop()


async def test_without_a_cached_menu_and_without_the_database_serve_refuses_to_start(
        fake_ari: FakeAri, tmp_path: Path) -> None:
    settings = settings_for(fake_ari, DEAD_DSN, tmp_path, state_dir=str(tmp_path / "state"))
    with pytest.raises(StartupError) as refused:
        await start_hotline(fake_ari, DEAD_DSN, settings, published=True)
    assert refused.value.unreachable
    message = str(refused.value)
    assert "cannot connect to PostgreSQL" in message and "no cached menu version" in message
    assert str(cache_file(tmp_path / "state")) in message


def valid_document() -> dict[str, Any]:
    return read_document(demo_flow_path())


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def tampered(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace("general-zh", "evil-queue"), encoding="utf-8")


def writable_by_others(path: Path) -> None:
    path.chmod(0o666)


@pytest.mark.parametrize(("damage", "reason"), [(truncated, "corrupt"), (tampered, "corrupt"),
                                                (writable_by_others, "writable by others")])
async def test_a_damaged_cached_menu_is_refused_with_a_clear_message(
        fake_ari: FakeAri, tmp_path: Path, damage: Any, reason: str) -> None:
    state = tmp_path / "state"
    assert await MenuCache(state).save(3, valid_document())
    damage(cache_file(state))
    settings = settings_for(fake_ari, DEAD_DSN, tmp_path, state_dir=str(state))
    with pytest.raises(StartupError) as refused:
        await start_hotline(fake_ari, DEAD_DSN, settings, published=True)
    assert "cannot connect to PostgreSQL" in str(refused.value)
    assert f"the cached menu version at {cache_file(state)} is {reason}" in str(refused.value)


async def test_a_cached_menu_this_server_finds_invalid_is_refused(fake_ari: FakeAri, tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad = valid_document()
    bad["flows"]["general"]["nodes"]["main"]["options"]["1"]["next"] = "nowhere"
    assert await MenuCache(state).save(4, bad)  # e.g. written by a newer build whose rules differ
    settings = settings_for(fake_ari, DEAD_DSN, tmp_path, state_dir=str(state))
    with pytest.raises(StartupError) as refused:
        await start_hotline(fake_ari, DEAD_DSN, settings, published=True)
    assert "cached menu version 4" in str(refused.value) and "unknown node 'nowhere'" in str(refused.value)


async def test_a_flows_file_run_neither_writes_nor_reads_the_cache(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = settings_for(fake_ari, dsn, tmp_path, state_dir=str(state), flows_file=str(demo_flow_path()))
    line = await start_hotline(fake_ari, dsn, settings, published=True)
    await line.stop()
    assert not cache_file(state).exists()
    assert await MenuCache(state).save(5, valid_document())
    with pytest.raises(StartupError, match="cannot connect to PostgreSQL"):
        await start_hotline(fake_ari, DEAD_DSN, settings.with_overrides(dsn=DEAD_DSN), published=True)
