"""The SBD container: exactly two keys, the header and one business message named by its type.

The original accepts the two keys in either order and picks the business message's class from
``documentIdentification.type``. An unknown type is kept as raw JSON so that validation can
name it (``Must be a NextMove message type``) instead of failing to parse.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ipunkt import jackson
from ipunkt.sbd import strict_json
from ipunkt.sbd.model import BusinessMessage, Header, ScopeType, message_type
from ipunkt.sbd.times import TimeFormatError
from ipunkt.sbd.violations import SbdInvalid, Violation, path

HEADER_KEY = "standardBusinessDocumentHeader"


class SbdFormatError(ValueError):
    """The body is not JSON, or not a JSON object."""


@dataclass
class StandardBusinessDocument:
    """A parsed SBD. ``body`` is the typed business message, or raw JSON for an unknown type."""

    header: Header
    body: BusinessMessage | dict[str, Any] | None
    body_key: str

    # -- convenient views -----------------------------------------------------------------

    @property
    def type(self) -> str | None:
        ident = self.header.document_identification
        return ident.type if ident else None

    @property
    def message_type(self) -> builtins.type[BusinessMessage] | None:
        return message_type(self.type)

    @property
    def message_id(self) -> str | None:
        ident = self.header.document_identification
        return ident.instance_identifier if ident else None

    @property
    def standard(self) -> str | None:
        ident = self.header.document_identification
        return ident.standard if ident else None

    @property
    def conversation_id(self) -> str | None:
        scope = self.header.scope(ScopeType.CONVERSATION_ID)
        return scope.instance_identifier if scope else None

    @property
    def process(self) -> str | None:
        scope = self.header.scope(ScopeType.CONVERSATION_ID)
        return scope.identifier if scope else None

    @property
    def sender(self) -> str | None:
        return _first_value(self.header.sender)

    @property
    def receiver(self) -> str | None:
        return _first_value(self.header.receiver)

    @property
    def expected_response(self) -> Any:
        scope = self.header.scope(ScopeType.CONVERSATION_ID)
        if scope and scope.scope_information:
            return scope.scope_information[0].expected_response_date_time
        return None

    @property
    def business(self) -> BusinessMessage | None:
        return self.body if isinstance(self.body, BusinessMessage) else None

    # -- writing ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The wire form: header first, then the business message, absent fields omitted."""
        header = self.header.model_dump(mode="json", by_alias=True, exclude_none=True)
        ordered: dict[str, Any] = {}
        for key, value in header.items():
            ordered[key] = value
            if key == "headerVersion":
                ordered["sender"] = header.get("sender", [])
                ordered["receiver"] = header.get("receiver", [])
        if "headerVersion" not in ordered:
            ordered = {"sender": header.get("sender", []), "receiver": header.get("receiver", []),
                       **ordered}
        if isinstance(self.body, BusinessMessage):
            body: Any = self.body.model_dump(mode="json", by_alias=True, exclude_none=True)
        else:
            body = self.body
        return {HEADER_KEY: ordered, self.body_key: body}

    def to_text(self, wire: dict[str, Any] | None = None) -> str:
        """The wire form as the original writes it (Jackson's pretty printer).

        The store keeps this text and the API answers with it as it is, so an SBD is written
        once (``wire`` when the caller already has it).
        """
        return jackson.render(wire if wire is not None else self.to_json())


def parse_sbd_text(text: str | bytes) -> StandardBusinessDocument:
    """Parse SBD JSON; :class:`SbdFormatError` if not JSON, :class:`SbdInvalid` if mistyped."""
    try:
        data = strict_json.loads(text)
    except strict_json.JsonError as exc:
        raise SbdFormatError(f"JSON parse error: {exc}") from None
    return parse_sbd(data)


def parse_sbd(data: Any) -> StandardBusinessDocument:
    """Build the model from decoded JSON, collecting every binding failure as a violation."""
    if not isinstance(data, dict):
        raise SbdFormatError("JSON parse error: the StandardBusinessDocument must be a JSON object")
    violations: list[Violation] = []
    raw_header = data.get(HEADER_KEY)
    header = Header()
    if raw_header is None:
        violations.append(Violation(HEADER_KEY, "NotNull", "must not be null"))
    elif not isinstance(raw_header, dict):
        violations.append(_mismatch(HEADER_KEY, raw_header, "must be a JSON object"))
    else:
        try:
            header = Header.model_validate(raw_header)
        except ValidationError as exc:
            violations.extend(_binding_violations(exc, (HEADER_KEY,)))
    type_name = _raw_type(raw_header)
    body_key, raw_body = _body_entry(data, type_name)
    body: BusinessMessage | dict[str, Any] | None = raw_body
    cls = message_type(type_name)
    if cls is not None:
        if raw_body is None:
            body = None
        elif not isinstance(raw_body, dict):
            violations.append(_mismatch(body_key, raw_body, "must be a JSON object"))
            body = None
        else:
            try:
                body = cls.model_validate(raw_body)
            except ValidationError as exc:
                violations.extend(_binding_violations(exc, (body_key,)))
        body_key = cls.type_name
    if violations:
        raise SbdInvalid(violations)
    return StandardBusinessDocument(header=header, body=body, body_key=body_key)


def _body_entry(data: dict[str, Any], type_name: str | None) -> tuple[str, Any]:
    """The business message: under the type's name (any case), else the one other key."""
    others = [key for key in data if key != HEADER_KEY]
    if type_name is not None:
        for key in others:
            if key.lower() == type_name.strip().lower():
                return key, data[key]
    if len(others) == 1 and type_name is None:
        return others[0], data[others[0]]
    return (type_name or "businessMessage"), None


def _raw_type(raw_header: Any) -> str | None:
    if isinstance(raw_header, dict):
        ident = raw_header.get("documentIdentification")
        if isinstance(ident, dict) and isinstance(ident.get("type"), str):
            return str(ident["type"])
    return None


def _first_value(partners: Any) -> str | None:
    if partners:
        ident = partners[0].identifier
        if ident is not None:
            return str(ident.value) if ident.value is not None else None
    return None


def _mismatch(field: str, value: Any, message: str) -> Violation:
    return Violation(field, "typeMismatch", message, _printable(value), binding_failure=True)


def _binding_violations(exc: ValidationError, prefix: tuple[str, ...]) -> list[Violation]:
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, TimeFormatError) else _message(error)
        found.append(_mismatch(path(*prefix, *loc), error.get("input"), message))
    return found


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part in {"function-before", "str", "int"})


def _message(error: Any) -> str:
    kind = error["type"]
    if kind.startswith("enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be an integer"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("string_type",):
        return "must be text"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a JSON object"
    if kind in ("list_type",):
        return "must be a JSON array"
    return str(error["msg"])


def _printable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)[:200]
    return value
