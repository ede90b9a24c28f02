"""Lifetimes that run out: LEVETID_UTLOPT for every unfinished conversation past its expiry.

As the original, in both directions, with its description; an undelivered incoming copy or an
unsent outgoing message is removed with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from ipunkt.messages.statuses import EXPIRED_DESCRIPTION, StatusRules
from ipunkt.plugin import ReceiptStatus
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import MessageStore

log = structlog.get_logger(__name__)

BATCH = 500


class LifetimeSweeper:
    def __init__(
        self,
        store: MessageStore,
        rules: StatusRules,
        every: float,
        *,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.store = store
        self.rules = rules
        self.every = every
        self.clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # one failed sweep must not end sweeping: log and go on
                log.exception("lifetime sweep failed")
            await asyncio.sleep(self.every)

    async def sweep(self) -> int:
        """Expire what is due now; returns how many conversations were expired."""
        count = 0
        while True:
            now = self.clock()
            expired = await self.store.expired(now, BATCH)
            for conversation in expired:
                change = self.rules.change(ReceiptStatus.LEVETID_UTLOPT, now,
                                           conversation.service, description=EXPIRED_DESCRIPTION)
                deleted = await self.store.expire(conversation.id, change)
                if deleted is None:
                    continue
                count += 1
                await self.store.blobs.delete(deleted.blob_ids)
                log.warning("lifetime ran out", message_id=conversation.message_id,
                            conversation_id=conversation.conversation_id,
                            direction=conversation.direction.value, channel=conversation.service)
            if len(expired) < BATCH:
                return count
