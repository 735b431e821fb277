"""The checkout's recorded prompts (`sounds/`), which the tests configure as the prompts folder.

The package itself never looks beside its own files: it reads the folder `Settings.prompts_dir`
names. Tests live in the checkout, so they may point it here.
"""

from __future__ import annotations

from pathlib import Path

REPO_SOUNDS = Path(__file__).resolve().parents[2] / "sounds"
PROMPTS_FILE = REPO_SOUNDS / "prompts.yaml"
