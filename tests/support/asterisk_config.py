"""The sandbox's Asterisk (and Kamailio) configuration, rendered by scripts/render-asterisk-config as
scripts/sandbox runs it: the tests read what Asterisk would be given, not the templates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SANDBOX_ENV = REPO / "config" / "sandbox.env"
SANDBOX_VALUES = REPO / "config" / "sandbox.yaml"


def render(out: Path, *extra: str, env_file: Path = SANDBOX_ENV) -> subprocess.CompletedProcess[str]:
    """Run the renderer into `out` (`extra`: more of its options, e.g. --node); its result, unchecked."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / "render-asterisk-config"), "--out", str(out),
                           "--env", str(env_file), "--values", str(SANDBOX_VALUES), *extra],
                          capture_output=True, text=True, timeout=60)


def rendered(out: Path) -> Path:
    """The single sandbox's configuration in `out`; fails the test if the renderer refuses."""
    done = render(out)
    assert done.returncode == 0, done.stderr
    return out
