"""Checks requests and responses against Altinn's published correspondence OpenAPI document.

The fake uses it so that every request the channel makes is held to the published contract,
and every answer the fake gives is one Altinn could give. The upload is a multipart form whose
field names are the flattened model (``Correspondence.Content.Attachments[0].FileName``); ASP.NET
binds them case-insensitively, so this module binds them the same way, onto the spec's own
property names, and then validates the bound object with JSON Schema (OpenAPI 3.1 is JSON Schema
2020-12). Unlike ASP.NET, it refuses field names the spec does not know, so that a misspelt
field is caught instead of silently dropped.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = Path("altinn") / "altinn-correspondence-v1.json"
"""Where the document lies inside the published specs folder (``IPUNKT_SPECS``)."""

_BASE = "urn:ipunkt:altinn-correspondence-v1"
_FORMATS = FormatChecker(formats=())


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


_FORMATS.checks("uuid", raises=ValueError)(_is_uuid)
_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)


_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the document."""

    method: str
    template: str
    pattern: re.Pattern[str]
    definition: Mapping[str, Any]

    @property
    def pointer(self) -> str:
        """The JSON pointer of this operation inside the document."""
        escaped = self.template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{self.method.lower()}"

    def parameters(self, where: str) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """Each parameter in ``where`` by name, with the pointer of its schema."""
        return {
            p["name"]: (f"{self.pointer}/parameters/{i}/schema", p)
            for i, p in enumerate(self.definition.get("parameters", ()))
            if p["in"] == where
        }


class CorrespondenceSpec:
    """The published document, ready to check HTTP traffic against."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = _nullable_as_null(copy.deepcopy(dict(document)))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_BASE, resource)
        self.operations: list[Operation] = []
        for template, item in document["paths"].items():
            regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
            for method, definition in item.items():
                self.operations.append(
                    Operation(method.upper(), template, re.compile(f"^{regex}$"), definition)
                )

    @classmethod
    def load(cls, path: Path) -> CorrespondenceSpec:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def find(self, method: str, path: str) -> tuple[Operation | None, list[str]]:
        """The operation serving ``method path``, or None with the reason it has none."""
        on_path = [op for op in self.operations if op.pattern.match(path)]
        if not on_path:
            return None, [f"{path} is not a path of the correspondence API"]
        for op in on_path:
            if op.method == method:
                return op, []
        return None, [f"{method} is not an operation on {on_path[0].template}"]

    def check_request(
        self, op: Operation, path: str, query: Iterable[tuple[str, str]]
    ) -> list[str]:
        """Violations in the path and query parameters of a request to ``op``."""
        problems: list[str] = []
        match = op.pattern.match(path)
        assert match is not None
        names = re.findall(r"\{([^}]+)\}", op.template)
        path_params = op.parameters("path")
        for name, value in zip(names, match.groups(), strict=True):
            pointer, _ = path_params[name]
            problems += self._check_value(f"path {name}", pointer, value)
        query_params = op.parameters("query")
        seen: set[str] = set()
        for name, value in query:
            if name not in query_params:
                problems.append(f"query parameter {name!r} is not in the spec")
                continue
            seen.add(name)
            problems += self._check_value(f"query {name}", query_params[name][0], value)
        for name, (_, param) in query_params.items():
            if param.get("required") and name not in seen:
                problems.append(f"query parameter {name!r} is required")
        return problems

    def check_form(
        self, op: Operation, fields: Sequence[tuple[str, str]], files: Sequence[str]
    ) -> tuple[dict[str, Any], list[str]]:
        """Bind a multipart form as ASP.NET does, then validate it; returns (bound, problems).

        ``files`` are the names of the file parts' form fields.
        """
        media = op.definition.get("requestBody", {}).get("content", {})
        if "multipart/form-data" not in media:
            return {}, [f"{op.method} {op.template} takes no multipart form"]
        schema = media["multipart/form-data"]["schema"]
        bound: dict[str, Any] = {}
        problems: list[str] = []
        for name, value in fields:
            problems += self._bind(schema, bound, name, value)
        for name in files:
            problems += self._bind(schema, bound, name, "<binary>")
        problems += _holes(bound, "")
        pointer = f"{op.pointer}/requestBody/content/multipart~1form-data/schema"
        problems += self._validate(pointer, bound, "form")
        return bound, problems

    def check_response(
        self, op: Operation, status: int, body: Any, content_type: str | None
    ) -> list[str]:
        """Violations in a response the fake is about to give."""
        answer = op.definition.get("responses", {}).get(str(status))
        if answer is None:
            return [f"{op.method} {op.template} documents no {status} response"]
        content = answer.get("content")
        if not content or content_type is None or body is None:
            return []
        media_type = content_type.split(";")[0].strip()
        media = content.get(media_type)
        if media is None:
            return [f"{status} answer of {op.template} is documented without {media_type}"]
        schema = media.get("schema")
        if schema is None or schema.get("format") == "binary":
            return []
        escaped = media_type.replace("~", "~0").replace("/", "~1")
        pointer = f"{op.pointer}/responses/{status}/content/{escaped}/schema"
        return self._validate(pointer, body, f"{status} body")

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        resolver = self._registry.resolver(_BASE)
        while "$ref" in schema:
            schema = resolver.lookup(schema["$ref"]).contents
        return schema

    def _at(self, pointer: str) -> Mapping[str, Any]:
        return self._resolve(self._registry.resolver(_BASE).lookup(f"#{pointer}").contents)

    def _validate(self, pointer: str, value: Any, what: str) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{_BASE}#{pointer}"}, registry=self._registry, format_checker=_FORMATS
        )
        problems = []
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{what} {where or '(root)'}: {error.message}")
        return problems

    def _check_value(self, what: str, pointer: str, raw: str) -> list[str]:
        return self._validate(pointer, _coerce(self._at(pointer), raw), what)

    def _bind(self, schema: Mapping[str, Any], bound: dict[str, Any], name: str, value: str
              ) -> list[str]:
        """Place one form field into ``bound`` under the spec's own names."""
        properties: Mapping[str, Any] = schema["properties"]
        lowered = name.lower()
        top = max(
            (p for p in properties
             if lowered == p.lower() or lowered.startswith((p.lower() + ".", p.lower() + "["))),
            key=len,
            default=None,
        )
        if top is None:
            return [f"form field {name!r} is not in the spec"]
        rest = name[len(top):]
        tokens = [(m.group(1), m.group(2)) for m in _TOKEN.finditer(rest)]
        if "".join(m.group(0) for m in _TOKEN.finditer(rest)) != rest:
            return [f"form field {name!r} is not a well-formed model path"]
        container: Any = bound
        key: str | int = top
        node = self._resolve(properties[top])
        for prop, index in tokens:
            child = _slot(container, key, list if index is not None else dict)
            if child is None:
                return [f"form field {name!r} conflicts with another field"]
            if index is not None:
                if _kind(node) != "array":
                    return [f"form field {name!r} indexes {top!r}, which is not a list"]
                container, key, node = child, int(index), self._resolve(node["items"])
                continue
            if _kind(node) != "object":
                return [f"form field {name!r} has a member of a value that has none"]
            known = node.get("properties", {})
            canonical = next((k for k in known if k.lower() == prop.lower()), None)
            if canonical is not None:
                container, key, node = child, canonical, self._resolve(known[canonical])
            elif isinstance(node.get("additionalProperties"), Mapping):
                container, key = child, prop
                node = self._resolve(node["additionalProperties"])
            else:
                return [f"form field {name!r}: {prop!r} is not a property in the spec"]
        if _kind(node) == "array":
            items = _slot(container, key, list)
            if items is None:
                return [f"form field {name!r} conflicts with another field"]
            items.append(_coerce(self._resolve(node["items"]), value))
            return []
        if isinstance(container, list):
            assert isinstance(key, int)
            container.extend([None] * (key + 1 - len(container)))
            if container[key] is not None:
                return [f"form field {name!r} is given twice"]
            container[key] = _coerce(node, value)
        else:
            if key in container:
                return [f"form field {name!r} is given twice"]
            container[key] = _coerce(node, value)
        return []


