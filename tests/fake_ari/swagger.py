"""Asterisk's own ARI declarations, loaded at test time, used to police the fake ARI server.

Why: the fake is only worth something if it refuses exactly what real Asterisk 22 would not understand
and only ever emits what real Asterisk 22 could emit.  So instead of hand-writing a schema we read the
swagger 1.2 files the installed Asterisk package ships (``/usr/share/asterisk/rest-api/*.json`` inside
the sandbox chroot).  They are never copied into the repository: an Asterisk upgrade changes the rules
of the fast suite automatically.

Parsing happens once per process (``load_swagger`` is cached): the suite runs thousands of requests.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CHROOT = "/var/cache/hotline/asterisk-sid"

#: Asterisk timestamps look like ``2024-05-01T10:00:00.123+0000``; accept the usual ISO variants too.
_DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")
_INT_RE = re.compile(r"^-?\d+$")
_LIST_RE = re.compile(r"^List\[(.+)\]$")

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class SwaggerError(Exception):
    """An event or response body that does not match Asterisk's declared models (a bug in the fake)."""


def default_swagger_dir() -> Path:
    """Where the sandbox chroot keeps Asterisk's REST API declarations (``HOTLINE_CHROOT`` overrides)."""
    chroot = os.environ.get("HOTLINE_CHROOT") or DEFAULT_CHROOT
    return Path(chroot) / "usr/share/asterisk/rest-api"


@dataclass(frozen=True)
class Param:
    """One declared operation parameter (query, path or body)."""

    name: str
    param_type: str
    data_type: str
    required: bool
    allow_multiple: bool
    allowable: Mapping[str, Any] | None


@dataclass(frozen=True)
class Operation:
    """One declared (path template, HTTP method) pair."""

    path: str  # template relative to /ari, e.g. "/channels/{channelId}/play"
    method: str
    nickname: str
    response_class: str
    params: Mapping[str, Param]
    upgrade: str | None = None

    @property
    def query_params(self) -> dict[str, Param]:
        return {n: p for n, p in self.params.items() if p.param_type == "query"}


@dataclass
class _Node:
    """Path tree node: literal children are tried before the {variable} child, as Asterisk's router does."""

    literal: dict[str, _Node] = field(default_factory=dict)
    variable: tuple[str, _Node] | None = None
    methods: dict[str, Operation] = field(default_factory=dict)
    declared: bool = False


@dataclass
class RouteMatch:
    """Result of routing a request path: the operations declared there and the path variables."""

    methods: dict[str, Operation]
    path_vars: dict[str, str]


