"""A menu designer's tools on a flow file need no database: each command runs with no HOTLINE_*
setting but the prompts folder (no DSN, no .run/hotline.env: a scratch working directory) and says
what it found."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agi_app.flows.loader import demo_flow_path
from tests.support.cli import HOTLINE

AT = ["--at", "2026-11-24 10:00"]
SOUNDS = Path(__file__).resolve().parents[2] / "sounds"


def offline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_") and not k.startswith("PG")}
    env["HOTLINE_PROMPTS_DIR"] = str(SOUNDS)
    return subprocess.run([HOTLINE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_validate_a_file_offline(tmp_path: Path) -> None:
    result = offline(tmp_path, "menus", "validate", str(demo_flow_path()))
    assert result.returncode == 0, result.stderr
    assert "bank.yaml: ok (2 lines" in result.stdout


def test_cost_of_a_file_offline_for_every_persona(tmp_path: Path) -> None:
    result = offline(tmp_path, "menus", "cost", "--file", str(demo_flow_path()), *AT, "--json")
    assert result.returncode == 0, result.stderr
    costs = json.loads(result.stdout)
    assert set(costs) == {"generic", "standard", "bill_due", "vip", "private", "elderly"}
    assert costs["bill_due"][0]["service"] == "bill_payment" and costs["bill_due"][0]["keys"] == "1"
    assert costs["elderly"][0]["service"] == "agent"


def test_preview_a_segment_of_a_file_offline(tmp_path: Path) -> None:
    result = offline(tmp_path, "menus", "preview", "--segment", "elderly", "--file", str(demo_flow_path()), *AT,
                     "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["menu"] == "elderly_menu" and shown["segment"] == "elderly" and shown["options"][0]["key"] == "0"
    assert shown["path"] == ["entry", "greeting", "segment", "elderly_menu"]
    text = offline(tmp_path, "menus", "preview", "--segment", "vip", "--file", str(demo_flow_path()), *AT).stdout
    assert text.startswith(f"caller vip on line 95000 at 2026-11-24 10:00 CST: customer=persona-vip segment=vip"
                           f" language=zh menu from {demo_flow_path()}")


def test_simulate_a_segment_of_a_file_offline(tmp_path: Path) -> None:
    result = offline(tmp_path, "simulate", "--segment", "generic", "--file", str(demo_flow_path()),
                     "--digits", "3", *AT)
    assert result.returncode == 0, result.stderr
    assert "call ended: transferred → hotline-agents/cards" in result.stdout
    assert "path entry > greeting > segment > main > agent_cards" in result.stdout


@pytest.mark.parametrize("args", [["menus", "preview", "--caller", "13600136000"],
                                  ["menus", "cost", "--caller", "13600136000"],
                                  ["menus", "cost"]])
def test_a_real_caller_or_the_published_version_still_needs_the_database(tmp_path: Path, args: list[str]) -> None:
    result = offline(tmp_path, *args, "--file", str(demo_flow_path())) if "--caller" in args else offline(tmp_path, *args)
    assert result.returncode == 2 and "HOTLINE_DSN" in result.stderr


def test_a_persona_and_a_caller_together_are_refused(tmp_path: Path) -> None:
    result = offline(tmp_path, "menus", "preview", "--segment", "vip", "--caller", "13600136000",
                     "--file", str(demo_flow_path()))
    assert result.returncode == 1 and "either --caller NUMBER or --segment PERSONA" in result.stderr
