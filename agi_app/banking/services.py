"""The money services `process` nodes call: `balance`, `bill_lookup`, `bill_payment`, `transfer`,
`card_loss`.

Each takes what it needs from the call and nothing else:

* who: only an authenticated call (`ServiceCall.authenticated`, set by SECURITY's PIN check) and
  only the customer id in `facts.attributes["customer_id"]`; anything else is `refused`;
* what: call variables the flow collected — `account` (the account to pay from: its number or its
  last 4 digits; default the first current account), `to` (transfer: an own account's number or
  last 4 digits, or a registered payee's number), `amount` (transfer: yuan as the caller keys it,
  a whole number such as "500"; "500.50" is accepted from flows that compose one), `confirm` ("1":
  the caller pressed 1 at the flow's "press 1 to confirm, 2 to cancel" — a money-moving service
  without it moves nothing), `card` (card loss: the card's last 4 digits; none blocks every card),
  `second_factor` (True after SECURITY's `otp_verify`; a large transfer that is done sets it back
  to False: one code, one transfer);
* and what it hands back: variables `receipt` (digits, for the flow to read back) and `refusal`
  (a reason from `accounts.Reason`, or None), `needs_second_factor`/`risk_flagged` when those
  stopped a transfer, and `say` for the balance and the reason of a refusal. When SECURITY's risk
  guard refuses a transfer or bill payment (e.g. a large transfer to a payee registered today) the
  outcome also sends the call to the risk desk (`params.risk_destination`, default `risk`).

Every request, done or not, leaves an audit row (`banking_operations`) with the call id, the
customer and the result. The idempotency key is the call, the service and its inputs: a retried
request in one call returns the first receipt instead of paying twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agi_app.banking.accounts import Account, Bank, Order, Outcome, Reason
from agi_app.banking.money import Money, MoneyError
from agi_app.banking.risk import RiskGuard
from agi_app.config import ConfigError, Settings
from agi_app.flows.prompts import render
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.logs import log_event
from agi_app.media.items import MediaItem
from agi_app.secure import SecretDigits

log = logging.getLogger("hotline.banking")

CONFIRMED = "1"

_KIND_WORDS = {
    "en": {"savings": "savings account", "current": "current account", "credit": "credit card account"},
    "zh": {"savings": "储蓄账户", "current": "活期账户", "credit": "信用卡账户"},
}
_ACCOUNT_PROMPT = {
    "en": "{% if ending %}Account ending {{ digits(ending) }}, {% endif %}{{ kind }}."
          " {{ sound('your_balance_is') }} {{ money }}",
    "zh": "{% if ending %}尾号{{ digits(ending) }}的{% endif %}{{ kind }}，{{ sound('your_balance_is') }}{{ money }}",
}
_AMOUNT_PROMPT = {"*": "{{ amount(value) }}"}
_BILL_PROMPT = {
    "en": "Your bill from {{ biller }}: {{ amount(bill) }}, due {{ date(due) }}.",
    "zh": "您的{{ biller }}账单金额为{{ amount(bill) }}，到期日为{{ date(due) }}。",
}
_NO_ACCOUNTS = {"en": "You have no accounts with us that can be read by phone.",
                "zh": "您没有可通过电话查询的账户。"}
_RISK_DESK = {"en": "For your security, a colleague will help you with this. Please hold.",
              "zh": "为了您的资金安全，将为您转接专员办理，请稍候。"}
_REFUSALS: dict[Reason, dict[str, str]] = {
    "no_account": {"en": "Sorry, that account cannot be used by phone.", "zh": "抱歉，该账户无法通过电话办理。"},
    "no_bill": {"en": "You have no bill to pay.", "zh": "您目前没有待缴账单。"},
    "no_payee": {"en": "Sorry, that is not one of your accounts or registered payees.",
                 "zh": "抱歉，收款方不是您的账户或已登记的收款人。"},
    "insufficient_funds": {"en": "Sorry, the balance is not sufficient.", "zh": "抱歉，账户余额不足。"},
    "daily_limit": {"en": "Sorry, this exceeds your daily transfer limit.", "zh": "抱歉，已超过每日转账限额。"},
    "card_blocked": {"en": "Sorry, the card of this account has been blocked.", "zh": "抱歉，该账户的银行卡已挂失。"},
    "bad_amount": {"en": "Sorry, that amount is not valid.", "zh": "抱歉，金额无效。"},
    "no_card": {"en": "Sorry, we found no such card.", "zh": "抱歉，未找到该银行卡。"},
    "same_account": {"en": "Sorry, you cannot transfer to the same account.", "zh": "抱歉，不能转入同一账户。"},
}


def register_money_services(registry: ServiceRegistry, bank: Bank, settings: Settings,
                            risk: RiskGuard | None = None) -> None:
    """Offer the four money services to `process` nodes; `risk` (when given) vets every transfer."""
    services = MoneyServices(bank, settings, risk)
    registry.register("balance", services.balance)
    registry.register("bill_lookup", services.bill_lookup)
    registry.register("bill_payment", services.bill_payment)
    registry.register("transfer", services.transfer)
    registry.register("card_loss", services.card_loss)


class MoneyServices:
    def __init__(self, bank: Bank, settings: Settings, risk: RiskGuard | None) -> None:
        self.bank = bank
        self.risk = risk
        self.second_factor_above = _setting(settings, "transfer_second_factor_above")
        self.daily_limit = _setting(settings, "transfer_daily_limit")

    async def balance(self, call: ServiceCall) -> ServiceOutcome:
        return await self._guarded(call, self._balance)

    async def bill_lookup(self, call: ServiceCall) -> ServiceOutcome:
        return await self._guarded(call, self._bill_lookup)

    async def bill_payment(self, call: ServiceCall) -> ServiceOutcome:
        return await self._guarded(call, self._bill_payment)

    async def transfer(self, call: ServiceCall) -> ServiceOutcome:
        return await self._guarded(call, self._transfer)

    async def card_loss(self, call: ServiceCall) -> ServiceOutcome:
        return await self._guarded(call, self._card_loss)

    async def _guarded(self, call: ServiceCall,
                       operation: Callable[[ServiceCall, str], Awaitable[ServiceOutcome]]) -> ServiceOutcome:
        """Refuse an unauthenticated call; audit a bank that fails (the runner says `failed`)."""
        customer = customer_of(call)
        try:
            if customer is None:
                await self.bank.record(order(call, ""), call.service, Outcome.refused("not_authenticated"))
                outcome = _refused(call, "not_authenticated", speak=False)
            else:
                outcome = await operation(call, customer)
        except Exception as exc:
            log_event(log, "banking_failed", level=logging.ERROR, call=call.call_id, customer=customer,
                      operation=call.service, error=type(exc).__name__)
            try:
                await self.bank.record(order(call, customer or ""), call.service, Outcome())
            except Exception as audit_exc:  # noqa: BLE001 - the bank's own failure is the one to raise
                log_event(log, "banking_audit_failed", level=logging.ERROR, call=call.call_id,
                          operation=call.service, error=type(audit_exc).__name__)
            raise
        log_event(log, "banking_operation", call=call.call_id, customer=customer, operation=call.service,
                  result=outcome.result, refusal=outcome.variables.get("refusal"),
                  receipt=outcome.variables.get("receipt"))
        return outcome

    async def _balance(self, call: ServiceCall, customer: str) -> ServiceOutcome:
        accounts = await self.bank.accounts(customer)
        await self.bank.record(order(call, customer), "balance", Outcome(receipt=""))
        say = [item for account in accounts for item in say_account(account, call.language)]
        return ServiceOutcome("ok", say or render(_NO_ACCOUNTS, call.language, {}),
                              {"refusal": None, "accounts": len(accounts)})

    async def _bill_lookup(self, call: ServiceCall, customer: str) -> ServiceOutcome:
        """What `bill_payment` would pay, said and set (`bill_amount`, `bill_due_date`, `biller`)
        for the flow's confirmation step; moves nothing."""
        bill = await self.bank.due_bill(customer)
        if bill is None:
            return await self._refuse(call, customer, "no_bill")
        await self.bank.record(order(call, customer), "bill_lookup", Outcome(receipt="", amount=bill.amount))
        say = render(_BILL_PROMPT, call.language, {"biller": bill.biller_name, "bill": bill.amount.yuan,
                                                   "due": bill.due_date})
        return ServiceOutcome("ok", say, {"refusal": None, "bill_amount": str(bill.amount),
                                          "bill_due_date": bill.due_date.isoformat(), "biller": bill.biller_name})

    async def _bill_payment(self, call: ServiceCall, customer: str) -> ServiceOutcome:
        account = text_variable(call.variables, "account")
        if call.variables.get("confirm") != CONFIRMED:
            return await self._refuse(call, customer, "not_confirmed")
        if self.risk is not None and not (await self.risk.check(customer, "bill_payment", call_id=call.call_id)).allowed:
            return await self._to_risk_desk(call, customer, None)
        outcome = await self.bank.pay_bill(order(call, customer, account), account)
        return _outcome(call, outcome)

    async def _transfer(self, call: ServiceCall, customer: str) -> ServiceOutcome:
        source, to = text_variable(call.variables, "account"), text_variable(call.variables, "to")
        try:
            amount = Money.parse(text_variable(call.variables, "amount") or "")
        except MoneyError:
            return await self._refuse(call, customer, "bad_amount")
        if amount.fen <= 0 or to is None:
            return await self._refuse(call, customer, "bad_amount" if to else "no_payee")
        if call.variables.get("confirm") != CONFIRMED:
            return await self._refuse(call, customer, "not_confirmed")
        large = amount > self.second_factor_above
        if large and call.variables.get("second_factor") is not True:
            return await self._refuse(call, customer, "needs_second_factor", amount)
        if self.risk is not None:
            payee_added = await self.bank.payee_registered_at(customer, to)
            verdict = await self.risk.check(customer, "transfer", amount.yuan, call_id=call.call_id,
                                            payee_added_at=payee_added)
            if not verdict.allowed:
                return await self._to_risk_desk(call, customer, amount)
        outcome = await self.bank.transfer(order(call, customer, source, to, str(amount)), source, to, amount,
                                           self.daily_limit)
        done = _outcome(call, outcome)
        if large and outcome.ok:  # a one-time code authorises one large transfer, not the rest of the call
            return dataclasses.replace(done, variables={**done.variables, "second_factor": False})
        return done

    async def _card_loss(self, call: ServiceCall, customer: str) -> ServiceOutcome:
        last4 = card_ending(call.variables, "card")
        return _outcome(call, await self.bank.block_card(order(call, customer, last4), last4))

    async def _to_risk_desk(self, call: ServiceCall, customer: str, amount: Money | None) -> ServiceOutcome:
        """The risk guard refused (and flagged the customer): the call goes to the risk desk
        (`params.risk_destination`, default `risk`)."""
        refused = await self._refuse(call, customer, "risk", amount)
        return dataclasses.replace(refused, say=render(_RISK_DESK, call.language, {}),
                                   transfer=str(call.params.get("risk_destination", "risk")))

    async def _refuse(self, call: ServiceCall, customer: str, reason: Reason, amount: Money | None = None) -> ServiceOutcome:
        await self.bank.record(order(call, customer), call.service, Outcome(reason=reason, amount=amount))
        return _refused(call, reason, speak=reason not in ("needs_second_factor", "risk", "not_confirmed"))


