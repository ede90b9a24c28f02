"""What the DPO channel reads from a Standard Business Document (the JSON form, as a dict).

The plugin may not import the core's SBD model, and it needs only a few header fields: the
parties, the ids, the document type and the ``MessageChannel`` scope. Reading is liberal (a
missing field is ``None``); :func:`check_incoming` says what makes an incoming SBD unusable,
as the original's poller does before it discards a file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

AUTHORITY = "iso6523-actorid-upis"
NORWEGIAN_ICD = "0192"
MESSAGE_CHANNEL_SCOPE = "MessageChannel"
CONVERSATION_SCOPE = "ConversationId"
_PARTY = re.compile(r"^(?P<icd>\d{4}):(?P<org>[^:\s]{1,35})(?::(?P<part>[^:\s]{1,35}))?(?::\d)?$")


class UnusableSbd(ValueError):
    """An incoming SBD that cannot be handed on; ``str()`` is the reason for the log."""


@dataclass(frozen=True)
class Party:
    """An organisation as an SBD names it: ``0192:<orgnr>`` with an optional part.

    A part (``0192:<own>:<other>``) means "sent by <own> on behalf of <other>"; on the broker
    the file is then sent as ``0192:<other>``, as the original does.
    """

    icd: str
    organisation: str
    part: str | None = None

    @classmethod
    def parse(cls, value: str) -> Party:
        text = value.strip()
        if text.isdigit():
            return cls(NORWEGIAN_ICD, text)
        match = _PARTY.match(text)
        if match is None:
            raise ValueError(f"{value!r} is not an organisation identifier (ICD:number)")
        return cls(match["icd"], match["org"], match["part"])

    @property
    def acting(self) -> Party:
        """The party the broker sees: the part when there is one."""
        return Party(self.icd, self.part) if self.part else self

    @property
    def broker_id(self) -> str:
        """The ``0192:<orgnr>`` form the broker's ``sender`` and ``recipients`` use."""
        return f"{self.icd}:{self.organisation}"


def header(sbd: Mapping[str, Any]) -> Mapping[str, Any]:
    value = sbd.get("standardBusinessDocumentHeader")
    return value if isinstance(value, Mapping) else {}


def _party(sbd: Mapping[str, Any], role: str) -> str | None:
    partners = header(sbd).get(role)
    if not isinstance(partners, list) or not partners or not isinstance(partners[0], Mapping):
        return None
    identifier = partners[0].get("identifier")
    if not isinstance(identifier, Mapping):
        return None
    value = identifier.get("value")
    return value if isinstance(value, str) else None


def sender(sbd: Mapping[str, Any]) -> str | None:
    return _party(sbd, "sender")


def receiver(sbd: Mapping[str, Any]) -> str | None:
    return _party(sbd, "receiver")


def _identification(sbd: Mapping[str, Any]) -> Mapping[str, Any]:
    value = header(sbd).get("documentIdentification")
    return value if isinstance(value, Mapping) else {}


def message_id(sbd: Mapping[str, Any]) -> str | None:
    value = _identification(sbd).get("instanceIdentifier")
    return value if isinstance(value, str) else None


def document_type(sbd: Mapping[str, Any]) -> str | None:
    value = _identification(sbd).get("type")
    return value if isinstance(value, str) else None


def scopes(sbd: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    scope = header(sbd).get("businessScope")
    found = scope.get("scope") if isinstance(scope, Mapping) else None
    return [s for s in found if isinstance(s, Mapping)] if isinstance(found, list) else []


def scope(sbd: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((s for s in scopes(sbd) if s.get("type") == kind), None)


def conversation_id(sbd: Mapping[str, Any]) -> str | None:
    found = scope(sbd, CONVERSATION_SCOPE)
    value = found.get("instanceIdentifier") if found else None
    return value if isinstance(value, str) else None


def process(sbd: Mapping[str, Any]) -> str | None:
    found = scope(sbd, CONVERSATION_SCOPE)
    value = found.get("identifier") if found else None
    return value if isinstance(value, str) else None


def message_channel(sbd: Mapping[str, Any]) -> str | None:
    """The ``MessageChannel`` scope's identifier, which routes replies to one of several IPs."""
    found = scope(sbd, MESSAGE_CHANNEL_SCOPE)
    value = found.get("identifier") if found else None
    return value if isinstance(value, str) and value else None


def is_uuid(value: str | None) -> bool:
    if value is None:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def check_incoming(sbd: Any) -> None:
    """Refuse an SBD that cannot be handed on: no header, parties, ids (UUIDs) or body."""
    if not isinstance(sbd, Mapping) or not header(sbd):
        raise UnusableSbd("the SBD has no standardBusinessDocumentHeader")
    for role, value in (("sender", sender(sbd)), ("receiver", receiver(sbd))):
        if value is None:
            raise UnusableSbd(f"the SBD names no {role}")
        try:
            Party.parse(value)
        except ValueError as exc:
            raise UnusableSbd(f"the SBD's {role}: {exc}") from exc
    if not is_uuid(message_id(sbd)):
        raise UnusableSbd(f"the messageId {message_id(sbd)!r} is not a UUID")
    if not is_uuid(conversation_id(sbd)):
        raise UnusableSbd(f"the conversationId {conversation_id(sbd)!r} is not a UUID")
    kind = document_type(sbd)
    if kind is None:
        raise UnusableSbd("the SBD has no documentIdentification.type")
    if not isinstance(sbd.get(kind), Mapping):
        raise UnusableSbd(f"the SBD has no {kind!r} business message")
