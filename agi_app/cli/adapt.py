"""`hotline menus adapt`: let measured use reorder a segment's menu options (agi_app/admin/adapt.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from agi_app.admin import Refused
from agi_app.admin import adapt as admin
from agi_app.admin.menus import Published
from agi_app.analytics.kpi import UNKNOWN_SEGMENT
from agi_app.calendar.model import check_scope
from agi_app.cli.common import actor, dsn, fail, prompts_folder, run
from agi_app.db.pool import connection
from agi_app.directory.models import SEGMENTS
from agi_app.flows.loader import FlowFileError
from agi_app.serve.app import build_services


@click.command("adapt")
@click.option("--segment", required=True, type=click.Choice([*SEGMENTS, UNKNOWN_SEGMENT]),
              help="Whose choices count, and whose menus (variants) may change.")
@click.option("--line", help="Only calls to this line, and only its menus.")
@click.option("--days", default=28, show_default=True, type=click.IntRange(1, 366),
              help="Measure the calls of the last N days.")
@click.option("--min-sample", default=100, show_default=True, type=click.IntRange(1),
              help="A menu changes only with at least this many measured choices.")
@click.option("--yes", is_flag=True, help="Publish without asking.")
@click.pass_context
def adapt(ctx: click.Context, segment: str, line: str | None, days: int, min_sample: int, yes: bool) -> None:
    """Propose a new menu version that announces the options SEGMENT's callers choose most a place
    earlier; show the moves, the diff and the time-to-service change; publish it as a new version
    only when confirmed (or --yes).

    \b
    Keys keep their digits (callers' memory, printed cards): only the order in
    which a menu announces its options changes. The universal keys (agent,
    back, repeat) keep their places; an option moves at most one place per
    proposal, and only past one chosen less often; a menu needs --min-sample
    choices. Only the menus SEGMENT's callers reach change; one other callers
    hear too is named. Undo with `hotline menus rollback`.
    """
    if line is not None:
        try:
            check_scope(line)
        except ValueError as exc:
            fail(str(exc))
    sounds, services = prompts_folder(ctx), build_services().names()

    async def propose() -> admin.AdaptPlan:
        async with connection(dsn(ctx)) as conn:
            return await admin.plan(conn, segment=segment, line=line, days=days, min_sample=min_sample,
                                    sounds_dir=sounds, services=services, now=datetime.now(UTC))

    async def publish(adapted: admin.AdaptPlan) -> Published:
        async with connection(dsn(ctx)) as conn:
            return await admin.publish_plan(conn, adapted, actor=actor(), sounds_dir=sounds, services=services)

    try:
        adapted = run(propose())
    except (Refused, FlowFileError) as exc:
        fail(str(exc))
    click.echo(render(adapted))
    if not adapted.proposal.changed:
        click.echo(f"nothing to propose: version {adapted.base_version} stays active")
        return
    if not yes and not _confirmed(f"Publish this as a new menu version (replacing version {adapted.base_version})?"):
        click.echo(f"not published: version {adapted.base_version} stays active")
        return
    try:
        published = run(publish(adapted))
    except (Refused, FlowFileError) as exc:
        fail(f"not published: {exc}")
    click.echo(f"published version {published.version} (active; running servers notified; "
               f"`hotline menus rollback {adapted.base_version}` undoes it)")


def _confirmed(question: str) -> bool:
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # no answer (end of input): nothing changes
        click.echo()
        return False


def render(adapted: admin.AdaptPlan) -> str:
    scope = f"line {adapted.line}" if adapted.line else "every line"
    proposal = adapted.proposal
    out = [f"menus adapt: {adapted.segment} callers on {scope}, calls of the last {adapted.days} days, "
           f"active version {adapted.base_version}"]
    for m in proposal.moves:
        out.append(f"  {m.flow}/{m.node} ({proposal.samples[(m.flow, m.node)]} choices): key {m.key} "
                   f"{m.label!r} (chosen {m.chosen}) from place {m.place_before} to {m.place_after}, "
                   f"key {m.displaced} (chosen {m.displaced_chosen}) one place later")
    for (flow, node), others in sorted(adapted.heard_by.items()):
        out.append(f"  note: {flow}/{node} is also heard by {', '.join(others)} callers")
    if proposal.skipped:
        out.append("  left as they are:")
        out += [f"    {s.flow}/{s.node}: {s.reason}" for s in proposal.skipped]
    if adapted.costs:
        out.append("predicted time to service, open hours (seconds of prompts before the key is announced [keys]):")
        for c in adapted.costs:
            before = f"{c.before.seconds:.1f}s [{c.before.keys or '-'}]" if c.before else "—"
            after = f"{c.after.seconds:.1f}s [{c.after.keys or '-'}]" if c.after else "—"
            delta = f" ({c.after.seconds - c.before.seconds:+.1f}s)" if c.before and c.after else ""
            out.append(f"  {c.persona:<10} line {c.line}  {c.service:<14} {before} → {after}{delta}")
    if adapted.diff:
        out += ["", adapted.diff.rstrip("\n")]
    return "\n".join(out)
