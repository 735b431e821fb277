"""`hotline report --out DIR`: the KPIs of a period as charts and one HTML page (agi_app/analytics/report.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from agi_app.analytics.kpi import UNKNOWN_SEGMENT, Period, figures, parse_period, parse_range
from agi_app.analytics.report import CHARTS, ReportData, render_chart, write_index
from agi_app.calendar.model import check_scope
from agi_app.cli.common import calendar_zone, dsn, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories.kpi import report_counts
from agi_app.directory.models import SEGMENTS


def _period(day: str | None, week: str | None, first: str | None, last: str | None) -> Period:
    if first is None and last is None:
        return parse_period(day, week)
    if day is not None or week is not None or first is None or last is None:
        raise ValueError("give exactly one of --day, --week, or --from with --to")
    return parse_range(first, last)


@click.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for index.html and the charts (created if missing; files of an earlier report replaced).")
@click.option("--day", metavar="YYYY-MM-DD", help="One local day.")
@click.option("--week", metavar="YYYY-Www|DATE", help="An ISO week (Monday to Sunday), or the week of a date.")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="First local day of a range (with --to).")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="Last local day of the range, included.")
@click.option("--line", help="Only calls to this line (dialled number), e.g. 95000.")
@click.option("--segment", type=click.Choice([*SEGMENTS, UNKNOWN_SEGMENT]),
              help="Only callers of this segment (unknown: callers not identified).")
@click.pass_context
def report(ctx: click.Context, out: Path, day: str | None, week: str | None, first: str | None, last: str | None,
           line: str | None, segment: str | None) -> None:
    """Write the period's KPIs as PNG charts and OUT/index.html, and print the page's path.

    \b
    The page's figures are those of `hotline kpi --json` for the same period
    (see `hotline kpi --help` for what each means); the charts: calls per day
    and per hour, containment and transfers, abandonment in the IVR and in
    the queue, node drop-offs, services, time to service, answer speed and
    talk time, agent workload, survey scores.
    """
    try:
        period = _period(day, week, first, last)
        if line is not None:
            check_scope(line)
    except ValueError as exc:
        fail(str(exc))

    async def main() -> ReportData:
        async with connection(dsn(ctx)) as conn:
            zone = await calendar_zone(conn, line)
            start, end = period.bounds(zone)
            counts, series = await report_counts(conn, start, end, zone, line=line, segment=segment)
            return ReportData(period, figures(counts, period, zone, line=line, segment=segment), series)

    data = run(main())
    try:
        out.mkdir(parents=True, exist_ok=True)
        with click.progressbar(CHARTS, label="charts", file=sys.stderr,
                               item_show_func=lambda chart: chart.name if chart else None) as charts:
            for chart in charts:  # stdout has the page's path only
                render_chart(chart, data, out)
        index = write_index(data, CHARTS, out, datetime.now(UTC))
    except OSError as exc:
        fail(f"cannot write the report to {out}: {exc.strerror or exc}")
    click.echo(str(index))
