"""A whole phone-banking security call on the real server (fake ARI, real PostgreSQL, the services
`hotline serve` wires): PIN check, greeting by name, a one-time code read from the outbox, a PIN
change — and afterwards neither the PIN, nor the code, nor the new PIN is in any log line or any
stored row (the code only until the SMS gateway stand-in marks it sent)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agi_app.banking.pin import verify_secret
from agi_app.db.pool import connection
from agi_app.db.repositories.security import mark_sent, unsent_codes
from agi_app.flows.loader import load_document
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import every_table, fetch, running_hotline, settings_for, without_times
from tests.fast.flowkit import doc
from tests.support.banking_security import add_customer

PIN, NEW_PIN = "739164", "528046"


def secure(variable: str, sound: str, next_ref: str, length: int = 6) -> dict[str, object]:
    return {"type": "collect", "prompt": f"{{{{ sound('{sound}') }}}}", "variable": variable, "secure": True,
            "min_length": length, "max_length": length, "timeout": 5, "next": next_ref}


FLOWS = doc({
    "pin": secure("pin", "enter_pin", "auth"),
    "auth": {"type": "process", "service": "authenticate", "next": "check", "on_refused": "bye"},
    "check": {"type": "condition", "branches": [{"if": {"authenticated": True}, "next": "hello"}], "else": "bye"},
    "hello": {"type": "announcement", "prompt": "{{ sound('welcome') }} {{ customer.name }}", "next": "send"},
    "send": {"type": "process", "service": "otp_send", "next": "code", "on_refused": "bye"},
    "code": secure("otp", "enter_code", "verify"),
    "verify": {"type": "process", "service": "otp_verify", "next": "new", "on_refused": "bye"},
    "new": secure("new_pin", "new_pin", "again"),
    "again": secure("new_pin_again", "new_pin_again", "change"),
    "change": {"type": "process", "service": "pin_change", "next": "bye", "on_refused": "bye"},
    "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
}, start="pin", destinations={"general": {"context": "hotline-agents", "extension": "general"},
                              "risk": {"context": "hotline-agents", "extension": "risk"}})


async def test_pin_code_and_new_pin_leave_no_trace_after_an_authenticated_pin_change(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with connection(dsn) as conn:
        await add_customer(conn, "C100", phone="13800138000", name="Li Na", pin=PIN)
    flows, _ = load_document(FLOWS, version=1)
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, secure_quiet_gap_ms=150)
    async with running_hotline(fake_ari, dsn, settings, flows) as line:
        call = await line.call("13800138000")
        await line.heard(call, "sound:hotline/en/enter_pin")
        await fake_ari.press(call, PIN)
        await line.heard(call, "sound:hotline/en/enter_code")
        async with connection(dsn) as conn:  # the SMS gateway stand-in: read the code, send it, mark it sent
            [message] = await unsent_codes(conn)
            await mark_sent(conn, message.id)
        assert message.phone == "13800138000"
        await fake_ari.press(call, message.code)
        await line.heard(call, "sound:hotline/en/new_pin")
        await fake_ari.press(call, NEW_PIN)
        await line.heard(call, "sound:hotline/en/new_pin_again")
        await fake_ari.press(call, NEW_PIN)
        row = await line.wait_ended(call)
    assert row["path"] == ["pin", "auth", "check", "hello", "send", "code", "verify", "new", "again", "change", "bye"]
    assert [s["result"] for s in row["services"]] == ["ok"] * 4, row["services"]
    [stored] = await fetch(dsn, "SELECT pin_hash FROM customer_pins WHERE customer_id = 'C100'")
    assert verify_secret(NEW_PIN, stored["pin_hash"])
    assert "event=authenticated" in caplog.text and "customer=C100" in caplog.text
    tables = without_times(await every_table(dsn))
    assert "auth_attempts" in tables and "otp_outbox" in tables
    logged = without_times(caplog.text)
    for secret in (PIN, message.code, NEW_PIN):
        assert secret not in logged, secret
        assert secret not in tables, secret
