"""Outbox workers: lease due messages, hand them to their channels, record what happened.

Each channel has its own loop and its own limit of sends in flight, so a slow or failing
channel never starves the others. A claim is a lease in the store that runs out, so a crashed
worker's messages come back by themselves; a long send renews its lease while it runs.

Outcomes, as the original: success registers the channel's statuses (SENDT, or more) and
removes the message; a :class:`~ipunkt.plugin.TransientError` (or a timeout, or a channel's
unexpected exception) is retried with backoff until the message's lifetime ends, then
LEVETID_UTLOPT; a :class:`~ipunkt.plugin.PermanentError` becomes FEIL at once, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import structlog

from ipunkt.channels import ChannelSet
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.retry import RetryPolicy
from ipunkt.delivery.settings import DeliverySettings
from ipunkt.errors import ApiError, ServiceRegistryUnavailable
from ipunkt.lookup.routing import Router
from ipunkt.messages.statuses import EXPIRED_DESCRIPTION, StatusRules
from ipunkt.plugin import (
    Attachment,
    Channel,
    OutgoingMessage,
    PermanentError,
    ReceiptStatus,
    TransientError,
)
from ipunkt.sbd import parse_sbd_text
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import (
    FileRecord,
    MessageRecord,
    MessageStore,
    OutboxClaim,
    StatusChange,
    StoreError,
)

log = structlog.get_logger(__name__)


class Outbox:
    """The outbox workers of one gateway process."""

    def __init__(
        self,
        store: MessageStore,
        channels: ChannelSet,
        router: Router,
        rules: StatusRules,
        settings: DeliverySettings,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.store = store
        self.channels = channels
        self.router = router
        self.rules = rules
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.policy = RetryPolicy(settings.retry_initial_seconds, settings.retry_multiplier,
                                  settings.retry_max_seconds, settings.retry_jitter)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake: dict[str, asyncio.Event] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False

    def nudge(self) -> None:
        """A message was queued on this gateway: look now rather than at the next poll."""
        for event in self._wake.values():
            event.set()

    async def run(self) -> None:
        loops = [
            self._serve(service, state.channel)
            for service, state in self.channels.states.items()
            if state.channel is not None
        ]
        await asyncio.gather(*loops)

    async def stop(self) -> None:
        """Stop claiming; let sends in flight finish for a grace period, then release them."""
        self._stopping = True
        self.nudge()
        if self._in_flight:
            _, pending = await asyncio.wait(
                self._in_flight, timeout=self.settings.shutdown_grace_seconds
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        released = await self.store.release_leases(self.worker)
        if released:
            log.info("released unfinished sends", count=released)

    async def _give_back(self, claims: list[OutboxClaim]) -> None:
        for claim in claims:
            try:
                await self.store.retry_later(claim.message.message_id, self.worker, self.clock(),
                                             "not sent: the integration point was stopping")
            except StoreError:  # the lease runs out and it comes back
                log.exception("handing back a claimed message failed",
                              message_id=claim.message.message_id)

    async def _serve(self, service: str, channel: Channel) -> None:
        wake = self._wake.setdefault(service, asyncio.Event())
        mine: set[asyncio.Task[None]] = set()
        while not self._stopping:
            wake.clear()
            free = self.settings.concurrency - len(mine)
            claims: list[OutboxClaim] = []
            if free > 0:
                now = self.clock()
                lease = now + timedelta(seconds=self.settings.lease_seconds)
                try:
                    claims = await self.store.claim_due(self.worker, now, lease, free, [service])
                except StoreError:
                    log.exception("claiming due messages failed", channel=service)
            if self._stopping:  # stop() came while claiming: hand these back unsent
                await self._give_back(claims)
                break
            for claim in claims:
                task = asyncio.create_task(self._deliver(claim, service, channel))
                mine.add(task)
                self._in_flight.add(task)

                def done(task: asyncio.Task[None], mine: set[asyncio.Task[None]] = mine) -> None:
                    mine.discard(task)
                    self._in_flight.discard(task)
                    wake.set()

                task.add_done_callback(done)
            if len(claims) < free or free <= 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.settings.outbox_poll_seconds)

    async def _deliver(self, claim: OutboxClaim, service: str, channel: Channel) -> None:
        record = claim.message
        bound = log.bind(message_id=record.message_id, conversation_id=record.conversation_id,
                         channel=service, attempt=claim.attempts)
        if record.expiry <= self.clock():
            await self._expire(record, service, bound)
            return
        started = time.perf_counter()
        keeper = asyncio.create_task(self._keep_lease(record.message_id))
        try:
            message = await self._outgoing(record, claim.attempts)
            async with asyncio.timeout(self.settings.send_timeout_seconds):
                result = await channel.send(message)
        except PermanentError as exc:
            await self._fail(record, service, str(exc), bound)
        except TransientError as exc:
            await self._retry(claim, service, str(exc), exc.retry_after, bound)
        except ServiceRegistryUnavailable as exc:
            await self._retry(claim, service, exc.message, None, bound)
        except ApiError as exc:  # the receiver is unknown now, or no longer takes this
            await self._fail(record, service, exc.message, bound)
        except TimeoutError:
            await self._retry(claim, service, "the send timed out", None, bound)
        except Exception as exc:  # a channel's bug must not lose the message: retry it
            bound.exception("channel raised an unexpected error")
            await self._retry(claim, service, f"{type(exc).__name__}: {exc}", None, bound)
        else:
            poll_at = self.clock() if channel.status_poll_interval is not None else None
            changes = self.rules.reported(result.statuses, self.clock(), service)
            try:
                deleted = await self.store.complete_delivery(
                    record.message_id, self.worker, changes,
                    external_reference=result.external_reference, poll_at=poll_at,
                )
            except StoreError as exc:
                bound.warning("sent, but the claim was lost meanwhile", error=str(exc))
            else:
                await self.store.blobs.delete(deleted.blob_ids)
                self.metrics.sends.labels(service, "sent").inc()
                bound.info("message sent", statuses=[s.value for s in result.statuses],
                           external_reference=result.external_reference)
        finally:
            keeper.cancel()
            self.metrics.send_seconds.labels(service).observe(time.perf_counter() - started)

    async def _keep_lease(self, message_id: str) -> None:
        every = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            until = self.clock() + timedelta(seconds=self.settings.lease_seconds)
            if not await self.store.extend_lease(message_id, self.worker, until):
                log.warning("lost the claim on a message being sent", message_id=message_id)
                return

    async def _outgoing(self, record: MessageRecord, attempt: int) -> OutgoingMessage:
        sbd = parse_sbd_text(record.sbd)
        route = await self.router.route(
            receiver=sbd.receiver,
            process=sbd.process,
            document_type=sbd.standard,
            message_type=sbd.type,
            security_level=getattr(sbd.business, "sikkerhetsnivaa", None),
            conversation_id=sbd.conversation_id,
        )
        if route.service != record.service:
            raise PermanentError(
                f"The receiver is now reached over {route.service}, not {record.service} as "
                "when the message was created; create the message again"
            )
        files = await self.store.files(record)
        return OutgoingMessage(
            message_id=record.message_id,
            conversation_id=record.conversation_id,
            sender=sbd.sender or "",
            receiver=sbd.receiver or "",
            process=record.process,
            document_type=sbd.standard or "",
            sbd=json.loads(record.sbd),
            expires_at=record.expiry,
            attachments=[self._attachment(f) for f in files],
            service_record=route.record.to_wire() if route.record is not None else None,
            attempt=attempt,
        )

    def _attachment(self, file: FileRecord) -> Attachment:
        blobs = self.store.blobs

        def open_file() -> AsyncIterator[bytes]:
            return blobs.read(file.blob_id)

        return Attachment(file.filename, file.mime_type, file.size, open_file, file.title,
                          file.primary)

    async def _retry(
        self,
        claim: OutboxClaim,
        service: str,
        reason: str,
        retry_after: float | None,
        bound: structlog.stdlib.BoundLogger,
    ) -> None:
        record = claim.message
        due = self.policy.next_attempt(self.clock(), claim.attempts, retry_after)
        if due >= record.expiry:
            bound.warning("lifetime ends before the next try", reason=reason)
            await self._expire(record, service, bound, reason)
            return
        if await self.store.retry_later(record.message_id, self.worker, due, reason):
            self.metrics.sends.labels(service, "retry").inc()
            bound.warning("send failed; will retry", reason=reason, retry_at=due.isoformat())

    async def _fail(
        self, record: MessageRecord, service: str, reason: str,
        bound: structlog.stdlib.BoundLogger,
    ) -> None:
        change = self.rules.change(ReceiptStatus.FEIL, self.clock(), service, description=reason)
        await self._finish(record, service, change, "failed")
        bound.error("send failed for good", reason=reason)

    async def _expire(
        self, record: MessageRecord, service: str, bound: structlog.stdlib.BoundLogger,
        reason: str | None = None,
    ) -> None:
        change = self.rules.change(ReceiptStatus.LEVETID_UTLOPT, self.clock(), service,
                                   description=EXPIRED_DESCRIPTION)
        await self._finish(record, service, change, "expired")
        bound.warning("message expired before it could be sent", last_error=reason)

    async def _finish(self, record: MessageRecord, service: str, change: StatusChange,
                      outcome: str) -> None:
        try:
            deleted = await self.store.fail_delivery(record.message_id, self.worker, change)
        except StoreError as exc:
            log.warning("claim lost before recording the outcome", message_id=record.message_id,
                        error=str(exc))
            return
        await self.store.blobs.delete(deleted.blob_ids)
        self.metrics.sends.labels(service, outcome).inc()
