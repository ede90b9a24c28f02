"""``sendersFileTransferReference``: the message channel, and the key that makes sends idempotent.

Several integration points may share one organisation on the broker. The original tells their
files apart by the transfer's ``sendersFileTransferReference``: a status or receipt answering a
message that came with a ``MessageChannel`` scope carries that channel as its reference; every
other file carries a UUID, which (36 characters) never looks like a channel. An integration
point with a channel takes only files whose reference is its channel; one without takes every
file whose reference does not look like a channel.

Where the original draws a random UUID, this channel derives it from the message, so that a
send repeated after a crash can find the file transfer its first attempt made.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ipunkt_dpo import sbd_header

CHANNEL_PATTERN = re.compile(r"^[a-zA-Z0-9-_]{0,25}$")
RECEIPT_TYPES = frozenset(
    {"arkivmelding_kvittering", "einnsyn_kvittering", "dialogmelding_kvittering"}
)
STATUS_TYPE = "status"
_NAMESPACE = uuid.UUID("7b0e4f7e-8d0c-5a3e-9f59-2b1c0dd0a6f1")
"""Namespace of the derived references (any fixed UUID; changing it breaks resend lookups)."""


@dataclass(frozen=True)
class Reference:
    """The reference a send uses; ``unique`` when it names this one send alone."""

    value: str
    unique: bool


def _status_value(sbd: Mapping[str, Any]) -> str:
    body = sbd.get(STATUS_TYPE)
    value = body.get("status") if isinstance(body, Mapping) else None
    return value if isinstance(value, str) else ""


def senders_reference(sbd: Mapping[str, Any], own_channel: str | None) -> Reference:
    """The ``sendersFileTransferReference`` for sending ``sbd``."""
    kind = sbd_header.document_type(sbd)
    channel = sbd_header.message_channel(sbd)
    is_reply = kind == STATUS_TYPE or kind in RECEIPT_TYPES
    if channel and is_reply and channel != own_channel:
        return Reference(channel, unique=False)
    message_id = sbd_header.message_id(sbd) or ""
    if kind == STATUS_TYPE:
        # A status reuses the original's messageId; MOTTATT and LEVERT are separate sends.
        return Reference(str(uuid.uuid5(_NAMESPACE, f"{message_id}/{_status_value(sbd)}")), True)
    try:
        return Reference(str(uuid.UUID(message_id)), unique=True)
    except ValueError:
        return Reference(str(uuid.uuid5(_NAMESPACE, message_id)), unique=True)


def accepts(reference: str | None, own_channel: str | None) -> bool:
    """Whether an integration point on ``own_channel`` (or none) takes a file with ``reference``."""
    if own_channel:
        return reference == own_channel
    return reference is None or CHANNEL_PATTERN.match(reference) is None
