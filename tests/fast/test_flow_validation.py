"""`menus validate`: one test per class of error, each naming the file, node and problem."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agi_app.admin.menus import depth_issues
from agi_app.flows.loader import FlowFileError, demo_flow_path, load_document
from agi_app.serve.app import build_services
from tests.fast.flowkit import doc
from tests.support.cli import HOTLINE
from tests.support.prompts import REPO_SOUNDS


def validate(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`hotline menus validate PATH` as an administrator runs it."""
    return subprocess.run([HOTLINE, "menus", "validate", str(path), *options], capture_output=True, text=True,
                          timeout=60)


def handwritten(path: Path, start: str, nodes: str) -> Path:
    """A menus file as a person may type it (what yaml.safe_dump never writes): one line, one
    destination and the flow `main`, whose nodes are the YAML lines `nodes` (indented by six)."""
    path.write_text("lines: {'95000': {flow: main}}\ndefault_line: '95000'\n"
                    "destinations: {general: {context: a, extension: b}}\n"
                    f"flows:\n  main:\n    start: {start}\n    nodes:\n" + nodes)
    return path


def problems(document: dict[str, Any], **kw: Any) -> list[str]:
    with pytest.raises(FlowFileError) as caught:
        load_document(document, file="menus.yaml", **kw)
    return [str(issue) for issue in caught.value.issues]


def test_the_demo_menus_are_valid() -> None:
    flows, warnings = load_document(yaml.safe_load(demo_flow_path().read_text()), sounds_dir=REPO_SOUNDS,
                                    services=build_services().names())
    assert warnings == [] and set(flows.lines) == {"95000", "95001"}


NAME_GREETING = "{% if customer %}{{ sound('greeting_' ~ time_of_day) }} {{ customer.name }}{% endif %}"


def _greeting(prompt: str, **top: Any) -> dict[str, Any]:
    return doc({"menu": {"type": "menu", "prompt": prompt + "{{ sound('menu_main') }}",
                         "options": {"1": {"next": "bye"}}}, "bye": {"type": "hangup"}}, **top)


def test_a_prompt_that_speaks_the_customers_name_before_authentication_is_refused() -> None:
    found = problems(_greeting(NAME_GREETING))
    assert ("menus.yaml: main/menu: error: prompt speaks customer.name before authentication"
            " (set greet_by_name: before_auth on line 95000 to allow the name)") in found


def test_account_data_may_steer_a_condition_but_is_never_spoken_before_authentication() -> None:
    prompt = ("{% if customer and customer.flags.bill_due %}{{ sound('opt_bill_payment') }}{% endif %}"
              "{% if customer %}{{ date(customer.bill_due_date) }}{% endif %}")
    found = problems(_greeting(prompt))
    assert ("menus.yaml: main/menu: error: prompt speaks customer.bill_due_date before authentication (personal and"
            " account data are spoken only after PIN authentication; an `if` may still test them)") in found
    assert not any("customer.flags" in p for p in found), found


def test_a_recorded_sound_that_discloses_the_account_is_refused_before_authentication() -> None:
    found = problems(doc({"menu": {"type": "menu", "intro": "{{ sound('bill_due_notice') }}",
                                   "options": {"1": {"next": "bye", "say": "{{ sound('opt_bill_payment') }}"}}},
                          "bye": {"type": "hangup"}}), sounds_dir=REPO_SOUNDS)
    assert ("menus.yaml: main/menu: error: intro plays recorded sound 'bill_due_notice' before authentication:"
            " its words disclose account data") in found


def test_a_line_that_opts_in_may_greet_by_name_but_never_speak_account_data() -> None:
    opted_in = {"95000": {"flow": "main", "language": "en", "agent": "general", "greet_by_name": "before_auth"}}
    salutation = "{% if customer %}{{ sound('salutation_' ~ (customer.salutation | lower)) }}{% endif %}"
    flows, _ = load_document(_greeting(NAME_GREETING + salutation, lines=opted_in), file="menus.yaml",
                             sounds_dir=REPO_SOUNDS)
    assert flows.lines["95000"].greet_by_name == "before_auth"
    found = problems(_greeting(NAME_GREETING + "{{ sound('bill_due_notice') }}", lines=opted_in), sounds_dir=REPO_SOUNDS)
    assert found == ["menus.yaml: main/menu: error: prompt plays recorded sound 'bill_due_notice' before"
                     " authentication: its words disclose account data"]
    assert any(p.startswith("menus.yaml: lines/95000/greet_by_name: error:")
               for p in problems(_greeting("", lines={"95000": {"flow": "main", "greet_by_name": "always"}})))


