"""What a status does to its conversation, and reading statuses back.

A status is registered once per conversation (a repeat is ignored). LEVERT finishes a
conversation; LEST, FEIL, LEVETID_UTLOPT and INNKOMMENDE_LEVERT finish it and stop its status
polling. Statuses of the services in ``status_queue_includes`` also go on the status queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from ipunkt.plugin import ReceiptStatus, StatusUpdate
from ipunkt.store.base import (
    Direction,
    MessageStore,
    Page,
    PageRequest,
    StatusChange,
    StatusFilter,
    StatusRecord,
)

COMPLETING = frozenset({ReceiptStatus.LEST, ReceiptStatus.FEIL, ReceiptStatus.LEVETID_UTLOPT,
                        ReceiptStatus.INNKOMMENDE_LEVERT})
EXPIRED_DESCRIPTION = "Levetiden for meldingen er utgått. Må sendes på nytt"


class StatusRules:
    """Turns a status event into the store change it makes."""

    def __init__(self, queue_services: Iterable[str] = ()) -> None:
        self.queue_services = frozenset(s.upper() for s in queue_services)

    def change(
        self,
        status: ReceiptStatus,
        at: datetime,
        service: str,
        *,
        description: str | None = None,
        raw_receipt: str | None = None,
    ) -> StatusChange:
        completing = status in COMPLETING
        return StatusChange(
            status=status.value,
            at=at,
            description=description,
            raw_receipt=raw_receipt,
            finished=True if completing or status is ReceiptStatus.LEVERT else None,
            pollable=False if completing else None,
            queue=service.upper() in self.queue_services,
        )


    def reported(
        self,
        statuses: Sequence[ReceiptStatus | StatusUpdate],
        at: datetime,
        service: str,
    ) -> list[StatusChange]:
        """The changes for statuses a channel reported about an outgoing conversation.

        A LEVERT brings a MOTTATT before it, at the same time, so that a conversation never
        shows delivered without received (the store ignores the MOTTATT when the conversation
        has it).
        """
        changes = []
        for item in statuses:
            update = item if isinstance(item, StatusUpdate) else StatusUpdate("", item)
            if update.status is ReceiptStatus.LEVERT:
                changes.append(self.change(ReceiptStatus.MOTTATT, update.at or at, service))
            changes.append(self.change(update.status, update.at or at, service,
                                       description=update.description,
                                       raw_receipt=update.raw_receipt))
        return changes


class Statuses:
    """Registering and finding statuses, and the status queue."""

    def __init__(self, store: MessageStore, rules: StatusRules) -> None:
        self.store = store
        self.rules = rules

    async def register(
        self,
        message_id: str,
        status: ReceiptStatus,
        at: datetime,
        service: str,
        *,
        direction: Direction | None = None,
        description: str | None = None,
        raw_receipt: str | None = None,
    ) -> StatusRecord | None:
        change = self.rules.change(status, at, service, description=description,
                                   raw_receipt=raw_receipt)
        return await self.store.register_status(message_id, change, direction)

    async def find(self, where: StatusFilter, page: PageRequest) -> Page[StatusRecord]:
        return await self.store.find_statuses(where, page)

    async def peek(self) -> StatusRecord | None:
        return await self.store.peek_status_queue()

    async def remove(self, status_id: int) -> bool:
        return await self.store.remove_from_status_queue(status_id)
