"""`hotline monitor`: the live view of every running `hotline serve`, from the rows each publishes in
PostgreSQL every second (`live_servers`, agi_app/monitoring/publisher.py) — calls in progress with
the masked caller, line, current node, time in node and last activity; today's totals; calls per line;
queues and agents; each server's menu version and connections.

Without options a terminal dashboard redrawn every second until Ctrl-C; `--once` prints one frame,
`--json` one snapshot (merged over servers) and exits. A server whose row is older than
HOTLINE_LIVE_STALE_MS is left out (it stopped without saying, or cannot reach the database).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agi_app.budget import within
from agi_app.cli.common import dsn, echo_json, run, settings
from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.monitoring import live_store
from agi_app.monitoring.live import Snapshot, merge


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON and exit.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.pass_context
def monitor(ctx: click.Context, as_json: bool, once: bool) -> None:
    """Live view of the running servers: calls in progress, totals, lines, queues, agents."""
    s, target = settings(ctx), dsn(ctx)
    if as_json or once:
        view = run(_one(target, s))
        if as_json:
            echo_json(view)
        else:
            Console(width=max(Console().width, 120)).print(frame(view))
        return
    try:
        run(_watch(target, s))
    except KeyboardInterrupt:
        pass


async def read(conn: asyncpg.Connection, s: Settings) -> Snapshot:
    """The merged view now: every fresh server's row, read within the database budget."""
    return merge(await within(s.db_budget_s, live_store.fresh(conn, s.live_stale_s), what="live_read"))


async def _one(target: str, s: Settings) -> Snapshot:
    async with connection(target) as conn:
        return await read(conn, s)


async def _watch(target: str, s: Settings) -> None:
    async with connection(target) as conn:
        with Live(frame(await read(conn, s)), auto_refresh=False, screen=False) as live:
            while True:
                await asyncio.sleep(s.live_publish_s)
                view: Group | Text
                try:
                    view = frame(await read(conn, s))
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    view = Text(f"the database does not answer ({type(exc).__name__}); retrying", style="red")
                live.update(view, refresh=True)


def frame(view: Snapshot) -> Group:
    """One screen of the dashboard."""
    totals = view.get("totals", {})
    servers = view.get("servers", [])
    head = Text.assemble(
        ("Hotline live  ", "bold"), f"{view.get('at', '')}  ",
        f"servers {len(servers)}  in progress {len(view.get('calls', []))}  calls today {totals.get('calls', 0)}  "
        f"to agents {totals.get('to_agents', 0)}  errors {totals.get('errors', 0)}  "
        f"service failures {totals.get('service_failures', 0)}")
    parts: list[Any] = [head]
    parts.append(_table("Calls in progress", ["caller", "line", "node", "in node", "last activity", "server"],
                        [[c["caller"], c["line"], c["node"], f"{c['in_node_s']:.0f} s", c["last_activity"], c["server"]]
                         for c in view.get("calls", [])]))
    parts.append(_table("Lines", ["line", "calls now"], [[k, v] for k, v in view.get("lines", {}).items()]))
    if view.get("queues"):
        parts.append(_table("Queues", ["group", "waiting", "agents", "free", "completed", "abandoned"],
                            [[q["group"], q["waiting"], q["agents"], q["free"], q["completed"], q["abandoned"]]
                             for q in view["queues"]]))
        parts.append(_table("Agents", ["agent", "group", "status", "paused", "in call", "calls taken"],
                            [[a["agent"], a["group"], a["status"], _yes(a["paused"]), _yes(a["in_call"]),
                              a["calls_taken"]] for a in view.get("agents", [])]))
    parts.append(_table("Servers", ["server", "menu version", "connections", "updated"],
                        [[s["server"], s.get("menu_version"),
                          ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in (s.get("connections") or {}).items()),
                          s.get("at")] for s in servers]))
    return Group(*parts)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))  # text, never markup
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