def _setting(settings: Settings, name: str) -> Money:
    try:
        return Money.parse(getattr(settings, name))
    except MoneyError as exc:
        raise ConfigError(f"HOTLINE_{name.upper()}={getattr(settings, name)!r} is not an amount like"
                          " 5000.00") from exc


def customer_of(call: ServiceCall) -> str | None:
    """The authenticated customer's id; None unless the call authenticated (the calling number
    alone never authorises anything)."""
    if getattr(call, "authenticated", False) is not True:
        return None
    customer = call.facts.attributes.get("customer_id")
    return customer if isinstance(customer, str) and customer else None


def order(call: ServiceCall, customer: str, *inputs: str | None) -> Order:
    key = ":".join([call.call_id, call.service, *(i or "" for i in inputs)])
    return Order(customer, call.call_id, key)


def text_variable(variables: Mapping[str, Any], name: str) -> str | None:
    """A plain collected value (digits); a secure value (SecretDigits) or anything else is None."""
    value = variables.get(name)
    return value.strip() or None if isinstance(value, str) else None


def card_ending(variables: Mapping[str, Any], name: str) -> str | None:
    """The last 4 digits of a collected card number: what is printed on the card and stored in
    clear (`bank_cards.last4`). Flows collect card digits securely (`menus validate` insists), so
    the digits are revealed here, for the lookup only; None when nothing was collected."""
    value = variables.get(name)
    digits = value.reveal() if isinstance(value, SecretDigits) else value if isinstance(value, str) else ""
    digits = digits.strip()
    return digits[-4:] if digits else None


