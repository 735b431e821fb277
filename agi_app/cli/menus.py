"""`hotline menus`: check, publish, list, diff, roll back and hot-reload the menus."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from agi_app.admin import menus as admin
from agi_app.cli.common import EXIT_INVALID, actor, dsn, echo_json, fail, prompts_folder, run
from agi_app.db.pool import connection
from agi_app.db.repositories import menus as repo
from agi_app.flows.loader import FlowFileError, Issue
from agi_app.serve.app import build_services

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def menus() -> None:
    """Menus (flows as data): validate, publish, list, diff, rollback, reload, preview, cost."""


def _services() -> frozenset[str]:
    return build_services().names()


def _report(issues: list[Issue], as_json: bool) -> None:
    if as_json:
        echo_json([{"file": i.file, "where": i.where, "level": i.level, "message": i.message} for i in issues])
    else:
        for issue in issues:
            click.echo(str(issue), err=issue.level == "error")


@menus.command("validate")
@click.argument("file", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Problems as a JSON array.")
@click.pass_context
def validate_cmd(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Check a flow file without publishing it (exit 1 if it has errors)."""
    try:
        flows, warnings = admin.validate_file(file, sounds_dir=prompts_folder(ctx), services=_services())
    except FlowFileError as exc:
        _report(exc.issues, as_json)
        if not as_json:
            click.echo(f"{file}: {len(exc.issues)} error(s)", err=True)
        raise SystemExit(EXIT_INVALID) from exc
    warnings += asyncio.run(admin.depth_issues(flows, str(file)))
    _report(warnings, as_json)
    if not as_json:
        nodes = sum(len(f.nodes) for f in flows.flows.values())
        click.echo(f"{file}: ok ({len(flows.lines)} lines, {len(flows.flows)} flows, {nodes} nodes, "
                   f"{len(warnings)} warning(s))")


@menus.command("publish")
@click.argument("file", type=FILE)
@click.option("-m", "--comment", default="", help="Why this version (kept with it).")
@click.pass_context
def publish(ctx: click.Context, file: Path, comment: str) -> None:
    """Validate FILE, store it as a new immutable version and make it active; running servers
    reload it at once (calls in progress keep their version)."""
    sounds = prompts_folder(ctx)

    async def main() -> admin.Published:
        async with connection(dsn(ctx)) as conn:
            return await admin.publish(conn, file, actor=actor(), sounds_dir=sounds, comment=comment,
                                       services=_services())

    try:
        result = run(main())
    except FlowFileError as exc:
        _report(exc.issues, False)
        fail(f"{file}: not published ({len(exc.issues)} error(s)); the active version is unchanged")
    _report(result.warnings, False)
    if result.unchanged:
        click.echo(f"{file} is identical to active version {result.version}: nothing to publish")
    else:
        click.echo(f"published version {result.version} (active; running servers notified)")


@menus.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Published versions, newest first; * marks the active one."""
    async def main() -> list[repo.MenuVersion]:
        async with connection(dsn(ctx)) as conn:
            return await repo.list_versions(conn)

    versions = run(main())
    if as_json:
        echo_json([{"version": v.version, "active": v.active, "published_at": v.published_at.isoformat(),
                    "published_by": v.published_by, "source": v.source_name, "comment": v.comment,
                    "checksum": v.checksum} for v in versions])
        return
    if not versions:
        click.echo("no versions published")
    for v in versions:
        click.echo(f"{'*' if v.active else ' '} {v.version:>4}  {v.published_at:%Y-%m-%d %H:%M}  "
                   f"{v.published_by:<12} {v.source_name}  {v.comment}")


@menus.command("diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.pass_context
def diff(ctx: click.Context, a: int, b: int) -> None:
    """Unified diff between versions A and B."""
    async def main() -> str:
        async with connection(dsn(ctx)) as conn:
            return await admin.diff(conn, a, b)

    try:
        text = run(main())
    except FlowFileError as exc:
        fail(str(exc))
    click.echo(text or f"versions {a} and {b} are identical", nl=not text)


@menus.command("rollback")
@click.argument("version", type=int)
@click.pass_context
def rollback(ctx: click.Context, version: int) -> None:
    """Make an earlier VERSION active again (validated first); running servers reload it."""
    sounds = prompts_folder(ctx)

    async def main() -> list[Issue]:
        async with connection(dsn(ctx)) as conn:
            return await admin.rollback(conn, version, actor=actor(), sounds_dir=sounds, services=_services())

    try:
        warnings = run(main())
    except FlowFileError as exc:
        _report(exc.issues, False)
        fail(f"version {version} was not activated; the active version is unchanged")
    _report(warnings, False)
    click.echo(f"version {version} is active (running servers notified)")


@menus.command("reload")
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Ask every running `hotline serve` to load the active version now."""
    async def main() -> int | None:
        async with connection(dsn(ctx)) as conn:
            return await admin.reload(conn, actor=actor())

    version = run(main())
    if version is None:
        fail("no menu version is published")
    click.echo(f"reload of version {version} sent to running servers")
