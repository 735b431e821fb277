"""The recorded prompts come from the folder the settings name (`HOTLINE_PROMPTS_DIR`), never from
wherever the package happens to be installed; a missing folder is a configuration error that says
which setting to fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agi_app.config import ConfigError, Settings
from agi_app.flows.loader import demo_flow_path
from agi_app.media.items import Sound
from agi_app.serve.app import media_resolver
from tests.support.cli import HOTLINE
from tests.support.prompts import PROMPTS_FILE


def validate_demo(prompts_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_PROMPTS_DIR": str(prompts_dir)}
    return subprocess.run([HOTLINE, "menus", "validate", str(demo_flow_path())], env=env,
                          capture_output=True, text=True, timeout=60)


def test_menus_are_checked_against_the_configured_prompts_folder(tmp_path: Path) -> None:
    """A folder with the prompt list but no recordings: every recorded prompt the menus name is missing."""
    shutil.copy(PROMPTS_FILE, tmp_path / "prompts.yaml")
    result = validate_demo(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "zh/welcome" in result.stdout + result.stderr


def test_a_missing_prompts_folder_is_a_configuration_error_naming_the_setting(tmp_path: Path) -> None:
    result = validate_demo(tmp_path / "nowhere")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "HOTLINE_PROMPTS_DIR" in result.stderr and str(tmp_path / "nowhere") in result.stderr


def test_the_prompts_folder_is_resolved_once_to_an_absolute_path(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "voice").mkdir()
    shutil.copy(PROMPTS_FILE, tmp_path / "voice" / "prompts.yaml")
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(environ={"HOTLINE_PROMPTS_DIR": "voice"})
    assert settings.prompts_folder() == tmp_path / "voice"
    with pytest.raises(ConfigError, match="HOTLINE_PROMPTS_DIR"):
        Settings(prompts_dir=str(tmp_path / "empty")).prompts_folder()


async def test_the_server_keeps_silent_what_the_configured_prompt_list_declares_silent(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text("prompts:\n  welcome: {en: null, zh: 欢迎}\n", encoding="utf-8")
    resolver = media_resolver(Settings(prompts_dir=str(tmp_path)))
    assert await resolver.uris([Sound("welcome", "en"), Sound("welcome", "zh")]) == ["sound:hotline/zh/welcome"]
