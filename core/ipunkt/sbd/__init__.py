"""The Standard Business Document: its JSON model, liberal reading, strict writing, validation.

Plain Python with no HTTP in it, so that channels and the sealing toolkit can use it too.
"""

from __future__ import annotations

from ipunkt.sbd.document import (
    HEADER_KEY,
    SbdFormatError,
    StandardBusinessDocument,
    parse_sbd,
    parse_sbd_text,
)
from ipunkt.sbd.model import MESSAGE_TYPES, NEXTMOVE_TYPES, BusinessMessage, ScopeType
from ipunkt.sbd.validation import business_violations, header_violations
from ipunkt.sbd.violations import SbdInvalid, Violation

__all__ = [
    "HEADER_KEY",
    "MESSAGE_TYPES",
    "NEXTMOVE_TYPES",
    "BusinessMessage",
    "SbdFormatError",
    "SbdInvalid",
    "ScopeType",
    "StandardBusinessDocument",
    "Violation",
    "business_violations",
    "header_violations",
    "parse_sbd",
    "parse_sbd_text",
]