def _slot(container: Any, key: str | int, kind: type) -> Any:
    """The list or dict at ``container[key]``, made when missing; None if it is another type."""
    if isinstance(container, list):
        assert isinstance(key, int)
        container.extend([None] * (key + 1 - len(container)))
        if container[key] is None:
            container[key] = kind()
        value = container[key]
    else:
        value = container.setdefault(key, kind())
    return value if isinstance(value, kind) else None


def _holes(value: Any, where: str) -> list[str]:
    """Indexed form fields must count from 0 without gaps, as ASP.NET's binder requires."""
    problems: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            problems += _holes(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if item is None:
                problems.append(f"form field {where}[{index}] is missing (indices have a gap)")
            problems += _holes(item, f"{where}[{index}]")
    return problems


def _coerce(schema: Mapping[str, Any], raw: str) -> Any:
    """A form or query string as the type its schema declares (left alone if it does not fit)."""
    kind = _kind(schema)
    if kind == "boolean" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if kind == "integer" and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def _kind(schema: Mapping[str, Any]) -> str | None:
    """The schema's type, other than null."""
    kind = schema.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _nullable_as_null(node: Any) -> Any:
    """Swashbuckle writes OpenAPI 3.0's ``nullable`` into this 3.1 document; JSON Schema
    2020-12 ignores it, so a null that Altinn sends would fail. Spell it as a null type."""
    if isinstance(node, dict):
        for value in node.values():
            _nullable_as_null(value)
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"].append(None)
    elif isinstance(node, list):
        for value in node:
            _nullable_as_null(value)
    return node
