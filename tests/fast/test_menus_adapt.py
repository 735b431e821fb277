"""`hotline menus adapt` on the published demo menus and generated journeys (stored by the real journey
writer): the most used option is announced one place earlier, universal keys and key digits stay,
nothing is proposed below the sample, and nothing is published unless confirmed."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agi_app.admin.adapt import personas_of
from agi_app.flows.adapt import propose, reorder
from agi_app.flows.loader import read_document
from tests.fast.conftest import fetch
from tests.support.cli import hotline_cli
from tests.support.demo import demo_flow_path, demo_flows
from tests.support.journeys import Call, store

#: VIP callers' keys at vip/priority_menu (announced 0, 1, 2, 3, 4): transfer (4) is the favourite
#: of the options that may move; the agent key 0 is chosen often but stays first.
VIP_CHOICES = {"0": 50, "1": 30, "2": 20, "3": 10, "4": 60}
UNIVERSAL = {"0", "*", "9"}


def calls_choosing(prefix: str, choices: dict[str, int], *, segment: str | None, node: str,
                   days_ago: float = 1) -> list[Call]:
    """One call to the VIP line per key pressed at `node` (third on the path)."""
    started = datetime.now(UTC) - timedelta(days=days_ago)
    return [Call(f"{prefix}-{key}-{i}", started + timedelta(seconds=i), "95001", segment, "self_service", 30_000,
                 ["entry", "greeting", node], [], None, inputs=[(3, key, "option")])
            for key, times in choices.items() for i in range(times)]


def active(dsn: str) -> tuple[int, dict[str, Any]]:
    rows = asyncio.run(fetch(dsn, "SELECT v.version, v.document FROM menu_versions v JOIN menu_active USING (version)"))
    return rows[0]["version"], json.loads(rows[0]["document"])


def options(document: dict[str, Any], flow: str, node: str) -> dict[str, Any]:
    return document["flows"][flow]["nodes"][node]["options"]


def adapt(dsn: str, *args: str, stdin: str | None = None) -> Any:
    return hotline_cli(dsn, "menus", "adapt", *args, stdin=stdin)


@pytest.fixture
def vip_calls(db: str) -> str:
    assert hotline_cli(db, "menus", "publish", str(demo_flow_path())).returncode == 0
    asyncio.run(store(db, [
        *calls_choosing("vip", VIP_CHOICES, segment="vip", node="priority_menu"),
        # Not counted: other segments, and VIP calls older than --days (both would favour key 1).
        *calls_choosing("std", {"1": 200}, segment="standard", node="priority_menu"),
        *calls_choosing("old", {"1": 200}, segment="vip", node="priority_menu", days_ago=40),
    ]))
    return db


def test_confirmed_the_most_used_option_is_announced_one_place_earlier(vip_calls: str) -> None:
    before_version, before = active(vip_calls)
    result = adapt(vip_calls, "--segment", "vip", "--days", "28", "--min-sample", "100", stdin="y\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "vip/priority_menu (170 choices): key 4 'Transfer' (chosen 60) from place 5 to 4" in out
    assert "key 3 (chosen 10) one place later" in out
    assert "general/closed_menu: 0 choices measured, fewer than 100" in out, "the segment's other variants count"
    assert "note: vip/priority_menu is also heard by private callers" in out
    assert "--- version 1\n+++ proposal\n" in out and "+          '4':\n" in out and "-          '4':\n" in out
    version, after = active(vip_calls)
    assert version == before_version + 1 and f"published version {version}" in out
    assert list(options(after, "vip", "priority_menu")) == ["0", "1", "2", "4", "3"]
    assert options(after, "vip", "priority_menu") == options(before, "vip", "priority_menu"), \
        "every key keeps its digit and its option"
    for flow, nodes in before["flows"].items():
        for node_id, node in nodes["nodes"].items():
            if (flow, node_id) != ("vip", "priority_menu"):
                assert after["flows"][flow]["nodes"][node_id] == node
    listed = json.loads(hotline_cli(vip_calls, "menus", "list", "--json").stdout)
    assert listed[0]["comment"].startswith("menus adapt --segment vip --days 28: vip/priority_menu key 4 up")
    assert listed[0]["published_by"] == "tester"


def test_the_time_to_service_of_the_moved_option_drops(vip_calls: str) -> None:
    result = adapt(vip_calls, "--segment", "vip", "--min-sample", "100", stdin="n\n")
    transfer = [line for line in result.stdout.splitlines() if " transfer " in line and "→" in line]
    assert transfer, result.stdout
    for line in transfer:
        assert "[4] →" in line and line.rstrip().endswith("s)") and "(-" in line, line


def test_declined_nothing_is_published(vip_calls: str) -> None:
    before = active(vip_calls)
    for answer in ("n\n", ""):  # no, and no answer at all
        result = adapt(vip_calls, "--segment", "vip", "--min-sample", "100", stdin=answer)
        assert result.returncode == 0, result.stderr
        assert "key 4 'Transfer'" in result.stdout and "not published" in result.stdout
        assert active(vip_calls) == before
    assert len(json.loads(hotline_cli(vip_calls, "menus", "list", "--json").stdout)) == 1


def test_below_the_minimum_sample_nothing_is_proposed(vip_calls: str) -> None:
    result = adapt(vip_calls, "--segment", "vip", "--min-sample", "171", "--yes")
    assert result.returncode == 0, result.stderr
    assert "vip/priority_menu: 170 choices measured, fewer than 171" in result.stdout
    assert "nothing to propose" in result.stdout
    assert len(json.loads(hotline_cli(vip_calls, "menus", "list", "--json").stdout)) == 1


def test_a_segment_whose_menus_did_not_hear_the_choices_changes_nothing(vip_calls: str) -> None:
    """Standard callers' 200 choices at the VIP menu do not count: it is not their variant."""
    result = adapt(vip_calls, "--segment", "standard", "--min-sample", "10", "--yes")
    assert result.returncode == 0, result.stderr
    assert "priority_menu" not in result.stdout and "nothing to propose" in result.stdout


