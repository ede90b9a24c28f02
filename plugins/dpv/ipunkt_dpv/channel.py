"""The DPV channel: an outgoing message becomes one Altinn correspondence, then is polled.

Sending is one streamed ``POST /correspondence/upload`` whose ``idempotentKey`` is the
messageId. When Altinn answers 409, an earlier attempt created the correspondence (the answer
was lost, or the process died before recording it), so the channel looks it up by its
``sendersReference`` (also the messageId) and reports success with its id: a message is never
delivered twice. Statuses come from ``GET /correspondence/{id}`` (see :mod:`statuses`); with
``generate_arkivmelding_receipts`` an arkivmelding's LEVERT carries the receipt the original
makes (see :mod:`receipts`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar

import aiohttp
import structlog
from ipunkt.plugin import (
    Channel,
    ChannelContext,
    ChannelHealth,
    ConfigurationError,
    OutgoingMessage,
    PollableConversation,
    ReceiptStatus,
    SendResult,
    StatusUpdate,
    TransientError,
)

from ipunkt_dpv.client import AltinnRefusal, CorrespondenceClient
from ipunkt_dpv.config import DPVConfig
from ipunkt_dpv.correspondence import build_upload
from ipunkt_dpv.receipts import arkivmelding_kvittering, wants_receipt
from ipunkt_dpv.statuses import gone, updates_for

POLL_CONCURRENCY = 8
"""Overviews fetched at once during one status poll."""
NO_REFERENCE = "Mangler correspondenceId fra Altinn; status kan ikke hentes, stopper polling."


class DPVChannel(Channel):
    """Digital post to businesses (and citizens) through Altinn 3 correspondence."""

    status_poll_interval: ClassVar[float | None] = 60.0
    """As the original: its status polling runs every minute (the config may say otherwise)."""

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        if not isinstance(context.config, DPVConfig):
            raise ConfigurationError("the DPV channel needs its own config section (DPVConfig)")
        self.config = context.config
        self.status_poll_interval = self.config.status_poll_interval  # type: ignore[misc]
        self.log = context.log.bind(channel="DPV")
        self._session: aiohttp.ClientSession | None = None
        self._client: CorrespondenceClient | None = None

    async def start(self) -> None:
        if self.context.tokens is None:
            raise ConfigurationError(
                "DPV needs Maskinporten tokens (scope eformidling:dpv): configure Maskinporten"
            )
        self._session = aiohttp.ClientSession()
        self._client = CorrespondenceClient(
            self._session, self.config.correspondence_url, self._token,
            timeout=self.config.request_timeout,
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._client = None

    async def send(self, message: OutgoingMessage) -> SendResult:
        log = self.log.bind(message_id=message.message_id,
                            conversation_id=message.conversation_id)
        upload = await build_upload(message, self.config, organisation=self.context.organisation,
                                    now=datetime.now(UTC))
        client = self._require_client()
        try:
            answer = await client.upload(upload.fields, upload.files)
        except AltinnRefusal as exc:
            if exc.status != 409:
                log.warning("dpv.refused", status=exc.status, error_code=exc.error_code,
                            reason=str(exc))
                raise
            log.info("dpv.already_sent", reason=str(exc))
            return await self._recover(message, upload.resource, log)
        correspondence_id = _correspondence_id(answer)
        log.info("dpv.sent", correspondence_id=correspondence_id)
        return SendResult(statuses=(ReceiptStatus.SENDT,), external_reference=correspondence_id)

    async def poll_statuses(
        self, conversations: Sequence[PollableConversation]
    ) -> Sequence[StatusUpdate]:
        limit = asyncio.Semaphore(POLL_CONCURRENCY)

        async def poll(conversation: PollableConversation) -> list[StatusUpdate]:
            async with limit:
                return await self._poll_one(conversation)

        results = await asyncio.gather(*(poll(c) for c in conversations))
        return [update for updates in results for update in updates]

    async def health(self) -> ChannelHealth:
        if self.context.tokens is None:
            return ChannelHealth(ok=False, detail="no Maskinporten token provider")
        if not self.config.health_url:
            return ChannelHealth(ok=True, detail="not checked (no health_url)")
        try:
            await self._require_client().probe(self.config.health_url)
        except TransientError as exc:
            return ChannelHealth(ok=False, detail=str(exc))
        return ChannelHealth(ok=True, detail="Altinn answers")

    async def _recover(
        self, message: OutgoingMessage, resource: str, log: structlog.stdlib.BoundLogger
    ) -> SendResult:
        """After a 409: the correspondence exists; find its id by our sendersReference."""
        try:
            ids = await self._require_client().find(message.message_id, resource)
        except AltinnRefusal as exc:
            log.error("dpv.lookup_refused", reason=str(exc))
            ids = []
        if not ids:
            log.error("dpv.lookup_found_nothing")
            return SendResult(statuses=(ReceiptStatus.SENDT,), external_reference=None)
        log.info("dpv.found_earlier_correspondence", correspondence_id=ids[0])
        return SendResult(statuses=(ReceiptStatus.SENDT,), external_reference=ids[0])

    async def _poll_one(self, conversation: PollableConversation) -> list[StatusUpdate]:
        log = self.log.bind(message_id=conversation.message_id,
                            conversation_id=conversation.conversation_id)
        reference = conversation.external_reference
        if not reference or not _is_uuid(reference):
            return [gone(conversation, NO_REFERENCE)]
        try:
            overview = await self._require_client().overview(reference)
        except AltinnRefusal as exc:
            if exc.status in (404, 410):
                log.warning("dpv.correspondence_gone", status=exc.status)
                return [gone(conversation)]
            log.error("dpv.status_refused", reason=str(exc))
            return []
        except TransientError as exc:
            log.warning("dpv.status_unavailable", reason=str(exc))
            return []
        updates = updates_for(conversation, overview)
        if self.config.generate_arkivmelding_receipts and wants_receipt(conversation):
            updates = [self._with_receipt(conversation, u) for u in updates]
        return updates

    def _with_receipt(self, conversation: PollableConversation,
                      update: StatusUpdate) -> StatusUpdate:
        """LEVERT of an arkivmelding carries the receipt, to be stored with the status."""
        if update.status is not ReceiptStatus.LEVERT:
            return update
        receipt = arkivmelding_kvittering(conversation, self.context.organisation,
                                          datetime.now(UTC))
        return replace(update, incoming=receipt)

    async def _token(self) -> str:
        assert self.context.tokens is not None
        return await self.context.tokens.token(
            self.config.scopes, altinn=self.config.altinn_token_exchange
        )

    def _require_client(self) -> CorrespondenceClient:
        if self._client is None:
            raise RuntimeError("the DPV channel was not started")
        return self._client


def _correspondence_id(answer: dict[str, object]) -> str:
    """The one correspondence's id from ``InitializeCorrespondencesResponseExt``."""
    items = answer.get("correspondences")
    first = items[0] if isinstance(items, list) and items else None
    value = first.get("correspondenceId") if isinstance(first, dict) else None
    if not isinstance(value, str) or not _is_uuid(value):
        # The correspondence may exist: a retry gets 409 and finds it by sendersReference.
        raise TransientError("Altinn's answer to the upload names no correspondence id")
    return value


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
