"""Field errors in the shape of Spring's ``FieldError``, as the original puts them in errors[]."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    """One broken rule on one field: ``field`` is the dotted path from the SBD's root."""

    field: str
    code: str
    message: str
    rejected_value: Any = None
    binding_failure: bool = False

    def as_json(self) -> dict[str, Any]:
        """The ``errors[]`` entry, key order as the original."""
        return {
            "codes": [self.code],
            "defaultMessage": self.message,
            "objectName": self.field,
            "field": self.field,
            "rejectedValue": self.rejected_value,
            "bindingFailure": self.binding_failure,
            "code": self.code,
        }


class SbdInvalid(ValueError):
    """The SBD breaks one or more rules; ``violations`` names each field and value."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__(summary(self.violations))


def summary(violations: Iterable[Violation]) -> str:
    """``path: message, path: message`` as Bean Validation's ``ConstraintViolationException``."""
    return ", ".join(f"{v.field}: {v.message}" for v in violations)


def path(*parts: str | int) -> str:
    """``a.b[0].c`` from ``("a", "b", 0, "c")``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
