"""`hotline menus`: check, publish, list, diff, roll back and hot-reload the menus."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import asyncpg
import click

from agi_app.admin import menus as admin
from agi_app.admin.graph import GraphError, html_page, render_svg, traffic_from_kpi
from agi_app.analytics.kpi import Period, figures, parse_period
from agi_app.cli.common import (
    EXIT_CONFIG,
    EXIT_INVALID,
    actor,
    dsn,
    echo_json,
    fail,
    prompts_folder,
    run,
    settings,
)
from agi_app.config import ConfigError
from agi_app.db.pool import DatabaseUnavailable, connection
from agi_app.db.repositories import menus as repo
from agi_app.db.repositories.calendar import load_calendar
from agi_app.db.repositories.kpi import kpi_counts
from agi_app.flows.graph import NodeTraffic, flow_dot
from agi_app.flows.loader import FlowFileError, Issue, load_document, load_file
from agi_app.flows.model import FlowSet
from agi_app.serve.app import build_services

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def menus() -> None:
    """Menus (flows as data): validate, publish, list, diff, rollback, reload, preview, cost, graph."""


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


@menus.command("graph")
@click.option("--version", "version", type=int, help="A published version (default: the active one).")
@click.option("--file", "flows_file", type=FILE, help="A flow file instead (no database needed).")
@click.option("--day", metavar="YYYY-MM-DD", help="Overlay this local day's traffic (default: today).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="FILE.svg (the drawing) or FILE.html (the drawing and its legend).")
@click.pass_context
def graph(ctx: click.Context, version: int | None, flows_file: Path | None, day: str | None, out: Path) -> None:
    """Draw the flows (nodes by type, keys, conditions and variants; one box per flow) with Graphviz,
    overlaid with a day's visits and drop-offs per node when the database is reachable."""
    if out.suffix not in (".svg", ".html"):
        fail("--out must name a .svg or .html file")
    if version is not None and flows_file is not None:
        fail("give --version or --file, not both")
    s = settings(ctx)
    try:
        period = parse_period(day or date.today().isoformat(), None)
    except ValueError as exc:
        fail(str(exc))
    if flows_file is not None:
        try:
            flows = load_file(flows_file, services=_services())[0]
        except FlowFileError as exc:
            fail(f"{flows_file} is invalid:\n{exc}")
        title = f"{flows_file.name}"
        traffic = _traffic(s.dsn, period) if s.dsn else None
    else:
        flows, traffic = run(_published(dsn(ctx), version, period))
        title = f"menu version {flows.version}"
    dot = flow_dot(flows, title=f"{title} · {period.label}" if traffic is not None else title, traffic=traffic)
    try:
        svg = render_svg(dot, timeout_s=s.graph_render_s)
    except GraphError as exc:
        fail(str(exc), EXIT_CONFIG)
    overlay = period.label if traffic is not None else None
    out.write_text(svg if out.suffix == ".svg" else html_page(svg, title=title, overlay=overlay), encoding="utf-8")
    click.echo(f"{out}: {sum(len(f.nodes) for f in flows.flows.values())} nodes"
               + (f", traffic of {overlay}" if overlay else ", no traffic overlay"))


async def _day_traffic(conn: asyncpg.Connection, period: Period) -> dict[str, NodeTraffic]:
    zone = (await load_calendar(conn, None)).tz
    start, end = period.bounds(zone)
    return traffic_from_kpi(figures(await kpi_counts(conn, start, end), period, zone)["nodes"])


async def _published(dsn_: str, version: int | None, period: Period) -> tuple[FlowSet, dict[str, NodeTraffic]]:
    async with connection(dsn_) as conn:
        stored = await (repo.get(conn, version) if version is not None else repo.get_active(conn))
        if stored is None:
            raise ConfigError(f"menu version {version} does not exist" if version is not None
                              else "no menu version is published")
        flows = load_document(stored.document, file=f"version {stored.version}", services=_services(),
                              version=stored.version)[0]
        return flows, await _day_traffic(conn, period)


def _traffic(dsn_: str, period: Period) -> dict[str, NodeTraffic] | None:
    """The day's traffic for a flow file's drawing; None (and a note) when the database is not there."""
    async def main() -> dict[str, NodeTraffic]:
        async with connection(dsn_) as conn:
            return await _day_traffic(conn, period)

    try:
        return asyncio.run(main())
    except (OSError, DatabaseUnavailable, asyncpg.PostgresError) as exc:
        click.echo(f"note: no traffic overlay, the database did not answer ({type(exc).__name__})", err=True)
        return None
