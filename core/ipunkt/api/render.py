"""The JSON shapes of stored records: SBDs, conversations, statuses (key order as the original)."""

from __future__ import annotations

import json
from typing import Any

from ipunkt.jackson import Raw
from ipunkt.sbd.times import OSLO, format_datetime
from ipunkt.store.base import ConversationRecord, MessageRecord, StatusRecord


def sbd(record: MessageRecord) -> Any:
    """The SBD as stored: the text the API answered its create with, embedded as it is."""
    if record.sbd.startswith("{\n"):
        return Raw(record.sbd)
    return json.loads(record.sbd)  # compact JSON, as a channel or an older version stored it


def status(record: StatusRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "lastUpdate": format_datetime(record.last_update.astimezone(OSLO)),
        "status": record.status,
    }
    if record.description is not None:
        body["description"] = record.description
    if record.raw_receipt is not None:
        body["rawReceipt"] = record.raw_receipt
    body["convId"] = record.conv_id
    body["conversationId"] = record.conversation_id
    body["messageId"] = record.message_id
    return body


def conversation(record: ConversationRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "conversationId": record.conversation_id,
        "messageId": record.message_id,
    }
    optional = {
        "senderIdentifier": record.sender,
        "receiverIdentifier": record.receiver,
        "processIdentifier": record.process,
        "messageReference": record.message_reference,
        "messageTitle": record.message_title,
        "serviceCode": record.service_code,
        "serviceEditionCode": record.service_edition_code,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body["lastUpdate"] = format_datetime(record.last_update.astimezone(OSLO))
    body["finished"] = record.finished
    body["expiry"] = format_datetime(record.expiry.astimezone(OSLO))
    body["direction"] = record.direction.value
    body["serviceIdentifier"] = record.service
    if record.external_reference is not None:
        body["externalSystemReference"] = record.external_reference
    body["messageStatuses"] = [_conversation_status(s) for s in record.statuses]
    return body


def _conversation_status(record: StatusRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "lastUpdate": format_datetime(record.last_update.astimezone(OSLO)),
        "status": record.status,
    }
    if record.description is not None:
        body["description"] = record.description
    return body
