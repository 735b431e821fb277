"""`hotline menus graph`: the DOT of agi_app/flows/graph.py drawn by Graphviz (`dot -Tsvg`, a
process of its own with a time budget), as SVG or as an HTML page with a legend.

`render_svg` blocks while `dot` runs: the command line calls it directly; a server must call it off
its event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Mapping

from agi_app.flows.graph import DROP_OFF_COLOUR, STYLES, NodeTraffic

DOT = "dot"


class GraphError(RuntimeError):
    """Graphviz is missing, failed or ran past its budget."""


def render_svg(dot: str, *, timeout_s: float) -> str:
    """The SVG Graphviz draws of `dot`."""
    program = shutil.which(DOT)
    if program is None:
        raise GraphError("Graphviz `dot` is not installed (Debian: apt-get install graphviz)")
    try:
        done = subprocess.run([program, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise GraphError(f"Graphviz took longer than {timeout_s:g} s (HOTLINE_GRAPH_RENDER_MS)") from None
    if done.returncode != 0:
        raise GraphError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


def traffic_from_kpi(nodes: Mapping[str, Mapping[str, int]]) -> dict[str, NodeTraffic]:
    """The `nodes` figures of agi_app/analytics/kpi.py as the graph's overlay."""
    return {node: NodeTraffic(f.get("visits", 0), f.get("drop_offs", 0)) for node, f in nodes.items()}


def html_page(svg: str, *, title: str, overlay: str | None) -> str:
    """One self-contained page: the title, the drawing and a legend of shapes (and of the overlay)."""
    items = "".join(f"<li><b>{html.escape(style.shape)}</b> {html.escape(style.meaning)}</li>"
                    for style in STYLES.values())
    traffic = (f"<p>Traffic of {html.escape(overlay)}: each node shows its visits and drop-offs; the thicker"
               f" its border the more visits; a <span style=\"color:{DROP_OFF_COLOUR}\">red</span> border:"
               f" callers left the call there.</p>") if overlay else "<p>No traffic overlay (no database).</p>"
    body = svg[svg.index("<svg"):] if "<svg" in svg else svg  # drop the XML prolog and doctype
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1em} #legend{columns:2;font-size:90%}"
            " .drawing{overflow:auto;border:1px solid #ccc} .drawing svg{max-width:100%;height:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><div class=\"drawing\">{body}</div>"
            f"<h2>Legend</h2><ul id=\"legend\">{items}"
            "<li>edge labels: menu keys, conditions (segment, flag, calendar, variant %); dashed: a way"
            " out on invalid keys, timeouts, failures, or into a sub-flow</li>"
            "<li>boxes around nodes: one flow each (sub-flows apart)</li></ul>"
            f"{traffic}</body></html>\n")
