"""Status polling for channels whose remote side is asked (DPV, DPF, DPI).

Pollable outgoing conversations are polled in batches. As the original, a conversation that
has been quiet for a long time is polled less often: its interval grows linearly from the
channel's own interval to ``status_poll_max_minutes`` for one idle ``status_poll_backoff_days``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from ipunkt.delivery.inbound import ChannelSink
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.settings import DeliverySettings
from ipunkt.messages.statuses import StatusRules
from ipunkt.plugin import (
    Channel,
    PollableConversation,
    ReceiptStatus,
    StatusUpdate,
    TransientError,
)
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import (
    ConversationFilter,
    ConversationRecord,
    Direction,
    MessageStore,
    PageRequest,
)

log = structlog.get_logger(__name__)


class StatusPoller:
    def __init__(
        self,
        service: str,
        channel: Channel,
        store: MessageStore,
        rules: StatusRules,
        settings: DeliverySettings,
        metrics: Metrics,
        *,
        sink: ChannelSink | None = None,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.service = service
        self.channel = channel
        self.sink = sink
        self.store = store
        self.rules = rules
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        assert channel.status_poll_interval is not None
        self.interval = channel.status_poll_interval

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except TransientError as exc:  # the remote side's trouble, tried again next time
                self.metrics.poll_errors.labels(self.service, "status").inc()
                log.warning("status polling failed; trying again", channel=self.service,
                            error=str(exc))
            except Exception:  # one failed poll must not end polling: log and go on
                self.metrics.poll_errors.labels(self.service, "status").inc()
                log.exception("status polling failed", channel=self.service)
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> int:
        """Poll the conversations that are due; returns how many were polled."""
        now = self.clock()
        due = await self.store.due_for_polling(self.service, now, self.settings.status_poll_batch)
        updates = await self.channel.poll_statuses([_pollable(c) for c in due])
        for update in updates:
            conversation = await self._conversation_of(update)
            if conversation is None:
                log.warning("status for an unknown conversation", channel=self.service,
                            message_id=update.message_id, conversation_id=update.conversation_id)
                continue
            if update.incoming is not None and self.sink is not None:
                # Before the status: a crash between the two then polls again and finds the
                # message stored (its id is fixed), where the other way round the status was
                # final, polling over, and the fagsystem never got its receipt.
                await self.sink.receive(update.incoming, generated=True)
            changes = self.rules.reported([update], self.clock(), self.service)
            registered = await self.store.register_statuses(
                conversation.message_id, changes, Direction.OUTGOING
            )
            for record in registered:
                self.metrics.statuses.labels(self.service, record.status).inc()
                log.info("status learned", message_id=conversation.message_id,
                         status=record.status, conversation_id=conversation.conversation_id,
                         channel=self.service)
            if update.stop_polling:
                await self.store.stop_polling(conversation.id)
        if due:
            await self.store.schedule_polls(
                [(c.id, now + self.next_interval(c, now)) for c in due]
            )
        return len(due)

    async def _conversation_of(self, update: StatusUpdate) -> ConversationRecord | None:
        where = ConversationFilter(
            message_id=update.message_id or None,
            conversation_id=None if update.message_id else update.conversation_id,
            direction=Direction.OUTGOING,
            service=self.service,
        )
        if where.message_id is None and where.conversation_id is None:
            return None
        found = await self.store.find_conversations(where, PageRequest(size=1))
        return found.content[0] if found.content else None

    def next_interval(self, conversation: ConversationRecord, now: datetime) -> timedelta:
        idle = (now - conversation.last_update).total_seconds()
        threshold = self.settings.status_poll_backoff_days * 86_400
        longest = max(self.settings.status_poll_max_minutes * 60, self.interval)
        share = min(max(idle / threshold, 0.0), 1.0)
        return timedelta(seconds=self.interval + (longest - self.interval) * share)


def _pollable(conversation: ConversationRecord) -> PollableConversation:
    return PollableConversation(
        message_id=conversation.message_id,
        conversation_id=conversation.conversation_id,
        receiver=conversation.receiver or "",
        external_reference=conversation.external_reference,
        statuses=tuple(ReceiptStatus(s.status) for s in conversation.statuses),
        document_type=conversation.document_identifier,
    )
