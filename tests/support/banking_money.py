"""Test data for the money services: the demo customers, a few accounts, a bill and a payee, and
`ServiceCall`s as the runner builds them (authenticated or not)."""

from __future__ import annotations

from typing import Any

from agi_app.banking.csv_import import parse_accounts
from agi_app.caller_facts import CallerFacts
from agi_app.db.pool import connection
from agi_app.db.repositories import banking as repo
from agi_app.flows.services import ServiceCall

ACCOUNTS_CSV = """customer_id,account_id,kind,currency,balance,card_number
C001,6222000000001001,current,CNY,1000.00,6222 0200 0000 1001
C001,6222000000002002,savings,CNY,20000.00,
C001,6222000000003003,credit,CNY,-150.25,6258 0000 0000 3003
C002,6222000000004004,current,CNY,50.00,6222 0200 0000 4004
"""


async def seed_accounts(dsn: str, text: str = ACCOUNTS_CSV) -> None:
    """Accounts (the demo customers must be imported first), a due bill of 300.00 for C001 and
    C001's registered payee 1 (an account at another bank)."""
    parsed = parse_accounts(text)
    assert not parsed.errors, parsed.errors
    async with connection(dsn) as conn:
        await repo.import_accounts(conn, parsed.accounts, parsed.cards)
        await conn.execute("INSERT INTO bank_billers (biller_id, name) VALUES ('power', 'City Power')")
        await conn.execute("INSERT INTO bank_bills (customer_id, biller_id, amount_fen, due_date)"
                           " VALUES ('C001', 'power', 30000, current_date + 5)")
        await conn.execute("INSERT INTO bank_payees (customer_id, payee_id, name, account_number)"
                           " VALUES ('C001', '1', 'Li Lei', '6217000011112222')")


def service_call(service: str, customer_id: str = "C001", *, authenticated: bool = True, call_id: str = "call-1",
                 language: str = "en", **variables: Any) -> ServiceCall:
    facts = CallerFacts(known=True, attributes={"customer_id": customer_id, "name": "Wang"})
    return ServiceCall(service, call_id, "13800138000", "95000", language, facts, variables,
                       authenticated=authenticated)
