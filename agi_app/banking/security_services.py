"""The security services `process` nodes call: `authenticate`, `otp_send`, `otp_verify`, `pin_change`.

* `authenticate` — the PIN check. Who: the customer the calling number found at call start, or —
  for any caller — the customer, account or card number the flow collected (`params.method`:
  `customer` | `account` | `card`, read from the variable `params.number`, default `number`). The
  PIN is the variable `params.pin` (default `pin`), a secure collect. The calling number alone never
  authorises: the PIN is always checked. `ok` authenticates the call (`ServiceOutcome.authenticated`:
  the customer's facts, so the flow greets them by name); a wrong PIN, a lockout (told, and offered an
  agent), or a caller we cannot identify is `refused`; too many wrong PINs in the risk window send
  the call to the risk desk (`params.risk_destination`, default `risk`). The PIN variable is cleared.
* `otp_send` — a one-time code to the phone on file, through the outbox. Authenticated calls only.
* `otp_verify` — the code in variable `params.code` (default `otp`); `ok` sets `second_factor` True.
* `pin_change` — authenticated, `second_factor` True, the new PIN twice (variables `new_pin` and
  `new_pin_again`, secure collects), six digits, and the risk rules allow it; stores only the hash.

Every attempt is recorded by the stores (auth_attempts, security_events) with the call id, the
customer and the result, never a PIN or a code, and logged once (`event=auth_attempt`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from agi_app.banking.auth import (
    IdentityLookup,
    LockoutPolicy,
    Method,
    PinStore,
    authenticate,
    resolve_identity,
)
from agi_app.banking.otp import OtpPolicy, OtpStore, send_code, verify_code
from agi_app.banking.pin import InvalidPin, check_pin_format, hash_in_thread
from agi_app.banking.risk import RuleGuard
from agi_app.caller_facts import CallerFacts
from agi_app.flows.prompts import render
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.logs import log_event
from agi_app.media.items import MediaItem
from agi_app.secure import SecretDigits

log = logging.getLogger(__name__)

#: The authenticated customer's facts, as flows see a caller (None: no such customer any more).
FactsLoader = Callable[[str], Awaitable[CallerFacts | None]]

_SAY: Mapping[str, Mapping[str, str]] = {
    "wrong_pin": {"en": "Sorry, that PIN is not correct.", "zh": "抱歉，密码不正确。"},
    "locked": {"en": "For your security, phone banking is locked for {{ minutes }} minutes after too many wrong"
                     " PINs. To speak to an agent, press 0.",
               "zh": "为了您的账户安全，密码错误次数过多，电话银行已锁定{{ minutes }}分钟。如需人工服务，请按0。"},
    "unverified": {"en": "Sorry, we could not verify your identity.", "zh": "抱歉，无法验证您的身份。"},
    "risk": {"en": "For your security, we are transferring you to our risk team.",
             "zh": "为了您的账户安全，正在为您转接风险管理专员。"},
    "code_sent": {"en": "A one-time code has been sent to your phone on file.",
                  "zh": "动态验证码已发送至您预留的手机。"},
    "no_phone": {"en": "Sorry, we have no phone number on file to send a code to.",
                 "zh": "抱歉，您没有预留可接收验证码的手机号码。"},
    "code_wrong": {"en": "Sorry, that code is not correct.", "zh": "抱歉，验证码不正确。"},
    "code_expired": {"en": "Sorry, that code is no longer valid. Please ask for a new one.",
                     "zh": "抱歉，验证码已失效，请重新获取。"},
    "needs_auth": {"en": "Please verify your identity first.", "zh": "请先验证您的身份。"},
    "needs_second_factor": {"en": "This needs a one-time code first.", "zh": "此项业务需要先验证动态验证码。"},
    "pin_mismatch": {"en": "Sorry, the two PINs do not match.", "zh": "抱歉，两次输入的密码不一致。"},
    "pin_invalid": {"en": "Sorry, a PIN is six digits.", "zh": "抱歉，密码应为六位数字。"},
    "pin_changed": {"en": "Your PIN has been changed.", "zh": "您的密码已修改成功。"},
}


def _say(key: str, language: str, **values: object) -> list[MediaItem]:
    """One of the sentences above, rendered as the money services' are (`flows.prompts.render`)."""
    return render(_SAY[key], language, values)


