"""The ``arkivmelding_kvittering`` the original makes when a DPF arkivmelding reaches LEST.

SvarUt sends no application receipts, so the original (``DpfStatusStrategy``) fabricates an
OK receipt from the receiver and queues it to its own fagsystem as an incoming message, when
``generate-arkivmelding-receipts`` is on (off in production). Its messageId is derived from the
original message's, so making it twice gives the same message, which the core then drops.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from ipunkt.plugin import (
    ARKIVMELDING_STANDARD,
    IncomingMessage,
    PollableConversation,
    arkivmelding_receipt,
)

RECEIPT_TYPE = "arkivmelding_kvittering"
_NAMESPACE = uuid.UUID("0b9d3c53-6a52-4f0e-9a55-2f1d0c6f3a11")
"""Fixed namespace of the derived receipt ids (uuid5)."""

__all__ = ["ARKIVMELDING_STANDARD", "arkivmelding_kvittering", "receipt_id", "wants_receipt"]


def wants_receipt(conversation: PollableConversation) -> bool:
    """Whether the conversation is an arkivmelding: the only kind the original makes one for."""
    return conversation.document_type == ARKIVMELDING_STANDARD


def receipt_id(message_id: str) -> str:
    """The messageId of the receipt for ``message_id``: the same every time."""
    return str(uuid.uuid5(_NAMESPACE, f"dpf:{RECEIPT_TYPE}:{message_id}"))


def arkivmelding_kvittering(
    conversation: PollableConversation, organisation: str, now: datetime, *,
    lifetime: timedelta = timedelta(hours=24),
) -> IncomingMessage:
    """An OK receipt from the conversation's receiver to ``organisation``, for its fagsystem."""
    return arkivmelding_receipt(conversation, organisation, now,
                                receipt_id=receipt_id(conversation.message_id), lifetime=lifetime)
