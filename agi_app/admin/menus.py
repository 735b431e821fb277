"""Menu administration: validate, publish immutable versions, list, diff, roll back, reload.

Publishing and rollback validate with the code that will run the menus, activate in the same
transaction as the audit record, and notify running servers (LISTEN/NOTIFY) on commit.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from agi_app.db.repositories import audit, menus
from agi_app.db.repositories.menus import checksum
from agi_app.flows.loader import FlowFileError, Issue, load_document, read_document
from agi_app.flows.model import FlowSet


def validate(document: dict[str, Any], *, file: str, sounds_dir: Path | None = None,
             services: Collection[str] | None = None, version: int | None = None) -> tuple[FlowSet, list[Issue]]:
    """Raise FlowFileError listing every error; return the flows and warnings.

    `sounds_dir` is the recorded prompts folder of the settings (`Settings.prompts_folder()`): the
    sounds the menus name are checked against what Asterisk will play (not checked without it).
    """
    return load_document(document, file=file, version=version, sounds_dir=sounds_dir, services=services)


def validate_file(path: Path, *, sounds_dir: Path,
                  services: Collection[str] | None = None) -> tuple[FlowSet, list[Issue]]:
    return validate(read_document(path), file=str(path), sounds_dir=sounds_dir, services=services)


async def depth_issues(flows: FlowSet, file: str) -> list[Issue]:
    """Warnings for services deeper than `settings.max_depth` menus, for any persona on any line."""
    from agi_app.admin.cost import PERSONAS, persona_facts
    from agi_app.flows.context import FlowContext
    from agi_app.flows.cost import CostWalker
    from agi_app.media.durations import no_durations

    deepest: dict[tuple[str, str], tuple[int, str, str]] = {}
    now = datetime.now(UTC)
    for line in flows.lines.values():
        for name in PERSONAS:
            ctx = FlowContext(caller=f"persona-{name}", line=line, language=line.language, now=now,
                              facts=persona_facts(name, line.language, now, flows))
            for cost in await CostWalker(flows, ctx, no_durations).walk():
                if cost.depth > flows.max_depth:
                    key = (cost.node, cost.service)
                    if key not in deepest or cost.depth > deepest[key][0]:
                        deepest[key] = (cost.depth, name, line.number)
    return [Issue(file, node, f"service {service!r} is {depth} menus deep for {who} callers on line {number}"
                  f" (settings.max_depth is {flows.max_depth})", "warning")
            for (node, service), (depth, who, number) in sorted(deepest.items())]


@dataclass(frozen=True)
class Published:
    version: int
    unchanged: bool  # the document equals the active version: nothing new was stored
    warnings: list[Issue]


async def publish(conn: asyncpg.Connection, path: Path, *, actor: str, sounds_dir: Path, comment: str = "",
                  services: Collection[str] | None = None) -> Published:
    document = read_document(path)
    flows, warnings = validate(document, file=str(path), sounds_dir=sounds_dir, services=services)
    warnings += await depth_issues(flows, str(path))
    digest = checksum(document)
    async with conn.transaction():
        active = await menus.get_active(conn)
        if active is not None and active.checksum == digest:
            return Published(active.version, True, warnings)
        version = await menus.insert(conn, document, digest, source_name=path.name, comment=comment, actor=actor)
        await menus.activate(conn, version, actor)
        await audit.record(conn, actor, "menus.publish", {"version": version, "file": str(path),
                                                           "checksum": digest, "comment": comment})
        await menus.notify(conn, version)
    return Published(version, False, warnings)


async def rollback(conn: asyncpg.Connection, version: int, *, actor: str, sounds_dir: Path,
                   services: Collection[str] | None = None) -> list[Issue]:
    """Make an earlier version active again — if today's code still accepts it."""
    stored = await menus.get(conn, version)
    if stored is None:
        raise FlowFileError([Issue(f"version {version}", "version", "no such menu version")])
    _, warnings = validate(stored.document, file=f"version {version}", sounds_dir=sounds_dir, services=services,
                           version=version)
    async with conn.transaction():
        previous = await menus.active_version(conn)
        await menus.activate(conn, version, actor)
        await audit.record(conn, actor, "menus.rollback", {"version": version, "previous": previous})
        await menus.notify(conn, version)
    return warnings


async def reload(conn: asyncpg.Connection, *, actor: str) -> int | None:
    """Ask every running server to (re)load the active version."""
    async with conn.transaction():
        version = await menus.active_version(conn)
        await audit.record(conn, actor, "menus.reload", {"version": version})
        await menus.notify(conn, version)
    return version


def as_yaml(document: dict[str, Any]) -> list[str]:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100).splitlines(keepends=True)


async def diff(conn: asyncpg.Connection, a: int, b: int) -> str:
    first, second = await menus.get(conn, a), await menus.get(conn, b)
    for number, found in ((a, first), (b, second)):
        if found is None:
            raise FlowFileError([Issue(f"version {number}", "version", "no such menu version")])
    assert first is not None and second is not None
    return unified_diff(first.document, second.document, f"version {a}", f"version {b}")


def unified_diff(first: dict[str, Any], second: dict[str, Any], first_name: str, second_name: str) -> str:
    """Two menu documents as a unified diff of their YAML (empty when they are equal)."""
    return "".join(difflib.unified_diff(as_yaml(first), as_yaml(second), fromfile=first_name, tofile=second_name))
