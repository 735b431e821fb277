"""Flow files → validated, immutable `FlowSet`s.

Two passes: the JSON Schema (`schema.json`, the documented format) catches shape errors; then the
semantic checks in `validate.py` catch what a schema cannot (references, reachability, prompts,
destinations). Every problem names the file and node.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from agi_app.flows.model import (
    BRANCHES,
    CONDITION,
    NODE_TYPES,
    OPTIONS,
    PROMPT,
    RULES,
    Branch,
    Condition,
    Destination,
    Flow,
    FlowSet,
    Line,
    Node,
    Option,
    QueueRule,
    UniversalKeys,
    field_key,
    field_role,
)


@dataclass(frozen=True)
class Issue:
    """One problem found in a flow file; `level` is "error" or "warning"."""

    file: str
    where: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.level}: {self.message}"


class FlowFileError(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def schema() -> dict[str, Any]:
    return json.loads(resources.files("agi_app.flows").joinpath("schema.json").read_text(encoding="utf-8"))


class _DuplicateKey(ValueError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses duplicate keys: a second `"1":` under a menu's options would silently
    replace the first in plain YAML — exactly the mistake an administrator must be told about."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                f"(first on line {seen[key]})")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_text(text: str, *, json_format: bool = False) -> Any:
    """YAML (or JSON) with duplicate keys refused."""
    if json_format:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_document(path: Path) -> dict[str, Any]:
    """Parse YAML or JSON; raise FlowFileError with the position of a syntax error."""
    try:
        data = parse_text(path.read_text(encoding="utf-8"), json_format=path.suffix == ".json")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowFileError([Issue(str(path), "file", f"cannot read: {exc}")]) from exc
    except _DuplicateKey as exc:
        raise FlowFileError([Issue(str(path), "file", str(exc))]) from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise FlowFileError([Issue(str(path), "file", f"not valid YAML/JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise FlowFileError([Issue(str(path), "file", "top level must be a mapping")])
    return data


def schema_issues(doc: Mapping[str, Any], file: str) -> list[Issue]:
    validator = jsonschema.Draft202012Validator(schema())
    issues = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "file"
        issues.append(Issue(file, where, err.message + _quote_hint(err)))
    return issues


#: Every node key that holds a prompt, of any node type (to name a misplaced language key).
_PROMPT_FIELDS = frozenset(field_key(f) for cls in NODE_TYPES.values() for f in fields(cls) if field_role(f) == PROMPT)


def _yaml_reading(value: Any) -> str:
    """What to write instead of a scalar YAML did not read as text."""
    if isinstance(value, bool):
        return "YAML reads an unquoted yes/no/on/off/true/false as a boolean"
    if value is None:
        return "YAML reads ~, null or nothing as null"
    return f'"{value}"'


def _as_yaml(value: Any) -> str:
    """A scalar as YAML spells it (true, null), for messages."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _wants_text(err: jsonschema.ValidationError) -> bool:
    if err.validator == "type":
        return "string" in (err.validator_value if isinstance(err.validator_value, list) else [err.validator_value])
    if err.validator == "enum":
        return all(isinstance(v, str) for v in err.validator_value)
    return any(_wants_text(e) for e in err.context or ())


def _quote_hint(err: jsonschema.ValidationError) -> str:
    """`extension: 1001` or `agent: 0` is a number to YAML, not the text the schema wants: say so."""
    scalar = err.instance is None or isinstance(err.instance, (bool, int, float, date))
    return f"; quote it ({_yaml_reading(err.instance)})" if scalar and _wants_text(err) else ""


def _key_place(path: tuple[Any, ...]) -> tuple[str, str]:
    """(where, what kind of key) for a mapping at `path` in the document."""
    named = {("lines",): "line", ("destinations",): "destination", ("flows",): "flow"}
    if path in named:
        return path[0], named[path]
    if len(path) == 3 and path[0] == "flows" and path[2] == "nodes":
        return str(path[1]), "node"
    if len(path) >= 4 and path[0] == "flows" and path[2] == "nodes":
        where, rest = f"{path[1]}/{path[3]}", path[4:]
        if rest == ("options",):
            return where, "option"
        if len(rest) == 1 and rest[0] in _PROMPT_FIELDS:
            return where, f"{rest[0]} language"
        if len(rest) == 3 and rest[0] == "options" and rest[2] == "say":
            return where, f"option {rest[1]} say language"
        return where, "/".join(map(str, rest))
    return "/".join(map(str, path)) or "file", ""


