"""The `hotline` command as administrators run it: a process of its own, beside this Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOTLINE = str(Path(sys.executable).with_name("hotline"))


def hotline_cli(dsn: str, *args: str, stdin: str | None = None,
                actor: str | None = "tester") -> subprocess.CompletedProcess[str]:
    """`hotline ARGS` on the database `dsn`, as `actor` (the audit log's; None: the login user)."""
    env = {**os.environ, "HOTLINE_DSN": dsn}
    if actor is not None:
        env["HOTLINE_ACTOR"] = actor
    return subprocess.run([HOTLINE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
