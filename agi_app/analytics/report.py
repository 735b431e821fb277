"""`hotline report`: the KPIs of a period as PNG charts and one HTML page a manager opens in a browser.

The page's numbers are `hotline kpi --json`'s figures for the same period (`analytics.kpi.figures`,
one snapshot with the charts' series), so the report and the command never disagree. The page has
no external assets: styles are inline and the charts are files beside it, referenced by name.

matplotlib is imported only while drawing (never by the call server), with the Agg backend and
without pyplot: each chart is its own `Figure`, no global state.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agi_app.analytics.kpi import OUTCOMES, Period, number, percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes

INDEX = "index.html"
#: Nodes shown in the drop-off chart: the ones callers leave most.
TOP_NODES = 15


@dataclass(frozen=True)
class ReportSeries:
    """What the charts need beyond the KPI figures, counted over the same calls."""

    per_day: Mapping[date, Mapping[str, int]] = field(default_factory=dict)  # local day: outcome: calls
    per_hour: Mapping[int, int] = field(default_factory=dict)  # local hour of the day: calls
    survey_scores: Mapping[int, int] = field(default_factory=dict)  # score 1-5: answers


@dataclass(frozen=True)
class ReportData:
    period: Period
    figures: dict[str, Any]  # `analytics.kpi.figures`, as `hotline kpi --json` prints them
    series: ReportSeries


@dataclass(frozen=True)
class Chart:
    name: str  # the PNG's file name, without .png
    title: str
    draw: Callable[[Axes, ReportData], bool]  # False: nothing to draw for this period

    @property
    def file(self) -> str:
        return f"{self.name}.png"


def _bars(ax: Axes, labels: list[str], series: Mapping[str, list[float]], *, horizontal: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [p + i * width - 0.4 + width / 2 for p in range(len(labels))]
        if horizontal:
            ax.barh(positions, values, height=width, label=name)
        else:
            ax.bar(positions, values, width=width, label=name)
    if horizontal:
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 8 else 0, ha="right"
                      if len(labels) > 8 else "center")
    if len(series) > 1:
        ax.legend()


def _per_day(ax: Axes, data: ReportData) -> bool:
    days = [data.period.first_day + timedelta(days=i) for i in range(data.period.days)]
    bottom = [0] * len(days)
    for outcome in OUTCOMES:
        counts = [data.series.per_day.get(d, {}).get(outcome, 0) for d in days]
        ax.bar([d.strftime("%m-%d") for d in days], counts, bottom=bottom, label=outcome)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_ylabel("calls")
    ax.margins(y=0.2)  # room above the bars for the legend
    ax.legend(ncols=len(OUTCOMES), loc="upper left", fontsize="small")
    if len(days) > 8:
        ax.tick_params(axis="x", labelrotation=45)
    return sum(bottom) > 0


def _per_hour(ax: Axes, data: ReportData) -> bool:
    ax.bar(range(24), [data.series.per_hour.get(h, 0) for h in range(24)])
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("local hour")
    ax.set_ylabel("calls")
    return bool(data.series.per_hour)


def _outcomes(ax: Axes, data: ReportData) -> bool:
    f = data.figures
    rates = {"self-service (containment)": f["self_service_rate"], "transferred": f["transfer_rate"],
             "abandoned in IVR": f["abandon_rate"]}
    _bars(ax, list(rates), {"% of calls": [(r or 0) * 100 for r in rates.values()]}, horizontal=True)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of calls")
    return bool(f["calls"])


def _abandonment(ax: Axes, data: ReportData) -> bool:
    f = data.figures
    _bars(ax, ["in the IVR (of calls)", "in the queue (of queue legs)"],
          {"abandoned %": [(f["abandon_rate"] or 0) * 100, (f["queue_abandon_rate"] or 0) * 100]})
    ax.set_ylabel("%")
    return f["abandon_rate"] is not None or f["queue_abandon_rate"] is not None


def _drop_off(ax: Axes, data: ReportData) -> bool:
    nodes = sorted(data.figures["nodes"].items(), key=lambda n: (-n[1]["drop_offs"], -n[1]["visits"], n[0]))
    nodes = nodes[:TOP_NODES]
    _bars(ax, [n for n, _ in nodes], {"visits": [v["visits"] for _, v in nodes],
                                      "drop-offs": [v["drop_offs"] for _, v in nodes]}, horizontal=True)
    return bool(nodes)


def _services(ax: Axes, data: ReportData) -> bool:
    services = data.figures["services"]
    _bars(ax, list(services), {"reached": [s["reached"] for s in services.values()],
                               "ok": [s["ok"] for s in services.values()]})
    return bool(services)


def _time_to_service(ax: Axes, data: ReportData) -> bool:
    times = data.figures["time_to_service_s"]
    _bars(ax, list(times), {figure: [t[figure] for t in times.values()] for figure in ("mean", "p50", "p90")})
    ax.set_ylabel("seconds from the start of the call")
    return bool(times)


def _queue_times(ax: Axes, data: ReportData) -> bool:
    f = data.figures
    _bars(ax, ["answer speed (mean wait)", "talk time (mean)"],
          {"seconds": [f["answer_speed_s"] or 0, f["avg_talk_s"] or 0]})
    ax.set_ylabel("seconds")
    return f["answer_speed_s"] is not None or f["avg_talk_s"] is not None


def _agents(ax: Axes, data: ReportData) -> bool:
    agents = data.figures["agents"]
    _bars(ax, list(agents), {"calls": [a["calls"] for a in agents.values()],
                             "talk (minutes)": [round(a["talk_s"] / 60, 1) for a in agents.values()]})
    return bool(agents)


def _surveys(ax: Axes, data: ReportData) -> bool:
    scores = data.series.survey_scores
    ax.bar(range(1, 6), [scores.get(s, 0) for s in range(1, 6)])
    ax.set_xticks(range(1, 6))
    ax.set_xlabel(f"score (mean {number(data.figures['survey_avg'])})")
    ax.set_ylabel("answers")
    return bool(scores)


CHARTS: tuple[Chart, ...] = (
    Chart("calls_per_day", "Calls per day, by outcome", _per_day),
    Chart("calls_per_hour", "Calls per hour of the day", _per_hour),
    Chart("outcomes", "Containment, transfers and abandonment", _outcomes),
    Chart("abandonment", "Abandonment in the IVR and in the queue", _abandonment),
    Chart("node_drop_off", f"Node visits and drop-offs (top {TOP_NODES} by drop-offs)", _drop_off),
    Chart("services", "Services reached and succeeded", _services),
    Chart("time_to_service", "Time to service (seconds)", _time_to_service),
    Chart("queue_times", "Answer speed and talk time", _queue_times),
    Chart("agent_workload", "Agent workload", _agents),
    Chart("survey_scores", "Survey scores", _surveys),
)


def render_chart(chart: Chart, data: ReportData, out: Path) -> Path:
    """Draw `chart` to `out/<name>.png` (a 'no data' panel when the period has none)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = figure.subplots()
    ax.set_title(chart.title)
    if not chart.draw(ax, data):
        ax.clear()
        ax.set_title(chart.title)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no data for this period", ha="center", va="center", transform=ax.transAxes)
    path = out / chart.file
    figure.savefig(path, format="png")
    return path


