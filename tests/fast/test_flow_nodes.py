"""Every node type, run by the real FlowRunner and CallSession on the simulated channel."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import MISSING, Field, fields
from datetime import date
from typing import Any

import pytest

from agi_app.caller_facts import CallerFacts
from agi_app.flows import runner as runner_module
from agi_app.flows.loader import load_document, schema
from agi_app.flows.model import (
    NODE_TYPES,
    SERVICE_TIMEOUT_S,
    Branch,
    CollectNode,
    ConditionNode,
    MenuNode,
    Option,
    ProcessNode,
    field_key,
)
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.media.items import Sound
from agi_app.secure import SecretDigits
from tests.fast.flowkit import customer, doc, prepare_flow, run_flow

MENU = {"type": "menu", "prompt": "{{ sound('menu_main') }}", "timeout": 0.05, "max_timeout": 1,
        "options": {"1": {"next": "bye"}}}
BYE = {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}


async def test_announcement_then_next() -> None:
    record, channel, _, _ = await run_flow(doc({"a": {"type": "announcement", "prompt": "{{ sound('welcome') }}",
                                                      "next": "bye"}, "bye": BYE}, start="a"))
    assert channel.played == ["sound:hotline/en/welcome", "sound:hotline/en/goodbye"]
    assert record.path == ["a", "bye"] and channel.hung_up


async def test_menu_composed_from_options_announces_each_key() -> None:
    menu = {"type": "menu", "intro": "{{ sound('welcome') }}", "timeout": 0.05, "max_timeout": 1,
            "options": {"1": {"next": "bye", "say": "{{ sound('opt_balance') }}"},
                        "*": {"next": "bye", "say": "{{ sound('opt_back') }}"}}, "universal_keys": False}
    _, channel, _, _ = await run_flow(doc({"menu": menu, "bye": BYE}))
    assert channel.played[:5] == ["sound:hotline/en/welcome", "sound:hotline/en/opt_balance",
                                  "sound:hotline/en/digits/1", "sound:hotline/en/opt_back", "sound:hotline/en/keys/star"]


async def test_menu_universal_keys_repeat_back_and_agent() -> None:
    sub_menu = {**MENU, "prompt": "{{ sound('menu_card') }}", "options": {"1": {"next": "bye"}}}
    nodes = {"menu": {**MENU, "options": {"2": {"next": "sub"}}}, "sub": sub_menu, "bye": BYE}
    record, channel, sink, _ = await run_flow(doc(nodes), digits="929*0")
    assert record.path == ["menu", "sub", "menu"]
    assert [i[3] for i in sink.inputs] == ["repeat", "option", "repeat", "back", "agent"]
    assert channel.continued_to == ("hotline-agents", "general", 1)
    assert record.transfer_target == "general"


async def test_collect_secure_masks_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    nodes = {"pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                     "min_length": 6, "max_length": 6, "timeout": 0.1, "inter_digit_timeout": 0.1, "next": "bye"},
             "bye": BYE}
    record, _, sink, ctx = await run_flow(doc(nodes, start="pin"), digits="12#654321")
    assert [(i[2], i[3]) for i in sink.inputs] == [("**", "invalid"), ("******", "ok")]
    assert isinstance(ctx.variables["pin"], SecretDigits) and ctx.variables["pin"].reveal() == "654321"
    assert "654321" not in caplog.text and "654321" not in repr(record)


async def test_collect_plain_with_terminator_and_failure_destination() -> None:
    nodes = {"acct": {"type": "collect", "prompt": "x", "variable": "acct", "min_length": 4, "max_length": 8,
                      "terminator": "#", "timeout": 0.05, "max_attempts": 2, "next": "bye", "on_failure": "fail"},
             "bye": BYE, "fail": {"type": "hangup", "prompt": "{{ sound('too_many_attempts') }}"}}
    _, _, _, ctx = await run_flow(doc(nodes, start="acct"), digits="1234#")
    assert ctx.variables["acct"] == "1234"
    record, _, sink, _ = await run_flow(doc(nodes, start="acct"), digits="12#")
    assert record.path == ["acct", "fail"] and [i[3] for i in sink.inputs] == ["invalid", "timeout"]


@pytest.mark.parametrize(("behaviour", "expected_node", "expected_result"), [
    ("ok", "done", "ok"), ("refused", "refused", "refused"), ("failed", "failed", "failed"),
    ("raise", "failed", "failed"), ("slow", "failed", "failed"),
])
async def test_process_calls_a_registered_service(behaviour: str, expected_node: str, expected_result: str) -> None:
    seen: list[ServiceCall] = []

    async def service(call: ServiceCall) -> ServiceOutcome:
        seen.append(call)
        if behaviour == "raise":
            raise RuntimeError("core banking down")
        if behaviour == "slow":
            await asyncio.sleep(5)  # far beyond its 0.2 s budget
        return ServiceOutcome(behaviour, [Sound("operation_done", "en")], {"answer": 42})  # type: ignore[arg-type]

    registry = ServiceRegistry()
    registry.register("balance", service)
    nodes = {"p": {"type": "process", "service": "balance", "params": {"timeout": 0.2, "kind": "savings"},
                   "next": "done", "on_refused": "refused", "on_failed": "failed"},
             "done": BYE, "refused": BYE, "failed": BYE}
    record, _, _, ctx = await run_flow(doc(nodes, start="p"), services=registry, who=customer())
    assert record.path == ["p", expected_node] and record.services == [("balance", expected_result)]
    assert seen[0].params["kind"] == "savings" and seen[0].facts.known
    assert (ctx.variables.get("answer") == 42) == (behaviour in ("ok", "refused", "failed"))


async def test_a_caller_who_hangs_up_while_a_service_runs_leaves_it_recorded_as_abandoned() -> None:
    started, never = asyncio.Event(), asyncio.Event()

    async def service(call: ServiceCall) -> ServiceOutcome:
        started.set()
        await never.wait()
        return ServiceOutcome("ok")

    registry = ServiceRegistry()
    registry.register("balance", service)
    nodes = {"p": {"type": "process", "service": "balance", "params": {"timeout": 30}, "next": "done"}, "done": BYE}
    runner, _, _ = prepare_flow(doc(nodes, start="p"), services=registry, who=customer())
    flow = asyncio.create_task(runner.run())
    await started.wait()
    flow.cancel()  # what the caller's hangup does to the call's task
    with pytest.raises(asyncio.CancelledError):
        await flow
    assert runner.call.journey.record.services == [("balance", "abandoned")]


@pytest.mark.parametrize(("test", "who", "calendar", "taken"), [
    ({"segment": "vip"}, customer("vip"), "open", "yes"),
    ({"segment": ["vip", "private"]}, customer("standard"), "open", "no"),
    ({"known": False}, None, "open", "yes"),
    ({"language": "en"}, customer(), "open", "yes"),
    ({"line": "95001"}, customer(), "open", "no"),
    ({"calendar": "holiday"}, None, "holiday", "yes"),
    ({"flag": "risk_hold"}, customer(flags={"risk_hold": True}), "open", "yes"),
    ({"flag": "bill_due"}, customer(bill_due_date=date(2026, 11, 27)), "open", "yes"),
    ({"bill_due_within_days": 2}, customer(bill_due_date=date(2026, 11, 27)), "open", "no"),
    ({"percent": 100}, None, "open", "yes"),
    ({"percent": 0}, None, "open", "no"),
    ({"segment": "vip", "calendar": "closed"}, customer("vip"), "open", "no"),
])
async def test_condition_branches(test: dict[str, object], who: object, calendar: str, taken: str) -> None:
    nodes = {"c": {"type": "condition", "branches": [{"if": test, "next": "yes"}], "else": "no"},
             "yes": BYE, "no": BYE}
    record, _, _, _ = await run_flow(doc(nodes, start="c"), who=who, calendar=calendar)  # type: ignore[arg-type]
    assert record.path == ["c", taken]


async def test_percentage_split_is_stable_per_caller() -> None:
    nodes = {"c": {"type": "condition", "branches": [{"if": {"percent": 50}, "next": "a"}], "else": "b"},
             "a": BYE, "b": BYE}
    paths = {tuple((await run_flow(doc(nodes, start="c")))[0].path) for _ in range(5)}
    assert len(paths) == 1


async def test_jump_sub_and_return() -> None:
    document = doc({"j": {"type": "jump", "next": "s"},
                    "s": {"type": "sub", "flow": "shared", "next": "after"},
                    "after": BYE}, start="j")
    document["flows"]["shared"] = {"start": "hello", "nodes": {
        "hello": {"type": "announcement", "prompt": "{{ sound('please_hold') }}", "next": "back"},
        "back": {"type": "return"}}}
    record, channel, _, _ = await run_flow(document)
    assert record.path == ["j", "s", "hello", "back", "after"]
    assert channel.played == ["sound:hotline/en/please_hold", "sound:hotline/en/goodbye"]


async def test_transfer_goes_to_the_configured_destination_only() -> None:
    record, channel, _, _ = await run_flow(doc({"t": {"type": "transfer", "prompt": "{{ sound('transfer_agent') }}",
                                                      "destination": "general"}}, start="t"))
    assert channel.continued_to == ("hotline-agents", "general", 1) and record.transfer_target == "general"
    assert channel.played == ["sound:hotline/en/transfer_agent", "sound:hotline/en/recording_notice"]


async def test_survey_stores_the_score_and_ignores_garbage() -> None:
    nodes = {"s": {"type": "survey", "prompt": "{{ sound('survey_intro') }}", "thanks_prompt": "{{ sound('survey_thanks') }}",
                   "timeout": 0.05, "next": "bye"}, "bye": BYE}
    _, channel, sink, _ = await run_flow(doc(nodes, start="s"), digits="4")
    assert sink.surveys and sink.surveys[0][1:] == ("s", 4)
    assert "sound:hotline/en/survey_thanks" in channel.played
    _, _, sink, _ = await run_flow(doc(nodes, start="s"), digits="8")
    assert [s[1:] for s in sink.surveys] == [("s", None)] and sink.inputs[0][3] == "no_answer"  # no answer


async def test_hangup_plays_then_hangs_up() -> None:
    record, channel, _, _ = await run_flow(doc({"h": BYE}, start="h"))
    assert channel.hung_up and channel.played == ["sound:hotline/en/goodbye"] and record.path == ["h"]


async def test_a_template_error_at_run_time_gives_a_safe_prompt(caplog: pytest.LogCaptureFixture) -> None:
    nodes = {"a": {"type": "announcement", "prompt": "{{ sound('welcome') }}{{ amount(vars.total) }}", "next": "bye"},
             "bye": BYE}
    _, channel, _, _ = await run_flow(doc(nodes, start="a"))
    assert channel.played[0] == "sound:hotline/en/technical_difficulty", "never silence"
    assert "event=prompt_error" in caplog.text and "node=a" in caplog.text


# --- node types are typed classes, one per schema entry ------------------------------------------
def _keys(cls: type[Any], *, required: bool = False) -> set[str]:
    def is_required(f: Field[Any]) -> bool:
        return f.default is MISSING and f.default_factory is MISSING

    return {field_key(f) for f in fields(cls) if f.name != "id" and (is_required(f) or not required)}


def test_each_node_type_is_one_class_holding_exactly_the_fields_its_schema_entry_allows() -> None:
    node = schema()["$defs"]["node"]
    entries = {rule["if"]["properties"]["type"]["const"]: rule["then"] for rule in node["allOf"]}
    assert set(entries) == set(node["properties"]["type"]["enum"]) == set(NODE_TYPES)
    for name, cls in NODE_TYPES.items():
        assert cls.type == name
        assert _keys(cls) == set(entries[name]["properties"]) - {"type"}, name
        assert _keys(cls, required=True) == set(entries[name]["required"]), name
    option = entries["menu"]["properties"]["options"]["additionalProperties"]
    branch = entries["condition"]["properties"]["branches"]["items"]
    assert (_keys(Option), _keys(Option, required=True)) == (set(option["properties"]), set(option["required"]))
    assert (_keys(Branch), _keys(Branch, required=True)) == (set(branch["properties"]), set(branch["required"]))


def test_the_loader_builds_typed_nodes_with_their_types_defaults() -> None:
    nodes = {"menu": {"type": "menu", "prompt": "{{ sound('menu_main') }}", "options": {"1": {"next": "c"}}},
             "c": {"type": "condition", "branches": [{"if": {"segment": "vip", "bill_due_within_days": 3},
                                                      "next": "acct"}], "else": "acct"},
             "acct": {"type": "collect", "prompt": "x", "variable": "acct", "max_length": 8, "next": "p"},
             "p": {"type": "process", "service": "balance", "params": {"kind": "savings"}, "next": "q"},
             "q": {"type": "process", "service": "balance", "params": {"timeout": 0.2}, "next": "bye"},
             "bye": {"type": "hangup"}}
    flows, _ = load_document(doc(nodes))
    built = flows.flows["main"].nodes
    menu, condition, collect, process, quick = (built[n] for n in ("menu", "c", "acct", "p", "q"))
    assert isinstance(menu, MenuNode) and isinstance(condition, ConditionNode) and isinstance(collect, CollectNode)
    assert (menu.timeout, menu.inter_digit_timeout, menu.max_invalid, menu.universal_keys) == (5.0, 3.0, 3, True)
    assert menu.options["1"] == Option(next="c") and menu.prompt == {"*": "{{ sound('menu_main') }}"}
    assert condition.branches[0].when.segment == ("vip",) and condition.branches[0].when.within_days == {"bill_due": 3}
    assert list(condition.refs()) == [("else", "acct"), ("branch 1", "acct")]
    assert (collect.min_length, collect.terminator, collect.secure, collect.max_attempts) == (1, "#", False, 3)
    assert isinstance(process, ProcessNode) and isinstance(quick, ProcessNode)
    assert process.timeout == SERVICE_TIMEOUT_S and quick.timeout == 0.2


@pytest.mark.parametrize(("test", "taken"), [
    ({"segment": "gold"}, "yes"), ({"flag": "card_expiring"}, "yes"), ({"flag": "bill_due"}, "no"),
    ({"known": True}, "yes"), ({"bill_due_within_days": 5}, "no"),
])
async def test_conditions_test_whatever_the_domain_says_of_the_caller(test: dict[str, object], taken: str) -> None:
    """Flags and attributes are the domain's: a new one needs no change to the flows."""
    facts = CallerFacts(known=True, attributes={"segment": "gold"}, flags={"card_expiring": True})
    nodes = {"c": {"type": "condition", "branches": [{"if": test, "next": "yes"}], "else": "no"},
             "yes": BYE, "no": BYE}
    record, _, _, _ = await run_flow(doc(nodes, start="c"), facts=facts)
    assert record.path == ["c", taken]


