"""`hotline agents`: agents log in to and out of skill-group queues, pause, and are listed — on the live
Asterisk, through AMI (agi_app/ami/queues.py).

Agent ids and groups are checked before anything is sent: an id is 1-40 letters, digits, '-' or '_'
(it becomes the interface PJSIP/<id>), a group must be one of the queues Asterisk has (hotline-<group>).
Each change is recorded in the audit log (`agents.login`, `agents.logout`, `agents.pause`,
`agents.unpause`) when HOTLINE_DSN is set; the queue change does not depend on the database: without
a DSN nothing is recorded, and with PostgreSQL down the change stands and a warning says it was not
recorded.

Exit codes as every command's: 0 ok, 1 refused by Asterisk (e.g. pausing an agent logged in nowhere),
2 usage (a malformed id, an unknown group) or AMI configuration (credentials missing or refused),
3 AMI unreachable or not answering in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import asyncpg
import click

from agi_app.ami import queues
from agi_app.ami.client import AmiActionFailed, AmiClient, AmiLoginRefused, AmiUnavailable
from agi_app.cli.common import EXIT_CONFIG, EXIT_INVALID, EXIT_UNAVAILABLE, actor, echo_json, fail, settings
from agi_app.config import ConfigError
from agi_app.db.pool import DatabaseUnavailable, connection
from agi_app.db.repositories import audit

T = TypeVar("T")
REASON_MAX = 80


def _name(kind: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing what cannot safely become part of an AMI header."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for one in (value if isinstance(value, tuple) else [value] if value is not None else []):
            if not queues.NAME.fullmatch(one):
                raise click.BadParameter(f"{kind} {one!r}: use 1-40 letters, digits, '-' or '_'")
        return value
    return check


def _reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (len(value) > REASON_MAX or not value.isprintable()):
        raise click.BadParameter(f"at most {REASON_MAX} printable characters, on one line")
    return value


def _ami(ctx: click.Context, verb: Callable[[AmiClient], Awaitable[T]]) -> T:
    """Run `verb` on a logged-in AMI connection; AMI failures become messages and exit codes."""
    try:
        client = AmiClient.from_settings(settings(ctx))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)

    async def main() -> T:
        async with client as ami:
            return await verb(ami)

    try:
        return asyncio.run(main())
    except AmiLoginRefused as exc:
        fail(f"{exc} (check HOTLINE_AMI_USER / HOTLINE_AMI_PASSWORD)", EXIT_CONFIG)
    except AmiUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except (AmiActionFailed, queues.NotLoggedIn) as exc:
        fail(str(exc), EXIT_INVALID)


async def _known_groups(ami: AmiClient, groups: Sequence[str]) -> None:
    known = await queues.queue_status(ami)
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise click.BadParameter(f"no queue for {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                                 param_hint="'--queue'")


def _audit(ctx: click.Context, action: str, detail: dict[str, Any]) -> None:
    """Record the change when a database is configured; a database outage never undoes the change."""
    dsn = settings(ctx).dsn
    if not dsn:
        return

    async def write() -> None:
        async with connection(dsn) as conn:
            await audit.record(conn, actor(), action, detail)

    try:
        asyncio.run(write())
    except (DatabaseUnavailable, OSError, asyncpg.PostgresError) as exc:
        click.echo(f"warning: done, but not recorded in the audit log: {type(exc).__name__}: {exc}", err=True)


def _changes(verb: str, agent_id: str, changes: list[queues.AgentChange]) -> None:
    for change in changes:
        state = verb if change.changed else f"already {verb}"
        click.echo(f"{agent_id} {state} {'to' if verb == 'logged in' else 'of'} queue {change.group}")


@click.group()
def agents() -> None:
    """Contact-centre agents in the skill-group queues (live, through Asterisk's AMI).

    Settings: HOTLINE_AMI_URL, HOTLINE_AMI_USER, HOTLINE_AMI_PASSWORD; changes are audited when
    HOTLINE_DSN is set.
    """


@agents.command()
@click.argument("agent_id", callback=_name("agent id"))
@click.option("--queue", "groups", multiple=True, required=True, callback=_name("group"),
              help="Skill group (queue hotline-<group>); repeat for several.")
@click.option("--penalty", type=click.IntRange(0, 1000), help="Queue penalty: higher is offered calls later.")
@click.pass_context
def login(ctx: click.Context, agent_id: str, groups: tuple[str, ...], penalty: int | None) -> None:
    """Log AGENT_ID (PJSIP endpoint) in to the queues of these groups."""
    async def verb(ami: AmiClient) -> list[queues.AgentChange]:
        await _known_groups(ami, groups)
        return await queues.login(ami, agent_id, groups, penalty=penalty)

    changes = _ami(ctx, verb)
    _audit(ctx, "agents.login", {"agent": agent_id, "queues": [c.group for c in changes if c.changed],
                                 "penalty": penalty})
    _changes("logged in", agent_id, changes)


@agents.command()
@click.argument("agent_id", callback=_name("agent id"))
@click.option("--queue", "groups", multiple=True, callback=_name("group"),
              help="Only this group's queue (repeatable); default: every queue the agent is in.")
@click.pass_context
def logout(ctx: click.Context, agent_id: str, groups: tuple[str, ...]) -> None:
    """Log AGENT_ID out of its queues."""
    async def verb(ami: AmiClient) -> list[queues.AgentChange]:
        if groups:
            await _known_groups(ami, groups)
        return await queues.logout(ami, agent_id, list(groups) or None)

    changes = _ami(ctx, verb)
    if not changes:
        fail(f"agent {agent_id} is not logged in to any queue")
    _audit(ctx, "agents.logout", {"agent": agent_id, "queues": [c.group for c in changes if c.changed]})
    _changes("logged out", agent_id, changes)


@agents.command()
@click.argument("agent_id", callback=_name("agent id"))
@click.option("--reason", callback=_reason, help="Why (shown in queue status), e.g. lunch.")
@click.option("--queue", "group", callback=_name("group"), help="Only in this group's queue (default: all).")
@click.option("--off", is_flag=True, help="Unpause instead.")
@click.pass_context
def pause(ctx: click.Context, agent_id: str, reason: str | None, group: str | None, off: bool) -> None:
    """Pause AGENT_ID (no calls offered, still logged in); --off to take calls again."""
    if off and reason:
        raise click.UsageError("--reason is for pausing, not for --off")
    _set_paused(ctx, agent_id, not off, reason or "", group)


@agents.command()
@click.argument("agent_id", callback=_name("agent id"))
@click.option("--queue", "group", callback=_name("group"), help="Only in this group's queue (default: all).")
@click.pass_context
def unpause(ctx: click.Context, agent_id: str, group: str | None) -> None:
    """Take calls again after a pause (as `pause --off`)."""
    _set_paused(ctx, agent_id, False, "", group)


def _set_paused(ctx: click.Context, agent_id: str, paused: bool, reason: str, group: str | None) -> None:
    async def verb(ami: AmiClient) -> str:
        if group is not None:
            await _known_groups(ami, [group])
        return await queues.pause(ami, agent_id, paused, reason=reason, group=group)

    _ami(ctx, verb)
    _audit(ctx, "agents.pause" if paused else "agents.unpause",
           {"agent": agent_id, "queue": group, "reason": reason or None})
    where = f"queue {group}" if group else "all its queues"
    click.echo(f"{agent_id} {'paused' if paused else 'unpaused'} in {where}" + (f" ({reason})" if reason else ""))


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def list_agents(ctx: click.Context, as_json: bool) -> None:
    """Every queue member now: agent, queue, device status, paused, calls taken, in a call."""
    rows = _ami(ctx, queues.agents)
    if as_json:
        echo_json([asdict(r) for r in rows])
        return
    if not rows:
        click.echo("no agent is logged in")
    for r in rows:
        click.echo(f"{r.agent}  queue={r.group}  status={r.status}  paused={'yes' if r.paused else 'no'}"
                   f"  calls={r.calls_taken}  in_call={'yes' if r.in_call else 'no'}")