@dataclass(frozen=True)
class SecurityServices:
    pins: PinStore
    identities: IdentityLookup
    codes: OtpStore
    guard: RuleGuard
    facts: FactsLoader
    lockout: LockoutPolicy = LockoutPolicy()
    otp: OtpPolicy = OtpPolicy()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def authenticate(self, call: ServiceCall) -> ServiceOutcome:
        pin_var = str(call.params.get("pin", "pin"))
        pin = _secret(call.variables.get(pin_var))
        cleared = {pin_var: None}
        if pin is None:
            return ServiceOutcome("refused", _say("unverified", call.language), cleared)
        method, customer_id = await self._who(call)
        verdict = await authenticate(self.pins, self.lockout, call_id=call.call_id, customer_id=customer_id,
                                     method=method, pin=pin)
        log_event(log, "auth_attempt", call=call.call_id, customer=verdict.customer_id or customer_id,
                  method=method, result=verdict.result)
        if verdict.wrong_pin and verdict.customer_id is not None:
            risk = await self.guard.after_wrong_pin(verdict.customer_id, call_id=call.call_id)
            if not risk.allowed:
                return self._to_risk_desk(call, verdict.customer_id, risk.rule, cleared)
        if verdict.result == "ok" and verdict.customer_id is not None:
            facts = await self.facts(verdict.customer_id)
            if facts is not None:
                return ServiceOutcome("ok", variables=cleared, authenticated=facts)
        if verdict.result == "locked":
            minutes = int(self.lockout.lockout.total_seconds() // 60)
            return ServiceOutcome("refused", _say("locked", call.language, minutes=minutes),
                                  {**cleared, "auth_refusal": "locked"})
        if verdict.result == "wrong_pin":
            return ServiceOutcome("refused", _say("wrong_pin", call.language), {**cleared, "auth_refusal": "wrong_pin"})
        return ServiceOutcome("refused", _say("unverified", call.language), {**cleared, "auth_refusal": "unverified"})

    async def _who(self, call: ServiceCall) -> tuple[Method, str | None]:
        """How the caller named themselves and the customer that names; the calling number's
        customer only when the flow asks for no typed number."""
        method = call.params.get("method")
        if method in ("customer", "account", "card"):
            typed = call.variables.get(str(call.params.get("number", "number")))
            number = typed.reveal() if isinstance(typed, SecretDigits) else str(typed or "")
            found = await resolve_identity(self.identities, cast(Method, method), number) if number else None
            return cast(Method, method), found
        return "phone", call.facts.text("customer_id") if call.facts.known else None

    def _to_risk_desk(self, call: ServiceCall, customer_id: str, rule: str | None,
                      variables: Mapping[str, Any]) -> ServiceOutcome:
        log_event(log, "risk_refused", level=logging.WARNING, call=call.call_id, customer=customer_id, rule=rule)
        return ServiceOutcome("refused", _say("risk", call.language), {**variables, "risk_flagged": True},
                              transfer=str(call.params.get("risk_destination", "risk")))

    async def otp_send(self, call: ServiceCall) -> ServiceOutcome:
        customer_id = _customer(call)
        if customer_id is None:
            return ServiceOutcome("refused", _say("needs_auth", call.language))
        phones = call.facts.attributes.get("phones") or ()
        phone = next(iter(phones), None) if isinstance(phones, list | tuple) else None
        if not phone:
            return ServiceOutcome("refused", _say("no_phone", call.language))
        await send_code(self.codes, self.otp, customer_id=customer_id, phone=str(phone), call_id=call.call_id,
                        now=self.clock())
        log_event(log, "otp_sent", call=call.call_id, customer=customer_id)
        return ServiceOutcome("ok", _say("code_sent", call.language))

    async def otp_verify(self, call: ServiceCall) -> ServiceOutcome:
        customer_id = _customer(call)
        code_var = str(call.params.get("code", "otp"))
        cleared: dict[str, Any] = {code_var: None}
        if customer_id is None:
            return ServiceOutcome("refused", _say("needs_auth", call.language), cleared)
        code = _secret(call.variables.get(code_var))
        result = await verify_code(self.codes, self.otp, customer_id=customer_id,
                                   code=code) if code is not None else "wrong"
        log_event(log, "otp_verify", call=call.call_id, customer=customer_id, result=result)
        if result == "ok":
            return ServiceOutcome("ok", variables={**cleared, "second_factor": True})
        return ServiceOutcome("refused", _say("code_wrong" if result == "wrong" else "code_expired", call.language),
                              {**cleared, "otp_refusal": result})

    async def pin_change(self, call: ServiceCall) -> ServiceOutcome:
        customer_id = _customer(call)
        names = (str(call.params.get("new_pin", "new_pin")), str(call.params.get("confirm_pin", "new_pin_again")))
        cleared: dict[str, Any] = dict.fromkeys(names)
        if customer_id is None:
            return ServiceOutcome("refused", _say("needs_auth", call.language), cleared)
        if call.variables.get("second_factor") is not True:
            return ServiceOutcome("refused", _say("needs_second_factor", call.language),
                                  {**cleared, "needs_second_factor": True})
        first, second = (_secret(call.variables.get(name)) for name in names)
        if first is None or second is None or first != second:
            return ServiceOutcome("refused", _say("pin_mismatch", call.language), cleared)
        try:
            check_pin_format(first.reveal())
        except InvalidPin:
            return ServiceOutcome("refused", _say("pin_invalid", call.language), cleared)
        risk = await self.guard.check(customer_id, "pin_change", call_id=call.call_id)
        if not risk.allowed:
            return self._to_risk_desk(call, customer_id, risk.rule, cleared)
        await self.pins.set_pin(customer_id, await hash_in_thread(first.reveal()), call_id=call.call_id, actor="")
        log_event(log, "pin_changed", call=call.call_id, customer=customer_id)
        return ServiceOutcome("ok", _say("pin_changed", call.language), cleared)


def _secret(value: object) -> SecretDigits | None:
    """Collected secure input (a plain string from a non-secure collect is taken as such)."""
    if isinstance(value, SecretDigits):
        return value
    return SecretDigits(value) if isinstance(value, str) and value else None


def _customer(call: ServiceCall) -> str | None:
    """The authenticated customer, or None: nothing here acts for an unauthenticated call."""
    return call.facts.text("customer_id") if call.authenticated else None


def register_security_services(registry: ServiceRegistry, services: SecurityServices) -> None:
    registry.register("authenticate", services.authenticate)
    registry.register("otp_send", services.otp_send)
    registry.register("otp_verify", services.otp_verify)
    registry.register("pin_change", services.pin_change)