def _e(value: object) -> str:
    return html.escape(str(value))


def _row(label: str, key: str, shown: str) -> str:
    return f'<tr><th>{_e(label)}</th><td data-kpi="{_e(key)}">{_e(shown)}</td></tr>'


def _table(head: list[str], rows: list[list[object]]) -> str:
    if not rows:
        return "<p>none in this period</p>"
    cells = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{''.join(f'<th>{_e(h)}</th>' for h in head)}</tr>{cells}</table>"


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3;text-align:left}
figure{display:inline-block;margin:0 1em 1.5em 0}img{max-width:100%;border:1px solid #eee}"""


def index_html(data: ReportData, charts: tuple[Chart, ...], generated_at: datetime) -> str:
    """The page: headline figures, the tables behind the charts, then the charts."""
    f = data.figures
    scope = "".join([f" · line {f['line']}" if f["line"] else "", f" · segment {f['segment']}" if f["segment"] else ""])
    headline = [
        _row("Calls", "calls", str(f["calls"])),
        _row("In progress (not counted)", "in_progress", str(f["in_progress"])),
        _row("Self-service (containment)", "self_service_rate", percent(f["self_service_rate"])),
        _row("Transferred", "transfer_rate", percent(f["transfer_rate"])),
        _row("Abandoned in the IVR", "abandon_rate", percent(f["abandon_rate"])),
        _row("Mean IVR duration", "avg_duration_ms",
             number(None if f["avg_duration_ms"] is None else f["avg_duration_ms"] / 1000, " s")),
        _row("Queue legs", "queue_legs", str(f["queue_legs"])),
        _row("Connected to an agent", "agent_connection_rate", percent(f["agent_connection_rate"])),
        _row("Abandoned in the queue", "queue_abandon_rate", percent(f["queue_abandon_rate"])),
        _row("Answer speed (mean wait)", "answer_speed_s", number(f["answer_speed_s"], " s")),
        _row("Mean talk time", "avg_talk_s", number(f["avg_talk_s"], " s")),
        _row("Survey (mean score of 5)", "survey_avg", number(f["survey_avg"])),
        _row("Survey answers", "survey_answers", str(f["survey_answers"])),
    ]
    times = f["time_to_service_s"]
    services = [[name, s["reached"], s["ok"], *([times[name]["mean"], times[name]["p50"], times[name]["p90"]]
                                                if name in times else ["-", "-", "-"])]
                for name, s in f["services"].items()]
    sections = [
        ("Outcomes", _table(["outcome", "calls"], [[o, n] for o, n in f["outcomes"].items()])),
        ("Services", _table(["service", "reached", "ok", "time to service mean s", "p50 s", "p90 s"], services)),
        ("Nodes", _table(["node", "visits", "drop-offs"], [[n, v["visits"], v["drop_offs"]]
                                                          for n, v in f["nodes"].items()])),
        ("Agents", _table(["agent", "calls answered", "talk s"], [[a, v["calls"], v["talk_s"]]
                                                                 for a, v in f["agents"].items()])),
    ]
    figures = "".join(f'<figure><img src="{_e(c.file)}" alt="{_e(c.title)}" width="800" height="450">'
                      f"<figcaption>{_e(c.title)}</figcaption></figure>" for c in charts)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Hotline report {_e(f['period'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Hotline report {_e(f['period'])}{_e(scope)}</h1>",
        f"<p>{_e(f['from'])} to {_e(f['to'])} ({_e(f['timezone'])}); generated {_e(generated_at.isoformat(timespec='seconds'))}."
        " A call belongs to the day it started; calls in progress count in no figure.</p>",
        f"<h2>Key figures</h2><table>{''.join(headline)}</table>",
        *[f"<h2>{_e(title)}</h2>{body}" for title, body in sections],
        f"<h2>Charts</h2>{figures}",
        "</body></html>",
    ])


def write_index(data: ReportData, charts: tuple[Chart, ...], out: Path, generated_at: datetime) -> Path:
    path = out / INDEX
    path.write_text(index_html(data, charts, generated_at), encoding="utf-8")
    return path
