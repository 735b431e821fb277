"""`hotline menus graph`: the demo menus drawn whole (every node, every key, every condition), by
the real Graphviz, overlaid with a day's journeys from the database, and opened in a browser."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from agi_app.admin.graph import html_page, render_svg
from agi_app.flows.graph import DROP_OFF_COLOUR, NodeTraffic, flow_dot
from agi_app.flows.loader import demo_flow_path, load_file
from agi_app.flows.model import ConditionNode, FlowSet, MenuNode
from tests.support.cli import HOTLINE, hotline_cli
from tests.support.journeys import MONDAY, SHANGHAI, Call, store

SVG = "{http://www.w3.org/2000/svg}"
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?;$', re.MULTILINE)


@pytest.fixture(scope="module")
def demo() -> FlowSet:
    return load_file(demo_flow_path())[0]


def dot_edges(dot: str) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for source, target, attrs in EDGE.findall(dot):
        label = re.search(r'label="((?:[^"\\]|\\.)*)"', attrs or "")
        found.setdefault((source, target), []).append(label[1] if label else "")
    return found


def test_every_node_and_every_reference_of_the_demo_is_drawn(demo: FlowSet) -> None:
    dot = flow_dot(demo, title="demo")
    edges = dot_edges(dot)
    count = 0
    for flow_name, flow in demo.flows.items():
        for node in flow.nodes.values():
            assert f'"{flow_name}:{node.id}" [label="{node.id}\\n({node.type})' in dot
            for _, ref in node.refs():
                target = demo.resolve(flow_name, ref)
                if target is not None:
                    assert (f"{flow_name}:{node.id}", f"{target[0]}:{target[1]}") in edges, (node.id, ref)
                    count += 1
    assert count > 150 and f'"line:95001" -> "vip:{demo.flows["vip"].start}"' in dot


def test_menu_keys_and_conditions_are_on_the_edges(demo: FlowSet) -> None:
    edges = dot_edges(flow_dot(demo))
    main = demo.flows["general"].nodes["main"]
    assert isinstance(main, MenuNode)
    for key, option in main.options.items():
        target = demo.resolve("general", option.next)
        assert target is not None
        assert f"{key}: {option.label}" in edges[("general:main", f"{target[0]}:{target[1]}")]
    entry = demo.flows["general"].nodes["entry"]
    assert isinstance(entry, ConditionNode)
    assert edges[("general:entry", "general:holiday_notice")] == ["holiday"]
    assert edges[("general:entry", "general:greeting")] == ["else"]
    segment_labels = [label for (source, _), labels in edges.items() if source == "general:segment" for label in labels]
    assert any(label.startswith("segment ") for label in segment_labels), segment_labels


def test_the_overlay_shows_visits_and_drop_offs(demo: FlowSet) -> None:
    dot = flow_dot(demo, traffic={"main": NodeTraffic(40, 3), "greeting": NodeTraffic(80, 0)})
    main = next(line for line in dot.splitlines() if line.strip().startswith('"general:main" ['))
    greeting = next(line for line in dot.splitlines() if line.strip().startswith('"general:greeting" ['))
    assert "visits 40 · drop-offs 3" in main and f'color="{DROP_OFF_COLOUR}"' in main and "penwidth=3.00" in main
    assert "visits 80 · drop-offs 0" in greeting and "color=" not in greeting.replace("fillcolor", "")
    assert "penwidth=5.00" in greeting


def test_graphviz_draws_every_node_and_edge(demo: FlowSet) -> None:
    dot = flow_dot(demo, title="demo")
    svg = ET.fromstring(render_svg(dot, timeout_s=20))
    groups = svg.iter(f"{SVG}g")
    classes = [g.get("class") for g in groups]
    nodes = sum(len(f.nodes) for f in demo.flows.values()) + len(demo.lines)
    assert classes.count("node") == nodes
    assert classes.count("edge") == len(EDGE.findall(dot))
    assert classes.count("cluster") == len(demo.flows)
    titles = {t.text for t in svg.iter(f"{SVG}title")}
    assert {"general:main", "vip:entry", "line:95000"} <= titles


def offline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_") and not k.startswith("PG")}
    return subprocess.run([HOTLINE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_a_flow_file_is_drawn_without_a_database(tmp_path: Path) -> None:
    out = tmp_path / "menus.html"
    result = offline(tmp_path, "menus", "graph", "--file", str(demo_flow_path()), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "114 nodes, no traffic overlay" in result.stdout
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and 'id="legend"' in page
    assert "No traffic overlay" in page
    assert offline(tmp_path, "menus", "graph", "--file", str(demo_flow_path()), "--out", "x.png").returncode == 1


async def test_the_published_version_with_a_days_traffic(dsn: str, tmp_path: Path) -> None:
    assert hotline_cli(dsn, "menus", "publish", str(demo_flow_path())).returncode == 0
    start = datetime.combine(MONDAY, time(10), SHANGHAI).astimezone(UTC)
    path = ["entry", "greeting", "segment", "main"]
    await store(dsn, [Call(f"g{i}", start, "95000", None, "hangup" if i < 2 else "transferred", 1000,
                           [*path, "agent_cards"][: 4 + (i >= 2)], [], None) for i in range(5)])
    out = tmp_path / "menus.svg"
    result = hotline_cli(dsn, "menus", "graph", "--day", MONDAY.isoformat(), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"traffic of {MONDAY.isoformat()}" in result.stdout
    svg = out.read_text()
    assert "visits 5 · drop&#45;offs 2" in svg or "visits 5 · drop-offs 2" in svg  # main: 2 hung up there
    assert "visits 3 · drop" in svg and "menu version 1" in svg


def test_the_html_page_opens_in_a_browser(demo: FlowSet, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    page_file = tmp_path / "menus.html"
    page_file.write_text(html_page(render_svg(flow_dot(demo, title="demo"), timeout_s=20), title="demo",
                                   overlay=None), encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            assert page.locator("svg g.node").count() == sum(len(f.nodes) for f in demo.flows.values()) + len(demo.lines)
            box = page.locator("svg").first.bounding_box()
            assert box is not None and box["width"] > 500
            assert page.locator("#legend li").count() >= 12
            page.screenshot(path=str(tmp_path / "menus.png"))
        finally:
            browser.close()
    assert (tmp_path / "menus.png").stat().st_size > 10_000