def test_the_name_is_refused_in_a_node_a_line_without_the_opt_in_also_reaches() -> None:
    lines = {"95000": {"flow": "main", "greet_by_name": "before_auth"}, "95001": {"flow": "main"}}
    found = problems(_greeting(NAME_GREETING, lines=lines))
    assert ("menus.yaml: main/menu: error: prompt speaks customer.name before authentication"
            " (set greet_by_name: before_auth on line 95001 to allow the name)") in found


def test_shape_errors_come_from_the_schema() -> None:
    assert any("menus.yaml: flows/main/nodes/bye" in p and "teleport" in p
               for p in problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "bye"}}},
                                      "bye": {"type": "teleport"}})))


def test_unknown_node_id() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "nowhere"}}}}))
    assert "menus.yaml: main/menu: error: option 1 refers to unknown node 'nowhere'" in found


def test_unreachable_node() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "bye"}}},
                          "bye": {"type": "hangup"}, "orphan": {"type": "hangup"}}))
    assert "menus.yaml: main/orphan: error: unreachable: no line's flow leads here" in found


def test_loop_with_no_exit() -> None:
    found = problems(doc({
        "menu": {"type": "menu", "prompt": "x", "universal_keys": False, "options": {"1": {"next": "a"}},
                 "on_invalid_exceeded": "menu", "on_timeout_exceeded": "menu"},
        "a": {"type": "announcement", "prompt": "y", "next": "menu"},
    }))
    assert any("loop with no exit: main/a → main/menu" in p for p in found)


def test_loop_that_never_waits_for_the_caller() -> None:
    found = problems(doc({
        "a": {"type": "announcement", "prompt": "x", "next": "b"},
        "b": {"type": "condition", "branches": [{"if": {"known": True}, "next": "bye"}], "else": "a"},
        "bye": {"type": "hangup"},
    }, start="a"))
    assert any("loop never waits for the caller: main/a → main/b" in p for p in found)


def test_missing_prompt() -> None:
    found = problems(doc({"menu": {"type": "menu", "options": {"1": {"next": "bye"}}}, "bye": {"type": "hangup"}}))
    assert "menus.yaml: main/menu: error: missing prompt: a menu needs `prompt` or `intro`" in found


def test_option_never_announced_in_a_composed_menu() -> None:
    found = problems(doc({"menu": {"type": "menu", "intro": "x", "options": {"1": {"next": "bye"}}},
                          "bye": {"type": "hangup"}}))
    assert any("option 1 is never announced" in p for p in found)


def test_missing_recorded_sound() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "{{ sound('no_such_prompt') }}",
                                   "options": {"1": {"next": "bye"}}}, "bye": {"type": "hangup"}}), sounds_dir=REPO_SOUNDS)
    assert "menus.yaml: main/menu: error: prompt: recorded sound 'en/no_such_prompt' does not exist" in found


def test_duplicate_keys_in_the_file(tmp_path: Path) -> None:
    path = handwritten(tmp_path / "menus.yaml", "menu",
                       "      menu:\n        type: menu\n        prompt: x\n        options:\n"
                       "          '1': {next: bye}\n"
                       "          '1': {next: menu}\n"
                       "      bye: {type: hangup}\n")
    result = validate(path)
    assert result.returncode == 1
    assert f"{path}: file: error: line 13: duplicate key '1' (first on line 12)" in result.stderr


def test_option_clashing_with_a_universal_key() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"9": {"next": "bye"}}},
                          "bye": {"type": "hangup"}}))
    assert any("key 9 is both option 'bye' and the universal repeat key" in p for p in found)


def test_transfer_to_a_destination_that_is_not_configured() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "t"}}},
                          "t": {"type": "transfer", "destination": "+8613900000000"}}))
    assert any("main/t: error: transfer destination '+8613900000000' is not configured" in p for p in found)


def test_process_with_an_unknown_service() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "p"}}},
                          "p": {"type": "process", "service": "balance", "next": "menu"}}), services=["complaint"])
    assert any("main/p: error: unknown service 'balance' (known: complaint)" in p for p in found)


@pytest.mark.parametrize("timeout", ["fast", 0, 120])
def test_a_service_time_budget_must_be_seconds(timeout: object) -> None:
    """`params` go to the service as written, but `params.timeout` is the runner's budget for it."""
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "p"}}},
                          "p": {"type": "process", "service": "balance", "params": {"timeout": timeout, "kind": 1},
                                "next": "menu"}}))
    assert any(p.startswith("menus.yaml: flows/main/nodes/p/params/timeout: error:") for p in found), found


@pytest.mark.parametrize(("template", "message"), [
    ("{{ sound('welcome') ", "template syntax error"),
    ("{{ customer.nmae }}", "template error"),
    ("{{ no_such_variable }}", "'no_such_variable' is undefined"),
])
def test_template_errors_are_caught_at_validation(template: str, message: str) -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": template, "options": {"1": {"next": "bye"}}},
                          "bye": {"type": "hangup"}}))
    assert any("main/menu: error: prompt (" in p and message in p for p in found), found


