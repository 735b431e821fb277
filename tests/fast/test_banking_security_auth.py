"""The PIN check against real PostgreSQL through the flow runner: authentication, the lockout
across calls (and across servers: concurrent attempts share one count), identification by
customer number, the attempt log, and the PIN-failure risk rule."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from agi_app.banking.auth import Attempt, LockoutPolicy
from agi_app.banking.pin import verify_in_thread
from agi_app.banking.risk import RiskRules
from agi_app.caller_facts import CallerFacts
from agi_app.db.pool import create_pool
from agi_app.db.repositories.security import PgSecurity, auth_attempts
from agi_app.flows.services import ServiceCall, ServiceRegistry
from agi_app.media.items import Speech
from agi_app.secure import SecretDigits
from tests.fast.conftest import import_demo_customers
from tests.fast.flowkit import doc, run_flow
from tests.support.banking_money import seed_accounts
from tests.support.banking_security import add_customer, facts_of, security_registry

PIN = "246810"


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    db = await create_pool(dsn)
    async with db.acquire() as conn:
        await add_customer(conn, "C100", phone="13900000100", name="Li Na", pin=PIN)
        await add_customer(conn, "C200", phone="13900000200", name="Zhao Lei")  # no PIN set
    yield db
    await db.close()


def login(*, method: str | None = None) -> dict[str, Any]:
    """[number →] pin → authenticate → authenticated? → a greeting by name; refused → goodbye."""
    params = {"method": method} if method else {}
    nodes: dict[str, Any] = {
        "pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                "min_length": 6, "max_length": 6, "timeout": 0.2, "next": "auth"},
        "auth": {"type": "process", "service": "authenticate", "params": params, "next": "check",
                 "on_refused": "refused"},
        "check": {"type": "condition", "branches": [{"if": {"authenticated": True}, "next": "hello"}],
                  "else": "refused"},
        "hello": {"type": "announcement", "prompt": "Hello {{ customer.name }}", "next": "bye"},
        "refused": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
        "bye": {"type": "hangup"},
    }
    if method:
        # not secure here: digits typed ahead past a secure collect are discarded (by design), and the
        # test types everything ahead
        nodes["number"] = {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "number",
                           "max_length": 19, "timeout": 0.2, "next": "pin"}
    return doc(nodes, start="number" if method else "pin")


async def call(registry: ServiceRegistry, digits: str, facts: CallerFacts | None = None, *,
               method: str | None = None) -> tuple[Any, Any]:
    record, _, _, ctx = await run_flow(login(method=method), digits=digits, facts=facts or CallerFacts(),
                                       services=registry)
    return record, ctx


async def test_the_right_pin_authenticates_the_caller_who_is_then_greeted_by_name(pool: asyncpg.Pool) -> None:
    me = await facts_of(pool, "C100")
    record, ctx = await call(security_registry(pool), PIN + "#", me)
    assert record.path == ["pin", "auth", "check", "hello", "bye"] and ctx.authenticated
    assert ctx.facts.attributes["customer_id"] == "C100" and ctx.variables["pin"] is None
    [attempt] = await auth_attempts(pool)
    assert (attempt["call_id"], attempt["customer_id"], attempt["method"], attempt["result"]) == (
        record.call_id, "C100", "phone", "ok")


async def test_three_wrong_pins_lock_phone_banking_across_calls_and_then_the_right_pin_is_refused(
        pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    for _ in range(3):
        record, ctx = await call(registry, "111111#", me)
        assert record.path == ["pin", "auth", "refused"] and not ctx.authenticated
    assert ctx.variables["auth_refusal"] == "locked"
    record, ctx = await call(registry, PIN + "#", me)
    assert not ctx.authenticated and ctx.variables["auth_refusal"] == "locked"
    assert [a["result"] for a in await auth_attempts(pool, customer_id="C100")] == [
        "wrong_pin", "wrong_pin", "wrong_pin", "locked"]


async def test_the_lockout_is_the_configured_length_and_ends(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool, lockout=LockoutPolicy(max_failures=2, lockout=timedelta(minutes=7))), \
        await facts_of(pool, "C100")
    for _ in range(2):
        await call(registry, "111111#", me)
    locked_for = await pool.fetchval("SELECT locked_until - now() FROM customer_pins WHERE customer_id = 'C100'")
    assert timedelta(minutes=6) < locked_for <= timedelta(minutes=7)
    await pool.execute("UPDATE customer_pins SET locked_until = now() - interval '1 second'")
    _, ctx = await call(registry, PIN + "#", me)
    assert ctx.authenticated
    assert await pool.fetchval("SELECT failures FROM customer_pins WHERE customer_id = 'C100'") == 0


async def test_a_good_pin_resets_the_count_of_wrong_ones(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    for digits in ("111111#", "111111#", PIN + "#", "111111#", "111111#"):
        await call(registry, digits, me)
    _, ctx = await call(registry, PIN + "#", me)
    assert ctx.authenticated


async def test_concurrent_wrong_pins_from_several_servers_share_one_count(pool: asyncpg.Pool) -> None:
    """Four servers (four connections) try a wrong PIN at once: the row lock serialises them."""
    stores = [PgSecurity(pool) for _ in range(4)]

    async def wrong(stored_hash: str) -> bool:
        return await verify_in_thread("000000", stored_hash)

    verdicts = await asyncio.gather(*(store.check_pin(Attempt(f"call-{i}", "C100", "phone"), wrong, LockoutPolicy())
                                      for i, store in enumerate(stores)))
    assert sorted(v.result for v in verdicts) == ["locked", "locked", "wrong_pin", "wrong_pin"]
    assert sum(v.wrong_pin for v in verdicts) == 3  # the fourth was refused without a check
    assert await pool.fetchval("SELECT failures FROM customer_pins WHERE customer_id = 'C100'") == 3


async def test_an_unknown_caller_authenticates_with_customer_number_and_pin(pool: asyncpg.Pool) -> None:
    record, ctx = await call(security_registry(pool), "100#" + PIN + "#", method="customer")
    assert not ctx.authenticated  # customer ids are not digits-only here: "100" matches nobody
    await pool.execute("INSERT INTO customers (customer_id, name, segment, language) VALUES ('700100', 'Sun Li',"
                       " 'standard', 'zh')")
    await PgSecurity(pool).set_pin("700100", (await pool.fetchval(
        "SELECT pin_hash FROM customer_pins WHERE customer_id = 'C100'")), call_id="", actor="tester")
    record, ctx = await call(security_registry(pool), "700100#" + PIN + "#", method="customer")
    assert ctx.authenticated and ctx.facts.attributes["name"] == "Sun Li"
    attempts = await auth_attempts(pool)
    assert [(a["customer_id"], a["method"], a["result"]) for a in attempts] == [
        (None, "customer", "unknown"), ("700100", "customer", "ok")]


async def test_a_known_number_with_no_pin_set_is_refused(pool: asyncpg.Pool) -> None:
    _, ctx = await call(security_registry(pool), PIN + "#", await facts_of(pool, "C200"))
    assert not ctx.authenticated and ctx.variables["auth_refusal"] == "unverified"


async def test_an_unknown_number_without_a_typed_identity_is_never_authenticated(pool: asyncpg.Pool) -> None:
    _, ctx = await call(security_registry(pool), PIN + "#")
    assert not ctx.authenticated
    [attempt] = await auth_attempts(pool)
    assert (attempt["customer_id"], attempt["result"]) == (None, "unknown")


async def test_five_wrong_pins_within_a_day_flag_the_customer_and_send_the_call_to_the_risk_desk(
        pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await pool.execute("INSERT INTO auth_attempts (at, call_id, customer_id, method, result) SELECT"
                       " now() - interval '3 hours', 'earlier', 'C100', 'phone', 'wrong_pin' FROM generate_series(1, 4)")
    await pool.execute("INSERT INTO auth_attempts (at, call_id, customer_id, method, result) VALUES"
                       " (now() - interval '25 hours', 'old', 'C100', 'phone', 'wrong_pin')")
    document = login()
    document["destinations"]["risk"] = {"context": "hotline-agents", "extension": "risk"}
    record, channel, _, ctx = await run_flow(document, digits="111111#", facts=await facts_of(pool, "C100"),
                                             services=security_registry(pool))
    assert channel.continued_to == ("hotline-agents", "risk", 1) and record.transfer_target == "risk"
    assert await pool.fetchval("SELECT flags ->> 'risk_hold' FROM customers WHERE customer_id = 'C100'") == "true"
    assert await pool.fetchval("SELECT detail ->> 'rule' FROM security_events WHERE kind = 'risk_flag'") == "pin_failures"
    assert "event=risk_refused" in caplog.text


async def test_four_wrong_pins_within_a_day_raise_no_flag(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO auth_attempts (at, call_id, customer_id, method, result) SELECT"
                       " now() - interval '3 hours', 'earlier', 'C100', 'phone', 'wrong_pin' FROM generate_series(1, 3)")
    record, channel, _, _ = await run_flow(login(), digits="111111#", facts=await facts_of(pool, "C100"),
                                           services=security_registry(pool))
    assert record.path == ["pin", "auth", "refused"] and channel.continued_to is None
    assert await pool.fetchval("SELECT flags ->> 'risk_hold' FROM customers WHERE customer_id = 'C100'") is None


@pytest.mark.parametrize(("method", "number"), [("card", "6222020000001001"), ("account", "6222000000002002")])
async def test_a_caller_from_any_number_authenticates_with_card_or_account_number_and_pin(
        pool: asyncpg.Pool, dsn: str, method: str, number: str) -> None:
    await import_demo_customers(dsn)
    await seed_accounts(dsn)
    await pool.execute("INSERT INTO customer_pins (customer_id, pin_hash) SELECT 'C001', pin_hash FROM customer_pins"
                       " WHERE customer_id = 'C100'")
    record, ctx = await call(security_registry(pool), number + "#" + PIN + "#", method=method)
    assert ctx.authenticated and ctx.facts.attributes["customer_id"] == "C001"
    [attempt] = await auth_attempts(pool, call_id=record.call_id)
    assert (attempt["customer_id"], attempt["method"], attempt["result"]) == ("C001", method, "ok")
    _, stranger = await call(security_registry(pool), "6222999999999999#" + PIN + "#", method=method)
    assert not stranger.authenticated


async def test_the_pin_failure_rule_is_configurable(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO auth_attempts (call_id, customer_id, method, result)"
                       " VALUES ('earlier', 'C100', 'phone', 'wrong_pin')")
    document = login()
    document["destinations"]["risk"] = {"context": "hotline-agents", "extension": "risk"}
    _, channel, _, _ = await run_flow(document, digits="111111#", facts=await facts_of(pool, "C100"),
                                      services=security_registry(pool, rules=RiskRules(max_pin_failures=2)))
    assert channel.continued_to == ("hotline-agents", "risk", 1)


async def test_a_locked_caller_is_told_for_how_long_and_offered_an_agent(pool: asyncpg.Pool) -> None:
    registry = security_registry(pool, lockout=LockoutPolicy(max_failures=1, lockout=timedelta(minutes=45)))
    authenticate = registry.get("authenticate")
    assert authenticate is not None
    me = await facts_of(pool, "C100")
    assert me is not None
    for language in ("en", "zh"):
        outcome = await authenticate(ServiceCall("authenticate", "call-1", "13900000100", "95000", language, me,
                                                 {"pin": SecretDigits("111111")}))
        [said] = outcome.say
        assert isinstance(said, Speech) and "45" in said.text and ("press 0" in said.text or "请按0" in said.text)
        assert outcome.result == "refused" and outcome.variables["auth_refusal"] == "locked"


async def test_one_call_cannot_try_pins_on_customer_after_customer(pool: asyncpg.Pool) -> None:
    """The lockout is per customer; a call guessing across customers is stopped after as many
    failures as would lock one customer, and its further attempts check no PIN."""
    registry = security_registry(pool)
    authenticate = registry.get("authenticate")
    assert authenticate is not None
    for customer in ("C100", "C200", "C300", "C100"):
        outcome = await authenticate(ServiceCall("authenticate", "call-7", "13900000999", "95000", "en",
                                                 CallerFacts(), {"number": customer, "pin": SecretDigits("111111")},
                                                 {"method": "customer"}))
        assert outcome.result == "refused"
    assert [a["result"] for a in await auth_attempts(pool, call_id="call-7")] == [
        "wrong_pin", "no_pin", "unknown", "locked"]
    assert await pool.fetchval("SELECT failures FROM customer_pins WHERE customer_id = 'C100'") == 1
