"""Publishing, rollback and hot reload: a call keeps the version it started with, the next call
gets the new one, an invalid version is refused and the old one stays; emergency announcements
reach the next caller; the preview is what a live call plays."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import yaml

from agi_app.admin.menus import checksum
from agi_app.admin.simulate import preview
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories import menus as menu_repo
from agi_app.flows.loader import demo_flow_path, read_document
from agi_app.serve.app import build_services, call_handler
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, fetch, import_demo_customers, settings_for, start_hotline
from tests.support.cli import hotline_cli
from tests.support.demo import KNOWN_ZH, MAIN_ZH, UNKNOWN, VIP_EN, demo_document, demo_menus_file


async def test_publish_list_diff_rollback_with_audit(dsn: str, tmp_path: Path) -> None:
    v1 = demo_menus_file(tmp_path, "v1.yaml")
    v2 = demo_menus_file(tmp_path, "v2.yaml", main_intro="{{ sound('announcement_hours') }}")
    assert "published version 1" in hotline_cli(dsn, "menus", "publish", str(v1), "-m", "first").stdout
    assert "identical to active version 1" in hotline_cli(dsn, "menus", "publish", str(v1)).stdout
    assert "published version 2" in hotline_cli(dsn, "menus", "publish", str(v2)).stdout
    listed = json.loads(hotline_cli(dsn, "menus", "list", "--json").stdout)
    assert [(v["version"], v["active"], v["published_by"]) for v in listed] == [(2, True, "tester"), (1, False, "tester")]
    diff = hotline_cli(dsn, "menus", "diff", "1", "2").stdout
    assert "--- version 1" in diff and "+        intro: '{{ sound(''announcement_hours'') }}'" in diff
    assert "version 1 is active" in hotline_cli(dsn, "menus", "rollback", "1").stdout
    assert (await fetch(dsn, "SELECT version FROM menu_active"))[0]["version"] == 1
    actions = [r["action"] for r in await fetch(dsn, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["menus.publish", "menus.publish", "menus.rollback"]
    assert hotline_cli(dsn, "menus", "rollback", "9").returncode == 1
    with pytest.raises(Exception, match="immutable"):
        async with connection(dsn) as conn:
            await conn.execute("UPDATE menu_versions SET comment = 'edited' WHERE version = 1")


async def test_an_invalid_file_is_not_published(dsn: str, tmp_path: Path) -> None:
    hotline_cli(dsn, "menus", "publish", str(demo_menus_file(tmp_path, "ok.yaml")))
    broken = tmp_path / "broken.yaml"
    doc = demo_document()
    doc["flows"]["general"]["nodes"]["main"]["options"]["1"]["next"] = "nowhere"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = hotline_cli(dsn, "menus", "publish", str(broken))
    assert result.returncode == 1 and "unknown node 'nowhere'" in result.stderr
    assert "the active version is unchanged" in result.stderr
    assert [r["version"] for r in await fetch(dsn, "SELECT version FROM menu_versions")] == [1]


@pytest_asyncio.fixture
async def published_hotline(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    """A server serving the *published* menus, with hot reload (no flows passed in)."""
    await import_demo_customers(dsn)
    assert hotline_cli(dsn, "menus", "publish", str(demo_menus_file(tmp_path, "v1.yaml"))).returncode == 0
    fake_ari.media_duration = lambda uri: 0.05
    server = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path), published=True)
    yield server
    await server.stop()


async def test_reload_during_a_call_keeps_its_version_and_the_next_call_gets_the_new_one(
        published_hotline: Hotline, dsn: str, tmp_path: Path) -> None:
    line = published_hotline
    first = await line.call(UNKNOWN)
    await line.heard(first, MAIN_ZH)
    new = demo_menus_file(tmp_path, "v2.yaml", main_intro="{{ sound('announcement_hours') }}")
    assert "published version 2" in hotline_cli(dsn, "menus", "publish", str(new)).stdout
    await line.ari.wait_for(lambda: line.server.flows.version == 2)
    await line.ari.press(first, "7")  # the first call goes on in version 1: invalid, then its menu again
    await line.ari.wait_for(lambda: line.played(first).count(MAIN_ZH) == 2)
    await line.ari.press(first, "0")
    second = await line.call(UNKNOWN)
    await line.heard(second, MAIN_ZH)
    await line.ari.press(second, "0")
    row1, row2 = await line.wait_ended(first), await line.wait_ended(second)
    assert (row1["menu_version"], row2["menu_version"]) == (1, 2)
    assert "sound:hotline/zh/announcement_hours" not in line.played(first)
    assert line.played(second)[1] == "sound:hotline/zh/announcement_hours"


async def test_an_invalid_version_is_refused_and_the_old_one_stays(published_hotline: Hotline, dsn: str) -> None:
    line = published_hotline
    async with connection(dsn) as conn, conn.transaction():  # bypass validation, as a buggy tool might
        bad = read_document(demo_flow_path())
        bad["flows"]["general"]["nodes"]["main"]["options"]["1"]["next"] = "nowhere"
        version = await menu_repo.insert(conn, bad, checksum(bad), source_name="bad.yaml", comment="", actor="x")
        await menu_repo.activate(conn, version, "x")
        await menu_repo.notify(conn, version)
    reloader = line.server.reloader
    assert reloader is not None
    await line.ari.wait_for(lambda: version in reloader.refused)
    call = await line.call(UNKNOWN)
    await line.heard(call, MAIN_ZH)
    await line.ari.press(call, "0")
    assert (await line.wait_ended(call))["menu_version"] == 1


async def test_emergency_on_and_off_reach_the_next_call(hotline: Hotline) -> None:
    on = hotline_cli(hotline.dsn, "emergency", "on", "--sound", "emergency_default")
    assert on.returncode == 0, on.stderr
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    assert hotline.played(call)[0] == "sound:hotline/zh/emergency_default"
    await hotline.ari.hangup(call)
    assert hotline_cli(hotline.dsn, "emergency", "off").returncode == 0
    after = await hotline.call(UNKNOWN)
    await hotline.heard(after, MAIN_ZH)
    assert hotline.played(after)[0] == "sound:hotline/zh/welcome"
    await hotline.ari.hangup(after)
    assert [r["action"] for r in await fetch(hotline.dsn, "SELECT action FROM audit_log ORDER BY id")] == [
        "emergency.on", "emergency.off"]


async def test_preview_is_what_a_live_call_plays(hotline: Hotline, tmp_path: Path) -> None:
    pool = await create_pool(hotline.dsn)
    try:
        handler = call_handler(settings_for(hotline.ari, hotline.dsn, tmp_path), pool, lambda: hotline.server.flows,
                               build_services())
        for caller, dnis in ((KNOWN_ZH, "95000"), (VIP_EN, "95001"), (UNKNOWN, "95000")):
            expected = await preview(handler, caller=caller, line=dnis, at=datetime.now(ZoneInfo("Asia/Shanghai")))
            call, wanted = await hotline.call(caller, dnis), len(expected.media)
            await hotline.ari.wait_for(lambda c=call, n=wanted: len(hotline.played(c)) >= n)
            assert hotline.played(call)[:len(expected.media)] == expected.media
            await hotline.ari.hangup(call)
    finally:
        await pool.close()
