"""One-time codes through the outbox and the PIN change, against real PostgreSQL through the flow
runner: codes go to the phone on file, expire, work once, allow limited tries; a PIN change needs
authentication, a second factor, the new PIN twice, and the risk rules' consent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest_asyncio

from agi_app.banking.otp import OtpPolicy
from agi_app.banking.pin import verify_secret
from agi_app.caller_facts import CallerFacts
from agi_app.db.pool import create_pool
from agi_app.db.repositories.security import mark_sent, unsent_codes
from agi_app.flows.services import ServiceRegistry
from agi_app.secure import SecretDigits
from tests.fast.flowkit import doc, run_flow
from tests.support.banking_security import add_customer, facts_of, outbox_code, security_registry

PIN = "246810"


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    db = await create_pool(dsn)
    async with db.acquire() as conn:
        await add_customer(conn, "C100", phone="13900000100", name="Li Na", pin=PIN)
    yield db
    await db.close()


def process(service: str, start: bool = False, **params: Any) -> dict[str, Any]:
    return doc({"op": {"type": "process", "service": service, "params": params, "next": "done",
                       "on_refused": "no"},
                "done": {"type": "hangup"}, "no": {"type": "hangup"}}, start="op",
               destinations={"general": {"context": "hotline-agents", "extension": "general"},
                             "risk": {"context": "hotline-agents", "extension": "risk"}})


async def run_service(registry: ServiceRegistry, service: str, facts: CallerFacts | None, *,
                      authenticated: bool = True, variables: dict[str, Any] | None = None) -> Any:
    """One process node, in a call already authenticated (or not) with `variables` collected."""
    from agi_app.flows.services import ServiceCall
    call = ServiceCall(service, "call-1", "13900000100", "95000", "en", facts or CallerFacts(), variables or {},
                       {}, authenticated)
    found = registry.get(service)
    assert found is not None
    return await found(call)


async def test_a_code_goes_to_the_phone_on_file_through_the_outbox_and_verifies_once(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    sent = await run_service(registry, "otp_send", me)
    assert sent.result == "ok"
    [waiting] = await unsent_codes(pool)
    assert (waiting.customer_id, waiting.phone) == ("C100", "13900000100") and len(waiting.code) == 6
    stored_hash = await pool.fetchval("SELECT code_hash FROM otp_outbox")
    assert waiting.code not in stored_hash and verify_secret(waiting.code, stored_hash)
    await mark_sent(pool, waiting.id)
    assert await pool.fetchval("SELECT code FROM otp_outbox") is None  # the clear code is gone once sent
    ok = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(waiting.code)})
    assert ok.result == "ok" and ok.variables["second_factor"] is True and ok.variables["otp"] is None
    again = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(waiting.code)})
    assert again.result == "refused" and "second_factor" not in again.variables


async def test_a_code_used_or_replaced_before_the_gateway_sent_it_is_no_longer_kept_in_clear(
        pool: asyncpg.Pool) -> None:
    """No code can be found after the call, even with no gateway running (the sandbox has none)."""
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    await run_service(registry, "otp_send", me)
    replaced = await outbox_code(pool, "C100")
    await run_service(registry, "otp_send", me)
    used = await outbox_code(pool, "C100")
    assert (await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(used)})).result == "ok"
    assert await pool.fetch("SELECT id FROM otp_outbox WHERE code IS NOT NULL") == [], (used, replaced)


async def test_a_wrong_code_is_refused_and_the_tries_are_limited(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool, otp=OtpPolicy(max_attempts=2)), await facts_of(pool, "C100")
    await run_service(registry, "otp_send", me)
    code = await outbox_code(pool, "C100")
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    for _ in range(2):
        refused = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(wrong)})
        assert refused.variables["otp_refusal"] == "wrong"
    late = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(code)})
    assert late.result == "refused" and late.variables["otp_refusal"] == "exhausted"


async def test_an_expired_code_is_refused(pool: asyncpg.Pool) -> None:
    past = datetime.now(UTC) - timedelta(minutes=10)
    registry, me = security_registry(pool, clock=lambda: past), await facts_of(pool, "C100")
    await run_service(registry, "otp_send", me)
    refused = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(
        await outbox_code(pool, "C100"))})
    assert refused.result == "refused" and refused.variables["otp_refusal"] == "expired"


async def test_a_new_code_voids_the_older_one(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    await run_service(registry, "otp_send", me)
    first = await outbox_code(pool, "C100")
    await run_service(registry, "otp_send", me)
    second = await outbox_code(pool, "C100")
    if first != second:
        old = await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(first)})
        assert old.result == "refused"
    assert (await run_service(registry, "otp_verify", me, variables={"otp": SecretDigits(second)})).result == "ok"


async def test_codes_are_only_for_authenticated_calls(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    assert (await run_service(registry, "otp_send", me, authenticated=False)).result == "refused"
    assert await unsent_codes(pool) == []


def change(new: str, again: str, *, second_factor: bool = True) -> dict[str, Any]:
    return {"new_pin": SecretDigits(new), "new_pin_again": SecretDigits(again), "second_factor": second_factor}


async def test_a_pin_change_with_a_second_factor_stores_only_the_new_hash(pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    changed = await run_service(registry, "pin_change", me, variables=change("135790", "135790"))
    assert changed.result == "ok" and changed.variables == {"new_pin": None, "new_pin_again": None}
    stored = await pool.fetchval("SELECT pin_hash FROM customer_pins WHERE customer_id = 'C100'")
    assert verify_secret("135790", stored) and not verify_secret(PIN, stored)
    assert await pool.fetchval("SELECT call_id FROM security_events WHERE kind = 'pin_change'"
                               " ORDER BY id DESC LIMIT 1") == "call-1"


async def test_a_pin_change_is_refused_without_authentication_second_factor_or_matching_pins(
        pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    before = await pool.fetchval("SELECT pin_hash FROM customer_pins")
    refusals = [
        await run_service(registry, "pin_change", me, authenticated=False, variables=change("135790", "135790")),
        await run_service(registry, "pin_change", me, variables=change("135790", "135790", second_factor=False)),
        await run_service(registry, "pin_change", me, variables=change("135790", "135791")),
        await run_service(registry, "pin_change", me, variables=change("13579", "13579")),
    ]
    assert [r.result for r in refusals] == ["refused"] * 4
    assert refusals[1].variables["needs_second_factor"] is True
    assert await pool.fetchval("SELECT pin_hash FROM customer_pins") == before


async def test_a_second_pin_change_within_a_day_flags_the_customer_and_goes_to_the_risk_desk(
        pool: asyncpg.Pool) -> None:
    registry, me = security_registry(pool), await facts_of(pool, "C100")
    await pool.execute("DELETE FROM security_events")
    assert (await run_service(registry, "pin_change", me, variables=change("135790", "135790"))).result == "ok"
    record, channel, _, _ = await run_flow(process("pin_change"), facts=me, services=registry)
    # run_flow's call is not authenticated: through the runner the service refuses at once
    assert channel.continued_to is None
    second = await run_service(registry, "pin_change", me, variables=change("975310", "975310"))
    assert second.result == "refused" and second.transfer == "risk" and second.variables["risk_flagged"] is True
    assert await pool.fetchval("SELECT flags ->> 'risk_hold' FROM customers") == "true"
    stored = await pool.fetchval("SELECT pin_hash FROM customer_pins")
    assert verify_secret("135790", stored)  # the second change was blocked
    third = await run_service(registry, "pin_change", me, variables=change("975310", "975310"))
    assert third.result == "refused" and third.transfer == "risk"  # held until the bank clears it