def say_account(account: Account, language: str) -> list[MediaItem]:
    """"Account ending 1234, savings account. Your available balance is 1,024 yuan 50 fen."."""
    money = render(_AMOUNT_PROMPT, language, {"value": account.balance.yuan}) if account.currency == "CNY" \
        else None
    items = render(_ACCOUNT_PROMPT, language, {"ending": account.ending, "kind": _KIND_WORDS[language][account.kind],
                                               "money": "" if money is not None else
                                               f"{account.balance} {account.currency}"})
    return items + (money or [])


def _outcome(call: ServiceCall, outcome: Outcome) -> ServiceOutcome:
    if outcome.ok:
        return ServiceOutcome("ok", [], {"receipt": outcome.receipt, "refusal": None,
                                         "amount_paid": str(outcome.amount) if outcome.amount else None})
    return _refused(call, outcome.reason or "no_account", speak=True)


def _refused(call: ServiceCall, reason: Reason, *, speak: bool) -> ServiceOutcome:
    variables: dict[str, Any] = {"receipt": None, "refusal": reason}
    if reason == "needs_second_factor":
        variables["needs_second_factor"] = True
    if reason == "risk":
        variables["risk_flagged"] = True
    say = render(_REFUSALS[reason], call.language, {}) if speak and reason in _REFUSALS else []
    return ServiceOutcome("refused", say, variables)
