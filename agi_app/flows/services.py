"""`process` nodes call business services by name through this registry, so the flow engine
never imports banking (or anything else): domains register what they offer at start-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agi_app.caller_facts import CallerFacts
from agi_app.media.items import MediaItem

Result = Literal["ok", "refused", "failed"]  # what a service answers
#: What a call's journey records of a service it reached: its answer, or that the caller left first.
ServiceResult = Literal["ok", "refused", "failed", "abandoned"]


@dataclass(frozen=True)
class ServiceCall:
    """What a service may know about the call: who (what the domain said of the caller at call
    start; `facts.known` is False for an unknown number), where, and what was collected."""

    service: str
    call_id: str
    caller: str
    line: str
    language: str
    facts: CallerFacts
    variables: Mapping[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The caller passed authentication in this call: `facts` are then the authenticated customer's
    #: (`facts.attributes["customer_id"]`). Account services refuse anything while it is False.
    authenticated: bool = False


@dataclass(frozen=True)
class ServiceOutcome:
    result: Result
    say: list[MediaItem] = field(default_factory=list)  # played to the caller before moving on
    variables: Mapping[str, Any] = field(default_factory=dict)  # merged into the call's variables
    #: The caller has just authenticated as this customer: the runner marks the call authenticated
    #: and these become the call's facts (what flows test and templates greet by).
    authenticated: CallerFacts | None = None
    #: Send the call to this destination of the menus (e.g. `risk`, the risk desk) instead of going on.
    transfer: str | None = None


Service = Callable[[ServiceCall], Awaitable[ServiceOutcome]]


class ServiceRegistry:
    def __init__(self) -> None:
        self._services: dict[str, Service] = {}

    def register(self, name: str, service: Service) -> None:
        if name in self._services:
            raise ValueError(f"service {name!r} registered twice")
        self._services[name] = service

    def get(self, name: str) -> Service | None:
        return self._services.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._services)