async def test_a_known_callers_attributes_are_what_templates_call_customer() -> None:
    nodes = {"a": {"type": "announcement", "prompt": "{{ sound('welcome') }}", "next": "bye"}, "bye": BYE}
    _, _, _, known = await run_flow(doc(nodes, start="a"), who=customer("vip"))
    _, _, _, unknown = await run_flow(doc(nodes, start="a"))
    seen = known.template_context()["customer"]
    assert (seen["name"], seen["salutation"], seen["segment"], seen["customer_id"]) == ("Wang", "Mr", "vip", "C9")
    assert unknown.template_context()["customer"] is None


@pytest.mark.parametrize(("takes_s", "least", "most"), [(0.0, 0, 0), (0.45, 2, 4)])
async def test_a_slow_service_has_the_caller_hear_please_hold_meanwhile(
        takes_s: float, least: int, most: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service still running after HOLD_AFTER_S (a database past its budget) has the caller hear
    "please hold", again after each one, instead of silence for the whole timeout; a quick one none."""
    monkeypatch.setattr(runner_module, "HOLD_AFTER_S", 0.1)

    async def service(call: ServiceCall) -> ServiceOutcome:
        await asyncio.sleep(takes_s)
        return ServiceOutcome("ok", [Sound("operation_done", "en")])

    registry = ServiceRegistry()
    registry.register("balance", service)
    nodes = {"p": {"type": "process", "service": "balance", "params": {"timeout": 2}, "next": "done"}, "done": BYE}
    record, channel, _, _ = await run_flow(doc(nodes, start="p"), services=registry, who=customer())
    assert record.services == [("balance", "ok")]
    said = [uri for uri in channel.played if "please_hold" in uri or "operation_done" in uri]
    holds = said[:-1]
    assert "operation_done" in said[-1] and all("please_hold" in uri for uri in holds), channel.played
    assert least <= len(holds) <= most, channel.played  # one every 0.1 s while it ran: 4, or fewer if the loop lags