def key_issues(doc: Mapping[str, Any], file: str) -> list[Issue]:
    """Every mapping key that is not a string, named where it is.

    YAML reads `1:` as a number and `on:` as a boolean. Such a key slips past the schema (name
    patterns only test strings) and then never equals the digit or name looked up at run time.
    """
    issues: list[Issue] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    where, what = _key_place(path)
                    issues.append(Issue(file, where, f"{what} key {_as_yaml(key)} must be a quoted string "
                                                     f"({_yaml_reading(key)})".lstrip()))
                walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(doc, ())
    return issues


def _prompt(value: Any) -> Mapping[str, str]:
    return {"*": value} if isinstance(value, str) else dict(value)


def _one_of(value: str | list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else (value,) if isinstance(value, str) else tuple(value)


def _condition(test: Mapping[str, Any]) -> Condition:
    """An `if` mapping: a value or list becomes a tuple; `<fact>_within_days` tests go together."""
    within = {key.removesuffix("_within_days"): value for key, value in test.items() if key.endswith("_within_days")}
    return Condition(segment=_one_of(test.get("segment")), language=_one_of(test.get("language")),
                     line=_one_of(test.get("line")), known=test.get("known"), flag=test.get("flag"),
                     within_days=within, calendar=test.get("calendar"), percent=test.get("percent"),
                     notices=test.get("notices"), authenticated=test.get("authenticated"))


_Built = TypeVar("_Built")


def _typed(cls: type[_Built], raw: Mapping[str, Any], **known: Any) -> _Built:
    """A node (or option, branch) from its document mapping: each field read from its key as its
    role says; absent keys keep the class's defaults (declared once, in model.py)."""
    values = dict(known)
    for f in fields(cls):  # type: ignore[arg-type]
        key = field_key(f)
        if key not in raw or f.name in values:
            continue
        value, role = raw[key], field_role(f)
        if role == PROMPT:
            value = _prompt(value)
        elif role == OPTIONS:
            value = {k: _typed(Option, option) for k, option in value.items()}
        elif role == BRANCHES:
            value = tuple(_typed(Branch, branch) for branch in value)
        elif role == CONDITION:
            value = _condition(value)
        elif role == RULES:
            value = tuple(_typed(QueueRule, rule) for rule in value)
        values[f.name] = value
    return cls(**values)


def _node(node_id: str, raw: Mapping[str, Any]) -> Node:
    return _typed(NODE_TYPES[raw["type"]], raw, id=node_id)


def build(doc: Mapping[str, Any], *, version: int | None = None) -> FlowSet:
    """Build the typed model from a schema-valid document (no semantic checks here)."""
    settings = doc.get("settings", {})
    keys = UniversalKeys(**settings.get("universal_keys", {}))
    default_language = settings.get("default_language", "zh")
    flows = {name: Flow(name, flow["start"], {node_id: _node(node_id, raw) for node_id, raw in flow["nodes"].items()})
             for name, flow in doc["flows"].items()}
    lines = {number: _typed(Line, raw, number=number, language=raw.get("language", default_language))
             for number, raw in doc["lines"].items()}
    destinations = {name: _typed(Destination, raw, name=name) for name, raw in doc["destinations"].items()}
    return FlowSet(lines, str(doc["default_line"]), destinations, flows, keys, default_language,
                   settings.get("max_depth", 3),
                   settings.get("bill_due_days", 7), version, doc)


def load_document(doc: Mapping[str, Any], *, file: str = "<menus>", version: int | None = None,
                  sounds_dir: Path | None = None,
                  services: Collection[str] | None = None) -> tuple[FlowSet, list[Issue]]:
    """Schema-check, build and semantically validate; raise FlowFileError on any error.

    Returns the FlowSet and the warnings (which do not block publishing).
    """
    from agi_app.flows.validate import semantic_issues

    issues = key_issues(doc, file) or schema_issues(doc, file)
    if issues:
        raise FlowFileError(issues)
    flowset = build(doc, version=version)
    issues = semantic_issues(flowset, file, sounds_dir=sounds_dir, services=services)
    errors = [i for i in issues if i.level == "error"]
    if errors:
        raise FlowFileError(errors)
    return flowset, [i for i in issues if i.level != "error"]


def load_file(path: Path, *, sounds_dir: Path | None = None,
              services: Collection[str] | None = None) -> tuple[FlowSet, list[Issue]]:
    return load_document(read_document(path), file=str(path), sounds_dir=sounds_dir, services=services)


def demo_flow_path() -> Path:
    return Path(str(resources.files("agi_app.flows").joinpath("demo/bank.yaml")))