def test_sub_flow_that_does_not_exist_and_collect_lengths() -> None:
    found = problems(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "s"}}},
                          "s": {"type": "sub", "flow": "ghost", "next": "c"},
                          "c": {"type": "collect", "prompt": "x", "variable": "v", "min_length": 6,
                                "max_length": 4, "next": "menu"}}))
    assert any("main/s: error: sub-flow 'ghost' does not exist" in p for p in found)
    assert any("main/c: error: min_length is greater than max_length" in p for p in found)


def test_cli_validate_reports_and_exits(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc({"menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "gone"}}}})))
    result = validate(path, "--json")
    assert result.returncode == 1
    assert '"where": "main/menu"' in result.stdout and "unknown node 'gone'" in result.stdout
    ok = validate(demo_flow_path())
    assert ok.returncode == 0 and "ok (2 lines, 11 flows" in ok.stdout


async def test_services_deeper_than_the_limit_are_warned_about() -> None:
    document = doc({
        "menu": {"type": "menu", "prompt": "x", "options": {"1": {"next": "deeper"}}},
        "deeper": {"type": "menu", "prompt": "y", "options": {"1": {"next": "bye", "service": "balance"}}},
        "bye": {"type": "hangup"},
    }, settings={"max_depth": 1})
    flows, _ = load_document(document, file="menus.yaml")
    warnings = await depth_issues(flows, "menus.yaml")
    assert [str(w) for w in warnings] == [
        "menus.yaml: main/deeper: warning: service 'balance' is 2 menus deep for generic callers on line 95000"
        " (settings.max_depth is 1)"]


def test_secret_looking_input_must_be_secure() -> None:
    found = problems(doc({"pin": {"type": "collect", "prompt": "x", "variable": "new_pin", "max_length": 6,
                                  "next": "bye"}, "bye": {"type": "hangup"}}, start="pin"))
    assert "menus.yaml: main/pin: error: variable 'new_pin' looks like secret input: set `secure: true`" in found


def test_option_keys_written_as_numbers_are_refused_with_file_and_node(tmp_path: Path) -> None:
    path = handwritten(tmp_path / "bank.yaml", "main_menu",
                       "      main_menu:\n        type: menu\n        prompt: x\n        options:\n"
                       "          1: {next: bye}\n"
                       "      bye: {type: hangup}\n")
    result = validate(path)
    assert result.returncode == 1
    assert f'{path}: main/main_menu: error: option key 1 must be a quoted string ("1")' in result.stderr


def _with(path: list[Any], key: Any, value: Any) -> dict[str, Any]:
    document = doc({"menu": {"type": "menu", "prompt": {"en": "x"}, "options": {"1": {"next": "bye"}}},
                    "bye": {"type": "hangup"}})
    target = document
    for step in path:
        target = target[step]
    target[key] = value
    return document


@pytest.mark.parametrize(("document", "expected"), [
    (_with(["lines"], 95001, {"flow": "main"}), 'lines: error: line key 95001 must be a quoted string ("95001")'),
    (_with(["destinations"], 7, {"context": "a", "extension": "b"}),
     'destinations: error: destination key 7 must be a quoted string ("7")'),
    (_with(["flows"], 2, {"start": "a", "nodes": {"a": {"type": "hangup"}}}),
     'flows: error: flow key 2 must be a quoted string ("2")'),
    (_with(["flows", "main", "nodes"], True, {"type": "hangup"}),
     "main: error: node key true must be a quoted string"
     " (YAML reads an unquoted yes/no/on/off/true/false as a boolean)"),
    (_with(["flows", "main", "nodes", "menu", "prompt"], False, "x"),
     "main/menu: error: prompt language key false must be a quoted string"
     " (YAML reads an unquoted yes/no/on/off/true/false as a boolean)"),
    (_with(["flows", "main", "nodes", "menu", "options", "1"], "say", {None: "x"}),
     "main/menu: error: option 1 say language key null must be a quoted string"
     " (YAML reads ~, null or nothing as null)"),
    (_with(["settings"], 1, "x"), 'settings: error: key 1 must be a quoted string ("1")'),
])
def test_keys_that_are_not_strings_are_refused_where_they_are(document: dict[str, Any], expected: str) -> None:
    assert f"menus.yaml: {expected}" in problems(document)


def test_a_value_yaml_read_as_a_number_says_to_quote_it(tmp_path: Path) -> None:
    found = problems(doc(settings={"universal_keys": {"agent": 0}},
                         destinations={"general": {"context": "hotline-agents", "extension": 1001}}))
    assert any(p.startswith("menus.yaml: settings/universal_keys/agent: error:") and p.endswith('quote it ("0")')
               for p in found), found
    assert any(p.startswith("menus.yaml: destinations/general/extension: error:") and p.endswith('quote it ("1001")')
               for p in found), found