def test_without_a_published_version_it_is_refused(db: str) -> None:
    result = adapt(db, "--segment", "vip")
    assert result.returncode == 1 and "no menu version is published" in result.stderr


@pytest.mark.parametrize(("order", "chosen", "after", "swaps"), [
    # the favourite moves up one place, not to the top
    (["1", "2", "3", "4"], {"1": 5, "2": 4, "3": 3, "4": 90}, ["1", "2", "4", "3"], [("4", "3")]),
    # universal keys keep their places; moves skip over them
    (["0", "1", "2", "9"], {"0": 99, "1": 1, "2": 50, "9": 99}, ["0", "2", "1", "9"], [("2", "1")]),
    (["1", "0", "2"], {"1": 1, "0": 99, "2": 50}, ["2", "0", "1"], [("2", "1")]),
    # at most one move per option: 3 takes 2's place, so 2 cannot also pass 1
    (["1", "2", "3"], {"1": 1, "2": 2, "3": 3}, ["1", "3", "2"], [("3", "2")]),
    # reversed use: the favourite first, then the next option not yet moved — two pairs swap
    (["1", "2", "3", "4"], {"1": 1, "2": 2, "3": 3, "4": 4}, ["2", "1", "4", "3"], [("4", "3"), ("2", "1")]),
    (["1", "2", "3", "4"], {"1": 1, "2": 9, "3": 3, "4": 8}, ["2", "1", "4", "3"], [("2", "1"), ("4", "3")]),
    # equal use: no move
    (["1", "2"], {"1": 5, "2": 5}, ["1", "2"], []),
])
def test_reorder_rules(order: list[str], chosen: dict[str, int], after: list[str],
                       swaps: list[tuple[str, str]]) -> None:
    assert reorder(order, chosen, UNIVERSAL) == swaps
    assert order == after


async def test_menus_the_journeys_cannot_attribute_are_left_alone() -> None:
    """Node id `menu` is a menu in the cards and self_service flows: its keys are not attributable."""
    flows = demo_flows()
    document = read_document(demo_flow_path())
    proposal = propose(document, flows, [("cards", "menu"), ("self_service", "menu")],
                       {"menu": {"2": 500, "1": 1}}, min_sample=1)
    assert not proposal.changed and proposal.document == document
    assert {s.flow for s in proposal.skipped} == {"cards", "self_service"}
    assert all("cannot tell them apart" in s.reason for s in proposal.skipped)


@pytest.mark.parametrize(("segment", "personas"), [
    ("standard", ["standard", "bill_due"]), ("vip", ["vip"]), ("elderly", ["elderly"]), ("unknown", ["generic"]),
])
def test_a_segments_variants_are_those_of_its_personas(segment: str, personas: list[str]) -> None:
    assert personas_of(segment) == personas
