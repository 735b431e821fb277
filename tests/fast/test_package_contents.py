"""What the installed package and the sandbox promise: nothing that does not exist.

The package callers install holds the product only (the sandbox's SIPp driver, pcap writer and
config renderer live with the tests and scripts), reads no file beside its own folder, pins only
what it imports, and the sandbox dialplan sends calls only to servers this tree provides.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import agi_app
from agi_app.agi.hooks import HOOK_NAMES
from agi_app.config import read_env_file
from tests.support.asterisk_config import render

PACKAGE = Path(agi_app.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_installed_package_carries_no_sandbox_tooling() -> None:
    assert importlib.util.find_spec("agi_app.sandbox") is None


def test_no_module_of_the_package_reads_files_beside_it() -> None:
    """Recorded prompts and templates outside the package come from settings, not from `__file__`."""
    beside = [f"{path.relative_to(PACKAGE.parent)}:{number}"
              for path in sorted(PACKAGE.rglob("*.py"))
              for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
              if "parents[" in line or "parent.parent" in line]
    assert not beside


def test_every_pinned_dependency_is_imported_by_the_package() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    pinned = {_canonical(re.split(r"[<>=!~ ;\[]", line.strip())[0])
              for line in setup["options"]["install_requires"].splitlines() if line.strip()}
    imported: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    distributions = packages_distributions()
    used = {_canonical(dist) for module in imported for dist in distributions.get(module, [])}
    assert pinned - used == set()


def test_the_sandbox_dialplan_calls_no_server_that_does_not_exist(tmp_path: Path) -> None:
    """Stasis goes to our app; every FastAGI call goes to a hook `hotline serve` has, at the
    address it listens on (HOTLINE_AGI_LISTEN of the same env file)."""
    result = render(tmp_path)
    assert result.returncode == 0, result.stderr
    dialplan = (tmp_path / "extensions.conf").read_text(encoding="utf-8")
    assert "Stasis(" in dialplan
    listen = read_env_file(REPO / "config" / "sandbox.env")["HOTLINE_AGI_LISTEN"]
    host, port = listen.rsplit(":", 1)
    assert f"HOTLINE_AGI_HOST={host}\n" in dialplan and f"HOTLINE_AGI_PORT={port}\n" in dialplan
    called = re.findall(r"AGI\(([^)]*)\)", dialplan)
    assert called and {c.removeprefix("agi://${HOTLINE_AGI_HOST}:${HOTLINE_AGI_PORT}/") for c in called} <= set(HOOK_NAMES)


def test_the_renderer_refuses_an_agi_address_the_dialplan_cannot_call(tmp_path: Path) -> None:
    for listen in ("4573", "127.0.0.1:0", "127.0.0.1:port"):
        env_file = tmp_path / "sandbox.env"
        env_file.write_text((REPO / "config" / "sandbox.env").read_text(encoding="utf-8")
                            + f"HOTLINE_AGI_LISTEN={listen}\n", encoding="utf-8")
        result = render(tmp_path / "out", env_file=env_file)
        assert result.returncode == 1 and "HOTLINE_AGI_LISTEN" in result.stderr, (listen, result.stderr)
