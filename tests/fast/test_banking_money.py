"""Money services on the real PostgreSQL stand-in: what each operation does, what it refuses, and
what it leaves in the audit (`banking_operations`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from agi_app.banking.money import Money, MoneyError
from agi_app.banking.risk import RuleGuard
from agi_app.banking.services import register_money_services
from agi_app.caller_facts import CallerFacts
from agi_app.config import ConfigError, Settings
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories.banking import PgBank, customer_by_account, customer_by_card
from agi_app.db.repositories.security import PgSecurity
from agi_app.flows.loader import load_document
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.media.items import Sound
from agi_app.secure import SecretDigits
from agi_app.serve.app import Server, risk_rules
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, fetch, import_demo_customers, settings_for
from tests.fast.flowkit import doc
from tests.support.banking_money import seed_accounts, service_call
from tests.support.proxy import TcpProxy


@pytest_asyncio.fixture
async def bank(dsn: str) -> AsyncIterator[ServiceRegistry]:
    await import_demo_customers(dsn)
    await seed_accounts(dsn)
    pool = await create_pool(dsn, budget_s=5)
    registry = ServiceRegistry()
    register_money_services(registry, PgBank(lambda: pool), Settings(transfer_daily_limit="6000.00"))
    yield registry
    await pool.close()


async def call(registry: ServiceRegistry, service: str, **kw: Any) -> ServiceOutcome:
    found = registry.get(service)
    assert found is not None
    return await found(service_call(service, **kw))


async def balances(dsn: str) -> dict[str, str]:
    rows = await fetch(dsn, "SELECT account_id, balance_fen FROM bank_accounts")
    return {r["account_id"][-4:]: str(Money(r["balance_fen"])) for r in rows}


async def audit(dsn: str) -> list[tuple[str, str, str | None]]:
    rows = await fetch(dsn, "SELECT operation, result, reason FROM banking_operations ORDER BY id")
    return [(r["operation"], r["result"], r["reason"]) for r in rows]


def test_money_is_whole_fen_and_refuses_anything_it_would_have_to_round() -> None:
    assert Money.parse("1024.50").fen == 102450
    assert str(Money.parse("1024.5")) == "1024.50"
    assert str(Money.parse("-3")) == "-3.00"
    assert Money.of(Decimal("0.10")).yuan == Decimal("0.10")
    for bad in ("1.005", "1e3", "NaN", "", "1,000.00", "0x10"):
        with pytest.raises(MoneyError):
            Money.parse(bad)
    with pytest.raises(MoneyError):
        Money.of(Decimal("1.005"))
    with pytest.raises(MoneyError):
        Money(10.5)  # type: ignore[arg-type]


async def test_a_call_that_has_not_authenticated_hears_no_balance_and_moves_no_money(
        bank: ServiceRegistry, dsn: str) -> None:
    before = await balances(dsn)
    for service in ("balance", "bill_payment", "transfer", "card_loss"):
        outcome = await call(bank, service, authenticated=False, confirm="1", to="1", amount="10")
        assert (outcome.result, outcome.say, outcome.variables["refusal"]) == ("refused", [], "not_authenticated")
    assert await balances(dsn) == before
    assert await audit(dsn) == [(s, "refused", "not_authenticated")
                                for s in ("balance", "bill_payment", "transfer", "card_loss")]
    assert {r["status"] for r in await fetch(dsn, "SELECT status FROM bank_cards")} == {"active"}


async def test_balance_says_each_accounts_ending_kind_and_balance(bank: ServiceRegistry) -> None:
    outcome = await call(bank, "balance", language="en")
    assert outcome.result == "ok"
    sounds = [item.id for item in outcome.say if isinstance(item, Sound)]
    # 1001: one thousand yuan; 2002: twenty thousand yuan; 3003: minus one hundred fifty yuan twenty five fen
    assert sounds == [
        "digits/1", "digits/0", "digits/0", "digits/1", "your_balance_is", "digits/1", "digits/thousand", "yuan",
        "digits/2", "digits/0", "digits/0", "digits/2", "your_balance_is", "digits/20", "digits/thousand", "yuan",
        "digits/3", "digits/0", "digits/0", "digits/3", "your_balance_is",
        "minus", "digits/1", "digits/hundred", "digits/50", "yuan", "digits/20", "digits/5", "fen"]
    spoken = " ".join(getattr(item, "text", "") for item in outcome.say)
    assert "current account" in spoken and "savings account" in spoken and "credit card account" in spoken
    assert "6222" not in spoken  # only the ending is said


async def test_bill_payment_pays_the_due_bill_from_the_current_account_and_gives_a_receipt(
        bank: ServiceRegistry, dsn: str) -> None:
    outcome = await call(bank, "bill_payment", confirm="1")
    assert outcome.result == "ok" and outcome.variables["receipt"].isdigit()
    assert (await balances(dsn))["1001"] == "700.00"
    paid = await fetch(dsn, "SELECT t.receipt, t.call_id FROM bank_bills b JOIN bank_transactions t"
                            " ON t.txn_id = b.paid_txn")
    assert [(r["receipt"], r["call_id"]) for r in paid] == [(outcome.variables["receipt"], "call-1")]
    again = await call(bank, "bill_payment", confirm="1")  # the same request retried in the same call
    assert again.variables["receipt"] == outcome.variables["receipt"]
    assert (await balances(dsn))["1001"] == "700.00"
    assert (await call(bank, "bill_payment", confirm="1", call_id="call-2")).variables["refusal"] == "no_bill"


async def test_a_money_service_without_the_callers_confirmation_moves_nothing(bank: ServiceRegistry, dsn: str) -> None:
    before = await balances(dsn)
    assert (await call(bank, "bill_payment", confirm="2")).variables["refusal"] == "not_confirmed"
    assert (await call(bank, "transfer", to="2002", amount="10")).variables["refusal"] == "not_confirmed"
    assert await balances(dsn) == before


async def test_bill_payment_is_refused_when_the_balance_is_short(bank: ServiceRegistry, dsn: str) -> None:
    await fetch(dsn, "UPDATE bank_accounts SET balance_fen = 29999 WHERE account_id LIKE '%1001'")
    outcome = await call(bank, "bill_payment", confirm="1")
    assert (outcome.result, outcome.variables["refusal"]) == ("refused", "insufficient_funds")
    assert outcome.say  # the caller hears why
    assert (await balances(dsn))["1001"] == "299.99"
    assert await audit(dsn) == [("bill_payment", "refused", "insufficient_funds")]


async def test_a_transfer_between_own_accounts_moves_the_amount_and_nothing_else(
        bank: ServiceRegistry, dsn: str) -> None:
    outcome = await call(bank, "transfer", account="2002", to="1001", amount="500", confirm="1")
    assert outcome.result == "ok" and outcome.variables["receipt"]
    assert await balances(dsn) == {"1001": "1500.00", "2002": "19500.00", "3003": "-150.25", "4004": "50.00"}
    assert await audit(dsn) == [("transfer", "ok", None)]


async def test_a_transfer_above_the_threshold_needs_the_second_factor(bank: ServiceRegistry, dsn: str) -> None:
    outcome = await call(bank, "transfer", account="2002", to="1001", amount="5000.01", confirm="1")
    assert (outcome.result, outcome.variables["needs_second_factor"]) == ("refused", True)
    assert (await balances(dsn))["2002"] == "20000.00"
    outcome = await call(bank, "transfer", account="2002", to="1001", amount="5000.01", confirm="1",
                         second_factor=True)
    assert outcome.result == "ok"
    assert (await balances(dsn))["2002"] == "14999.99"


async def test_transfers_to_payees_stop_at_the_daily_limit(bank: ServiceRegistry, dsn: str) -> None:
    first = await call(bank, "transfer", account="2002", to="1", amount="4000", confirm="1")
    assert first.result == "ok"
    second = await call(bank, "transfer", account="2002", to="1", amount="2000.01", confirm="1", call_id="call-2")
    assert (second.result, second.variables["refusal"]) == ("refused", "daily_limit")
    assert (await balances(dsn))["2002"] == "16000.00"


async def test_a_transfer_to_someone_not_registered_is_refused(bank: ServiceRegistry) -> None:
    outcome = await call(bank, "transfer", account="2002", to="99", amount="10", confirm="1")
    assert (outcome.result, outcome.variables["refusal"]) == ("refused", "no_payee")
    other = await call(bank, "transfer", account="2002", to="4004", amount="10", confirm="1")  # C002's account
    assert other.variables["refusal"] == "no_payee"


async def test_card_loss_blocks_the_card_at_once_and_again_is_still_blocked(bank: ServiceRegistry, dsn: str) -> None:
    outcome = await call(bank, "card_loss", card="1001")
    assert outcome.result == "ok" and outcome.variables["receipt"]
    status = {r["last4"]: r["status"] for r in await fetch(dsn, "SELECT last4, status FROM bank_cards")}
    assert status == {"1001": "blocked", "3003": "active", "4004": "active"}
    assert (await call(bank, "card_loss", card="1001", call_id="call-2")).result == "ok"
    refused = await call(bank, "bill_payment", confirm="1", call_id="call-3")
    assert (refused.result, refused.variables["refusal"]) == ("refused", "card_blocked")


async def test_a_card_ending_collected_as_secure_input_blocks_that_card_only(bank: ServiceRegistry, dsn: str) -> None:
    """`menus validate` insists that a collect of card digits is secure: the service reads it so."""
    outcome = await call(bank, "card_loss", card=SecretDigits("3003"))
    assert outcome.result == "ok"
    status = {r["last4"]: r["status"] for r in await fetch(dsn, "SELECT last4, status FROM bank_cards")}
    assert status == {"1001": "active", "3003": "blocked", "4004": "active"}


async def test_two_calls_racing_on_one_account_neither_lose_nor_create_money(bank: ServiceRegistry, dsn: str) -> None:
    """Many transfers at once, both ways between two accounts and out to a payee: every one
    either happens whole or not at all, and the books balance to the fen."""
    await fetch(dsn, "UPDATE bank_accounts SET balance_fen = 100000 WHERE account_id LIKE '%1001'"
                     " OR account_id LIKE '%2002'")  # 1000.00 each
    requests = [dict(account="1001", to="2002", amount="70"), dict(account="2002", to="1001", amount="30"),
                dict(account="1001", to="1", amount="90")] * 10
    outcomes = await asyncio.gather(*(call(bank, "transfer", confirm="1", call_id=f"race-{n}", **r)
                                      for n, r in enumerate(requests)))
    paid_out = sum(Money.parse(str(r["amount"])).fen for r, o in zip(requests, outcomes, strict=True)
                   if o.result == "ok" and r["to"] == "1")
    after = await balances(dsn)
    assert Money.parse(after["1001"]).fen + Money.parse(after["2002"]).fen == 200000 - paid_out
    moved = await fetch(dsn, "SELECT coalesce(sum(amount_fen), 0) AS s FROM bank_transactions WHERE payee_id = '1'")
    assert moved[0]["s"] == paid_out
    assert all(Money.parse(v).fen >= 0 for k, v in after.items() if k != "3003")
    assert {o.result for o in outcomes} <= {"ok", "refused"}


async def test_a_large_transfer_to_a_payee_registered_today_goes_to_the_risk_desk(dsn: str) -> None:
    await import_demo_customers(dsn)
    await seed_accounts(dsn)  # payee 1 registered just now
    pool = await create_pool(dsn, budget_s=5)
    try:
        registry = ServiceRegistry()
        settings = Settings()
        register_money_services(registry, PgBank(lambda: pool), settings,
                                RuleGuard(PgSecurity(lambda: pool), risk_rules(settings)))
        outcome = await call(registry, "transfer", account="2002", to="1", amount="10000", confirm="1",
                             second_factor=True)
    finally:
        await pool.close()
    assert (outcome.result, outcome.variables["risk_flagged"], outcome.transfer) == ("refused", True, "risk")
    assert (await balances(dsn))["2002"] == "20000.00"
    flags = await fetch(dsn, "SELECT flags FROM customers WHERE customer_id = 'C001'")
    assert '"risk_hold": true' in flags[0]["flags"]
    assert await audit(dsn) == [("transfer", "refused", "risk")]


async def test_each_money_service_result_lands_in_the_calls_services(fake_ari: FakeAri, dsn: str,
                                                                     tmp_path: Path) -> None:
    """Through a real server: a call that is not authenticated is refused its balance; one that
    authenticates hears its accounts, and both results are in `calls list`."""
    await import_demo_customers(dsn)
    await seed_accounts(dsn)
    fake_ari.media_duration = lambda uri: 0.01
    server: Server | None = None

    async def login(request: ServiceCall) -> ServiceOutcome:  # SECURITY's PIN check stands here
        known = request.variables.get("who") == "1"
        facts = CallerFacts(known=True, attributes={"customer_id": "C001"})
        return ServiceOutcome("ok" if known else "refused", authenticated=facts if known else None)

    registry = ServiceRegistry()
    registry.register("test_login", login)
    settings = settings_for(fake_ari, dsn, tmp_path)
    register_money_services(registry, PgBank(lambda: server.pool if server else _no_pool()), settings)
    document = doc({
        "who": {"type": "collect", "variable": "who", "prompt": "{{ sound('enter_pin') }}", "max_length": 1,
                "timeout": 0.2, "next": "login"},
        "login": {"type": "process", "service": "test_login", "next": "bal", "on_refused": "bal"},
        "bal": {"type": "process", "service": "balance", "next": "bye"},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }, start="who")
    flows, _ = load_document(document, services=registry.names())
    server = await Server.start(settings, flows=flows, services=registry)
    shutdown = asyncio.Event()
    task = asyncio.create_task(server.run(shutdown))
    try:
        await fake_ari.wait_connected()
        line = Hotline(server, fake_ari, dsn, shutdown, task)
        stranger = await line.call("13900000001")
        await fake_ari.press(stranger, "2")
        member = await line.call("13800138000")
        await fake_ari.press(member, "1")
        refused, served = await line.wait_ended(stranger), await line.wait_ended(member)
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 15)
    assert [s["service"] + ":" + s["result"] for s in refused["services"]] == ["test_login:refused", "balance:refused"]
    assert [s["service"] + ":" + s["result"] for s in served["services"]] == ["test_login:ok", "balance:ok"]
    assert "sound:hotline/zh/your_balance_is" in line.played(member)  # C001 speaks zh
    assert not [uri for uri in line.played(stranger) if uri.endswith("/your_balance_is")]


def _no_pool() -> asyncpg.Pool:
    raise RuntimeError("the server has not started")


def test_a_money_setting_that_is_not_an_exact_amount_is_a_configuration_error() -> None:
    for bad in ("5000.001", "lots", "5e3"):
        with pytest.raises(ConfigError, match="HOTLINE_TRANSFER_DAILY_LIMIT"):
            register_money_services(ServiceRegistry(), PgBank(_no_pool), Settings(transfer_daily_limit=bad))


async def test_each_operation_is_one_log_line_with_the_call_and_never_a_card_number(
        bank: ServiceRegistry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.banking")
    await call(bank, "card_loss", card="6222020000001001")
    await call(bank, "balance", authenticated=False, call_id="call-2")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "event=banking_operation" in lines[0] and "call=call-1" in lines[0] and "result=ok" in lines[0]
    assert "call=call-2" in lines[1] and "refusal=not_authenticated" in lines[1]
    assert "6222020000001001" not in caplog.text and "62220200" not in caplog.text


async def test_the_daily_limit_counts_the_banks_day_not_the_servers(bank: ServiceRegistry, dsn: str) -> None:
    """The day starts at midnight in the bank's zone (the calendar's, default Asia/Shanghai): of
    two transfers a minute either side of that midnight, only the later one counts for today."""
    for n, minutes in enumerate((-1, 1)):
        await fetch(dsn, "INSERT INTO bank_transactions (receipt, idempotency_key, customer_id, kind, from_account,"
                         " payee_id, amount_fen, created_at) VALUES ($1, $1, 'C001', 'transfer', '6222000000002002',"
                         " '1', 300000, (date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai')"
                         " AT TIME ZONE 'Asia/Shanghai') + make_interval(mins => $2))", f"old-{n}", minutes)
    ok = await call(bank, "transfer", account="2002", to="1", amount="2999", confirm="1")
    assert ok.result == "ok"  # 3000.00 today + 2999.00 <= 6000.00
    over = await call(bank, "transfer", account="2002", to="1", amount="2", confirm="1", call_id="call-2")
    assert over.variables["refusal"] == "daily_limit"


async def test_an_account_number_with_letters_is_heard_by_its_last_four_digits(dsn: str) -> None:
    await import_demo_customers(dsn)
    await seed_accounts(dsn, "customer_id,account_id,kind,currency,balance\nC001,SAV-0001-2345,savings,CNY,5\n"
                             "C001,CUR_A,current,CNY,7\n")
    pool = await create_pool(dsn, budget_s=5)
    try:
        registry = ServiceRegistry()
        register_money_services(registry, PgBank(lambda: pool), Settings())
        outcome = await call(registry, "balance")
    finally:
        await pool.close()
    sounds = [item.id for item in outcome.say if isinstance(item, Sound)]
    assert sounds == ["your_balance_is", "digits/7", "yuan",  # CUR_A: no digits to say, no "ending"
                      "digits/2", "digits/3", "digits/4", "digits/5", "your_balance_is", "digits/5", "yuan"]
    spoken = " ".join(getattr(item, "text", "") for item in outcome.say)
    assert spoken.count("ending") == 1


async def test_a_customer_is_found_by_account_number_or_by_the_card_number_typed_in_full(dsn: str) -> None:
    await import_demo_customers(dsn)
    await seed_accounts(dsn)
    async with connection(dsn) as conn:
        assert await customer_by_account(conn, "6222000000004004") == "C002"
        assert await customer_by_card(conn, "6258000000003003") == "C001"
        assert await customer_by_card(conn, "6258 0000 0000 3003") == "C001"
        assert await customer_by_card(conn, "3003") is None  # the last 4 digits identify no one
        assert await customer_by_account(conn, "4004") is None


async def test_a_one_time_code_authorises_one_large_transfer_not_every_later_one(bank: ServiceRegistry,
                                                                                dsn: str) -> None:
    first = await call(bank, "transfer", account="2002", to="1001", amount="6000", confirm="1", second_factor=True)
    assert (first.result, first.variables["second_factor"]) == ("ok", False)  # spent: the runner merges this
    second = await call(bank, "transfer", account="2002", to="1001", amount="6000", confirm="1", call_id="call-2",
                        **first.variables)
    assert (second.result, second.variables["refusal"]) == ("refused", "needs_second_factor")
    assert (await balances(dsn))["2002"] == "14000.00"


async def test_a_bank_that_cannot_be_reached_fails_the_service_and_moves_nothing(
        dsn: str, db_proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    """The runner turns the raised error into `failed`; the service says which call it failed."""
    await import_demo_customers(dsn)
    await seed_accounts(dsn)
    pool = await create_pool(db_proxy.through(dsn), budget_s=0.5)
    try:
        registry = ServiceRegistry()
        register_money_services(registry, PgBank(lambda: pool), Settings())
        db_proxy.go_down()
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await asyncio.wait_for(call(registry, "transfer", account="2002", to="1001", amount="10", confirm="1"), 30)
    finally:
        pool.terminate()
    assert "event=banking_failed" in caplog.text and "call=call-1" in caplog.text
    assert (await balances(dsn))["2002"] == "20000.00"


async def test_bill_lookup_tells_the_caller_what_bill_payment_would_pay_before_they_confirm(
        bank: ServiceRegistry, dsn: str) -> None:
    quote = await call(bank, "bill_lookup", language="en")
    assert quote.result == "ok"
    assert {k: quote.variables[k] for k in ("bill_amount", "biller")} == {"bill_amount": "300.00",
                                                                          "biller": "City Power"}
    sounds = [item.id for item in quote.say if isinstance(item, Sound)]
    assert sounds[:4] == ["digits/3", "digits/hundred", "yuan", f"date/month_{date.fromisoformat(quote.variables['bill_due_date']).month}"]
    assert (await balances(dsn))["1001"] == "1000.00"  # looking moves nothing
    assert (await call(bank, "bill_payment", confirm="1")).variables["amount_paid"] == "300.00"
    none = await call(bank, "bill_lookup", call_id="call-2")
    assert (none.result, none.variables["refusal"]) == ("refused", "no_bill")
    refused = await call(bank, "bill_lookup", authenticated=False, call_id="call-3")
    assert (refused.result, refused.say) == ("refused", [])


async def test_two_calls_paying_the_same_bill_at_once_pay_it_once(bank: ServiceRegistry, dsn: str) -> None:
    outcomes = await asyncio.gather(*(call(bank, "bill_payment", confirm="1", call_id=f"race-{n}") for n in range(8)))
    assert sorted(o.result for o in outcomes) == ["ok"] + ["refused"] * 7
    assert {o.variables["refusal"] for o in outcomes if o.result == "refused"} == {"no_bill"}
    assert (await balances(dsn))["1001"] == "700.00"
