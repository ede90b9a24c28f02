"""Senders and receivers as the store keeps them: the bare primary id, and the part id.

``0192:910077473`` is organisation 910077473; ``0192:910077473:991825827`` is its part
(an organisation sending on behalf of, or a sub-unit) 991825827; an 11-digit value is a
person. Filters accept any of these forms, so ``receiverIdentifier=0192:910075918`` and
``receiverIdentifier=910075918`` find the same messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORG_AUTHORITY = "iso6523-actorid-upis"
NORWEGIAN_ORG_ICD = "0192"
_ISO6523 = re.compile(r"^(?P<icd>\d{4}):(?P<org>[^:]+)(?::(?P<part>[^:]+))?(?::[^:]*)?$")


@dataclass(frozen=True)
class Party:
    value: str
    icd: str | None
    primary: str
    part: str | None

    @property
    def part_or_primary(self) -> str:
        return self.part or self.primary


def party(value: str) -> Party:
    text = value.strip()
    match = _ISO6523.match(text)
    if match:
        return Party(text, match["icd"], match["org"], match["part"])
    return Party(text, None, text, None)


def primary(value: str | None) -> str | None:
    return None if value is None else party(value).primary


def part_or_primary(value: str | None) -> str | None:
    return None if value is None else party(value).part_or_primary
