"""Render the sandbox Asterisk configuration from jinja2 templates.

Asterisk's configuration for the local sandbox lives in the repository as templates
(``config/asterisk/*.j2`` and ``dialplan/*.j2``) so that credentials, ports and the
list of skill groups are written down once (``config/sandbox.env`` and
``config/sandbox.yaml``) and cannot drift between the files that use them.

``scripts/sandbox`` calls ``python -m agi_app.sandbox.render --out DIR --env
config/sandbox.env --values config/sandbox.yaml`` and then swaps DIR in as the chroot's
``/etc/asterisk``. Rendering is strict: a template that mentions a value nobody
provided is an error, not an empty string in a config file Asterisk would silently
accept.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import yaml

from agi_app import config

#: Repository root (agi_app/sandbox/render.py -> repo).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Folders whose ``*.j2`` templates make up the Asterisk configuration.
TEMPLATE_DIRS: tuple[Path, ...] = (REPO_ROOT / "config" / "asterisk", REPO_ROOT / "dialplan")

TEMPLATE_SUFFIX = ".j2"


class RenderError(Exception):
    """The configuration cannot be rendered (missing value, inconsistent settings)."""


def read_env_file(path: Path) -> dict[str, str]:
    """The sandbox env file, through the one parser the application uses too."""
    try:
        return config.read_env_file(path)
    except config.ConfigError as exc:
        raise RenderError(str(exc)) from exc


def read_values_file(path: Path) -> dict[str, Any]:
    """Load the YAML values file; its top level must be a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RenderError(f"{path}: expected a mapping at the top level")
    return data


def _port_of(url: str, default: int) -> int:
    parts = urlsplit(url)
    return parts.port if parts.port is not None else default


def _check_consistency(env: Mapping[str, str], values: Mapping[str, Any]) -> None:
    """Refuse settings where the app would look for Asterisk on another port than it listens on.

    The app reads the URLs from the env file, Asterisk gets the ports from the values
    file; a mismatch would only show up as a confusing connection failure later.
    """
    checks = (
        ("HOTLINE_ARI_URL", ("ari", "port"), 8088),
        ("HOTLINE_AMI_URL", ("ami", "port"), 5038),
    )
    for key, (section, field), default in checks:
        if key not in env:
            continue
        url_port = _port_of(env[key], default)
        try:
            wanted = int(values[section][field])
        except (KeyError, TypeError, ValueError) as exc:
            raise RenderError(f"values: {section}.{field} is missing or not a number") from exc
        if url_port != wanted:
            raise RenderError(f"{key}={env[key]} disagrees with values {section}.{field}={wanted}")


def _derived(env: Mapping[str, str]) -> dict[str, Any]:
    """Values computed from the environment that templates need in split form."""
    listen = env.get("HOTLINE_AGI_LISTEN", "127.0.0.1:4573")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise RenderError(f"HOTLINE_AGI_LISTEN must be HOST:PORT, got {listen!r}")
    return {"agi_host": host, "agi_port": int(port)}


def template_paths(dirs: Sequence[Path] = TEMPLATE_DIRS) -> list[Path]:
    """All templates, sorted, checked for two templates rendering to the same file name."""
    found: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")):
            name = path.name[: -len(TEMPLATE_SUFFIX)]
            if name in found:
                raise RenderError(f"{path} and {found[name]} both render {name}")
            found[name] = path
    return [found[name] for name in sorted(found)]


def render_asterisk_config(
    out_dir: Path,
    *,
    env: Mapping[str, str],
    values: Mapping[str, Any],
    template_dirs: Sequence[Path] = TEMPLATE_DIRS,
) -> list[Path]:
    """Render every template into ``out_dir`` and return the written files.

    Templates see ``env`` (the KEY=VALUE settings), ``values`` (the YAML) and a few
    derived values (``agi_host``, ``agi_port``). ``StrictUndefined`` makes any missing
    value an error so a typo cannot produce a silently broken config.
    """
    _check_consistency(env, values)
    templates = template_paths(template_dirs)
    if not templates:
        raise RenderError("no templates found in " + ", ".join(str(d) for d in template_dirs))
    out_dir.mkdir(parents=True, exist_ok=True)
    context: dict[str, Any] = {"env": dict(env), "values": dict(values), **_derived(env)}
    written: list[Path] = []
    for template_path in templates:
        jenv = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_path.parent)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # noqa: S701 - Asterisk config files, not HTML
        )
        try:
            text = jenv.get_template(template_path.name).render(context)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{template_path}: {exc.message}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"{template_path}:{exc.lineno}: {exc.message}") from exc
        target = out_dir / template_path.name[: -len(TEMPLATE_SUFFIX)]
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point used by ``scripts/sandbox``."""
    parser = argparse.ArgumentParser(
        prog="python -m agi_app.sandbox.render",
        description="Render the sandbox Asterisk configuration from config/asterisk and dialplan templates.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write the .conf files into")
    parser.add_argument("--env", required=True, type=Path, help="KEY=VALUE settings (config/sandbox.env)")
    parser.add_argument("--values", required=True, type=Path, help="YAML values (config/sandbox.yaml)")
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="repository whose config/asterisk and dialplan templates to render (default: this checkout)",
    )
    args = parser.parse_args(argv)
    dirs = (args.root / "config" / "asterisk", args.root / "dialplan")
    try:
        written = render_asterisk_config(
            args.out,
            env=read_env_file(args.env),
            values=read_values_file(args.values),
            template_dirs=dirs,
        )
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print(f"render: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
