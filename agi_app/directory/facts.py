"""A directory customer as the flows see a caller (`CallerFacts`): the bank's own rules about
what its data means for a call live here, not in the flow engine — e.g. a card bill due within
the menus' `bill_due_days` sets the `bill_due` flag."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

from agi_app.caller_facts import UNKNOWN_CALLER, CallerFacts, within_days
from agi_app.directory.models import Customer


def caller_facts(customer: Customer | None, *, today: date, bill_due_days: int) -> CallerFacts:
    """The facts one call's flow decides on; an unknown caller has none."""
    if customer is None:
        return UNKNOWN_CALLER
    flags = {name: bool(value) for name, value in customer.flags.items()}
    if within_days(customer.bill_due_date, bill_due_days, today):
        flags["bill_due"] = True
    dates = {"bill_due": customer.bill_due_date} if customer.bill_due_date is not None else {}
    return CallerFacts(known=True, attributes=asdict(customer), flags=flags, dates=dates)
