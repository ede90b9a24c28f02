"""Incoming messages from the channels, and what the core does with receipts among them.

Each receiving channel is polled on its own schedule; it hands every message to a
:class:`ChannelSink`, which stores it durably (a message id already stored is dropped) before
the channel may confirm it to the remote side. Two kinds are handled here, as the original:

- a ``status`` message (another integration point's MOTTATT or LEVERT) updates the outgoing
  conversation with that message id and is never queued to the client;
- an ``arkivmelding_kvittering`` makes the original message LEST (OK, WARNING or another
  value) or FEIL (ERROR, NOTSUPPORTED), and is also queued to the client. One the channel
  made itself (``StatusUpdate.incoming``: DPV's on LEVERT, DPF's on LEST) is only queued, as
  the original queues its generated receipts: the status it stands for came with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import structlog

from ipunkt.delivery.metrics import Metrics
from ipunkt.messages.incoming import IncomingMessages
from ipunkt.messages.statuses import StatusRules
from ipunkt.plugin import (
    Channel,
    IncomingMessage,
    IncomingSink,
    PermanentError,
    ReceiptStatus,
    StatusUpdate,
    TransientError,
)
from ipunkt.sbd import SbdFormatError, SbdInvalid, StandardBusinessDocument, parse_sbd
from ipunkt.sbd.model import ArkivmeldingKvitteringMessage, StatusMessage
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import Direction, MessageStore

log = structlog.get_logger(__name__)

FAILED_RECEIPTS = frozenset({"ERROR", "NOTSUPPORTED"})


class ChannelSink(IncomingSink):
    """Where one channel's incoming messages go."""

    def __init__(
        self,
        service: str,
        store: MessageStore,
        incoming: IncomingMessages,
        rules: StatusRules,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.service = service
        self.store = store
        self.incoming = incoming
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.received = 0
        """Messages handed over so far; the poller polls again at once while they come."""

    async def receive(self, message: IncomingMessage, *, generated: bool = False) -> bool:
        """Store the message; False for a duplicate. PermanentError if it can never be.

        ``generated``: the channel made it beside a status it reported; it is not applied.
        """
        self.received += 1
        try:
            sbd = parse_sbd(dict(message.sbd))
        except (SbdFormatError, SbdInvalid) as exc:
            await _drain(message.payload)
            raise PermanentError(f"the incoming SBD is not valid: {exc}") from None
        body = sbd.business
        if isinstance(body, StatusMessage):
            await _drain(message.payload)
            await self._status_message(sbd, body)
            return True
        if isinstance(body, ArkivmeldingKvitteringMessage) and not generated:
            await self._arkivmelding_receipt(body)
        stored = await self.incoming.receive(sbd, self.service, message.payload)
        self.metrics.incoming.labels(self.service, "stored" if stored else "duplicate").inc()
        return stored

    async def _status_message(self, sbd: StandardBusinessDocument, body: StatusMessage) -> None:
        if body.status is None or sbd.message_id is None:
            raise PermanentError("the status message names no status or message id")
        status = ReceiptStatus(body.status.value)
        await self._apply(sbd.message_id, status, body.description)
        self.metrics.incoming.labels(self.service, "receipt").inc()

    async def _arkivmelding_receipt(self, body: ArkivmeldingKvitteringMessage) -> None:
        if not body.related_to_message_id:
            return
        receipt = (body.receipt_type or "").upper()
        if receipt in FAILED_RECEIPTS:
            await self._apply(body.related_to_message_id, ReceiptStatus.FEIL,
                              f"ArkivmeldingKvittering: {receipt}")
        else:
            await self._apply(body.related_to_message_id, ReceiptStatus.LEST, None)

    async def _apply(self, message_id: str, status: ReceiptStatus, description: str | None) -> None:
        changes = self.rules.reported(
            [StatusUpdate(message_id, status, description)], self.clock(), self.service
        )
        registered = await self.store.register_statuses(message_id, changes, Direction.OUTGOING)
        for record in registered:
            self.metrics.statuses.labels(self.service, record.status).inc()
        log.info("receipt applied", message_id=message_id, status=status.value,
                 registered=[r.status for r in registered], channel=self.service)


async def _drain(payload: AsyncIterator[bytes] | None) -> None:
    """Read a payload nobody keeps to its end, so that the channel's download completes."""
    if payload is not None:
        async for _ in payload:
            pass


class IncomingPoller:
    """Polls one channel for incoming messages: at once again after a poll that brought some,
    else after ``incoming_poll_interval`` seconds."""

    def __init__(self, service: str, channel: Channel, sink: ChannelSink, metrics: Metrics) -> None:
        self.service = service
        self.channel = channel
        self.sink = sink
        self.metrics = metrics
        self.wake = asyncio.Event()

    async def run(self) -> None:
        interval = self.channel.incoming_poll_interval
        assert interval is not None
        while True:
            self.wake.clear()
            before = self.sink.received
            try:
                await self.channel.poll_incoming(self.sink)
            except TransientError as exc:  # the remote side's trouble, tried again next time
                self.metrics.poll_errors.labels(self.service, "incoming").inc()
                log.warning("polling for incoming messages failed; trying again",
                            channel=self.service, error=str(exc))
            except Exception:  # one failed poll must not end polling: log and go on
                self.metrics.poll_errors.labels(self.service, "incoming").inc()
                log.exception("polling for incoming messages failed", channel=self.service)
            else:
                if self.sink.received > before:
                    continue  # a busy channel is polled again at once, an idle one waits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)
