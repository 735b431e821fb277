"""`hotline kpi`: the management figures of a day or a week (definitions: agi_app/analytics/kpi.py)."""

from __future__ import annotations

from typing import Any

import click

from agi_app.analytics.kpi import UNKNOWN_SEGMENT, figures, number, parse_period, percent
from agi_app.calendar.model import check_scope
from agi_app.cli.common import calendar_zone, dsn, echo_json, fail, run
from agi_app.db.pool import connection
from agi_app.db.repositories.kpi import kpi_counts
from agi_app.directory.models import SEGMENTS


@click.command()
@click.option("--day", metavar="YYYY-MM-DD", help="One local day.")
@click.option("--week", metavar="YYYY-Www|DATE", help="An ISO week (Monday to Sunday), or the week of a date.")
@click.option("--line", help="Only calls to this line (dialled number), e.g. 95000.")
@click.option("--segment", type=click.Choice([*SEGMENTS, UNKNOWN_SEGMENT]),
              help="Only callers of this segment (unknown: callers not identified).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (for scripts).")
@click.pass_context
def kpi(ctx: click.Context, day: str | None, week: str | None, line: str | None, segment: str | None,
        as_json: bool) -> None:
    """Calls, containment, transfers, abandonment, durations, surveys, services, drop-offs and
    queue figures for a day or an ISO week.

    \b
    Days are local to the bank's time zone (the calendar's, of --line if given): a
    call belongs to the day it started. Calls still in progress count in
    in_progress only.
      calls                  calls that started in the period and have ended
      self_service_rate      outcome self_service / calls (containment)
      transfer_rate          outcome transferred / calls
      abandon_rate           outcome abandoned / calls (left in the IVR, no service done)
      avg_duration_ms        mean IVR duration of the calls
      survey_avg             mean survey score 1-5 (null without answers)
      services               per service: reached (times), ok (of which succeeded)
      time_to_service_s      per service: seconds from the call's start to its first
                             reach of it; calls, mean, p50, p90
      nodes                  per node: visits (times entered), drop_offs (calls whose
                             last node it was, ended abandoned or hangup)
    Queue figures, over the calls' queue legs no longer waiting:
      answer_speed_s         mean wait of legs an agent answered
      agent_connection_rate  answered legs / legs
      queue_abandon_rate     legs abandoned in the queue / legs
      avg_talk_s             mean talk time
      agents                 per agent: calls answered, talk_s in total
    A rate or mean with nothing to divide by is null.
    """
    try:
        period = parse_period(day, week)
        if line is not None:
            check_scope(line)
    except ValueError as exc:
        fail(str(exc))

    async def main() -> dict[str, Any]:
        async with connection(dsn(ctx)) as conn:
            zone = await calendar_zone(conn, line)
            start, end = period.bounds(zone)
            counts = await kpi_counts(conn, start, end, line=line, segment=segment)
            return figures(counts, period, zone, line=line, segment=segment)

    result = run(main())
    if as_json:
        echo_json(result)
    else:
        click.echo(render(result))


def render(k: dict[str, Any]) -> str:
    """The figures as a person reads them."""
    scope = "".join([f" · line {k['line']}" if k["line"] else "", f" · segment {k['segment']}" if k["segment"] else ""])
    lines = [f"KPIs {k['period']} ({k['timezone']}){scope}",
             f"  calls               {k['calls']}" + (f"  (+{k['in_progress']} in progress, not counted)"
                                                       if k["in_progress"] else ""),
             f"  self-service        {percent(k['self_service_rate'])}",
             f"  transferred         {percent(k['transfer_rate'])}",
             f"  abandoned in IVR    {percent(k['abandon_rate'])}",
             f"  mean duration       {number(None if k['avg_duration_ms'] is None else k['avg_duration_ms'] / 1000, ' s')}",
             f"  survey              {number(k['survey_avg'])} / 5 ({k['survey_answers']} answers)",
             f"  queues              {k['queue_legs']} legs · answered {percent(k['agent_connection_rate'])}"
             f" · abandoned {percent(k['queue_abandon_rate'])} · answer speed {number(k['answer_speed_s'], ' s')}"
             f" · mean talk {number(k['avg_talk_s'], ' s')}"]
    if k["services"]:
        lines.append("  services            reached  ok")
        lines += [f"    {name:<18}{s['reached']:>7}  {s['ok']}" for name, s in k["services"].items()]
    if k["time_to_service_s"]:
        lines.append("  time to service     calls  mean  p50  p90 (s)")
        lines += [f"    {name:<18}{t['calls']:>5}  {t['mean']:g}  {t['p50']:g}  {t['p90']:g}"
                  for name, t in k["time_to_service_s"].items()]
    if k["nodes"]:
        lines.append("  nodes               visits  drop-offs")
        lines += [f"    {name:<18}{n['visits']:>6}  {n['drop_offs']}" for name, n in k["nodes"].items()]
    if k["agents"]:
        lines.append("  agents              calls  talk")
        lines += [f"    {name:<18}{a['calls']:>5}  {a['talk_s']} s" for name, a in k["agents"].items()]
    return "\n".join(lines)
