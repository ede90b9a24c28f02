"""From an Altinn correspondence overview to the conversation's statuses.

The original (``DpvStatusStrategy``) reads the overview's timestamps: ``published`` set means
LEVERT, ``read`` set means LEST; a purged correspondence gives ANNET and ends polling. This
module does the same and also reads ``status`` itself, so that every value of Altinn's
``CorrespondenceStatusExt`` has a stated meaning (:data:`MEANINGS`): states after publication
imply LEVERT, those after reading imply LEST, and the terminal failures (Reserved, Failed)
give ANNET and end polling, as nothing more will come. A value Altinn adds later gives ANNET,
as the original does with states it does not know.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ipunkt.plugin import PollableConversation, ReceiptStatus, StatusUpdate

GONE = "Melding slettet i Altinn, stopper polling."
"""The original's description when Altinn answers 404 or 410 for a correspondence."""


class Stage(enum.Enum):
    """How far a correspondence has come, as far as the conversation cares."""

    PENDING = "pending"
    DELIVERED = "delivered"
    READ = "read"
    ENDED = "ended"
    """Gone or refused for good: ANNET, and polling stops."""


@dataclass(frozen=True)
class Meaning:
    stage: Stage
    description: str | None = None


MEANINGS: dict[str, Meaning] = {
    "Initialized": Meaning(Stage.PENDING),
    "ReadyForPublish": Meaning(Stage.PENDING),
    "Published": Meaning(Stage.DELIVERED),
    "Fetched": Meaning(Stage.DELIVERED),
    "AttachmentsDownloaded": Meaning(Stage.DELIVERED),
    "Archived": Meaning(Stage.DELIVERED),
    "Read": Meaning(Stage.READ),
    "Replied": Meaning(Stage.READ),
    "Confirmed": Meaning(Stage.READ),
    "PurgedByRecipient": Meaning(Stage.ENDED, "Meldingen er slettet av mottakeren i Altinn."),
    "PurgedByAltinn": Meaning(Stage.ENDED, "Meldingen er slettet av Altinn."),
    "Reserved": Meaning(
        Stage.ENDED, "Mottakeren har reservert seg mot digital post; meldingen ble ikke publisert."
    ),
    "Failed": Meaning(Stage.ENDED, "Altinn kunne ikke publisere meldingen."),
}
"""Every value of ``CorrespondenceStatusExt`` in the published spec, and what it means."""


def updates_for(
    conversation: PollableConversation, overview: Mapping[str, Any]
) -> list[StatusUpdate]:
    """The statuses ``overview`` shows that the conversation lacks, in order."""
    status = overview.get("status")
    meaning = MEANINGS.get(status) if isinstance(status, str) else None
    read = bool(overview.get("read")) or (meaning is not None and meaning.stage is Stage.READ)
    delivered = read or bool(overview.get("published")) or (
        meaning is not None and meaning.stage is Stage.DELIVERED
    )
    have = set(conversation.statuses)
    updates: list[StatusUpdate] = []
    if delivered and ReceiptStatus.LEVERT not in have:
        updates.append(StatusUpdate(conversation.message_id, ReceiptStatus.LEVERT))
    if read and ReceiptStatus.LEST not in have:
        updates.append(StatusUpdate(conversation.message_id, ReceiptStatus.LEST))
    if meaning is None and status is not None:
        if ReceiptStatus.ANNET not in have:
            updates.append(StatusUpdate(conversation.message_id, ReceiptStatus.ANNET,
                                        description=f"Ukjent status i Altinn: {status}"))
    elif meaning is not None and meaning.stage is Stage.ENDED:
        updates.append(StatusUpdate(conversation.message_id, ReceiptStatus.ANNET,
                                    description=meaning.description, stop_polling=True))
    return updates


def gone(conversation: PollableConversation, reason: str = GONE) -> StatusUpdate:
    """ANNET, and no more polling: Altinn no longer knows the correspondence."""
    return StatusUpdate(conversation.message_id, ReceiptStatus.ANNET, description=reason,
                        stop_polling=True)
