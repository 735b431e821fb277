"""The demo bank the tests call: its callers (config/demo/customers.csv), what its menus play, and
its menus (the package's demo/bank.yaml) with menu timeouts short enough that a timeout path runs
in a fraction of a second."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from agi_app.banking.csv_import import parse_accounts, parse_bills, parse_payees
from agi_app.banking.pin import hash_secret
from agi_app.db.pool import connection
from agi_app.db.repositories import banking, security
from agi_app.flows.loader import demo_flow_path, load_document, read_document
from agi_app.flows.model import FlowSet
from tests.support.banking_security import FAST

DEMO_DATA = Path(__file__).resolve().parents[2] / "config" / "demo"
DEMO_CUSTOMERS = DEMO_DATA / "customers.csv"

KNOWN_ZH = "13800138000"  # C001 王伟, standard, zh
VIP_EN = "13700137000"  # C003 John Smith, vip, en
ELDERLY = "13600136000"  # C004 张秀英, elderly, zh
BILL_DUE = "13500135000"  # C005 陈静, standard, zh, a card bill due 2026-12-01
UNKNOWN = "13111111111"  # nobody's number

MAIN_ZH = "sound:hotline/zh/opt_accounts"  # the general main menu's first option is playing

#: The demo customers' phone-banking PINs (config/demo/pins.csv, set by `make demo` / `make run`).
DEMO_PINS = dict(line.split(",") for line in (DEMO_DATA / "pins.csv").read_text(encoding="utf-8").split()[1:])

#: Seconds every demo menu (and survey) waits for a key, and between keys, in the tests.
MENU_TIMEOUT = 0.3


def demo_document(*, main_intro: str = "", timeout: float = MENU_TIMEOUT) -> dict[str, Any]:
    """The demo menus with `timeout`s; `main_intro` is the general main menu's intro (a version
    told apart by ear)."""
    doc: dict[str, Any] = copy.deepcopy(read_document(demo_flow_path()))
    for flow in doc["flows"].values():
        for node in flow["nodes"].values():
            if node["type"] == "menu":
                node["timeout"] = node["inter_digit_timeout"] = timeout
            elif node["type"] == "survey":
                node["timeout"] = timeout
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


async def load_demo_bank(dsn: str) -> None:
    """The demo bank's accounts, cards, bills, payees (config/demo, parsed and stored as `make demo`
    does) and PINs (hashed cheaply, as test fixtures are); the demo customers must be imported first."""
    def text(name: str) -> str:
        return (DEMO_DATA / name).read_text(encoding="utf-8")

    accounts, bills, payees = parse_accounts(text("accounts.csv")), parse_bills(text("bills.csv")), \
        parse_payees(text("payees.csv"))
    assert not (accounts.errors or bills.errors or payees.errors)
    async with connection(dsn) as conn:
        await banking.import_accounts(conn, accounts.accounts, accounts.cards)
        await banking.import_bills(conn, bills.bills)
        await banking.import_payees(conn, payees.payees)
        for customer_id, pin in DEMO_PINS.items():
            await security.set_pin(conn, customer_id, hash_secret(pin, **FAST))
