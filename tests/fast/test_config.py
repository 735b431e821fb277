"""The database password never shows: not in a repr of the settings, not in an error, not on the
command line (process lists show arguments). It comes from HOTLINE_DSN, a password file or
PGPASSWORD."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from agi_app.config import ConfigError, Settings
from agi_app.db.pool import DatabaseUnavailable, connection, create_pool
from tests.support.cli import HOTLINE

SECRET = "s3cret-Pw"
DSNS = [
    f"postgresql://hotline:{SECRET}@127.0.0.1:1/hotline",
    f"postgresql://hotline@127.0.0.1:1/hotline?password={SECRET}&sslmode=disable",
    f"postgres://hotline:{SECRET}@127.0.0.1:1/hotline?sslpassword={SECRET}",
    f"host=127.0.0.1 port=1 user=hotline password={SECRET} dbname=hotline",
    f"host=127.0.0.1 password = '{SECRET} x\\'y' dbname=hotline",
]


@pytest.mark.parametrize("dsn", DSNS)
def test_the_settings_repr_never_shows_the_database_password(dsn: str) -> None:
    settings = Settings(dsn=dsn, ari_password="ari-pw")
    for shown in (repr(settings), str(settings), f"{settings}"):
        assert SECRET not in shown and "ari-pw" not in shown
        assert "127.0.0.1" in shown, "the rest of the DSN stays, to tell which database"


@pytest.mark.parametrize("dsn", DSNS[:3])
async def test_database_errors_never_show_the_password(dsn: str) -> None:
    with pytest.raises(DatabaseUnavailable) as refused:
        async with connection(dsn):
            pass
    assert SECRET not in str(refused.value) and "127.0.0.1" in str(refused.value)
    with pytest.raises(DatabaseUnavailable) as refused:
        await create_pool(dsn, budget_s=0.2)
    assert SECRET not in str(refused.value)


def hotline(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`hotline ...` with only `env` as its configuration (no sandbox env file, no PG* variables)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "PG"))}
    (tmp_path / "empty.env").touch()
    return subprocess.run([HOTLINE, *args], env={**environ, "HOTLINE_ENV_FILE": str(tmp_path / "empty.env"), **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("dsn", DSNS[:2] + DSNS[3:4])
def test_a_password_on_the_command_line_is_refused(dsn: str, tmp_path: Path) -> None:
    result = hotline(tmp_path, "--dsn", dsn, "calls", "list")
    assert result.returncode == 2
    assert "HOTLINE_DSN" in result.stderr and "HOTLINE_DB_PASSWORD_FILE" in result.stderr
    assert "PGPASSWORD" in result.stderr and SECRET not in result.stderr + result.stdout


def test_the_password_comes_from_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("pw with spaces&=/@:\n", encoding="utf-8")
    (tmp_path / "empty.env").touch()
    environ = {"HOTLINE_ENV_FILE": str(tmp_path / "empty.env"), "HOTLINE_DB_PASSWORD_FILE": str(secret)}
    settings = Settings.load({**environ, "HOTLINE_DSN": "postgresql://hotline@db.example:5432/hotline"})
    assert parse_qs(urlsplit(settings.dsn).query)["password"] == ["pw with spaces&=/@:"]
    assert "spaces" not in repr(settings)
    over = Settings.load(environ, dsn="postgresql://hotline@db.example/hotline")  # as --dsn gives it
    assert parse_qs(urlsplit(over.dsn).query)["password"] == ["pw with spaces&=/@:"]
    with pytest.raises(ConfigError, match="HOTLINE_DB_PASSWORD_FILE"):
        Settings.load({**environ, "HOTLINE_DSN": f"postgresql://hotline:{SECRET}@db.example/hotline"})
    with pytest.raises(ConfigError, match="HOTLINE_DB_PASSWORD_FILE"):
        Settings.load({**environ, "HOTLINE_DB_PASSWORD_FILE": str(tmp_path / "missing"),
                       "HOTLINE_DSN": "postgresql://hotline@db.example/hotline"})


async def test_the_command_line_connects_with_a_password_file(dsn: str, tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    result = hotline(tmp_path, "--dsn", dsn, "calls", "list", "--json", HOTLINE_DB_PASSWORD_FILE=str(secret))
    assert result.returncode == 0, result.stderr
