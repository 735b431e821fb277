"""`hotline qa sample|score|report`: the supervisors' monthly review of recorded agent calls.

A month is local days in the bank's time zone (the calendar's); a call belongs to the month its
agent answered it. Recordings are printed as the file to play (`HOTLINE_RECORDINGS_DIR`/qa/<call
id>-<group>.wav), or as ARI's `recording:` URI when that folder is not configured. The rules
(sampling, the 1-5 scale) are agi_app/centre/qa.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Any, TypeVar

import asyncpg
import click

from agi_app.admin import Refused
from agi_app.centre.qa import (
    DEFAULT_PER_AGENT,
    SCORE_MAX,
    SCORE_MIN,
    AgentLeg,
    Month,
    QaRefused,
    report,
    sample,
)
from agi_app.cli.common import actor, admin_call, calendar_zone, echo_json, fail, settings
from agi_app.cli.complaints import recording_location
from agi_app.db.repositories import qa as store

T = TypeVar("T")

_month = click.option("--month", required=True, metavar="YYYY-MM", help="The month under review (local time).")
_per_agent = click.option("--per-agent", default=DEFAULT_PER_AGENT, show_default=True, type=click.IntRange(1, 1000),
                          help="Recorded calls drawn per agent.")
_seed = click.option("--seed", default="", help="Another draw for the same month (the month alone seeds it).")
_json = click.option("--json", "as_json", is_flag=True, help="JSON (for scripts).")


def _month_of(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        fail(str(exc))


def _in_month(ctx: click.Context, month: Month, read: Callable[[asyncpg.Connection, tzinfo], Awaitable[T]]) -> T:
    async def verb(conn: asyncpg.Connection) -> T:
        return await read(conn, await calendar_zone(conn, None))
    return admin_call(ctx, verb)


def _shown(ctx: click.Context, leg: AgentLeg) -> dict[str, Any]:
    return {"call_id": leg.call_id, "agent": leg.agent, "queue": leg.queue, "answered_at": leg.answered_at.isoformat(),
            "talk_s": leg.talk_s,
            "recording": recording_location(settings(ctx).recordings_dir, leg.recording) if leg.recording else None}


@click.group()
def qa() -> None:
    """Quality inspection: sample recorded agent calls each month, score them, report per agent."""


@qa.command("sample")
@_month
@_per_agent
@_seed
@_json
@click.pass_context
def sample_(ctx: click.Context, month: str, per_agent: int, seed: str, as_json: bool) -> None:
    """Draw the month's review sample: the same month (and seed) always gives the same calls."""
    period = _month_of(month)

    async def read(conn: asyncpg.Connection, zone: tzinfo) -> list[AgentLeg]:
        return await store.agent_legs(conn, *period.bounds(zone))

    rows = [_shown(ctx, leg) for leg in sample(_in_month(ctx, period, read), period, per_agent, seed=seed)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no recorded agent calls in {period}")
    for r in rows:
        click.echo(f"{r['call_id']}  {r['agent']:<12} {r['queue']:<12} {r['answered_at']}  talk={r['talk_s']}s"
                   f"\n    recording: {r['recording']}")


@qa.command("score")
@click.argument("call_id")
@click.option("--score", required=True, type=int, help=f"{SCORE_MIN} (poor) to {SCORE_MAX} (excellent).")
@click.option("--comment", required=True, help="What the reviewer heard (kept with the score and audited).")
@click.option("--reviewer", help="Who scored (default $HOTLINE_ACTOR, else the login user).")
@click.option("--queue", help="The skill group, when the call reached agents in several.")
@click.pass_context
def score(ctx: click.Context, call_id: str, score: int, comment: str, reviewer: str | None, queue: str | None) -> None:
    """Score a recorded agent call; a reviewer scoring it again replaces their score."""
    async def verb(conn: asyncpg.Connection) -> Any:
        try:
            return await store.score_call(conn, call_id, score=score, comment=comment.strip(),
                                          reviewer=reviewer or actor(), queue=queue)
        except QaRefused as exc:
            raise Refused(str(exc)) from exc

    stored = admin_call(ctx, verb)
    click.echo(f"{stored.call_id} ({stored.queue}, agent {stored.agent}) scored {stored.score} by {stored.reviewer}")


@qa.command("report")
@_month
@_per_agent
@_seed
@_json
@click.pass_context
def report_(ctx: click.Context, month: str, per_agent: int, seed: str, as_json: bool) -> None:
    """Per agent: calls answered, calls in the sample (same --per-agent/--seed as `qa sample`),
    calls scored, mean score and talk time."""
    period = _month_of(month)

    async def read(conn: asyncpg.Connection, zone: tzinfo) -> tuple[list[AgentLeg], list[Any]]:
        start, end = period.bounds(zone)
        return await store.agent_legs(conn, start, end), await store.scores_between(conn, start, end)

    legs, scores = _in_month(ctx, period, read)
    summaries = report(legs, sample(legs, period, per_agent, seed=seed), scores)
    if as_json:
        echo_json({"month": str(period), "agents": [s.as_json() for s in summaries]})
        return
    click.echo(f"Quality inspection {period}")
    if not summaries:
        click.echo("no agent calls")
    for s in summaries:
        mean = "-" if s.mean_score is None else f"{s.mean_score:.2f}"
        click.echo(f"  {s.agent:<12} calls={s.calls} sampled={s.sampled} scored={s.scored} mean={mean}"
                   f" talk={s.talk_s}s")