class Swagger:
    """Parsed ARI declarations: a router for REST paths and a validator for models."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.models: dict[str, dict[str, Any]] = {}
        self.operations: list[Operation] = []
        self._root = _Node()
        resources = json.loads((directory / "resources.json").read_text())
        for api in resources["apis"]:
            name = api["path"].rsplit("/", 1)[-1].replace(".{format}", ".json")
            self._load_resource(json.loads((directory / name).read_text()))
        # parent links for subtype polymorphism (Message -> Event -> StasisStart ...)
        self._parent: dict[str, str] = {}
        for mname, model in self.models.items():
            for sub in model.get("subTypes", []):
                self._parent[sub] = mname

    # ------------------------------------------------------------------ loading
    def _load_resource(self, doc: dict[str, Any]) -> None:
        for mname, model in doc.get("models", {}).items():
            if mname in self.models:
                raise SwaggerError(f"model {mname} declared twice")
            self.models[mname] = model
        for api in doc.get("apis", []):
            node = self._root
            for seg in api["path"].strip("/").split("/"):
                if seg.startswith("{") and seg.endswith("}"):
                    if node.variable is None:
                        node.variable = (seg[1:-1], _Node())
                    node = node.variable[1]
                else:
                    node = node.literal.setdefault(seg, _Node())
            node.declared = True
            for op in api["operations"]:
                params = {
                    p["name"]: Param(
                        name=p["name"],
                        param_type=p["paramType"],
                        data_type=p["dataType"],
                        required=bool(p.get("required", False)),
                        allow_multiple=bool(p.get("allowMultiple", False)),
                        allowable=p.get("allowableValues"),
                    )
                    for p in op.get("parameters", [])
                }
                operation = Operation(
                    path=api["path"],
                    method=op["httpMethod"].upper(),
                    nickname=op.get("nickname", ""),
                    response_class=op.get("responseClass", "void"),
                    params=params,
                    upgrade=op.get("upgrade"),
                )
                node.methods[operation.method] = operation
                self.operations.append(operation)

    # ------------------------------------------------------------------ routing
    def route(self, ari_path: str) -> RouteMatch | None:
        """Match a path relative to /ari (``/channels/123/play``); None when nothing is declared there."""
        segs = [s for s in ari_path.strip("/").split("/")]
        found = self._walk(self._root, segs, {})
        return found

    def _walk(self, node: _Node, segs: list[str], pvars: dict[str, str]) -> RouteMatch | None:
        if not segs:
            return RouteMatch(dict(node.methods), dict(pvars)) if node.declared else None
        head, rest = segs[0], segs[1:]
        if head in node.literal:
            hit = self._walk(node.literal[head], rest, pvars)
            if hit is not None:
                return hit
        if node.variable is not None and head:
            name, child = node.variable
            return self._walk(child, rest, {**pvars, name: head})
        return None

    # ------------------------------------------------------------------ request values
    def check_value(self, param: Param, raw: str) -> str | None:
        """Return an error text when a raw (string) parameter value breaks its declaration."""
        dt = param.data_type
        if dt in ("int", "long"):
            if not _INT_RE.match(raw):
                return f"{param.name}={raw!r} is not an {dt}"
            lo, hi = INT32 if dt == "int" else INT64
            if not lo <= int(raw) <= hi:
                return f"{param.name}={raw!r} out of {dt} range"
        elif dt == "boolean":
            if raw not in ("true", "false"):
                return f"{param.name}={raw!r} is not a boolean (true/false)"
        elif dt == "double":
            try:
                float(raw)
            except ValueError:
                return f"{param.name}={raw!r} is not a double"
        allow = param.allowable
        if allow:
            if allow.get("valueType") == "LIST" and raw not in allow.get("values", []):
                return f"{param.name}={raw!r} not one of {allow.get('values')}"
            if allow.get("valueType") == "RANGE" and _INT_RE.match(raw):
                if "min" in allow and int(raw) < allow["min"]:
                    return f"{param.name}={raw!r} below minimum {allow['min']}"
                if "max" in allow and int(raw) > allow["max"]:
                    return f"{param.name}={raw!r} above maximum {allow['max']}"
        return None

    def check_query(self, op: Operation, query: Mapping[str, list[str]]) -> tuple[dict[str, list[str]], list[str]]:
        """Validate a query string against ``op``.

        Returns the values per parameter (``allowMultiple`` ones split on commas, as Asterisk does) and
        the list of problems.
        """
        errors: list[str] = []
        values: dict[str, list[str]] = {}
        qparams = op.query_params
        for name, raws in query.items():
            param = qparams.get(name)
            if param is None:
                errors.append(f"undeclared query parameter {name!r} for {op.method} {op.path}")
                continue
            if param.allow_multiple:
                items = [item for raw in raws for item in raw.split(",")]
            else:
                if len(raws) > 1:
                    errors.append(f"parameter {name!r} given {len(raws)} times but does not allowMultiple")
                items = raws[-1:]
            for item in items:
                problem = self.check_value(param, item)
                if problem:
                    errors.append(problem)
            values[name] = items
        return values, errors

    # ------------------------------------------------------------------ models
    def is_subtype(self, name: str, ancestor: str) -> bool:
        while name:
            if name == ancestor:
                return True
            name = self._parent.get(name, "")
        return False

    def _properties(self, name: str) -> dict[str, Any]:
        props: dict[str, Any] = {}
        chain: list[str] = []
        cur: str | None = name
        while cur:
            chain.append(cur)
            cur = self._parent.get(cur)
        for mname in reversed(chain):
            props.update(self.models[mname].get("properties", {}))
        return props

    def validate(self, value: Any, type_name: str, where: str = "$") -> list[str]:
        """Errors for ``value`` against a declared type (model, primitive or ``List[...]``)."""
        errors: list[str] = []
        self._check(value, type_name, where, errors)
        return errors

    def validate_event(self, event: Any) -> None:
        """Raise SwaggerError unless ``event`` is a valid Message subtype (chosen by its ``type``)."""
        errors = self.validate(event, "Message")
        if errors:
            raise SwaggerError("; ".join(errors))

    def _check(self, value: Any, type_name: str, where: str, errors: list[str]) -> None:
        lm = _LIST_RE.match(type_name)
        if lm:
            if not isinstance(value, list):
                errors.append(f"{where}: expected {type_name}, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self._check(item, lm.group(1), f"{where}[{i}]", errors)
            return
        if type_name == "string":
            ok = isinstance(value, str)
        elif type_name in ("int", "long"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif type_name == "double":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif type_name == "boolean":
            ok = isinstance(value, bool)
        elif type_name in ("object", "containers"):
            ok = isinstance(value, dict)
        elif type_name == "Date":
            ok = isinstance(value, str) and bool(_DATE_RE.match(value))
        elif type_name in self.models:
            self._check_model(value, type_name, where, errors)
            return
        else:
            errors.append(f"{where}: unknown declared type {type_name!r}")
            return
        if not ok:
            errors.append(f"{where}: expected {type_name}, got {value!r:.60}")

    def _check_model(self, value: Any, type_name: str, where: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected {type_name} object, got {type(value).__name__}")
            return
        model = self.models[type_name]
        actual = type_name
        disc = model.get("discriminator")
        if disc:
            actual = value.get(disc, "")
            if actual not in self.models or not self.is_subtype(actual, type_name):
                errors.append(f"{where}: {disc}={actual!r} is not a declared subtype of {type_name}")
                return
        props = self._properties(actual)
        for pname, prop in props.items():
            if prop.get("required") and pname not in value:
                errors.append(f"{where}: {actual} lacks required property {pname!r}")
        for pname, pval in value.items():
            prop = props.get(pname)
            if prop is None:
                errors.append(f"{where}: {actual} has undeclared property {pname!r}")
                continue
            self._check(pval, prop["type"], f"{where}.{pname}", errors)
            allow = prop.get("allowableValues")
            if allow and allow.get("valueType") == "LIST" and pval not in allow.get("values", []):
                errors.append(f"{where}.{pname}: {pval!r} not one of {allow['values']}")


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> Swagger:
    return Swagger(Path(directory))


def load_swagger(directory: Path | None = None) -> Swagger:
    """The parsed declarations for ``directory`` (default: the sandbox chroot's), parsed once per process."""
    d = directory if directory is not None else default_swagger_dir()
    if not (d / "resources.json").is_file():
        raise FileNotFoundError(
            f"Asterisk REST API declarations not found in {d}; build the sandbox chroot "
            "(scripts/sandbox) or set HOTLINE_CHROOT"
        )
    return _load(str(d.resolve()))
