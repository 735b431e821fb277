"""The `hotline` command line as administrators and scripts use it: a real process, real database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from agi_app.flows.loader import demo_flow_path
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import fetch
from tests.support.cli import HOTLINE, hotline_cli
from tests.support.demo import BILL_DUE, DEMO_CUSTOMERS, ELDERLY, UNKNOWN


async def test_db_init_is_repeatable(dsn: str) -> None:
    result = hotline_cli(dsn, "db", "init")
    assert result.returncode == 0 and "up to date" in result.stdout


async def test_import_then_calls_list_json_shape(dsn: str) -> None:
    result = hotline_cli(dsn, "customers", "import", str(DEMO_CUSTOMERS), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 7
    rows = await fetch(dsn, "SELECT customer_id FROM customer_phones WHERE phone = $1", "1065123456")
    assert rows[0]["customer_id"] == "C001"
    listed = hotline_cli(dsn, "calls", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


async def test_a_bad_row_imports_nothing_and_names_the_line(dsn: str, tmp_path: Path) -> None:
    good = DEMO_CUSTOMERS.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*good, "C999,13812345678,Bad Segment,Mr,gold,zh,,,x"]) + "\n", encoding="utf-8")
    result = hotline_cli(dsn, "customers", "import", str(bad))
    assert result.returncode == 1
    assert f"{bad}: line {len(good) + 1}: segment 'gold'" in result.stderr
    assert "nothing imported" in result.stderr
    assert await fetch(dsn, "SELECT 1 FROM customers") == []


async def test_binary_garbage_is_refused_clearly(dsn: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\xff\xfe\x00garbage\x00")
    result = hotline_cli(dsn, "customers", "import", str(junk))
    assert result.returncode == 1 and "not UTF-8" in result.stderr


async def test_large_import_shows_progress_and_is_all_or_nothing(dsn: str, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    rows = [f"D{i:05d},139{i:08d},Customer {i},Ms,standard,en" for i in range(3000)]
    big.write_text("customer_id,phone,name,salutation,segment,language\n" + "\n".join(rows) + "\n")
    result = hotline_cli(dsn, "customers", "import", str(big))
    assert result.returncode == 0, result.stderr
    assert "imported 3000 customers" in result.stdout
    assert (await fetch(dsn, "SELECT count(*) AS n FROM customers"))[0]["n"] == 3000


def test_unreachable_database_exits_3_with_a_clear_message() -> None:
    result = hotline_cli("postgresql://hotline@127.0.0.1:1/hotline", "calls", "list")
    assert result.returncode == 3 and "cannot connect to PostgreSQL at postgresql://hotline@127.0.0.1:1" in result.stderr


def test_missing_configuration_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    result = subprocess.run([HOTLINE, "calls", "list"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "HOTLINE_DSN" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["customers", "import", "--help"], ["calls", "list", "--help"]])
def test_help_reads_well(args: list[str]) -> None:
    result = subprocess.run([HOTLINE, *args], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: hotline" in result.stdout


async def test_customer_import_is_audited(dsn: str) -> None:
    assert hotline_cli(dsn, "customers", "import", str(DEMO_CUSTOMERS)).returncode == 0
    rows = await fetch(dsn, "SELECT action, detail FROM audit_log")
    assert [r["action"] for r in rows] == ["customers.import"] and '"customers": 7' in rows[0]["detail"]


async def test_preview_cost_and_simulate_from_the_command_line(dsn: str) -> None:
    assert hotline_cli(dsn, "customers", "import", str(DEMO_CUSTOMERS)).returncode == 0
    assert hotline_cli(dsn, "menus", "preview", "--caller", ELDERLY).returncode == 2, "nothing published yet"
    assert hotline_cli(dsn, "menus", "publish", str(demo_flow_path())).returncode == 0
    at = ["--at", "2026-11-24 10:00"]
    shown = json.loads(hotline_cli(dsn, "menus", "preview", "--caller", ELDERLY, *at, "--json").stdout)
    assert shown["menu"] == "elderly_menu" and shown["segment"] == "elderly" and shown["options"][0]["key"] == "0"
    costs = json.loads(hotline_cli(dsn, "menus", "cost", "--caller", BILL_DUE, "--line", "95000", *at, "--json").stdout)
    assert {"service", "keys", "seconds", "depth"} <= set(costs[0]) and costs[0]["service"] == "bill_payment"
    table = hotline_cli(dsn, "menus", "cost", "--line", "95000", *at).stdout
    assert "generic" in table and "elderly: top service agent" in table
    walked = hotline_cli(dsn, "simulate", "--caller", UNKNOWN, "--digits", "3", *at)
    assert walked.returncode == 0, walked.stderr
    assert "call ended: transferred → hotline-agents/cards" in walked.stdout
    assert "path entry > greeting > segment > main > agent_cards" in walked.stdout


async def test_serve_refuses_to_start_without_its_dependencies(dsn: str, fake_ari: FakeAri, tmp_path: Path) -> None:
    # Its own state folder: a menu cached by another run would (rightly) let serve start degraded.
    base = {**os.environ, "HOTLINE_ARI_USER": "hotline", "HOTLINE_ARI_PASSWORD": "hotline-dev",
            "HOTLINE_STATE_DIR": str(tmp_path / "state")}

    async def serve(**env: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(HOTLINE, "serve", env={**base, **env},
                                                    stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, err.decode()

    code, err = await serve(HOTLINE_DSN="postgresql://hotline@127.0.0.1:1/x", HOTLINE_ARI_URL=fake_ari.url)
    assert code == 3 and "cannot connect to PostgreSQL" in err
    code, err = await serve(HOTLINE_DSN=dsn, HOTLINE_ARI_URL="http://127.0.0.1:1")
    assert code == 3 and "cannot reach Asterisk ARI at http://127.0.0.1:1" in err
    code, err = await serve(HOTLINE_DSN=dsn, HOTLINE_ARI_URL=fake_ari.url)
    assert code == 2 and "no menu version is published" in err
    code, err = await serve(HOTLINE_DSN=dsn, HOTLINE_ARI_URL=fake_ari.url, HOTLINE_ARI_PASSWORD="wrong")
    assert code == 3 and "401" in err
    assert fake_ari.violations == ["GET /ari/asterisk/info: missing or wrong Basic Authorization header"]
    fake_ari.violations.clear()  # provoked on purpose: the wrong password above


async def test_audit_log_is_readable_from_the_cli(dsn: str) -> None:
    assert hotline_cli(dsn, "customers", "import", str(DEMO_CUSTOMERS), actor=None).returncode == 0
    rows = json.loads(hotline_cli(dsn, "db", "audit", "--json").stdout)
    assert [r["action"] for r in rows] == ["customers.import"] and rows[0]["actor"], "the login user"
