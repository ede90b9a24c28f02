"""The ``status`` messages a receiving integration point sends back over DPO.

When it stores a message it answers MOTTATT, and when its client has taken the message,
LEVERT. When it cannot take a message (its file or package is broken or hostile) it answers
FEIL with the reason in ``description``, which the original's reader ignores and ipunkt's
registers with the status. The reply is an SBD built from the original as the integrasjonspunkt's
``SBDFactory.createStatusFrom`` builds it: the parties swapped, the *same* messageId and
conversationId, the response process of the original's kind, document standard
``urn:no:difi:eformidling:xsd::status``, and the original's ``MessageChannel`` scope so that the
reply reaches the integration point that sent it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ipunkt.plugin import ReceiptStatus

from ipunkt_dpo import sbd_header

STATUS_TYPE = "status"
STATUS_STANDARD = "urn:no:difi:eformidling:xsd::status"
ARKIVMELDING_RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"
RESPONSE_PROCESSES = {
    "arkivmelding": ARKIVMELDING_RESPONSE,
    "arkivmelding_kvittering": ARKIVMELDING_RESPONSE,
    "avtalt": "urn:no:difi:profile:avtalt:response:ver1.0",
    "innsynskrav": "urn:no:difi:profile:einnsyn:response:ver1.0",
    "publisering": "urn:no:difi:profile:einnsyn:response:ver1.0",
    "einnsyn_kvittering": "urn:no:difi:profile:einnsyn:response:ver1.0",
}
REPLY_LIFETIME = timedelta(hours=24)
"""The ``expectedResponseDateTime`` of a reply: the original's default lifetime."""


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _partner(value: str) -> list[dict[str, Any]]:
    return [{"identifier": {"authority": sbd_header.AUTHORITY, "value": value}}]


def status_reply(
    original: Mapping[str, Any],
    status: ReceiptStatus,
    *,
    description: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``status`` SBD that tells the sender of ``original`` that it reached ``status``."""
    moment = now or datetime.now(UTC)
    sender, receiver = sbd_header.sender(original), sbd_header.receiver(original)
    message_id, conversation_id = (
        sbd_header.message_id(original),
        sbd_header.conversation_id(original),
    )
    if not (sender and receiver and message_id and conversation_id):
        raise ValueError("the original SBD lacks a party, its messageId or its conversationId")
    kind = sbd_header.document_type(original) or ""
    process = RESPONSE_PROCESSES.get(kind) or sbd_header.process(original) or ARKIVMELDING_RESPONSE
    scopes: list[dict[str, Any]] = [
        {
            "type": sbd_header.CONVERSATION_SCOPE,
            "instanceIdentifier": conversation_id,
            "identifier": process,
            "scopeInformation": [{"expectedResponseDateTime": _timestamp(moment + REPLY_LIFETIME)}],
        }
    ]
    channel = sbd_header.scope(original, sbd_header.MESSAGE_CHANNEL_SCOPE)
    if channel is not None:
        scopes.append(copy.deepcopy(dict(channel)))
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": _partner(receiver),
            "receiver": _partner(sender),
            "documentIdentification": {
                "standard": STATUS_STANDARD,
                "typeVersion": "2.0",
                "instanceIdentifier": message_id,
                "type": STATUS_TYPE,
                # As the original: a few seconds back, so that no clock calls it future.
                "creationDateAndTime": _timestamp(moment - timedelta(seconds=5)),
            },
            "businessScope": {"scope": scopes},
        },
        STATUS_TYPE: {"status": status.value}
        | ({"description": description} if description is not None else {}),
    }
