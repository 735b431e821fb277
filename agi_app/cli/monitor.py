"""`hotline monitor`: the live view of every running `hotline serve`, from the rows each publishes in
PostgreSQL every second (`live_servers`, agi_app/monitoring/publisher.py) — calls in progress with
the masked caller, line, current node, time in node and last activity; calls per line; queues and
agents; each server's menu version and connections — and today's totals, counted from the journeys
(the bank's day, every server's calls: agi_app/monitoring/day_totals.py), within HOTLINE_LIVE_BUDGET_MS:
past it, or on an error, the last totals read are shown marked stale (or unknown), the rest still live.

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
from agi_app.db.failures import DB_FAILURES
from agi_app.db.pool import connection
from agi_app.monitoring import live_store
from agi_app.monitoring.day_totals import DayTotalsKeeper, read_day_totals
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


async def read(conn: asyncpg.Connection, s: Settings, totals: DayTotalsKeeper) -> Snapshot:
    """The merged view now: every fresh server's row, read within the database budget (its failure is
    raised: there is nothing live to show), and today's totals as `totals` keeps them."""
    rows = await within(s.db_budget_s, live_store.fresh(conn, s.live_stale_s), what="live_read")
    try:
        shown = totals.read(await within(s.live_budget_s, read_day_totals(conn), what="live_totals"))
    except DB_FAILURES:
        shown = totals.failed()
    return {**merge(rows, shown), "all_servers": True}


async def _one(target: str, s: Settings) -> Snapshot:
    async with connection(target) as conn:
        return await read(conn, s, DayTotalsKeeper())


async def _watch(target: str, s: Settings) -> None:
    totals = DayTotalsKeeper()
    async with connection(target) as conn:
        with Live(frame(await read(conn, s, totals)), auto_refresh=False, screen=False) as live:
            while True:
                await asyncio.sleep(s.live_publish_s)
                view: Group | Text
                try:
                    view = frame(await read(conn, s, totals))
                except DB_FAILURES as exc:
                    view = Text(f"the database does not answer ({type(exc).__name__}); retrying", style="red")
                live.update(view, refresh=True)


def frame(view: Snapshot) -> Group:
    """One screen of the dashboard."""
    servers = view.get("servers", [])
    head = Text.assemble(("Hotline live  ", "bold"), f"{view.get('at', '')}  ",
                         f"servers {len(servers)}  in progress {len(view.get('calls', []))}  ")
    parts: list[Any] = [head, totals_line(view.get("totals") or {})]
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


def totals_line(totals: Snapshot) -> Text:
    """Today's totals, or why they are not current: stale ones keep their numbers and say since when."""
    if not totals.get("known"):
        return Text("totals today unknown: the database did not answer in time", style="red")
    line = Text(f"today {totals['day']} ({totals['timezone']}): calls today {totals['calls']}  "
                f"to agents {totals['to_agents']}  errors {totals['errors']}  "
                f"service failures {totals['service_failures']}")
    if totals.get("stale"):
        line.append(f"  STALE: as of {totals['as_of']}, the database did not answer in time", style="red")
    return line


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))  # text, never markup
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
