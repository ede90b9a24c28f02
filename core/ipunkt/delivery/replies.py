"""Status replies to the senders of incoming messages, sent from a durable queue.

Over DPO the receiving integration point answers each message with a ``status`` MOTTATT when it
stores it and LEVERT when its client took it. The store queues each reply in the same
transaction as the event it answers, so a crash between the two cannot lose it; this sender
leases due replies, hands each to its channel's ``send_reply``, and forgets it once sent. A
reply that fails for now is tried again with the sends' backoff; one the channel refuses for
good is dropped with a warning. A crashed process's leases come back after ``lease_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from ipunkt.channels import ChannelSet
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.retry import RetryPolicy
from ipunkt.delivery.settings import DeliverySettings
from ipunkt.plugin import PermanentError, ReceiptStatus, TransientError
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import MessageStore, ReplyClaim

log = structlog.get_logger(__name__)


class ReplySender:
    """Sends the queued status replies of every channel that has them."""

    def __init__(
        self,
        store: MessageStore,
        channels: ChannelSet,
        settings: DeliverySettings,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.store = store
        self.channels = channels
        self.metrics = metrics
        self.clock = clock
        self.batch = settings.concurrency
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.idle_seconds = settings.outbox_poll_seconds
        self.policy = RetryPolicy(settings.retry_initial_seconds, settings.retry_multiplier,
                                  settings.retry_max_seconds, settings.retry_jitter)
        self._wake = asyncio.Event()
        self._stopping = False

    def nudge(self) -> None:
        """A reply was queued: look at once rather than after the idle interval."""
        self._wake.set()

    def stop(self) -> None:
        """Claim no more; the replies being sent finish (the engine waits a grace period)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self.clock()
            try:
                claims = await self.store.claim_replies(now, now + self.lease, self.batch)
            except Exception:  # a failed claim must not end the replies: log and try again
                log.exception("claiming status replies failed")
                claims = []
            if claims:
                for outcome in await asyncio.gather(*(self._send(claim) for claim in claims),
                                                    return_exceptions=True):
                    if isinstance(outcome, Exception):  # the store failed: the lease runs out
                        log.error("recording a status reply failed", error=str(outcome))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

    async def _send(self, claim: ReplyClaim) -> None:
        bound = log.bind(message_id=claim.message_id, channel=claim.service,
                         status=claim.status, attempt=claim.attempts)
        state = self.channels.states.get(claim.service)
        channel = state.channel if state is not None else None
        try:
            if channel is None:
                raise TransientError(f"the channel {claim.service} is not running")
            await channel.send_reply(json.loads(claim.sbd), ReceiptStatus(claim.status))
        except PermanentError as exc:
            bound.warning("status reply given up: the channel refuses it", error=str(exc))
            self.metrics.replies.labels(claim.service, "refused").inc()
            await self.store.reply_sent(claim.id)
        except Exception as exc:  # any other failure too: the reply waits and comes again
            retry_after = exc.retry_after if isinstance(exc, TransientError) else None
            due = self.policy.next_attempt(self.clock(), claim.attempts, retry_after)
            if isinstance(exc, TransientError):
                bound.warning("status reply failed; trying again", error=str(exc),
                              retry_at=due.isoformat())
            else:
                bound.exception("status reply failed unexpectedly; trying again")
            self.metrics.replies.labels(claim.service, "retry").inc()
            await self.store.retry_reply(claim.id, due, str(exc) or type(exc).__name__)
        else:
            bound.info("status reply sent")
            self.metrics.replies.labels(claim.service, "sent").inc()
            await self.store.reply_sent(claim.id)
