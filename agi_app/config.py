"""Configuration: environment variables, an optional env file, and command-line overrides.

One place decides where every setting comes from, so the CLI, the server and the tests agree.
Precedence: command-line option > process environment > env file > built-in default.
The env file is `$HOTLINE_ENV_FILE`, else `.run/hotline.env` in the current directory (written
by `scripts/sandbox up`), which is how `.venv/bin/hotline` reaches the sandbox with no setup.
Credentials have no defaults in code: they come from the environment or that file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


class ConfigError(Exception):
    """A required setting is missing or malformed."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `KEY=VALUE` file (`#` comments, blank lines, optional matching quotes).

    Deliberately not a shell parser: the same file is read by the sandbox script, by Python and
    by humans, so it stays plain assignments with no expansion.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _env_file_values(environ: Mapping[str, str]) -> dict[str, str]:
    explicit = environ.get("HOTLINE_ENV_FILE")
    path = Path(explicit) if explicit else Path(".run/hotline.env")
    if not path.is_file():
        if explicit:
            raise ConfigError(f"HOTLINE_ENV_FILE={explicit} does not exist")
        return {}
    return read_env_file(path)


@dataclass(frozen=True)
class Settings:
    """Every runtime setting of the hotline, named after its environment variable."""

    dsn: str = ""
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = ""
    ari_password: str = field(default="", repr=False)
    ari_app: str = "hotline"
    ami_url: str = "tcp://127.0.0.1:5038"
    ami_user: str = ""
    ami_password: str = field(default="", repr=False)
    sounds_root: str = ""
    # What must survive a restart or an outage on this host: journeys not yet written to
    # PostgreSQL, the last valid menu version. Relative paths are resolved from the working directory.
    state_dir: str = ".run/state"
    flows_file: str = ""
    lookup_budget_ms: int = 300
    db_budget_ms: int = 1000
    ari_budget_ms: int = 3000
    shutdown_grace_s: float = 20.0
    log_level: str = "INFO"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the env file, the environment, then non-None overrides."""
        env = dict(os.environ if environ is None else environ)
        merged = {**_env_file_values(env), **env}
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = merged.get(f"HOTLINE_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw, type(getattr(cls, f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_overrides(self, **overrides: object) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

    def require(self, *names: str) -> None:
        """Fail with a message naming the variables to set."""
        missing = [f"HOTLINE_{n.upper()}" for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError(
                "missing configuration: " + ", ".join(missing)
                + " (set them in the environment, or run `scripts/sandbox up` for the local sandbox)"
            )


def _coerce(name: str, raw: str, kind: type) -> object:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"HOTLINE_{name.upper()}={raw!r} is not a number") from exc
    return raw
