"""The customer as the hotline sees it before authentication."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

SEGMENTS: tuple[str, ...] = ("standard", "vip", "private", "elderly")
LANGUAGES: tuple[str, ...] = ("zh", "en")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    salutation: str
    segment: str
    language: str
    phones: tuple[str, ...] = ()
    bill_due_date: date | None = None
    flags: dict[str, Any] = field(default_factory=dict)
