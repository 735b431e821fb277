"""The demo bank the tests call: its callers (config/demo/customers.csv), what its menus play, and
its menus (the package's demo/bank.yaml) with menu timeouts short enough that a timeout path runs
in a fraction of a second."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from agi_app.flows.loader import demo_flow_path, load_document, read_document
from agi_app.flows.model import FlowSet

DEMO_CUSTOMERS = Path(__file__).resolve().parents[2] / "config" / "demo" / "customers.csv"

KNOWN_ZH = "13800138000"  # C001 王伟, standard, zh
VIP_EN = "13700137000"  # C003 John Smith, vip, en
ELDERLY = "13600136000"  # C004 张秀英, elderly, zh
BILL_DUE = "13500135000"  # C005 陈静, standard, zh, a card bill due 2026-12-01
UNKNOWN = "13111111111"  # nobody's number

MAIN_ZH = "sound:hotline/zh/opt_accounts"  # the general main menu's first option is playing

#: Seconds every demo menu waits for a key, and between keys, in the tests.
MENU_TIMEOUT = 0.3


def demo_document(*, main_intro: str = "", timeout: float = MENU_TIMEOUT) -> dict[str, Any]:
    """The demo menus with `timeout`s; `main_intro` is the general main menu's intro (a version
    told apart by ear)."""
    doc: dict[str, Any] = copy.deepcopy(read_document(demo_flow_path()))
    for flow in doc["flows"].values():
        for node in flow["nodes"].values():
            if node["type"] == "menu":
                node["timeout"] = node["inter_digit_timeout"] = timeout
    doc["flows"]["general"]["nodes"]["main"]["intro"] = main_intro
    return doc


def demo_flows() -> FlowSet:
    """The demo menus with short timeouts, as a server is given them (version 1)."""
    return load_document(demo_document(), version=1)[0]


def demo_menus_file(folder: Path, name: str, *, main_intro: str = "", timeout: float = MENU_TIMEOUT) -> Path:
    """The demo menus with `timeout`s, as a file to publish."""
    path = folder / name
    doc = demo_document(main_intro=main_intro, timeout=timeout)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path
