"""Risk rules: abnormal activity flags the customer (`risk_hold`), blocks the operation, and the
call goes to the risk desk.

The rules (each a `RiskRules` setting, from `Settings`):
- `pin_changes`: a PIN change by phone when `max_pin_changes - 1` were already made by phone
  within `window` (default: the second change within 24 h is refused; the bank's own
  `hotline customers set-pin` does not count);
- `pin_failures`: `max_pin_failures` wrong PINs within `window` (default 5 in 24 h), checked after
  each wrong PIN (the lockout stops a single call far sooner; this catches slow guessing);
- `new_payee_large_transfer`: a transfer of at least `large_transfer` to a payee registered less
  than `new_payee_window` ago.
A customer already on `risk_hold` is refused every guarded operation until the bank clears the flag.

`RiskGuard` is the protocol money-moving services call (`check` before the operation); the rules
read counts and set the flag through a `RiskStore` (PostgreSQL in `agi_app.db.repositories.security`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

Operation = Literal["pin_change", "transfer", "bill_payment", "card_loss", "authentication"]
EventKind = Literal["pin_change", "wrong_pin"]
HOLD_FLAG = "risk_hold"


@dataclass(frozen=True)
class RiskRules:
    window: timedelta = timedelta(hours=24)
    max_pin_changes: int = 2
    max_pin_failures: int = 5
    new_payee_window: timedelta = timedelta(hours=24)
    large_transfer: Decimal = Decimal("10000.00")


@dataclass(frozen=True)
class RiskVerdict:
    allowed: bool
    rule: str | None = None  # the rule that refused, or "risk_hold" (already flagged)


ALLOWED = RiskVerdict(True)


class RiskStore(Protocol):
    async def is_held(self, customer_id: str) -> bool: ...

    async def count_events(self, customer_id: str, kind: EventKind, since: datetime) -> int:
        """PIN changes made, or wrong PINs entered, since `since`."""

    async def flag(self, customer_id: str, rule: str, *, call_id: str) -> None:
        """Set the customer's `risk_hold` flag and record why (one transaction)."""


class RiskGuard(Protocol):
    async def check(self, customer_id: str, operation: Operation, amount: Decimal | None = None, *,
                    call_id: str = "", payee_added_at: datetime | None = None) -> RiskVerdict:
        """Whether the operation may go ahead; a refusal has already flagged the customer."""


class RuleGuard:
    """The bank's rules over a `RiskStore`."""

    def __init__(self, store: RiskStore, rules: RiskRules = RiskRules(),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.rules, self.clock = store, rules, clock

    async def check(self, customer_id: str, operation: Operation, amount: Decimal | None = None, *,
                    call_id: str = "", payee_added_at: datetime | None = None) -> RiskVerdict:
        if await self.store.is_held(customer_id):
            return RiskVerdict(False, HOLD_FLAG)
        rule = await self._broken_rule(customer_id, operation, amount, payee_added_at)
        if rule is None:
            return ALLOWED
        await self.store.flag(customer_id, rule, call_id=call_id)
        return RiskVerdict(False, rule)

    async def after_wrong_pin(self, customer_id: str, *, call_id: str) -> RiskVerdict:
        """Called once a wrong PIN is recorded: too many within the window flags the customer."""
        since = self.clock() - self.rules.window
        if await self.store.count_events(customer_id, "wrong_pin", since) >= self.rules.max_pin_failures:
            await self.store.flag(customer_id, "pin_failures", call_id=call_id)
            return RiskVerdict(False, "pin_failures")
        return ALLOWED

    async def _broken_rule(self, customer_id: str, operation: Operation, amount: Decimal | None,
                           payee_added_at: datetime | None) -> str | None:
        now, rules = self.clock(), self.rules
        if operation == "pin_change":
            changes = await self.store.count_events(customer_id, "pin_change", now - rules.window)
            return "pin_changes" if changes + 1 >= rules.max_pin_changes else None
        if (operation == "transfer" and amount is not None and payee_added_at is not None
                and amount >= rules.large_transfer and now - payee_added_at < rules.new_payee_window):
            return "new_payee_large_transfer"
        return None
