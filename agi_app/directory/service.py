"""Who is calling: normalise the ANI and look it up under a hard time budget.

A slow or dead database must never keep a caller waiting: past the budget the caller is treated
as unknown, gets the general menu and can still reach an agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agi_app.budget import within
from agi_app.directory.models import Customer
from agi_app.directory.phone import normalize_phone
from agi_app.logs import log_event

log = logging.getLogger("hotline.directory")

Lookup = Callable[[str], Awaitable[Customer | None]]


@dataclass(frozen=True)
class Identification:
    customer: Customer | None
    phone: str | None
    degraded: bool = False  # the lookup failed or timed out: treated as unknown


class Directory:
    def __init__(self, lookup: Lookup, *, budget_s: float = 0.3) -> None:
        self._lookup = lookup
        self.budget_s = budget_s

    async def identify(self, caller: str, *, call_id: str = "") -> Identification:
        phone = normalize_phone(caller)
        if phone is None:
            log_event(log, "caller_unidentifiable", call=call_id)
            return Identification(None, None)
        try:
            customer = await within(self.budget_s, self._lookup(phone), what="lookup", call_id=call_id)
        except TimeoutError:
            log_event(log, "lookup_timeout", level=logging.WARNING, call=call_id,
                      budget_ms=int(self.budget_s * 1000), caller_gets="general_menu")
            return Identification(None, phone, degraded=True)
        except Exception as exc:  # noqa: BLE001 - any database failure degrades, never fails the call
            log_event(log, "lookup_failed", level=logging.WARNING, call=call_id, error=type(exc).__name__,
                      caller_gets="general_menu")
            return Identification(None, phone, degraded=True)
        log_event(log, "caller_identified" if customer else "caller_unknown", call=call_id,
                  customer=customer.customer_id if customer else None,
                  segment=customer.segment if customer else None)
        return Identification(customer, phone)
