"""Authentication as a state of the call: the `{authenticated: true}` condition, the runner
taking a service's word that the caller authenticated, services seeing it, a service routing the
call (the risk desk), and the exact disclosure rule of `menus validate`."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agi_app.caller_facts import CallerFacts
from agi_app.flows.loader import FlowFileError, load_document
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from tests.fast.flowkit import doc, run_flow

LI_NA = CallerFacts(known=True, attributes={"customer_id": "C100", "name": "Li Na", "salutation": "Ms"})
ACCOUNT_SPEECH = "{{ customer.name }} {{ customer.customer_id }}"


def authenticating(outcome: ServiceOutcome, seen: list[ServiceCall] | None = None) -> ServiceRegistry:
    registry = ServiceRegistry()

    async def authenticate(call: ServiceCall) -> ServiceOutcome:
        return outcome

    async def look(call: ServiceCall) -> ServiceOutcome:
        if seen is not None:
            seen.append(call)
        return ServiceOutcome("ok")

    registry.register("authenticate", authenticate)
    registry.register("look", look)
    return registry


def gated(**extra: Any) -> dict[str, Any]:
    """pin → authenticate → {authenticated: true}? → a greeting by name; else → goodbye."""
    return doc({
        "gate": {"type": "condition", "branches": [{"if": {"authenticated": True}, "next": "hello"}],
                 "else": "pin"},
        "pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                "min_length": 6, "max_length": 6, "timeout": 0.2, "next": "auth"},
        "auth": {"type": "process", "service": "authenticate", "next": "check", "on_refused": "bye"},
        "check": {"type": "condition", "branches": [{"if": {"authenticated": True}, "next": "hello"}],
                  "else": "bye"},
        "hello": {"type": "announcement", "prompt": "Hello " + ACCOUNT_SPEECH, "next": "look"},
        "look": {"type": "process", "service": "look", "next": "bye"},
        "bye": {"type": "hangup"},
        **extra,
    }, start="gate")


async def test_a_service_that_authenticates_the_caller_makes_the_call_authenticated(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    seen: list[ServiceCall] = []
    record, channel, _, ctx = await run_flow(gated(), digits="123456#", services=authenticating(
        ServiceOutcome("ok", authenticated=LI_NA), seen))
    assert record.path == ["gate", "pin", "auth", "check", "hello", "look", "bye"]
    assert ctx.authenticated and ctx.facts == LI_NA
    assert "event=authenticated" in caplog.text and "customer=C100" in caplog.text
    assert "123456" not in caplog.text
    assert ("authenticate", "ok") in record.services
    [call] = seen
    assert call.authenticated and call.facts.attributes["customer_id"] == "C100"


async def test_a_call_is_not_authenticated_by_its_calling_number() -> None:
    seen: list[ServiceCall] = []
    record, _, _, ctx = await run_flow(gated(), digits="123456#", facts=LI_NA,
                                       services=authenticating(ServiceOutcome("refused"), seen))
    assert record.path == ["gate", "pin", "auth", "bye"] and not ctx.authenticated


async def test_an_ok_without_authenticated_facts_does_not_authenticate() -> None:
    record, _, _, ctx = await run_flow(gated(), digits="123456#", services=authenticating(ServiceOutcome("ok")))
    assert record.path == ["gate", "pin", "auth", "check", "bye"] and not ctx.authenticated


async def test_services_see_an_unauthenticated_call_as_such() -> None:
    seen: list[ServiceCall] = []
    document = doc({"look": {"type": "process", "service": "look", "next": "bye"}, "bye": {"type": "hangup"}},
                   start="look")
    await run_flow(document, facts=LI_NA, services=authenticating(ServiceOutcome("ok"), seen))
    [call] = seen
    assert not call.authenticated


async def test_a_service_may_send_the_call_to_a_configured_destination_such_as_the_risk_desk() -> None:
    document = doc({"op": {"type": "process", "service": "authenticate", "next": "bye", "on_refused": "bye"},
                    "bye": {"type": "hangup"}}, start="op",
                   destinations={"general": {"context": "hotline-agents", "extension": "general"},
                                 "risk": {"context": "hotline-agents", "extension": "risk"}})
    record, channel, _, _ = await run_flow(document, services=authenticating(ServiceOutcome("refused",
                                                                                            transfer="risk")))
    assert channel.continued_to == ("hotline-agents", "risk", 1) and record.transfer_target == "risk"
    assert record.path == ["op"]


async def test_a_route_to_an_unconfigured_destination_goes_on_like_a_refusal(caplog: pytest.LogCaptureFixture) -> None:
    document = doc({"op": {"type": "process", "service": "authenticate", "next": "bye", "on_refused": "bye"},
                    "bye": {"type": "hangup"}}, start="op")
    record, channel, _, _ = await run_flow(document, services=authenticating(ServiceOutcome("refused",
                                                                                            transfer="nowhere")))
    assert record.path == ["op", "bye"] and channel.hung_up and "event=service_route_unknown" in caplog.text


def problems(document: dict[str, Any]) -> list[str]:
    try:
        load_document(document, file="menus.yaml")
    except FlowFileError as exc:
        return [str(issue) for issue in exc.issues]
    return []


def test_menus_validate_allows_account_data_in_nodes_reachable_only_after_authentication() -> None:
    assert problems(gated()) == []


def test_menus_validate_refuses_account_data_in_a_node_also_reachable_without_authenticating() -> None:
    found = problems(gated(check={"type": "condition", "branches": [{"if": {"authenticated": True}, "next": "hello"}],
                                  "else": "hello"}))
    assert any("main/hello" in p and "customer.customer_id before authentication" in p for p in found), found


def test_an_authenticated_test_combined_with_others_still_gates() -> None:
    document = gated(check={"type": "condition", "branches": [
        {"if": {"authenticated": True, "language": "en"}, "next": "hello"}], "else": "bye"})
    assert problems(document) == []


def test_the_else_side_of_an_authenticated_test_is_before_authentication() -> None:
    document = gated(check={"type": "condition", "branches": [{"if": {"authenticated": False}, "next": "hello"}],
                            "else": "bye"})
    assert any("main/hello" in p for p in problems(document))
